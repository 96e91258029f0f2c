// With Replies.swift and SessionIO.swift (the session's reads and writes of /dev/fuse), the only
// file that touches libfuse3's pointers. It builds the `fuse_lowlevel_ops` table, owns the
// `fuse_session`, runs the session loop, and turns each callback into a call to the core whose
// reply (exactly one per request, through the Dispatcher's `Replies`: libfuse's `fuse_reply_*`
// when mounted) is sent from a Swift Task unless it is at hand (below). No callback blocks its
// thread: the only synchronous work is converting arguments, answers from memory and, for
// `write`, copying the kernel's bytes into part buffers (the buffer is only valid during the
// callback).
//
// Lookups and handles: a reply that hands the kernel an inode (entry, create, readdirplus entries)
// counts one lookup per inode in the core, and create and open hand it a file handle. When the
// kernel does not take such a reply (libfuse returns an error: the request was interrupted) it
// will never forget or release them, so the Dispatcher gives them back itself (`replyEntry`,
// `replyCreate`, `replyDirectory`, open and opendir).
//
// Threads: libfuse's multi-threaded loop (`fuse_session_loop_mt`): several worker threads read
// /dev/fuse and run the callbacks, so two requests' synchronous parts (a write's copy into part
// buffers, argument conversion) run side by side; the core is safe for that (each file's writes
// are ordered under its session's lock, UploadSession.swift). Answered inline on the worker
// thread, without a task: a write whose bytes all went into part buffers, a lookup or getattr the
// inode table and caches answer, a read-only descriptor's flush; the others are answered from a
// task when their answer is ready. The loop's own thread only waits for the end (see
// `SessionControl`). Measured (release builds, obs-local, a busy 2-core machine): answering
// accepted writes inline doubled `dd bs=4k` (80 to 170 MB/s, obsmount CPU 5 to 2 s per GiB) and
// took `bs=1M` from 160 to 220 MB/s; the multi-threaded loop costs one sequential writer about 40%
// more CPU per 4 KiB request (its requests alternate between two workers; 10% at 1 MiB) with no
// throughput change beyond the noise, and four writers at once gained 10-25%.
// With `writeback_cache` the loop is single-threaded: the kernel's writeback sends a file's pages
// as many requests at once, in file order, and workers would admit them out of order (a write
// ahead zero-fills the gap and sends the part; the earlier one then has to be composed).
//
// Interrupts: a request whose answer waits (a write queued for a part buffer, a read waiting for
// its GET, a flush or fsync waiting for the upload) registers `fuse_req_interrupt_func` while it
// waits (the kernel interrupts only the requests it sends synchronously: not read-ahead). When
// the calling process gets a signal the kernel sends INTERRUPT and the callback, on another
// libfuse thread, only withdraws the write from its queue (`PendingWrite.cancel`) or
// stops the wait (`Dispatcher.stoppable`); the request is answered EINTR at once. A read or an
// upload goes on without its caller (mount-options/write-semantics.md, "Interrupted calls").
//
// Unmanaged: `FuseSession.init` passes the `Dispatcher` to libfuse as userdata with ONE
// `passRetained`; the matching `release` is in `run` after `fuse_session_destroy` (when libfuse
// can no longer call back and every started request has been answered), or in `init`/`deinit`
// when the session never runs. `ThreadBody.start` passes its thread argument retained once; the
// thread takes it back (`takeRetainedValue`). An `InterruptHook` is passed retained once to
// `fuse_req_interrupt_func` and released after it is unregistered, before the reply.
import CFuse3
import Glibc
import Logging
import OBSProtocol
import ObsFS
import Synchronization

/// `max_write` asked for in `init`.
let requestedMaxWrite: UInt32 = 1 << 20

/// The state callbacks reach through the session's userdata.
final class Dispatcher: Sendable {
    let fileSystem: ObsFileSystem
    let logger: Logger
    /// Where every reply goes (libfuse's functions in a mounted session; Replies.swift).
    let replies: any Replies
    /// Requests started and not yet answered; destroy waits for 0.
    let outstanding = Mutex(0)

    /// What the kernel is told about how long it may cache names and attributes: the mount's
    /// `attr_timeout=`.
    let cacheSeconds: Double
    /// How long the kernel may remember a missing name (`negative_timeout=`).
    let negativeSeconds: Double
    /// This mount as /proc shows it, once mounted (nil: unknown, so flushes never ask /proc
    /// whether their process holds the file through another descriptor).
    let mount = Mutex<MountIdentity?>(nil)
    /// `kernel_read_ahead=` until the first open or create applies it (KernelReadAhead.swift);
    /// nil: applied, not asked for, or the mount's device is unknown.
    let kernelReadAhead = Mutex<KernelReadAhead?>(nil)

