// One server per data directory. A server on a directory holds an exclusive `flock` on
// DIR/obs-local.lock from `start` to `stop`, with its PID written in the file; a second server on
// the same directory (in another process or in this one) fails at start with `DataDirectoryInUse`,
// which names the holder. Two servers on one directory would each keep their own in-memory view
// of the metadata journal and overwrite each other's records.
//
// Only a live holder counts, never the file's existence or the PID in it: the kernel drops the
// lock when the holder's descriptor closes, at `stop` or however the process ends (SIGKILL too),
// so a crash never leaves a directory that needs cleaning by hand.
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SystemFiles

/// Another server holds the data directory.
public struct DataDirectoryInUse: Error, Sendable, CustomStringConvertible {
    public let directory: String
    /// The holder's PID, from the lock file; nil in the instant between its lock and that write.
    public let holder: pid_t?

    public var description: String {
        "data directory \(directory) is in use by " + (holder.map { "process \($0)" } ?? "another process")
    }
}

/// An `flock` on a file, held until `release` (or deinit, or the end of the process).
public final class FileLock: Sendable {
    public enum Mode: Sendable {
        case shared, exclusive
    }

    public let path: String
    /// The open descriptor that holds the lock; nil once released.
    private let descriptor: Mutex<Int32?>

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = Mutex(descriptor)
    }

    deinit { release() }

    /// Opens `path` (created with mode 0600 when missing) and locks it. With `wait` false, nil when
    /// another descriptor holds a conflicting lock; with `wait` true, blocks until it is granted.
    public static func acquire(_ path: String, _ mode: Mode, wait: Bool) throws -> FileLock? {
        let fd = try FileSystem.open(path, O_RDWR | O_CREAT, mode: 0o600)
        let operation = (mode == .shared ? LOCK_SH : LOCK_EX) | (wait ? 0 : LOCK_NB)
        if FileSystem.retryingInterrupts({ flock(fd, operation) }) != 0 {
            let code = errno
            Glibc.close(fd)
            if code == EWOULDBLOCK { return nil }
            throw StorageIOError(operation: "flock", path: path, errno: code)
        }
        return FileLock(path: path, descriptor: fd)
    }

    /// Replaces the file's contents (through the locked descriptor).
    public func record(_ text: String) throws {
        try descriptor.withLock { fd in
            guard let fd else { return }
            guard ftruncate(fd, 0) == 0 else { throw StorageIOError(operation: "ftruncate", path: path, errno: errno) }
            try Array(text.utf8).withUnsafeBytes { bytes in
                guard pwrite(fd, bytes.baseAddress, bytes.count, 0) == bytes.count else {
                    throw StorageIOError(operation: "pwrite", path: path, errno: errno)
                }
            }
        }
    }

    /// Unlocks (by closing the descriptor). Idempotent.
    public func release() {
        descriptor.withLock { fd in
            if let open = fd { Glibc.close(open) }
            fd = nil
        }
    }
}

/// The server's hold on its data directory.
enum DataDirectoryLock {
    static let fileName = "obs-local.lock"

    /// Locks `directory` (created when missing) for this process and records its PID.
    static func acquire(directory: String) throws -> FileLock {
        try FileSystem.makeDirectories(directory)
        let path = directory + "/" + fileName
        guard let lock = try FileLock.acquire(path, .exclusive, wait: false) else {
            let recorded = (try? FileSystem.readFile(path)).map { String(decoding: $0, as: UTF8.self) }
            let holder = recorded.flatMap { pid_t($0.split(whereSeparator: \.isWhitespace).first ?? "") }
            throw DataDirectoryInUse(directory: directory, holder: holder)
        }
        try lock.record("\(getpid())\n")
        return lock
    }
}
