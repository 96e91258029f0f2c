// The FUSE adapter. This file owns the `fuse_session` and runs the session loop; with
// FuseOperations.swift (the `fuse_lowlevel_ops` table), Dispatcher.swift, Replies.swift and
// SessionIO.swift (the session's reads and writes of /dev/fuse) it is the only code that touches
// libfuse3's pointers. The adapter turns each callback into a call to the core whose
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
import SystemFiles

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
            var ops = fuseOperations
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
        dispatcher.mount.withLock { $0 = mounted.map { MountIdentity(id: $0.id) } }
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
            _ = FileSystem.retryingInterrupts { read(readEnd, &byte, 1) }
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