    init(fileSystem: ObsFileSystem, logger: Logger, replies: any Replies) {
        self.fileSystem = fileSystem
        self.logger = logger
        self.replies = replies
        cacheSeconds = Dispatcher.seconds(fileSystem.configuration.attributeTimeout)
        negativeSeconds = Dispatcher.seconds(fileSystem.configuration.negativeTimeout)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func from(_ request: fuse_req_t) -> Dispatcher {
        Unmanaged<Dispatcher>.fromOpaque(fuse_req_userdata(request)).takeUnretainedValue()
    }

    /// Runs `body` in a Task; `body` must answer the request.
    func answer(_ request: fuse_req_t, isLookup: Bool = false, _ body: @escaping @Sendable (Request) async -> Void) {
        outstanding.withLock { $0 += 1 }
        let wrapped = Request(raw: request, isLookup: isLookup)
        Task {
            await body(wrapped)
            self.outstanding.withLock { $0 -= 1 }
        }
    }

    /// Answers an operation whose reply is only a status: 0 when `body` succeeds, else the
    /// errno chosen for its error.
    func answerStatus(_ request: fuse_req_t, _ body: @escaping @Sendable () async throws -> Void) {
        answer(request) { request in await self.replyStatus(request, body) }
    }

    func replyStatus(_ request: Request, _ body: () async throws -> Void) async {
        do {
            try await body()
            replies.error(request, 0)
        } catch {
            fail(request, error)
        }
    }

    /// Awaits `wait` with the request's FUSE interrupts routed to `onInterrupt` (run on the
    /// libfuse thread that reads the INTERRUPT, under the request's lock: it must only cancel or
    /// resume, never block or reply). Registering reports an interrupt that came earlier at once.
    /// Unmanaged: the hook goes to libfuse retained once; unregistering (which waits for a callback
    /// running under the request's lock) comes before the release, so libfuse never calls a freed
    /// hook, and both come before the caller replies, which frees the request.
    func interruptibly<T>(_ request: Request, onInterrupt: @escaping @Sendable () -> Void, _ wait: () async -> T) async -> T {
        let hook = Unmanaged.passRetained(InterruptHook(onInterrupt))
        fuse_req_interrupt_func(request.raw, interruptCallback, hook.toOpaque())
        let value = await wait()
        fuse_req_interrupt_func(request.raw, nil, nil)
        hook.release()
        return value
    }

    /// Runs `work` in its own task and awaits it; an interrupt stops only the wait (EINTR), never
    /// the work, which goes on to its end (a GET whose bytes are dropped, an upload that completes).
    func stoppable<T: Sendable>(_ request: Request, doing action: String, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let answer = OneShot<Result<T, any Error>?>()
        Task {
            do { answer.fulfill(.success(try await work())) } catch { answer.fulfill(.failure(error)) }
        }
        guard let result = await interruptibly(request, onInterrupt: { answer.fulfill(nil) }, { await answer.value }) else {
            throw FileSystemError(.interrupted, "\(action) interrupted; it goes on without its caller")
        }
        return try result.get()
    }

    // MARK: Conversions

    func stat(_ attributes: FileAttributes) -> stat {
        var result = Glibc.stat()
        result.st_ino = UInt(attributes.inode.rawValue)
        result.st_mode = attributes.mode
        result.st_nlink = UInt(attributes.linkCount)
        result.st_rdev = UInt(attributes.device)
        result.st_uid = attributes.uid
        result.st_gid = attributes.gid
        result.st_size = Int(attributes.size)
        result.st_blksize = 1 << 20
        result.st_blocks = Int((attributes.size + 511) / 512)
        result.st_mtim = timespec(attributes.modified)
        result.st_ctim = timespec(attributes.changed)
        result.st_atim = timespec(attributes.accessed)
        return result
    }

    func timespec(_ time: FileTime) -> Glibc.timespec { Glibc.timespec(tv_sec: Int(time.seconds), tv_nsec: Int(time.nanoseconds)) }

    static func fileTime(_ time: Glibc.timespec) -> FileTime { FileTime(seconds: Int64(time.tv_sec), nanoseconds: Int32(time.tv_nsec)) }

    /// The caller of a request: owner and umask of what it creates.
    static func caller(_ request: fuse_req_t) -> Caller {
        guard let context = fuse_req_ctx(request) else { return Caller(uid: getuid(), gid: getgid(), umask: 0o022) }
        return Caller(uid: context.pointee.uid, gid: context.pointee.gid, umask: context.pointee.umask, process: ProcessID(context.pointee.pid))
    }

    /// Answers an operation whose reply is an entry (lookup, mkdir, symlink, mknod, link).
    func answerEntry(_ request: fuse_req_t, isLookup: Bool = false, _ body: @escaping @Sendable () async throws -> FileAttributes) {
        answer(request, isLookup: isLookup) { request in await self.replyEntry(request, body) }
    }

    /// Replies with the entry `body` finds.
    func replyEntry(_ request: Request, _ body: () async throws -> FileAttributes) async {
        do {
            replyEntry(request, try await body())
        } catch {
            fail(request, error)
        }
    }

    /// Replies with `attributes`' entry; a reply the kernel did not take gives the lookup back.
    func replyEntry(_ request: Request, _ attributes: FileAttributes) {
        if !replies.entry(request, entry(attributes)) { fileSystem.forget(attributes.inode, count: 1) }
    }

    func entry(_ attributes: FileAttributes) -> fuse_entry_param {
        var entry = fuse_entry_param()
        entry.ino = attributes.inode.rawValue
        entry.generation = 1
        entry.attr = stat(attributes)
        entry.attr_timeout = cacheSeconds
        entry.entry_timeout = cacheSeconds
        return entry
    }

    /// A name the kernel passed (of a file, a link target, an attribute). Keys and metadata are
    /// UTF-8: a name that is not is answered EILSEQ here (nil returned), never turned into
    /// another name (a repaired one would name a different key, shared by every such name).
    func utf8Name(_ pointer: UnsafePointer<CChar>?, answering request: fuse_req_t) -> String? {
        guard let pointer else { return "" }
        if let text = String(validatingCString: pointer) { return text }
        fail(Request(raw: request), FileSystemError(.illegalByteSequence, "a name that is not UTF-8 (keys are UTF-8)"))
        return nil
    }

    func fail(_ request: Request, _ error: any Error) {
        let errno = ErrnoMapping.errno(for: error)
        // EIO says something went wrong (a store failure, a lost change): the log says what.
        // The other errnos are what a caller may expect (ENOENT, EEXIST, EBUSY…).
        if errno == .io { logger.warning("answered EIO: \(error)") } else { logger.debug("request failed: \(error)") }
        if errno == .noEntry && negativeSeconds > 0 && isLookup(request) {
            // A negative entry: the kernel remembers the missing name for negative_timeout=.
            var entry = fuse_entry_param()
            entry.entry_timeout = negativeSeconds
            replies.entry(request, entry)
            return
        }
        replies.error(request, errno.rawValue)
    }

    private func isLookup(_ request: Request) -> Bool { request.isLookup }
}

/// What a FUSE interrupt does to one waiting request (see `Dispatcher.interruptibly`).
private final class InterruptHook: Sendable {
    /// Taken by the first interrupt; libfuse may report one more than once.
    private let action: Mutex<(@Sendable () -> Void)?>

