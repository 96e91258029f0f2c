import Foundation
#if canImport(Glibc)
import Glibc
#endif
import OBSProtocol
import Testing
@testable import ObsFS

struct NamespaceTests {
    func storeWith(_ keys: [String]) -> InMemoryStore {
        let store = InMemoryStore()
        store.contents.withLock { contents in
            for key in keys { contents.objects[ObjectKey(key)] = Array(key.utf8) }
        }
        return store
    }

    @Test func lookupFindsObjectsAndImpliedDirectories() async throws {
        let fs = makeFileSystem(storeWith(["top.txt", "dir/a", "dir/sub/b"]))
        let file = try await fs.lookup(parent: .root, name: "top.txt")
        #expect(file.kind == .regular)
        #expect(file.size == 7)
        let dir = try await fs.lookup(parent: .root, name: "dir")
        #expect(dir.kind == .directory)
        let sub = try await fs.lookup(parent: dir.inode, name: "sub")
        #expect(sub.kind == .directory)
        let b = try await fs.lookup(parent: sub.inode, name: "b")
        #expect(b.size == 9)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "missing") } == .noEntry)
        #expect(await errno { _ = try await fs.lookup(parent: file.inode, name: "x") } == .notDirectory)
        // Same path, same inode; forgotten inodes disappear.
        #expect(try await fs.lookup(parent: .root, name: "top.txt").inode == file.inode)
        fs.forget(file.inode, count: 2)
        #expect(await errno { _ = try await fs.getattr(file.inode) } == .noEntry)
    }

