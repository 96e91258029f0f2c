// What /proc says about the processes that call the mount: the thread group of a thread, and
// whether a process still holds one of the mount's files open for writing through another
// descriptor. The close rule (mount-options/write-semantics.md) uses both: a flush names the
// thread that closed, and a flush whose process still holds the same file writable (a shell
// redirection opens the file, `dup2`s it onto 1 and closes the original before anything is
// written) does not complete it: the last of those descriptors' flush does. And the mount's own
// line of /proc/self/mountinfo: its ID (for the close rule) and its device (KernelReadAhead).
//
// Only procfs reads, from a request's Task, never on a libfuse thread: /proc/PID/fdinfo/N sends no
// request to this mount (stat of /proc/PID/fd/N would, and could wait for itself) and takes no
// lock an `execve` holds (readlink of /proc/PID/fd/N does; see `holdsWritable`). A process
// with thousands of descriptors is not searched (`descriptorsSearched`).
import Glibc
import ObsFS
import SystemFiles

enum ProcessFiles {
    /// The whole of a small /proc file, nil when it cannot be read (the process is gone).
    static func read(_ path: String) -> String? {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { Glibc.close(descriptor) }
        var contents: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = FileSystem.retryingInterrupts { buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) } }
            guard count > 0 else { break }
            contents += buffer[..<count]
        }
        return String(decoding: contents, as: UTF8.self)
    }

    /// The value of `field:` in a /proc file of `field:\tvalue` lines.
    /// One pass over the bytes up to that line, nothing copied (a create or a flush reads
    /// /proc/PID/status for every request: splitting it into lines was a tenth of the daemon's
    /// time in a loop of small files).
    static func field(_ field: String, in contents: String) -> Substring? {
        let key = Array(field.utf8) + [UInt8(ascii: ":")]
        let bytes = contents.utf8
        var lineStart = bytes.startIndex
        while lineStart < bytes.endIndex {
            let lineEnd = bytes[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
            if bytes[lineStart..<lineEnd].starts(with: key) {
                var value = bytes.index(lineStart, offsetBy: key.count)
                while value < lineEnd, bytes[value] == UInt8(ascii: "\t") || bytes[value] == UInt8(ascii: " ") { value = bytes.index(after: value) }
                return contents[value..<lineEnd]
            }
            lineStart = lineEnd == bytes.endIndex ? lineEnd : bytes.index(after: lineEnd)
        }
        return nil
    }

    /// The process (thread group) of a kernel thread ID, read from /proc/TID/status; the thread's
    /// own ID when /proc cannot say (the thread is gone). Opens and flushes name processes, so the
    /// close rule sees every thread of the opener as the opener (with writeback_cache, no write
    /// shows the opener's lock owner).
    static func threadGroup(of thread: ProcessID) -> ProcessID {
        guard thread != .unknown, let status = read("/proc/\(thread.rawValue)/status"),
              let group = field("Tgid", in: status).flatMap({ Int32($0) }) else { return thread }
        return ProcessID(group)
    }

    /// A mount as /proc/self/mountinfo lists it.
    struct MountEntry: Equatable {
        /// The first field, also fdinfo's `mnt_id`.
        let id: Int
        /// The third field, `major:minor`: the device number of the mount's files, and the
        /// name of its backing device in /sys/class/bdi.
        let device: String
    }

    /// The mount on `mountpoint`, an absolute path without symlinks; the last one when several
    /// are stacked.
    static func mountEntry(of mountpoint: String, in mountinfo: String) -> MountEntry? {
        var found: MountEntry?
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4, unescape(fields[4]) == mountpoint, let id = Int(fields[0]) else { continue }
            found = MountEntry(id: id, device: String(fields[2]))
        }
        return found
    }

    /// mountinfo escapes space, tab, newline and backslash as `\ooo`.
    private static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        var index = field.utf8.startIndex
        let utf8 = field.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "\\"), let end = utf8.index(index, offsetBy: 4, limitedBy: utf8.endIndex),
               let value = UInt8(String(decoding: utf8[utf8.index(after: index)..<end], as: UTF8.self), radix: 8) {
                bytes.append(value)
                index = end
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A process with more descriptors than this is not searched (a close would cost a /proc
    /// read per descriptor): its closes follow the other rules.
    static let descriptorsSearched = 4096

    /// Whether `process` holds a descriptor open for writing (O_WRONLY or O_RDWR) on the inode
    /// `inode` of `mount`: each descriptor's fdinfo (`mnt_id`, `ino`, `flags`) is read. Never a
    /// readlink of /proc/PID/fd/N: that takes the process's exec lock, which `execve` holds while
    /// it closes close-on-exec descriptors and so waits for their flush, the caller of this
    /// (Python's `open()` then `os.system`: a deadlock). fdinfo takes no such lock.
    static func holdsWritable(process: ProcessID, inode: InodeNumber, mount: MountIdentity) -> Bool {
        guard process != .unknown, let directory = opendir("/proc/\(process.rawValue)/fd") else { return false }
        defer { closedir(directory) }
        var searched = 0
        while let entry = readdir(directory) {
            searched += 1
            guard searched <= descriptorsSearched else { return false }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard name.first?.isNumber == true, let info = read("/proc/\(process.rawValue)/fdinfo/\(name)"),
                  field("mnt_id", in: info).flatMap({ Int($0) }) == mount.id,
                  field("ino", in: info).flatMap({ UInt64($0) }) == inode.rawValue,
                  let flags = field("flags", in: info).flatMap({ Int32($0, radix: 8) }) else { continue }
            if flags & O_ACCMODE != O_RDONLY { return true }
        }
        return false
    }
}

extension ProcessFiles {
    /// Whether any process holds a descriptor open for writing on the inode `inode` of `mount`
    /// (`holdsWritable` of each process /proc lists; obsmount's own is skipped). A flush that
    /// finds none is the last close of the file (its process's descriptors are gone already).
    /// Costs an fdinfo read per descriptor of every process: asked only by the close of a
    /// process that is not the file's opener after the opener closed it (write-semantics.md,
    /// rule 3).
    static func anyProcessHoldsWritable(inode: InodeNumber, mount: MountIdentity) -> Bool {
        guard let processes = opendir("/proc") else { return true }
        defer { closedir(processes) }
        let ownProcess = getpid()
        while let entry = readdir(processes) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard let process = Int32(name), process != ownProcess else { continue }
            if holdsWritable(process: ProcessID(process), inode: inode, mount: mount) { return true }
        }
        return false
    }
}

/// The mount as /proc shows it: its ID (mountinfo's first field, fdinfo's `mnt_id`).
struct MountIdentity: Sendable {
    let id: Int
}
