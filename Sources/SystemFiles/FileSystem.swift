// The POSIX file operations of obs-local and of the mount's local state, in one place:
// descriptors (open, write all, positioned read, set length, sync, close), directories, listing,
// whole-file reads, and atomic replacement (write a temporary file, sync it, then rename it over
// the target). Every call checks its result; the ones that can be interrupted retry on EINTR
// (`retryingInterrupts`, which the project's other system calls use too).
#if canImport(Glibc)
import Glibc
#endif

/// A failed file call: its name, the path and the errno (obs-local answers it as
/// `500 InternalError`).
public struct StorageIOError: Error, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var errno: Int32

    public init(operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
}

public enum FileSystem {
    /// Calls `call` again as long as it fails with EINTR (-1 and that errno): the result of the
    /// first call that was not interrupted; a failure's errno is still set. Every retry of an
    /// interrupted system call in the project goes through here.
    @inlinable
    public static func retryingInterrupts<Result: SignedInteger>(_ call: () -> Result) -> Result {
        while true {
            let result = call()
            if result >= 0 || errno != EINTR { return result }
        }
    }

    /// `retryingInterrupts`, then a negative result thrown with its errno.
    @discardableResult
    public static func checked<Result: SignedInteger>(_ operation: String, path: String, _ call: () -> Result) throws -> Result {
        let result = retryingInterrupts(call)
        guard result >= 0 else { throw StorageIOError(operation: operation, path: path, errno: errno) }
        return result
    }

    /// Opens `path`; throws with the errno.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> Int32 {
        try checked("open", path: path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// Writes every byte (retrying short writes and EINTR).
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var done = 0
        while done < bytes.count {
            done += try checked("write", path: path) { Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done) }
        }
    }

    /// Reads up to `buffer.count` bytes at `offset`; 0 at the end of the file.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String) throws -> Int {
        try checked("pread", path: path) { pread(fd, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    /// Sets a file's length (`ftruncate`: a longer file reads as zeros, and takes no space on
    /// filesystems with sparse files).
    public static func setLength(_ fd: Int32, _ length: Int64, path: String) throws {
        try checked("ftruncate", path: path) { ftruncate(fd, off_t(length)) }
    }

    /// `fsync`.
    public static func synchronize(_ fd: Int32, path: String) throws {
        try checked("fsync", path: path) { fsync(fd) }
    }

    /// Closes a descriptor; throws when the kernel reports a deferred write error.
    public static func close(_ fd: Int32, path: String) throws {
        guard Glibc.close(fd) == 0 else { throw StorageIOError(operation: "close", path: path, errno: errno) }
    }

    /// `mkdir -p`; the directories it makes get `mode`.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, mode) != 0 && errno != EEXIST {
                throw StorageIOError(operation: "mkdir", path: prefix, errno: errno)
            }
        }
    }

    /// Names in a directory, without `.` and `..`; empty when it does not exist.
    public static func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public static func readFile(_ path: String) throws -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { try? close(fd, path: path) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(fd, into: $0, at: Int64(result.count), path: path) }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
        }
    }

    /// A new content of `path` written beside it (`path` + `temporarySuffix`, opened for
    /// appending, created with `mode`): `commit` syncs it (unless told not to), renames it over
    /// `path` (a crash leaves the old file or the new one) and hands over its descriptor, which
    /// appends to `path` from then on; `abandon` closes and removes it.
    public struct Replacement {
        public let path: String
        public let temporary: String
        private let descriptor: Int32

        public init(of path: String, temporarySuffix: String = ".tmp", mode: mode_t = 0o644) throws {
            self.path = path
            temporary = path + temporarySuffix
            descriptor = try FileSystem.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, mode: mode)
        }

        public func write(_ bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes { try FileSystem.writeAll(descriptor, $0, path: temporary) }
        }

        public func commit(synchronizing: Bool = true) throws -> Int32 {
            if synchronizing { try FileSystem.synchronize(descriptor, path: temporary) }
            guard rename(temporary, path) == 0 else { throw StorageIOError(operation: "rename", path: path, errno: errno) }
            return descriptor
        }

        public func abandon() {
            Glibc.close(descriptor)
            unlink(temporary)
        }
    }

    public static func remove(_ path: String) { unlink(path) }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// When `path` was last written, in seconds since the epoch; nil when it cannot be stat'ed.
    public static func modificationTime(_ path: String) -> (secondsSinceEpoch: Int64, nanoseconds: Int64)? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return (Int64(status.st_mtim.tv_sec), Int64(status.st_mtim.tv_nsec))
    }

    /// Removes a directory and the files directly in it.
    public static func removeDirectory(_ path: String) {
        for name in list(path) { unlink(path + "/" + name) }
        rmdir(path)
    }
}