    /// The answers the FUSE adapter gives on libfuse's thread: only what the table and caches
    /// know, nil for what needs the store, and the same entries `lookup` counts.
    @Test func cachedAnswersNeedNoRequestAndDeferWhatTheStoreMustSay() async throws {
        let store = storeWith(["top.txt"])
        let fs = makeFileSystem(store)
        #expect(try fs.cachedLookup(parent: .root, name: "top.txt") == nil)  // never looked up
        #expect(try fs.cachedAttributes(.root) == nil)  // the root's metadata is not loaded yet
        let file = try await fs.lookup(parent: .root, name: "top.txt")
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "missing") } == .noEntry)
        _ = try await fs.getattr(.root)
        let heads = store.contents.withLock { $0.headCalls }
        #expect(try fs.cachedLookup(parent: .root, name: "top.txt")?.inode == file.inode)
        #expect(try fs.cachedAttributes(file.inode)?.size == 7)
        #expect(try fs.cachedAttributes(.root)?.kind == .directory)
        #expect(await errno { _ = try fs.cachedLookup(parent: .root, name: "missing") } == .noEntry)
        #expect(await errno { _ = try fs.cachedAttributes(InodeNumber(9999)) } == .noEntry)
        #expect(store.contents.withLock { $0.headCalls } == heads)
        // Two lookups counted by lookup and cachedLookup: two forgets end the inode.
        fs.forget(file.inode, count: 2)
        #expect(await errno { _ = try fs.cachedAttributes(file.inode) } == .noEntry)
        // Attributes past attr_timeout are the store's to say.
        let uncached = makeFileSystem(store, attributeTimeout: .zero)
        let again = try await uncached.lookup(parent: .root, name: "top.txt")
        #expect(try uncached.cachedLookup(parent: .root, name: "top.txt") == nil)
        #expect(try uncached.cachedAttributes(again.inode) == nil)
    }

    @Test func mountPrefixIsTheRoot() async throws {
        let fs = makeFileSystem(storeWith(["base/x", "other/y"]), prefix: "base/")
        #expect(try await fs.lookup(parent: .root, name: "x").kind == .regular)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "other") } == .noEntry)
    }

    @Test func readdirPagesWithStableCookies() async throws {
        let names = (0..<25).map { String(format: "f%02d", $0) } + ["d/x", "d/y", "e/z"]
        let store = storeWith(names)
        let fs = makeFileSystem(store, listPageSize: 4)
        let handle = try fs.openDirectory(.root)
        var seen: [DirectoryEntry] = []
        var offset: Int64 = 0
        // Consume three entries at a time, as a small readdir buffer would.
        while true {
            let batch = try await fs.readDirectory(handle, from: offset)
            guard !batch.isEmpty else { break }
            seen += batch.prefix(3)
            offset = batch.prefix(3).last!.cookie
        }
        fs.releaseDirectory(handle)
        #expect(seen.count == 29)
        #expect(Set(seen.map(\.name)) == Set([".", ".."] + (0..<25).map { String(format: "f%02d", $0) } + ["d", "e"]))
        #expect(Set(seen.filter { $0.kind == .directory }.map(\.name)) == [".", "..", "d", "e"])
        #expect(seen.map(\.cookie) == (1...29).map(Int64.init))
        // 27 names, 4 per page: each page fetched once although readdir resumed 10 times.
        #expect(store.contents.withLock { $0.listCalls } == 7)
    }

    /// The names of one full readdir of the root, through a new handle (`ls` opens it again).
    func listRoot(_ fs: ObsFileSystem) async throws -> [String] {
        let handle = try fs.openDirectory(.root)
        defer { fs.releaseDirectory(handle) }
        var names: [String] = []
        var offset: Int64 = 0
        while true {
            let batch = try await fs.readDirectory(handle, from: offset)
            guard let last = batch.last else { return names.filter { $0 != "." && $0 != ".." } }
            names += batch.map(\.name)
            offset = last.cookie
        }
    }

    @Test func aRepeatedListingSendsNoListUntilSomethingChanges() async throws {
        let store = storeWith(["a", "b"])
        let fs = makeFileSystem(store)
        let lists = { store.contents.withLock { $0.listCalls } }
        #expect(try await listRoot(fs) == ["a", "b"])
        let first = lists()
        #expect(try await listRoot(fs) == ["a", "b"])
        #expect(lists() == first)  // within attr_timeout, nothing changed here: the same page
        // A change through this mount: listed again at once.
        try await fs.unlink(parent: .root, name: "a")
        #expect(try await listRoot(fs) == ["b"])
        #expect(lists() > first)
        let (_, handle) = try await fs.create(parent: .root, name: "c")
        _ = try await write(fs, handle, at: 0, [1]).get()
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(try await listRoot(fs) == ["b", "c"])
        // Another client's change shows once attr_timeout has passed; 0 keeps nothing.
        let uncached = makeFileSystem(store, attributeTimeout: .zero)
        #expect(try await listRoot(uncached) == ["b", "c"])
        store.seed("d", [1])
        #expect(try await listRoot(uncached) == ["b", "c", "d"])
    }

    /// `cat` of a file changes nothing: its close keeps the listing cached (every flush counted
    /// as a change, so `ls` after reading files listed again).
    @Test func closingAReadOnlyDescriptorKeepsTheListing() async throws {
        let store = storeWith(["a", "b"])
        let fs = makeFileSystem(store)
        let lists = { store.contents.withLock { $0.listCalls } }
        let file = try await fs.lookup(parent: .root, name: "a")
        let reading = try await fs.open(file.inode, flags: O_RDONLY).handle
        #expect(fs.isReadOnly(reading))
        #expect(try await fs.read(reading, at: 0, count: 10).gathered() == Array("a".utf8))
        #expect(try await listRoot(fs) == ["a", "b"])
        let listed = lists()
        try await fs.flush(reading, writer: WriterIdentity(3))
        await fs.release(reading)
        #expect(try await listRoot(fs) == ["a", "b"])
        #expect(lists() == listed)
        let (_, writing) = try await fs.create(parent: .root, name: "c")
        #expect(!fs.isReadOnly(writing))
        try await fs.flush(writing, writer: WriterIdentity(4))
        await fs.release(writing)
        #expect(try await listRoot(fs) == ["a", "b", "c"])
    }

    @Test func filesBeingWrittenAreListedAndGrow() async throws {
        let fs = makeFileSystem(storeWith(["a"]))
        let (attributes, handle) = try await fs.create(parent: .root, name: "new")
        _ = try await write(fs, handle, at: 0, pattern(12345)).get()
        #expect(try await fs.getattr(attributes.inode).size == 12345)
        #expect(try await fs.lookup(parent: .root, name: "new").size == 12345)
        let directory = try fs.openDirectory(.root)
        var names: [String] = []
        var offset: Int64 = 2
        while let last = try await fs.readDirectory(directory, from: offset).last {
            names += try await fs.readDirectory(directory, from: offset).map(\.name)
            offset = last.cookie
        }
        #expect(names == ["a", "new"])
        fs.releaseDirectory(directory)
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(try await fs.getattr(attributes.inode).size == 12345)
    }

    /// Names are byte strings, as on Linux and in the store: "café" in NFC and in NFD are two
    /// files (Swift's String `==` takes them for one; the second create overwrote the first).
    @Test func namesThatAreCanonicallyEquivalentAreTwoFiles() async throws {
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        let store = InMemoryStore()
        store.seed(composed, Array("NFC".utf8))
        let fs = makeFileSystem(store)
        #expect(try await fs.lookup(parent: .root, name: composed).size == 3)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: decomposed) } == .noEntry)
        let (created, handle) = try await fs.create(parent: .root, name: decomposed)
        #expect(try await write(fs, handle, at: 0, Array("NFD!".utf8)).get() == 4)
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object(composed) == Array("NFC".utf8))
        #expect(store.object(decomposed) == Array("NFD!".utf8))
        #expect(try await fs.lookup(parent: .root, name: composed).size == 3)
        #expect(try await fs.lookup(parent: .root, name: decomposed).inode == created.inode)
        let directory = try fs.openDirectory(.root)
        let names = try await fs.readDirectory(directory, from: 2).map { Array($0.name.utf8) }
        fs.releaseDirectory(directory)
        #expect(names == [Array(decomposed.utf8), Array(composed.utf8)])  // the store's order: by bytes
    }

    @Test func namesStartingWithACombiningMarkKeepTheirBytesInListingsAndRenames() async throws {
        // After a `/`, U+0301 makes one Character with it: "d/\u{301}x" is 3 Characters, so a
        // key cut by Characters ("d/" is 2) named the file "x", and a directory rename copied
        // both files of d to e/x.
        let marked = "\u{301}x"
        let local = try LocalOBS()
        defer { local.stop() }
        let writer = makeFileSystem(local.store)
        let dir = try await writer.mkdir(parent: .root, name: "d", mode: 0o755, caller: testCaller).inode
        for (name, text) in [(marked, "marked"), ("x", "plain")] {
            let (_, handle) = try await writer.create(parent: dir, name: name)
            #expect(try await write(writer, handle, at: 0, Array(text.utf8)).get() == text.utf8.count)
            try await writer.flush(handle, writer: WriterIdentity(7))
            await writer.release(handle)
        }
        await writer.shutdown()

        let fs = makeFileSystem(local.store)  // a mount that knows the names from listings only
        func names(_ directory: InodeNumber) async throws -> [[UInt8]] {
            let handle = try fs.openDirectory(directory)
            defer { fs.releaseDirectory(handle) }
            return try await fs.readDirectory(handle, from: 2).map { Array($0.name.utf8) }
        }
        let listed = try await fs.lookup(parent: .root, name: "d").inode
        #expect(try await names(listed) == [Array("x".utf8), Array(marked.utf8)])  // by bytes
        #expect(try await fs.lookup(parent: listed, name: marked).size == 6)
        try await fs.rename(parent: .root, name: "d", newParent: .root, newName: "e", flags: 0)
        let keys = try await local.store.listObjects(prefix: "", delimiter: nil, marker: nil, maxKeys: 100).objects.map { Array($0.key.rawValue.utf8) }
        #expect(keys.sorted { $0.lexicographicallyPrecedes($1) } == ["e/", "e/x", "e/" + marked].map { Array($0.utf8) })
        #expect(try await ComposeAgainstObsLocalTests.object(local, ObjectKey("e/" + marked), size: 6) == Array("marked".utf8))
        let renamed = try await fs.lookup(parent: .root, name: "e").inode
        #expect(try await names(renamed) == [Array("x".utf8), Array(marked.utf8)])
        await fs.shutdown()
    }

    @Test func filesBelowAMovedDirectoryAreReadAtTheirCopiesETags() async throws {
        // A multipart object's copy has another ETag. The inodes below a moved directory kept
        // the old one, and every later open's read (pinned to it by If-Match) failed with EIO
        // (fsstress).
        let local = try LocalOBS()
        defer { local.stop() }
        let fs = makeFileSystem(local.store, partSize: 8 * MiB, budget: 32 * MiB)
        let dir = try await fs.mkdir(parent: .root, name: "d", mode: 0o755, caller: testCaller).inode
        let (created, handle) = try await fs.create(parent: dir, name: "f")
        let bytes = pattern(20 * Int(MiB) + 10)
        #expect(try await write(fs, handle, at: 0, bytes).get() == bytes.count)
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        let stored = try #require(try await local.store.headObject(ObjectKey("d/f"))?.etag)
        #expect(stored.value.contains("-"))  // multipart
        // A descriptor reading it across the rename reads on from the copy (it read ENOENT once
        // the source was deleted).
        let early = try await fs.open(created.inode, flags: O_RDONLY).handle
        let middle = 18 * Int(MiB)  // a random read (far from the start): nothing is fetched ahead
        #expect(try await fs.read(early, at: Int64(middle), count: 10).gathered() == Array(bytes[middle..<middle + 10]))
        try await fs.rename(parent: .root, name: "d", newParent: .root, newName: "e", flags: 0)
        let copy = try #require(try await local.store.headObject(ObjectKey("e/f"))?.etag)
        #expect(copy != stored)
        #expect(try await fs.read(early, at: Int64(bytes.count - 20), count: 20).gathered() == Array(bytes.suffix(20)))
        await fs.release(early)
        let moved = try await fs.lookup(parent: try await fs.lookup(parent: .root, name: "e").inode, name: "f")
        #expect(moved.inode == created.inode)
        let reader = try await fs.open(moved.inode, flags: O_RDONLY).handle
        #expect(try await fs.read(reader, at: 0, count: bytes.count).gathered() == bytes)
        await fs.release(reader)
        await fs.shutdown()
    }

    @Test func openForWritingWithoutTruncChangesInPlace() async throws {
        let store = storeWith(["full"])
        let fs = makeFileSystem(store)
        let file = try await fs.lookup(parent: .root, name: "full")
        // Without O_TRUNC the object is changed in place (Compose/); with it, replaced.
        let changed = try await fs.open(file.inode, flags: O_WRONLY).handle
        #expect(try await write(fs, changed, at: 0, [70]).get() == 1)
        await fs.release(changed)
        #expect(store.object("full") == Array("Full".utf8))
        let handle = try await fs.open(file.inode, flags: O_WRONLY | O_TRUNC).handle
        #expect(try await fs.getattr(file.inode).size == 0)
        await fs.release(handle)
        let dir = try fs.openDirectory(.root)
        fs.releaseDirectory(dir)
        #expect(await errno { _ = try await fs.open(.root, flags: O_RDONLY) } == .isDirectory)
    }

    @Test func truncateOfAFileBeingStreamed() async throws {
        // `cp` of a file ending in a hole: writes, then ftruncate beyond them; then more writes.
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (attributes, handle) = try await fs.create(parent: .root, name: "f")
        #expect(try await fs.setattr(attributes.inode, AttributeChanges(size: 0)).size == 0)  // nothing to do
        #expect(store.uploadsInProgress == 1)
        _ = try await write(fs, handle, at: 0, [1, 2, 3]).get()
        #expect(try await fs.setattr(attributes.inode, AttributeChanges(size: 10)).size == 10)
        #expect(try await fs.getattr(attributes.inode).size == 10)
        _ = try await write(fs, handle, at: 10, [4]).get()
        #expect(try await fs.setattr(attributes.inode, AttributeChanges(size: 9)).size == 9)
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("f") == [1, 2, 3] + [UInt8](repeating: 0, count: 6))
        #expect(store.uploadsInProgress == 0)
    }

    @Test func newNamesFollowNameMaxAndTheKeyLimit() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let longest = String(repeating: "n", count: 255)
        let (_, handle) = try await fs.create(parent: .root, name: longest)
        await fs.release(handle)
        #expect(await errno { _ = try await fs.create(parent: .root, name: longest + "x") } == .nameTooLong)
        #expect(await errno { _ = try await fs.mkdir(parent: .root, name: longest + "x", mode: 0o755, caller: testCaller) } == .nameTooLong)
        #expect(await errno { try await fs.rename(parent: .root, name: longest, newParent: .root, newName: longest + "x", flags: 0) } == .nameTooLong)
        // Deep enough that the key passes 1,024 bytes: refused although each name is short.
        var parent = InodeNumber.root
        for _ in 0..<4 { parent = try await fs.mkdir(parent: parent, name: String(repeating: "d", count: 250), mode: 0o755, caller: testCaller).inode }
        #expect(await errno { _ = try await fs.create(parent: parent, name: String(repeating: "f", count: 30)) } == .nameTooLong)
        // A file's key of exactly 1,024 bytes is allowed; a directory's marker needs one byte more.
        let exact = String(repeating: "f", count: 1024 - 4 * 251)
        let (_, exactHandle) = try await fs.create(parent: parent, name: exact)
        await fs.release(exactHandle)
        #expect(store.object(String(repeating: String(repeating: "d", count: 250) + "/", count: 4) + exact) == [])
        #expect(await errno { _ = try await fs.mkdir(parent: parent, name: exact + "d", mode: 0o755, caller: testCaller) } == .nameTooLong)
        // A directory renamed where a key below it would pass 1,024 bytes: refused before any copy.
        let shallow = try await fs.mkdir(parent: .root, name: "shallow", mode: 0o755, caller: testCaller)
        let (_, deepHandle) = try await fs.create(parent: shallow.inode, name: String(repeating: "g", count: 250))
        await fs.release(deepHandle)
        let keysBefore = store.contents.withLock { $0.objects.count }
        #expect(await errno { try await fs.rename(parent: .root, name: "shallow", newParent: parent, newName: "x", flags: 0) } == .nameTooLong)
        #expect(store.contents.withLock { $0.objects.count } == keysBefore)
        // A longer name stored by another tool is still found.
        store.seed(String(repeating: "s", count: 300), [1])
        #expect(try await fs.lookup(parent: .root, name: String(repeating: "s", count: 300)).size == 1)
        // A missing one answers ENAMETOOLONG (pjdfstest unlink/02, rmdir/02, rename/01), asked
        // of the store and then from the negative cache; a missing short one ENOENT.
        for _ in 0..<2 {
            #expect(await errno { _ = try await fs.lookup(parent: .root, name: String(repeating: "m", count: 256)) } == .nameTooLong)
        }
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: String(repeating: "m", count: 255)) } == .noEntry)
        #expect(fs.statistics().maximumNameLength == 255)
    }

    /// Only a directory rename that failed after changing something is partial (the adapter then
    /// tells the kernel to forget what it knows of the target's name); a refusal before any change
    /// is an ordinary error.
    @Test func aDirectoryRenameIsPartialOnlyOnceItChangedSomething() async throws {
        func renameError(_ fs: ObsFileSystem, to parent: InodeNumber, _ name: String) async -> (any Error)? {
            do {
                try await fs.rename(parent: .root, name: "d", newParent: parent, newName: name, flags: 0)
                return nil
            } catch {
                return error
            }
        }
        let store = FaultInjectingStore(storeWith(["d/", "d/" + String(repeating: "g", count: 250)]))
        let fs = makeFileSystem(store)
        var deep = InodeNumber.root
        for _ in 0..<4 { deep = try await fs.mkdir(parent: deep, name: String(repeating: "e", count: 200), mode: 0o755, caller: testCaller).inode }
        let tooLong = await renameError(fs, to: deep, "x")
        #expect(tooLong.map { ErrnoMapping.errno(for: $0) } == .nameTooLong)
        #expect(tooLong.map { !($0 is PartialRenameError) } == true)
        store.fail(.delete)
        let deleteFailed = await renameError(fs, to: .root, "moved")
        #expect(deleteFailed.map { ErrnoMapping.errno(for: $0) } == .io)
        #expect(deleteFailed.map { $0 is PartialRenameError } == true)
        #expect(store.inner.object("moved/" + String(repeating: "g", count: 250)) != nil)
    }

    @Test func errnoMapping() {
        func mapped(_ code: ObsErrorCode) -> Errno { ErrnoMapping.errno(for: ServiceError(status: code.httpStatus, code: code, message: "")) }
        #expect(mapped(.accessDenied) == .accessDenied)
        #expect(mapped(.invalidAccessKeyId) == .accessDenied)
        #expect(mapped(.noSuchBucket) == .noEntry)
        #expect(mapped(.noSuchKey) == .noEntry)
        #expect(mapped(.entityTooLarge) == .fileTooBig)
        #expect(mapped(.keyTooLong) == .nameTooLong)
        #expect(mapped("InsufficientStorage") == .noSpace)
        #expect(mapped(.internalError) == .io)
        #expect(mapped(.noSuchUpload) == .io)
        struct TransportFailure: Error {}
        #expect(ErrnoMapping.errno(for: TransportFailure()) == .io)
        #expect(ErrnoMapping.errno(for: FileSystemError(.busy, "x")) == .busy)
    }
}
