// The few POSIX file operations the server's storage needs: directories, listing, whole-file
// reads, and atomic replacement (write a temporary file, then rename over the target).
#if canImport(Glibc)
import Glibc
#endif

enum FileSystem {
    /// `mkdir -p`.
    static func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw StorageIOError(operation: "mkdir", path: prefix, errno: errno)
            }
        }
    }

    /// Names in a directory, without `.` and `..`; empty when it does not exist.
    static func list(_ path: String) -> [String] {
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

    static func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageIOError(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw StorageIOError(operation: "read", path: path, errno: errno)
            }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
        }
    }

    /// Replaces `path` with `bytes` atomically (a crash leaves the old or the new file).
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StorageIOError(operation: "open", path: temporary, errno: errno) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                unlink(temporary)
                throw StorageIOError(operation: "write", path: temporary, errno: code)
            }
            done += n
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw StorageIOError(operation: "rename", path: path, errno: errno) }
    }

    static func remove(_ path: String) { unlink(path) }

    /// Removes a directory and the files directly in it.
    static func removeDirectory(_ path: String) {
        for name in list(path) { unlink(path + "/" + name) }
        rmdir(path)
    }
}