    init(_ action: @escaping @Sendable () -> Void) { self.action = Mutex(action) }

    func fire() {
        let action = action.withLock { action in
            defer { action = nil }
            return action
        }
        action?()
    }
}

private let interruptCallback: fuse_interrupt_func_t = { _, hook in
    guard let hook else { return }
    Unmanaged<InterruptHook>.fromOpaque(hook).takeUnretainedValue().fire()
}

// MARK: Callbacks (C function pointers: no captures; state comes from the userdata)

private let operations: fuse_lowlevel_ops = {
    var ops = fuse_lowlevel_ops()

    ops.`init` = { userdata, connection in
        guard let userdata, let connection else { return }
        let dispatcher = Unmanaged<Dispatcher>.fromOpaque(userdata).takeUnretainedValue()
        // libfuse 3 always allows big writes (FUSE_CAP_BIG_WRITES is gone) and asks the kernel for
        // max_pages = max_write / page size itself; the kernel caps that at its own limit.
        connection.pointee.max_write = requestedMaxWrite
        if connection.pointee.capable & UInt32(FUSE_CAP_ATOMIC_O_TRUNC) != 0 {
            connection.pointee.want |= UInt32(FUSE_CAP_ATOMIC_O_TRUNC)
        }
        // writeback_cache: the kernel gathers writes in its page cache and sends them in batches
        // (mount-options/write-semantics.md); otherwise writes go straight to part buffers.
        let writeback = UInt32(FUSE_CAP_WRITEBACK_CACHE)
        if dispatcher.fileSystem.configuration.writebackCache && connection.pointee.capable & writeback != 0 {
            connection.pointee.want |= writeback
        } else {
            if dispatcher.fileSystem.configuration.writebackCache { dispatcher.logger.warning("writeback_cache: the kernel does not offer it; writes are not cached") }
            connection.pointee.want &= ~writeback
        }
        // readdirplus: listings hand the kernel the attributes the inode table holds.
        if connection.pointee.capable & UInt32(FUSE_CAP_READDIRPLUS) != 0 {
            connection.pointee.want |= UInt32(FUSE_CAP_READDIRPLUS) | UInt32(FUSE_CAP_READDIRPLUS_AUTO)
        }
        dispatcher.logger.info("FUSE protocol \(connection.pointee.proto_major).\(connection.pointee.proto_minor): max_write \(connection.pointee.max_write) bytes requested (the size of each write delivered is logged per file)")
    }

    ops.lookup = { request, parent, namePointer in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        // Names the table and caches know are answered here; the others in a task.
        do {
            if let known = try dispatcher.fileSystem.cachedLookup(parent: InodeNumber(parent), name: childName) {
                return dispatcher.replyEntry(Request(raw: request, isLookup: true), known)
            }
        } catch {
            return dispatcher.fail(Request(raw: request, isLookup: true), error)
        }
        dispatcher.answerEntry(request, isLookup: true) { try await dispatcher.fileSystem.lookup(parent: InodeNumber(parent), name: childName) }
    }

    ops.forget = { request, inode, count in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        dispatcher.fileSystem.forget(InodeNumber(inode), count: count)
        dispatcher.replies.none(Request(raw: request))
    }

    ops.getattr = { request, inode, _ in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        // Fresh attributes are answered here; a refresh from the store in a task.
        do {
            if let known = try dispatcher.fileSystem.cachedAttributes(InodeNumber(inode)) {
                return dispatcher.replies.attributes(Request(raw: request), dispatcher.stat(known), timeout: dispatcher.cacheSeconds)
            }
        } catch {
            return dispatcher.fail(Request(raw: request), error)
        }
        dispatcher.answer(request) { request in
            do {
                let attributes = dispatcher.stat(try await dispatcher.fileSystem.getattr(InodeNumber(inode)))
                dispatcher.replies.attributes(request, attributes, timeout: dispatcher.cacheSeconds)
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.setattr = { request, inode, attributes, toSet, info in
        guard let request, let attributes else { return }
        let dispatcher = Dispatcher.from(request)
        // writeback_cache: the kernel's own mtime and ctime of a file it writes, sent with the handle.
        let kernelTimes = FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_CTIME
        if toSet & ~kernelTimes == 0, toSet & FUSE_SET_ATTR_CTIME != 0, let info,
           let shown = dispatcher.fileSystem.timesOfCachedWrites(InodeNumber(inode), handle: FileHandleID(info.pointee.fh)) {
            return dispatcher.replies.attributes(Request(raw: request), dispatcher.stat(shown), timeout: dispatcher.cacheSeconds)
        }
        let given = attributes.pointee
        func time(_ set: Int32, _ now: Int32, _ value: Glibc.timespec) -> FileTime? {
            toSet & now != 0 ? .now() : toSet & set != 0 ? Dispatcher.fileTime(value) : nil
        }
        let changes = AttributeChanges(
            size: toSet & FUSE_SET_ATTR_SIZE != 0 ? Int64(given.st_size) : nil,
            permissions: toSet & FUSE_SET_ATTR_MODE != 0 ? given.st_mode & 0o7777 : nil,
            uid: toSet & FUSE_SET_ATTR_UID != 0 ? given.st_uid : nil,
            gid: toSet & FUSE_SET_ATTR_GID != 0 ? given.st_gid : nil,
            accessed: time(FUSE_SET_ATTR_ATIME, FUSE_SET_ATTR_ATIME_NOW, given.st_atim),
            modified: time(FUSE_SET_ATTR_MTIME, FUSE_SET_ATTR_MTIME_NOW, given.st_mtim))
        let caller = Dispatcher.caller(request)
        dispatcher.answer(request) { request in
            do {
                let result = dispatcher.stat(try await dispatcher.fileSystem.setattr(InodeNumber(inode), changes, by: caller))
                dispatcher.replies.attributes(request, result, timeout: dispatcher.cacheSeconds)
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.create = { request, parent, namePointer, mode, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        let caller = Dispatcher.caller(request)
        let template = info.pointee  // libfuse's copy lives on its stack; reply with ours
        dispatcher.answer(request) { request in
            var caller = caller
            caller.process = ProcessFiles.threadGroup(of: caller.process)
            await dispatcher.replyCreate(request, parent: InodeNumber(parent), name: childName, mode: mode, caller: caller, template: template)
        }
    }

    ops.open = { request, inode, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let template = info.pointee
        let flags = template.flags
        let caller = Dispatcher.caller(request)
        dispatcher.answer(request) { request in
            dispatcher.applyKernelReadAhead()
            var reply = template
            do {
                let opener = ProcessFiles.threadGroup(of: caller.process)
                let opened = try await dispatcher.fileSystem.open(InodeNumber(inode), flags: flags, opener: opener, by: caller)
                reply.fh = opened.handle.rawValue
                reply.direct_io = opened.directIO ? 1 : 0
                reply.keep_cache = opened.keepCache ? 1 : 0
                if opened.changedAttributes { dispatcher.replies.attributesChanged(InodeNumber(inode)) }
                if !dispatcher.replies.open(request, reply) { await dispatcher.fileSystem.release(opened.handle) }
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.write = { request, inode, buffer, size, offset, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = FileHandleID(info.pointee.fh)
        let writer = WriterIdentity(info.pointee.lock_owner)
        let caller = Dispatcher.caller(request)
        let dropsSetID = dispatcher.fileSystem.writeDropsSetIDBits(handle, caller: caller)
        // The kernel's bytes are valid only now: admit copies them into part buffers (or aside).
        let admission = dispatcher.fileSystem.write(handle, at: Int64(offset), bytes: UnsafeRawBufferPointer(start: buffer, count: size), writer: writer,
                                                    process: caller.process)
        switch admission {
        // Answered here, on the callback's thread: no task for the common case.
        case .accepted(let count) where !dropsSetID: dispatcher.replies.written(Request(raw: request), count: count)
        case .refused(let error): dispatcher.fail(Request(raw: request), error)
        default:
            dispatcher.answer(request) { request in
                // A write by a caller other than root drops set-ID bits before it is answered.
                if dropsSetID {
                    do {
                        try await dispatcher.fileSystem.dropSetIDBits(writingThrough: handle, caller: caller)
                        dispatcher.replies.attributesChanged(InodeNumber(inode))
                    } catch {
                        dispatcher.logger.error("write to \(InodeNumber(inode)) by uid \(caller.uid): its set-ID bits could not be dropped: \(error)")
                    }
                }
                switch admission {
                case .accepted(let count): dispatcher.replies.written(request, count: count)
                case .refused(let error): dispatcher.fail(request, error)
                case .waiting(let pending):
                    // An interrupt withdraws the write from its queue: EINTR (or short) at once.
                    switch await dispatcher.interruptibly(request, onInterrupt: { pending.cancel() }, { await pending.outcome }) {
                    case .success(let count): dispatcher.replies.written(request, count: count)
                    case .failure(let error): dispatcher.fail(request, error)
                    }
                }
            }
        }
    }

    ops.read = { request, _, size, offset, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = FileHandleID(info.pointee.fh)
        dispatcher.answer(request) { request in
            do {
                let bytes = try await dispatcher.stoppable(request, doing: "read of \(size) bytes at \(offset)") {
                    try await dispatcher.fileSystem.read(handle, at: Int64(offset), count: size)
                }
                bytes.withPieces { dispatcher.replies.gathered(request, $0) }
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.flush = { request, inode, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = FileHandleID(info.pointee.fh)
        // A read-only descriptor's close has nothing to store: answered here.
        if dispatcher.fileSystem.isReadOnly(handle) { return dispatcher.replies.error(Request(raw: request), 0) }
        let writer = WriterIdentity(info.pointee.lock_owner)
        let thread = Dispatcher.caller(request).process
        dispatcher.answer(request) { request in
            await dispatcher.replyStatus(request) {
                try await dispatcher.stoppable(request, doing: "flush") {
                    let process = ProcessFiles.threadGroup(of: thread)
                    let heldElsewhere = dispatcher.mount.withLock { $0 }.map { ProcessFiles.holdsWritable(process: process, inode: InodeNumber(inode), mount: $0) } ?? false
                    try await dispatcher.fileSystem.flush(handle, writer: writer, process: process, stillHeldWritable: heldElsewhere)
                }
            }
        }
    }

    ops.fsync = { request, _, _, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = FileHandleID(info.pointee.fh)
        dispatcher.answer(request) { request in
            await dispatcher.replyStatus(request) { try await dispatcher.stoppable(request, doing: "fsync") { try await dispatcher.fileSystem.fsync(handle) } }
        }
    }

    ops.fallocate = { request, inode, mode, offset, length, _ in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        dispatcher.answer(request) { request in
            await dispatcher.replyStatus(request) {
                try await dispatcher.fileSystem.allocate(InodeNumber(inode), offset: Int64(offset), length: Int64(length), mode: mode)
            }
        }
    }

    ops.release = { request, _, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = FileHandleID(info.pointee.fh)
        dispatcher.answer(request) { request in
            await dispatcher.fileSystem.release(handle)
            dispatcher.replies.error(request, 0)
        }
    }

    ops.unlink = { request, parent, namePointer in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        dispatcher.answerStatus(request) { try await dispatcher.fileSystem.unlink(parent: InodeNumber(parent), name: childName) }
    }

    ops.mkdir = { request, parent, namePointer, mode in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        let caller = Dispatcher.caller(request)
        dispatcher.answerEntry(request) {
            try await dispatcher.fileSystem.mkdir(parent: InodeNumber(parent), name: childName, mode: mode, caller: caller)
        }
    }

    ops.rmdir = { request, parent, namePointer in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        dispatcher.answerStatus(request) { try await dispatcher.fileSystem.rmdir(parent: InodeNumber(parent), name: childName) }
    }

    ops.symlink = { request, targetPointer, parent, namePointer in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        guard let target = dispatcher.utf8Name(targetPointer, answering: request) else { return }
        let caller = Dispatcher.caller(request)
        dispatcher.answerEntry(request) {
            try await dispatcher.fileSystem.symlink(parent: InodeNumber(parent), name: childName, target: target, caller: caller)
        }
    }

    ops.readlink = { request, inode in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        dispatcher.answer(request) { request in
            do {
                let target = try await dispatcher.fileSystem.readlink(InodeNumber(inode))
                dispatcher.replies.symlinkTarget(request, target)
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.mknod = { request, parent, namePointer, mode, device in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        let caller = Dispatcher.caller(request)
        dispatcher.answerEntry(request) {
            try await dispatcher.fileSystem.mknod(parent: InodeNumber(parent), name: childName, mode: mode, device: UInt64(device), caller: caller)
        }
    }

    ops.link = { request, inode, newParent, namePointer in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        dispatcher.answerEntry(request) {
            try dispatcher.fileSystem.link(InodeNumber(inode), parent: InodeNumber(newParent), name: childName)
        }
    }

    ops.rename = { request, parent, namePointer, newParent, newNamePointer, flags in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        guard let newName = dispatcher.utf8Name(newNamePointer, answering: request) else { return }
        dispatcher.answerStatus(request) {
            try await dispatcher.fileSystem.rename(parent: InodeNumber(parent), name: childName, newParent: InodeNumber(newParent),
                                                   newName: newName, flags: UInt32(flags))
        }
    }

    ops.opendir = { request, inode, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let template = info.pointee
        dispatcher.answer(request) { request in
            var reply = template
            do {
                reply.fh = try dispatcher.fileSystem.openDirectory(InodeNumber(inode)).rawValue
                if !dispatcher.replies.open(request, reply) { dispatcher.fileSystem.releaseDirectory(DirectoryHandleID(reply.fh)) }
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.readdir = { request, directory, size, offset, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = DirectoryHandleID(info.pointee.fh)
        dispatcher.answer(request) { request in
            await dispatcher.replyDirectory(request, handle, InodeNumber(directory), size: size, offset: offset, plus: false)
        }
    }

    ops.readdirplus = { request, directory, size, offset, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = DirectoryHandleID(info.pointee.fh)
        dispatcher.answer(request) { request in
            await dispatcher.replyDirectory(request, handle, InodeNumber(directory), size: size, offset: offset, plus: true)
        }
    }

    ops.releasedir = { request, _, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = DirectoryHandleID(info.pointee.fh)
        dispatcher.answer(request) { request in
            dispatcher.fileSystem.releaseDirectory(handle)
            dispatcher.replies.error(request, 0)
        }
    }

    ops.statfs = { request, _ in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        dispatcher.answer(request) { request in
            let numbers = dispatcher.fileSystem.statistics()
            var result = statvfs()
            result.f_bsize = UInt(numbers.blockSize)
            result.f_frsize = UInt(numbers.blockSize)
            result.f_blocks = UInt(numbers.totalBlocks)
            result.f_bfree = UInt(numbers.freeBlocks)
            result.f_bavail = UInt(numbers.freeBlocks)
            result.f_files = UInt(numbers.totalFiles)
            result.f_ffree = UInt(numbers.freeFiles)
            result.f_favail = UInt(numbers.freeFiles)
            result.f_namemax = UInt(numbers.maximumNameLength)
            dispatcher.replies.statistics(request, result)
        }
    }

    ops.getxattr = { request, inode, namePointer, size in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let attributeName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        // Answered here (no store involved): writeback_cache asks security.capability per write.
        if let refusal = ObsFileSystem.unkeptAttributeName(attributeName) { return dispatcher.fail(Request(raw: request), refusal) }
        dispatcher.answer(request) { request in
            do {
                dispatcher.replyXattr(request, try await dispatcher.fileSystem.getxattr(InodeNumber(inode), name: attributeName), size: size)
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.listxattr = { request, inode, size in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        dispatcher.answer(request) { request in
            do {
                let names = try await dispatcher.fileSystem.listxattr(InodeNumber(inode))
                dispatcher.replyXattr(request, names.flatMap { Array($0.utf8) + [0] }, size: size)
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.setxattr = { request, inode, namePointer, valuePointer, size, flags in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let attributeName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        // The value is valid only during the callback.
        let value = valuePointer.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
        dispatcher.answerStatus(request) { try await dispatcher.fileSystem.setxattr(InodeNumber(inode), name: attributeName, value: value, flags: flags) }
    }

    ops.removexattr = { request, inode, namePointer in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let attributeName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        dispatcher.answerStatus(request) { try await dispatcher.fileSystem.removexattr(InodeNumber(inode), name: attributeName) }
    }

    return ops
}()

extension Dispatcher {
    /// FUSE's "inode number unknown" for readdir entries the table does not know yet.
    static let unknownInode: UInt = 0xffff_ffff

    /// One readdir/readdirplus reply: as many entries after `offset` as fit in `size` bytes.
    /// readdirplus entries whose attributes the table holds count one lookup each, given back
    /// when the entry does not fit or the kernel does not take the reply; the others are sent
    /// without attributes (ino 0), so the kernel looks them up itself.
    func replyDirectory(_ request: Request, _ handle: DirectoryHandleID, _ directory: InodeNumber, size: Int, offset: off_t, plus: Bool) async {
        let entries: [DirectoryEntry]
        do {
            entries = try await fileSystem.readDirectory(handle, directory: directory, from: Int64(offset), plus: plus)
        } catch {
            fail(request, error)
            return
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: MemoryLayout<UInt64>.alignment)
        defer { buffer.deallocate() }
        var used = 0
        // The lookups the packed entries carry: given back when the kernel does not take the reply.
        var counted: [InodeNumber] = []
        for entry in entries {
            let room = UnsafeMutableRawBufferPointer(rebasing: buffer[used..<size])
            var attributes = Glibc.stat()
            attributes.st_ino = entry.inode.map { UInt($0.rawValue) } ?? Dispatcher.unknownInode
            attributes.st_mode = entry.kind.typeBits
            let needed: Int
            if plus {
                let known = fileSystem.entryAttributes(entry, in: directory)
                var param = known.map { self.entry($0) } ?? fuse_entry_param()
                if known == nil { param.attr = attributes }
                needed = replies.packEntryPlus(request, into: room, name: entry.name, entry: param, cookie: off_t(entry.cookie))
                if let known {
                    if needed > room.count { fileSystem.forget(known.inode, count: 1) } else { counted.append(known.inode) }
                }
            } else {
                needed = replies.packEntry(request, into: room, name: entry.name, attributes: attributes, cookie: off_t(entry.cookie))
            }
            if needed > room.count { break }
            used += needed
        }
        if !replies.buffer(request, UnsafeRawBufferPointer(rebasing: buffer[..<used])) {
            for inode in counted { fileSystem.forget(inode, count: 1) }
        }
    }

    /// Sets `kernel_read_ahead=` at the first call (the kernel has taken the INIT reply by then).
    func applyKernelReadAhead() {
        kernelReadAhead.withLock { pending in defer { pending = nil }; return pending }?.apply(logger: logger)
    }

    /// Creates and opens a file (one lookup and a handle). When the kernel does not take the
    /// reply (the opener was interrupted) it will neither forget the inode nor release the handle:
    /// both are given back here.
    func replyCreate(_ request: Request, parent: InodeNumber, name: String, mode: UInt32, caller: Caller, template: fuse_file_info) async {
        applyKernelReadAhead()
        do {
            let (attributes, handle) = try await fileSystem.create(parent: parent, name: name, mode: mode, flags: template.flags, caller: caller)
            var reply = template
            reply.fh = handle.rawValue
            reply.direct_io = fileSystem.configuration.writebackCache ? 0 : 1
            if !replies.create(request, entry(attributes), reply) {
                fileSystem.forget(attributes.inode, count: 1)
                await fileSystem.release(handle)
            }
        } catch {
            fail(request, error)
        }
    }

    /// getxattr/listxattr protocol: size 0 asks for the length; a too-small buffer is ERANGE.
    func replyXattr(_ request: Request, _ value: [UInt8], size: Int) {
        if size == 0 {
            replies.extendedAttributeSize(request, value.count)
        } else if size < value.count {
            replies.error(request, ERANGE)
        } else {
            _ = value.withUnsafeBytes { replies.buffer(request, $0) }
        }
    }
}

// MARK: Session

/// Runs a closure on a new detached thread. The closure box is passed to the thread with one
/// `passRetained`, which the thread takes back with `takeRetainedValue`.
private final class ThreadBody: @unchecked Sendable {
    // @unchecked: handed to exactly one thread, which alone uses it.
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }

    static func start(_ body: @escaping @Sendable () -> Void) -> Bool {
        let argument = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { argument in
            Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue().body()
            return nil
        }, argument)
        guard created == 0 else {
            Unmanaged<ThreadBody>.fromOpaque(argument).release()
            return false
        }
        pthread_detach(thread)
        return true
    }
}

/// Write end of the self-pipe that SIGTERM/SIGINT write a byte into. Set once, before the
/// handlers are installed; read only by the handler.
nonisolated(unsafe) private var terminationPipeWriteEnd: Int32 = -1

/// Sent to the loop's main thread to make its blocked `sem_wait` return EINTR (handler installed
/// without SA_RESTART; it does nothing else).
private let loopWakeSignal = SIGUSR1

/// Idle worker threads the multi-threaded loop keeps: as many as it may start (libfuse's default
/// limit, 10), so none ever ends. It starts one more whenever none is idle; ending idle ones made
/// every burst start and end threads: `dd bs=4k` fell from 170 to 40 MB/s with a limit of 1.
/// (libfuse 3.14 cannot be given its own "-1" through this struct: it logs the value as invalid.)
private let idleLoopWorkers: UInt32 = 10

/// The session as the loop thread, the signal watcher and `run` share it: unmounting happens
/// once, and nothing touches the session after it is destroyed.
private final class SessionControl: @unchecked Sendable {
    // @unchecked: `raw` is immutable; every use after the loop started goes through `state`,
    // except the session loop itself (and its workers), which ends before `destroy` is called.
    let raw: OpaquePointer

    private struct Lifecycle {
        var loopThread: pthread_t?
        var loopEnded = false
        var unmounted = false
        var destroyed = false
    }

    /// Orders unmount and destroy (from `run`), and knows the loop's main thread.
    private let state = Mutex(Lifecycle())

    /// libfuse's worker threads, or the calling thread alone (`writeback_cache`).
    let multiThreaded: Bool

    init(_ raw: OpaquePointer, multiThreaded: Bool) {
        self.raw = raw
        self.multiThreaded = multiThreaded
    }

    /// Runs the multi-threaded session loop with the calling thread as its main thread until it
    /// ends. libfuse's workers (this thread's signal mask plus SIGTERM, SIGINT, SIGHUP and SIGQUIT
    /// blocked; `loopWakeSignal` is sent to this thread only) read /dev/fuse and run the
    /// callbacks; this thread only waits on a semaphore that a worker posts when its read finds
    /// the session ended (`fusermount3 -u`: ENODEV), then cancels the other workers in their
    /// reads and joins them.
    func loop() -> Int32 {
        // Threads started from Swift's (libdispatch's) worker threads inherit a mask blocking
        // most signals; the wake signal must get through to this one.
        var wake = sigset_t()
        sigemptyset(&wake)
        sigaddset(&wake, loopWakeSignal)
        pthread_sigmask(SIG_UNBLOCK, &wake, nil)
        state.withLock { $0.loopThread = pthread_self() }
        var config = fuse_loop_config(clone_fd: 0, max_idle_threads: idleLoopWorkers)
        // What the header's `fuse_session_loop_mt` macro names for FUSE_USE_VERSION 35.
        let status = multiThreaded ? fuse_session_loop_mt_32(raw, &config) : fuse_session_loop(raw)
        state.withLock { $0.loopEnded = true }
        return status
    }

    /// Ends the session loop: marks the session exited and wakes the loop's main thread with
    /// `loopWakeSignal` until the loop has returned (its `sem_wait` returns EINTR, it sees the
    /// session exited, and cancels the workers in their reads). It does not unmount: `run`
    /// does, once the requests in flight are answered.
    func exitLoop() {
        state.withLock { state in
            guard !state.destroyed else { return }
            fuse_session_exit(raw)
        }
        while let thread = state.withLock({ $0.loopEnded ? nil : $0.loopThread }) {
            pthread_kill(thread, loopWakeSignal)
            usleep(100_000)
        }
    }

    func unmount() {
        state.withLock { state in
            guard !state.unmounted, !state.destroyed else { return }
            state.unmounted = true
            fuse_session_unmount(raw)
        }
    }

    func destroy() {
        state.withLock { state in
            guard !state.destroyed else { return }
            state.destroyed = true
            fuse_session_destroy(raw)
        }
    }
}

/// Why a mount could not be set up.
public struct FuseMountError: Error, CustomStringConvertible {
    public let description: String
}

/// A mounted FUSE session serving one `ObsFileSystem`.
public final class FuseSession {
    /// The owned `struct fuse_session *`, destroyed in `run` (or `deinit` if never run).
    private var session: OpaquePointer?
    private let userdata: UnsafeMutableRawPointer
    private let dispatcher: Dispatcher
    /// The session for notifications to the kernel (LibfuseReplies): set once mounted.
    private let notifications: SessionForNotifications
    private let logger: Logger
    public let mountpoint: String

    /// Creates the session and mounts it. Does not serve requests until `run`.
    /// - Parameter options: FUSE mount options (`allow_other`, `ro`, `fsname=…`, …).
    public init(fileSystem: ObsFileSystem, mountpoint: String, options: [String], debug: Bool, logger: Logger) throws {
        self.mountpoint = mountpoint
        self.logger = logger
        let replies = LibfuseReplies()
        notifications = replies.session
        dispatcher = Dispatcher(fileSystem: fileSystem, logger: logger, replies: replies)
        let arguments = ["obsmount"] + (debug ? ["-d"] : []) + (options.isEmpty ? [] : ["-o", options.joined(separator: ",")])
        var cArguments = arguments.map { strdup($0) }
        defer { cArguments.forEach { free($0) } }
        // The one passRetained; released in `run` (or below when creating the session fails).
        userdata = Unmanaged.passRetained(dispatcher).toOpaque()
        var args = fuse_args(argc: Int32(cArguments.count), argv: nil, allocated: 0)
        let created: OpaquePointer? = cArguments.withUnsafeMutableBufferPointer { pointers in
            args.argv = pointers.baseAddress
            var ops = operations
            return fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata)
        }
        guard let created else {
            Unmanaged<Dispatcher>.fromOpaque(userdata).release()
            throw FuseMountError(description: "fuse_session_new failed (bad FUSE options: \(options.joined(separator: ",")))")
        }
        // Resolved before mounting: once mounted, looking at the path asks this (not yet
        // serving) session.
        let absolute = realpath(mountpoint, nil).map { path in defer { free(path) }; return String(cString: path) } ?? mountpoint
        guard fuse_session_mount(created, mountpoint) == 0 else {
            fuse_session_destroy(created)
            Unmanaged<Dispatcher>.fromOpaque(userdata).release()
            throw FuseMountError(description: "cannot mount on \(mountpoint) (does it exist, and may this user mount there?)")
        }
        if !SessionIO.install(on: created) { logger.warning("libfuse refused the session's I/O: the kernel asks for security.capability before each cached write") }
        session = created
        notifications.set(created)
        let mounted = ProcessFiles.read("/proc/self/mountinfo").flatMap { ProcessFiles.mountEntry(of: absolute, in: $0) }
        if mounted == nil { logger.warning("\(absolute) is not in /proc/self/mountinfo: every flush of a file's opener completes it, also one of a duplicated descriptor") }
        dispatcher.mount.withLock { $0 = mounted.map { MountIdentity(id: $0.id, path: absolute) } }
        if let readAhead = fileSystem.configuration.read.kernelReadAhead, let mounted {
            dispatcher.kernelReadAhead.withLock { $0 = KernelReadAhead(bytes: readAhead, device: mounted.device) }
        }
    }

    /// Serves requests on a dedicated thread until `fusermount3 -u`, SIGTERM or SIGINT; then calls
    /// `stopping`, finishes or aborts open uploads (a log line each), answers the requests in
    /// flight, unmounts and tears the session down. (SIGHUP is the executable's: obsmount
    /// reopens its log file.)
    ///
    /// Signals: any thread may take them (libdispatch's main thread unblocks everything in
    /// sigsuspend), so the handler only writes a byte to a pipe; a watcher thread reads it and
    /// ends the loop by exiting the session and waking the loop's main thread (`exitLoop`).
    public func run(stopping: () -> Void = {}) async {
        guard let session else { return }
        let control = SessionControl(session, multiThreaded: !dispatcher.fileSystem.configuration.writebackCache)
        self.session = nil  // from here on `control` owns it
        installTerminationWatcher(control)
        let status: Int32 = await withCheckedContinuation { continuation in
            let started = ThreadBody.start { continuation.resume(returning: control.loop()) }
            if !started { continuation.resume(returning: -EAGAIN) }
        }
        stopping()
        logger.notice("unmounting \(mountpoint) (session loop ended with \(status))")
        // Uploads finish or are aborted, and every started request is answered, while the device
        // is open: unmounting closes it, and a reply after that is lost (a close() whose upload
        // completed during a SIGTERM would fail with ENOTCONN).
        await dispatcher.fileSystem.shutdown()
        while dispatcher.outstanding.withLock({ $0 }) > 0 { try? await Task.sleep(for: .milliseconds(10)) }
        control.unmount()
        notifications.clear()
        control.destroy()
        Unmanaged<Dispatcher>.fromOpaque(userdata).release()
        logger.notice("unmounted \(mountpoint)")
    }

    private func installTerminationWatcher(_ control: SessionControl) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else {
            logger.warning("no signal handling: pipe failed with errno \(errno)")
            return
        }
        terminationPipeWriteEnd = ends[1]
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber) { _ in
                var byte: UInt8 = 1
                _ = write(terminationPipeWriteEnd, &byte, 1)
            }
        }
        var wake = sigaction()
        wake.__sigaction_handler.sa_handler = { _ in }
        wake.sa_flags = 0  // no SA_RESTART: the loop's read must return EINTR
        sigemptyset(&wake.sa_mask)
        sigaction(loopWakeSignal, &wake, nil)
        let readEnd = ends[0]
        let logger = logger
        let started = ThreadBody.start {
            var byte: UInt8 = 0
            while read(readEnd, &byte, 1) < 0 && errno == EINTR {}
            logger.notice("termination signal: unmounting")
            control.exitLoop()
        }
        if !started { logger.warning("no signal handling: cannot start the watcher thread") }
    }

    deinit {
        if let session {
            notifications.clear()
            fuse_session_unmount(session)
            fuse_session_destroy(session)
            Unmanaged<Dispatcher>.fromOpaque(userdata).release()
        }
    }
}
