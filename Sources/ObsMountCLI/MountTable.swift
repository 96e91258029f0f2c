// The FUSE filesystems already mounted on a directory, from /proc/self/mountinfo: obsmount refuses
// to stack a second mount on one (it would hide the first, and for the same bucket run a second
// writer on one store) unless `allow_over_mount` is given.
#if canImport(Glibc)
import Glibc
#endif

/// One mount of /proc/self/mountinfo.
struct MountedFilesystem: Equatable {
    let mountpoint: String
    /// `fuse.obsmount`, `fuse`, `fuseblk`, `ext4` …
    let type: String
    /// The mount source (obsmount's is `obs:BUCKET`).
    let source: String

    var isFUSE: Bool { type == "fuse" || type == "fuseblk" || type.hasPrefix("fuse.") }
}

enum MountTable {
    /// The FUSE filesystems mounted on `path` (resolved like the kernel does), innermost last.
    static func fuseMounts(on path: String) -> [MountedFilesystem] {
        let target = resolve(path)
        return (MountSetup.readSmallFile("/proc/self/mountinfo", limit: 4 << 20) ?? "")
            .split(separator: "\n").compactMap(parse)
            .filter { $0.mountpoint == target && $0.isFUSE }
    }

    /// A mountinfo line: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPER`,
    /// with space, tab, newline and backslash in paths written as octal escapes (`\040`).
    static func parse(_ line: Substring) -> MountedFilesystem? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count >= 7, let separator = fields[6...].firstIndex(of: "-"), separator + 2 < fields.count else { return nil }
        return MountedFilesystem(mountpoint: unescape(fields[4]), type: unescape(fields[separator + 1]), source: unescape(fields[separator + 2]))
    }

    private static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        var rest = Array(field.utf8)[...]
        while let byte = rest.first {
            if byte == UInt8(ascii: "\\"), rest.count >= 4,
               let value = UInt8(String(decoding: rest.dropFirst().prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                rest = rest.dropFirst(4)
            } else {
                bytes.append(byte)
                rest = rest.dropFirst()
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The canonical path; when that fails (a dead FUSE mount answers ENOTCONN), the absolute path
    /// with `.` and `..` removed.
    private static func resolve(_ path: String) -> String {
        if let resolved = realpath(path, nil) {
            defer { free(resolved) }
            return String(cString: resolved)
        }
        var absolute = path
        if !path.hasPrefix("/"), let cwd = getcwd(nil, 0) {
            absolute = String(cString: cwd) + "/" + path
            free(cwd)
        }
        var components: [Substring] = []
        for component in absolute.split(separator: "/") where component != "." {
            if component == ".." { _ = components.popLast() } else { components.append(component) }
        }
        return "/" + components.joined(separator: "/")
    }
}
