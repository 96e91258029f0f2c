// The Dispatcher: what every libfuse callback reaches through the session's userdata (the
// core, the replies, the mount). It runs a request's answer in a task (or lets the callback
// answer inline), routes FUSE interrupts to the request waiting for them, maps errors to errnos
// (`fail`) and builds the replies that hand the kernel inodes and handles. The design note of
// the adapter is at the top of FuseSession.swift.
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

    /// Answers an operation whose reply is attributes (getattr, setattr).
    func answerAttributes(_ request: fuse_req_t, _ body: @escaping @Sendable () async throws -> FileAttributes) {
        answer(request) { request in
            do {
                self.replies.attributes(request, self.stat(try await body()), timeout: self.cacheSeconds)
            } catch {
                self.fail(request, error)
            }
        }
    }

    /// Answers a status-only operation on the name at `pointer` (unlink, rmdir), once it is
    /// valid UTF-8.
    func answerStatus(_ request: fuse_req_t, naming pointer: UnsafePointer<CChar>?, _ body: @escaping @Sendable (String) async throws -> Void) {
        guard let name = utf8Name(pointer, answering: request) else { return }
        answerStatus(request) { try await body(name) }
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
            attributes.st_ino = (entry.inode ?? entry.expectedInode).map { UInt($0.rawValue) } ?? Dispatcher.unknownInode
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
