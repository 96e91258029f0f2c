// What the close rule reads from /proc: the mount's ID and device from mountinfo (escaped paths, stacked
// mounts) and whether a process holds an inode open for writing (this test process's own
// descriptors, read-only and writable).
import Glibc
import ObsFS
import Testing
@testable import FuseAdapter

@Suite("What /proc says about callers")
struct ProcessFilesTests {
    @Test func theMountIsTheLastOneOnThePathWithEscapesUndone() {
        let mountinfo = """
        22 1 0:21 / /proc rw,nosuid - proc proc rw
        45 27 0:40 / /tmp/a\\040b rw,nosuid,nodev - fuse.obsmount obs:bench rw
        46 27 0:41 / /tmp/a rw - fuse.obsmount obs:other rw
        47 45 0:42 / /tmp/a\\040b rw - fuse.obsmount obs:top rw
        """
        #expect(ProcessFiles.mountEntry(of: "/tmp/a b", in: mountinfo) == ProcessFiles.MountEntry(id: 47, device: "0:42"))
        #expect(ProcessFiles.mountEntry(of: "/tmp/a", in: mountinfo)?.id == 46)
        #expect(ProcessFiles.mountEntry(of: "/tmp/none", in: mountinfo) == nil)
    }

    @Test func fieldsOfStatusAndFdinfoLines() {
        let status = "Name:\tbash\nUmask:\t0022\nTgidx:\t9\nTgid:\t1234\nPid:\t1240\nflags:  0100002"
        #expect(ProcessFiles.field("Tgid", in: status) == "1234")  // not the longer name before it
        #expect(ProcessFiles.field("Name", in: status) == "bash")
        #expect(ProcessFiles.field("flags", in: status) == "0100002")  // spaces, and the last line without a newline
        #expect(ProcessFiles.field("Uid", in: status) == nil)
        #expect(ProcessFiles.field("Pid", in: "") == nil)
    }

    @Test func aThreadGroupIsReadFromStatusAndAGoneThreadStandsForItself() throws {
        // This thread (from /proc/thread-self: "PID/task/TID") and the main thread (TID = PID)
        // belong to this process.
        var link = [CChar](repeating: 0, count: 256)
        let length = readlink("/proc/thread-self", &link, link.count)
        #expect(length > 0)
        let path = String(decoding: link[..<max(length, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let thread = try #require(path.split(separator: "/").last.flatMap { Int32($0) })
        #expect(ProcessFiles.threadGroup(of: ProcessID(thread)) == ProcessID(getpid()))
        #expect(ProcessFiles.threadGroup(of: ProcessID(getpid())) == ProcessID(getpid()))
        #expect(ProcessFiles.threadGroup(of: ProcessID(Int32.max)) == ProcessID(Int32.max))
    }

    /// The mount (`mnt_id`: /tmp's, whichever mount holds it) and `ino` of one of this
    /// process's descriptors on a file in /tmp, as fdinfo shows them.
    func identity(of descriptor: Int32) throws -> (mount: MountIdentity, inode: InodeNumber) {
        let info = try #require(ProcessFiles.read("/proc/self/fdinfo/\(descriptor)"))
        let mountID = try #require(ProcessFiles.field("mnt_id", in: info).flatMap { Int($0) })
        var status = stat()
        #expect(fstat(descriptor, &status) == 0)
        return (MountIdentity(id: mountID), InodeNumber(UInt64(status.st_ino)))
    }

    @Test func aDescriptorOpenForWritingIsFoundAndAReadOnlyOneIsNot() throws {
        let path = "/tmp/obsmount-process-files-\(getpid())"
        let reader = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0o600)
        #expect(reader >= 0)
        defer { unlink(path) }
        let (mount, inode) = try identity(of: reader)
        let process = ProcessID(getpid())
        #expect(!ProcessFiles.holdsWritable(process: process, inode: inode, mount: mount))
        let writer = open(path, O_WRONLY | O_CLOEXEC)
        #expect(writer >= 0)
        #expect(ProcessFiles.holdsWritable(process: process, inode: inode, mount: mount))
        #expect(!ProcessFiles.holdsWritable(process: process, inode: inode, mount: MountIdentity(id: mount.id + 1)))
        // Another inode (not the next number: tests running beside this one create files in /tmp).
        #expect(!ProcessFiles.holdsWritable(process: process, inode: InodeNumber(UInt64.max - inode.rawValue), mount: mount))
        close(writer)
        #expect(!ProcessFiles.holdsWritable(process: process, inode: inode, mount: mount))
        close(reader)
    }
}
