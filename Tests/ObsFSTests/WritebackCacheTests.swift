// `writeback_cache` in the core (mount-options/write-semantics.md, "writeback_cache"): files open
// for writing use the kernel's page cache only with the option; the kernel's own times of a file
// it writes are not stored; a read-only descriptor never reads short of what the writer holds
// (the page cache is shared: a short read would be cached as zeros and written back).
#if canImport(Glibc)
import Glibc
#endif
import OBSProtocol
import Testing
@testable import ObsFS

struct WritebackCacheTests {
    @Test func theOptionIsAFlagAndOffByDefault() throws {
        #expect(try !MountOptions(parsing: []).writebackCache)
        #expect(try MountOptions(parsing: ["writeback_cache"]).writebackCache)
        #expect(try !MountOptions(parsing: ["writeback_cache", "no_writeback_cache"]).writebackCache)
        #expect(throws: MountOptionError.self) { try MountOptions(parsing: ["writeback_cache=1"]) }
    }

    @Test(arguments: [false, true])
    func writableOpensUseThePageCacheOnlyWithTheOption(writeback: Bool) async throws {
        let store = InMemoryStore()
        store.seed("existing", [1, 2, 3])
        store.seed("empty")
        let fs = makeFileSystem(store, writebackCache: writeback)
        let existing = try await fs.lookup(parent: .root, name: "existing").inode
        let empty = try await fs.lookup(parent: .root, name: "empty").inode
        let changes = try await fs.open(existing, flags: O_RDWR)
        let stream = try await fs.open(empty, flags: O_WRONLY)
        let reader = try await fs.open(existing, flags: O_RDONLY)
        #expect(changes.directIO == !writeback && stream.directIO == !writeback)
        #expect(!reader.directIO)
        for handle in [changes.handle, stream.handle, reader.handle] { await fs.release(handle) }
    }

    @Test func aReaderSeesWhatTheWritersHoldUnlessOpenedOnTheVersionAStreamReplaces() async throws {
        let store = InMemoryStore()
        store.seed("f", Array("old".utf8))
        let fs = makeFileSystem(store, writebackCache: true)
        let process = ProcessID(40)
        let file = try await fs.lookup(parent: .root, name: "f").inode
        let writer = try await fs.open(file, flags: O_WRONLY | O_APPEND, opener: process).handle
        #expect(await fs.write(writer, at: 3, bytes: Array("new".utf8), writer: WriterIdentity(4), process: .unknown).count == 3)
        let reader = try await fs.open(file, flags: O_RDONLY).handle
        #expect(try await fs.read(reader, at: 0, count: 4096).gathered() == Array("oldnew".utf8))
        try await fs.flush(writer, writer: WriterIdentity(4), process: process)
        #expect(store.object("f") == Array("oldnew".utf8))
        await fs.release(reader)
        await fs.release(writer)

        // A reader opened before the file is written again from the start (on the version it
        // replaces) is refused while it is streamed; one opened during the stream shares the
        // writer's page cache and reads what was written (completed as it stands), after which
        // both read the changes the writer goes on with.
        store.seed("g", Array("previous".utf8))
        let replaced = try await fs.lookup(parent: .root, name: "g").inode
        let early = try await fs.open(replaced, flags: O_RDONLY).handle
        let streaming = try await fs.open(replaced, flags: O_WRONLY | O_TRUNC, opener: process).handle
        #expect(await fs.write(streaming, at: 0, bytes: pattern(5000), writer: WriterIdentity(4), process: .unknown).count == 5000)
        await #expect { _ = try await fs.read(early, at: 0, count: 4096).gathered() } throws: { error in
            (error as? FileSystemError)?.errno == .busy
        }
        let late = try await fs.open(replaced, flags: O_RDONLY)
        #expect(!late.directIO && late.keepCache)
        #expect(try await fs.read(late.handle, at: 0, count: 8192).gathered() == pattern(5000))
        #expect(store.object("g") == pattern(5000))
        #expect(await fs.write(streaming, at: 5000, bytes: Array("end".utf8), writer: WriterIdentity(4), process: .unknown).count == 3)
        #expect(try await fs.read(early, at: 4990, count: 100).gathered() == Array(pattern(5000)[4990...]) + Array("end".utf8))
        try await fs.flush(streaming, writer: WriterIdentity(4), process: process)
        #expect(store.object("g") == pattern(5000) + Array("end".utf8))
        await fs.release(late.handle)
        await fs.release(early)
        await fs.release(streaming)
    }

    @Test func theKernelsTimesOfAFileItWritesAreNotStored() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store, writebackCache: true)
        let (created, handle) = try await fs.create(parent: .root, name: "t")
        #expect(fs.timesOfCachedWrites(created.inode, handle: handle) == created)
        let reader = try await fs.open(created.inode, flags: O_RDONLY).handle
        #expect(fs.timesOfCachedWrites(created.inode, handle: reader) == nil)  // not the writing handle
        let plain = makeFileSystem(InMemoryStore())
        let (other, otherHandle) = try await plain.create(parent: .root, name: "t")
        #expect(plain.timesOfCachedWrites(other.inode, handle: otherHandle) == nil)  // without the option
        await fs.release(reader)
        await fs.release(handle)
        await plain.release(otherHandle)
    }
}

struct StreamedTruncateTests {
    /// A truncate of a file being streamed that cuts nothing it received: the size holds and the
    /// bytes written after it land in place. With the cache this is `rsync --inplace` (the kernel
    /// sends ftruncate(size) before its pages), without it `ftruncate(fd, 100); write("abc")`.
    @Test(arguments: [(true, 1000), (false, 1000), (true, 0), (false, 0)])
    func aTruncateThatCutsNothingKeepsTheSize(writeback: Bool, before: Int) async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store, writebackCache: writeback)
        let process = ProcessID(12)
        let (created, handle) = try await fs.create(parent: .root, name: "r", mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: process))
        #expect(await fs.write(handle, at: 0, bytes: pattern(before), writer: .unknown, process: .unknown).count == before)
        // The reply carries the new size: the kernel takes it (and would drop its pages beyond).
        #expect(try await fs.setattr(created.inode, AttributeChanges(size: 9000)).size == 9000)
        #expect(await fs.write(handle, at: Int64(before), bytes: pattern(3000, seed: 3), writer: .unknown, process: .unknown).count == 3000)
        try await fs.flush(handle, writer: WriterIdentity(2), process: process)
        #expect(store.object("r") == pattern(before) + pattern(3000, seed: 3) + [UInt8](repeating: 0, count: 6000 - before))
        await fs.release(handle)
    }
}
