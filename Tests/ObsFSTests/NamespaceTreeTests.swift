// The namespace over an in-memory store: the naming rules (directory markers, s3fs's older
// forms, the directory winning over a file), the caches, POSIX metadata in s3fs's format,
// symlinks, rename of files and directories, unlink of a file being written.
#if canImport(Glibc)
import Glibc
#endif
import LogCapture
import Logging
import OBSProtocol
import Testing
@testable import ObsFS

struct NamespaceTreeTests {
    let store = InMemoryStore()

    func mount(attributeTimeout: Duration = .seconds(10), singleCopyLimit: Int64 = 5 << 30) -> ObsFileSystem {
        makeFileSystem(store, attributeTimeout: attributeTimeout, singleCopyLimit: singleCopyLimit)
    }

    func names(_ fs: ObsFileSystem, _ directory: InodeNumber) async throws -> [String: FileKind] {
        var names: [String: FileKind] = [:]
        for entry in try await entries(fs, directory) where entry.name != "." && entry.name != ".." { names[entry.name] = entry.kind }
        return names
    }

    /// Every entry of a listing, page after page.
    func entries(_ fs: ObsFileSystem, _ directory: InodeNumber) async throws -> [DirectoryEntry] {
        let handle = try fs.openDirectory(directory)
        defer { fs.releaseDirectory(handle) }
        var entries: [DirectoryEntry] = []
        var offset: Int64 = 0
        while let last = try await fs.readDirectory(handle, directory: directory, from: offset).last {
            entries += try await fs.readDirectory(handle, directory: directory, from: offset)
            offset = last.cookie
        }
        return entries
    }

    /// A path's inode number stays the same after the kernel forgets the inode and in the next
    /// mount, and a listing shows it before any lookup (helper-50: `tar --listed-incremental`
    /// took every directory for renamed after a remount or a drop of the kernel's caches, and
    /// readdir's d_ino was FUSE's unknown inode for every name).
    @Test func aPathKeepsItsInodeNumberAcrossForgetsAndMounts() async throws {
        store.seed("d/")
        store.seed("d/f", [1])
        let fs = mount()
        let directory = try await fs.lookup(parent: .root, name: "d")
        let listed = try #require(try await entries(fs, directory.inode).first { $0.name == "f" })
        #expect(listed.inode == nil)
        let file = try await fs.lookup(parent: directory.inode, name: "f")
        #expect(listed.expectedInode == file.inode)
        fs.forget(file.inode, count: 1)
        #expect(try await fs.lookup(parent: directory.inode, name: "f").inode == file.inode)
        let next = mount()
        let again = try await next.lookup(parent: .root, name: "d")
        #expect(again.inode == directory.inode)
        #expect(try await next.lookup(parent: again.inode, name: "f").inode == file.inode)
    }

    /// Two live inodes never share a number: a path's number taken by another live inode (a
    /// collision, or the replaced version its readers hold) gives the next free one.
    @Test func liveInodesNeverShareANumber() throws {
        let table = InodeTable(rootFacts: .unknown(expiry: .now), numbering: { _ in 42 })
        let facts = InodeFacts.unknown(expiry: .now + .seconds(60))
        let first = try #require(table.entry(parent: .root, name: "a", kind: .regular, facts: facts)).inode
        let second = try #require(table.entry(parent: .root, name: "b", kind: .regular, facts: facts)).inode
        #expect(first.number == InodeNumber(42) && second.number != first.number)
        let replacing = try #require(table.entry(parent: .root, name: "a", kind: .regular, facts: facts, isCurrent: { _ in false })).inode
        #expect(Set([first.number, second.number, replacing.number]).count == 3)
        table.forget(first.number, count: 1)
        table.forget(replacing.number, count: 1)
        #expect(try #require(table.entry(parent: .root, name: "c", kind: .regular, facts: facts)).inode.number == InodeNumber(42))
    }

    @Test func directoriesInEveryFormAndTheDirectoryWinsOverAFile() async throws {
        store.seed("marker/", metadata: ["mode": "448", "uid": "7"], contentType: "application/x-directory")
        store.seed("implied/child")
        store.seed("old", contentType: "application/x-directory")
        store.seed("older_$folder$")
        store.seed("both", Array("file".utf8))
        store.seed("both/inside")
        store.seed("bad//key")
        store.seed("dots/./x")
        let fs = mount()
        let marker = try await fs.lookup(parent: .root, name: "marker")
        #expect(marker.kind == .directory)
        #expect(marker.mode == UInt32(S_IFDIR) | 0o700)
        #expect(marker.uid == 7)
        for name in ["implied", "old", "older", "both"] {
            #expect(try await fs.lookup(parent: .root, name: name).kind == .directory, "\(name)")
        }
        #expect(try await names(fs, .root) == ["marker": .directory, "implied": .directory, "old": .directory, "older": .directory,
                                                "both": .directory, "bad": .directory, "dots": .directory])
        let bad = try await fs.lookup(parent: .root, name: "bad")
        #expect(try await names(fs, bad.inode).isEmpty)  // the empty segment is skipped
        let dots = try await fs.lookup(parent: .root, name: "dots")
        #expect(try await names(fs, dots.inode).isEmpty)  // "." cannot be a name
    }

    @Test func missesAreCachedUntilThisMountCreatesTheName() async throws {
        let fs = mount()
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "ghost") } == .noEntry)
        let heads = store.contents.withLock { $0.headCalls }
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "ghost") } == .noEntry)
        #expect(store.contents.withLock { $0.headCalls } == heads)
        _ = try await fs.mkdir(parent: .root, name: "ghost", mode: 0o755, caller: testCaller)
        #expect(try await fs.lookup(parent: .root, name: "ghost").kind == .directory)
    }

    /// An exclusive create trusts a miss remembered for a second at most: another client's
    /// object made since was overwritten by an O_EXCL create, a symlink or a FIFO, and hidden by
    /// a mkdir, within negative_timeout.
    @Test func exclusiveCreatesAskTheStoreAgainAfterAnOldMiss() async throws {
        let fs = mount()
        for name in ["excl", "dir", "link", "fifo", "fresh"] {
            #expect(await errno { _ = try await fs.lookup(parent: .root, name: name) } == .noEntry)
        }
        for name in ["excl", "dir", "link", "fifo"] { store.seed(name, Array(name.utf8)) }  // another client
        try await Task.sleep(for: ObsFileSystem.exclusiveCreateTrust + .milliseconds(100))
        #expect(await errno { _ = try await fs.create(parent: .root, name: "excl", mode: 0o644, flags: O_WRONLY | O_CREAT | O_EXCL, caller: testCaller) } == .exists)
        #expect(await errno { _ = try await fs.mkdir(parent: .root, name: "dir", mode: 0o755, caller: testCaller) } == .exists)
        #expect(await errno { _ = try await fs.symlink(parent: .root, name: "link", target: "t", caller: testCaller) } == .exists)
        #expect(await errno { _ = try await fs.mknod(parent: .root, name: "fifo", mode: UInt32(S_IFIFO) | 0o644, caller: testCaller) } == .exists)
        for name in ["excl", "dir", "link", "fifo"] { #expect(store.object(name) == Array(name.utf8)) }
        #expect(store.object("dir/") == nil)
        // A name still missing is created after the one request that says so.
        let (_, handle) = try await fs.create(parent: .root, name: "fresh", mode: 0o644, flags: O_WRONLY | O_CREAT | O_EXCL, caller: testCaller)
        await fs.release(handle)
        #expect(store.object("fresh") == [])
    }

    @Test func aDirectorysLinkCountIsTwoPlusItsKnownSubdirectories() async throws {
        // pjdfstest rename/24: a rename of a directory moves its `..` link.
        store.seed("listed/sub/f", [1])
        let fs = mount()
        func links(_ inode: InodeNumber) async throws -> UInt32 { try await fs.getattr(inode).linkCount }
        let source = try await fs.mkdir(parent: .root, name: "source", mode: 0o755, caller: testCaller)
        let target = try await fs.mkdir(parent: .root, name: "target", mode: 0o755, caller: testCaller)
        let moved = try await fs.mkdir(parent: source.inode, name: "moved", mode: 0o755, caller: testCaller)
        let (file, handle) = try await fs.create(parent: source.inode, name: "file")
        await fs.release(handle)
        #expect(try await [links(source.inode), links(target.inode), links(moved.inode), links(file.inode)] == [3, 2, 2, 1])
        try await fs.rename(parent: source.inode, name: "moved", newParent: target.inode, newName: "here", flags: 0)
        #expect(try await [links(source.inode), links(target.inode)] == [2, 3])
        try await fs.rmdir(parent: target.inode, name: "here")
        #expect(try await links(target.inode) == 2)
        // A subdirectory the kernel forgot is not counted any more, one looked up again is.
        let listed = try await fs.lookup(parent: .root, name: "listed")
        let sub = try await fs.lookup(parent: listed.inode, name: "sub")
        #expect(try await links(listed.inode) == 3)
        fs.forget(sub.inode, count: 1)
        #expect(try await links(listed.inode) == 2)
    }

    /// Once the hold of a directory made here runs out, one LIST renews it: missing names and
    /// exclusive creates there cost no request per name (they cost three each), until a listing
    /// shows another client's name; from then on lookups ask for each name and find it.
    @Test func aLapsedHoldOfADirectoryMadeHereIsRenewedByOneListing() async throws {
        let hold = Duration.seconds(5)  // long enough for the lookups after a renewal on a loaded machine
        let fs = makeFileSystem(store, negativeTimeout: hold)
        let dir = try await fs.mkdir(parent: .root, name: "new", mode: 0o755, caller: testCaller)
        let (_, handle) = try await fs.create(parent: dir.inode, name: "a")
        await fs.release(handle)
        try await Task.sleep(for: hold + .milliseconds(100))
        func calls() -> (heads: Int, lists: Int) { store.contents.withLock { ($0.headCalls, $0.listCalls) } }
        let before = calls()
        async let b = errno { _ = try await fs.lookup(parent: dir.inode, name: "b") }
        async let c = errno { _ = try await fs.lookup(parent: dir.inode, name: "c") }
        #expect(await [b, c] == [.noEntry, .noEntry])
        _ = try await fs.mkdir(parent: dir.inode, name: "d", mode: 0o755, caller: testCaller)
        #expect(calls().heads == before.heads && calls().lists == before.lists + 1)
        store.seed("new/other", [1])  // another client
        try await Task.sleep(for: hold + .milliseconds(100))
        #expect(try await fs.lookup(parent: dir.inode, name: "other").size == 1)
        let listed = calls()
        #expect(await errno { _ = try await fs.lookup(parent: dir.inode, name: "e") } == .noEntry)
        #expect(calls().heads > listed.heads && calls().lists == listed.lists + 1)  // the name's own LIST
    }

    @Test func aDirectoryMadeHereAnswersMissingNamesWithoutRequestsUntilAChildIsForgotten() async throws {
        // negative_timeout= long enough for a loaded machine: the knowledge lasts that long.
        let fs = makeFileSystem(store, negativeTimeout: .seconds(120))
        let dir = try await fs.mkdir(parent: .root, name: "new", mode: 0o755, caller: testCaller)
        func requests() -> Int { store.contents.withLock { $0.headCalls + $0.listCalls } }
        let before = requests()
        #expect(await errno { _ = try await fs.lookup(parent: dir.inode, name: "a") } == .noEntry)
        let (created, handle) = try await fs.create(parent: dir.inode, name: "a")
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(try await fs.lookup(parent: dir.inode, name: "a").inode == created.inode)
        #expect(await errno { _ = try await fs.mkdir(parent: dir.inode, name: "a", mode: 0o755, caller: testCaller) } == .exists)
        #expect(await errno { _ = try await fs.lookup(parent: dir.inode, name: "b") } == .noEntry)
        #expect(requests() == before)
        // Another client's key is not seen meanwhile; once the kernel forgets "a" (the table no
        // longer holds every name), lookups ask the store again and find it.
        store.seed("new/other", [1])
        #expect(await errno { _ = try await fs.lookup(parent: dir.inode, name: "other") } == .noEntry)
        fs.forget(created.inode, count: 2)
        #expect(try await fs.lookup(parent: dir.inode, name: "other").kind == .regular)
        #expect(requests() > before)
        // A listing that shows a name the mount did not make ends it too.
        let second = try await fs.mkdir(parent: .root, name: "second", mode: 0o755, caller: testCaller)
        store.seed("second/elsewhere", [2])
        #expect(await errno { _ = try await fs.lookup(parent: second.inode, name: "elsewhere") } == .noEntry)
        #expect(try await names(fs, second.inode) == ["elsewhere": .regular])
        #expect(try await fs.lookup(parent: second.inode, name: "elsewhere").kind == .regular)
    }

    @Test func attributesAreCachedForTheTimeoutAndAReplacedObjectGetsANewInode() async throws {
        store.seed("f", [1, 2, 3])
        let fs = mount(attributeTimeout: .zero)
        let first = try await fs.lookup(parent: .root, name: "f")
        store.seed("f", [1, 2, 3, 4])  // another client replaces it
        let second = try await fs.lookup(parent: .root, name: "f")
        #expect(second.size == 4)
        #expect(second.inode != first.inode)
        // A cached mount answers without asking.
        let cached = mount()
        _ = try await cached.lookup(parent: .root, name: "f")
        let heads = store.contents.withLock { $0.headCalls }
        _ = try await cached.lookup(parent: .root, name: "f")
        #expect(store.contents.withLock { $0.headCalls } == heads)
    }

    @Test func mkdirWritesAMarkerWithPosixMetadataAndRmdirNeedsItEmpty() async throws {
        let fs = mount()
        let dir = try await fs.mkdir(parent: .root, name: "d", mode: 0o750, caller: Caller(uid: 12, gid: 34, umask: 0o022))
        #expect(dir.mode == UInt32(S_IFDIR) | 0o750)
        let written = store.contents.withLock { $0.written[ObjectKey("d/")] }
        #expect(written?.contentType == "application/x-directory")
        #expect(written?.metadata["mode"] == "488")  // 0750, without type bits, as s3fs writes directories
        #expect(written?.metadata["uid"] == "12")
        #expect(await errno { _ = try await fs.mkdir(parent: .root, name: "d", mode: 0o755, caller: testCaller) } == .exists)
        let (_, handle) = try await fs.create(parent: dir.inode, name: "f")
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(await errno { try await fs.rmdir(parent: .root, name: "d") } == .notEmpty)
        try await fs.unlink(parent: dir.inode, name: "f")
        try await fs.rmdir(parent: .root, name: "d")
        #expect(store.object("d/") == nil)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "d") } == .noEntry)
        // A process still in it (its working directory) opens it and lists nothing, as on Linux
        // (`ls` there answered ENOENT).
        let listing = try fs.openDirectory(dir.inode)
        #expect(try await fs.readDirectory(listing, directory: dir.inode, from: 0).isEmpty)
        fs.releaseDirectory(listing)
        fs.forget(dir.inode, count: 1)
        #expect(await errno { _ = try fs.openDirectory(dir.inode) } == .noEntry)
    }

    @Test func namesChangedHereAdvanceTheDirectorysTimesUntilTimesAreSetExplicitly() async throws {
        let fs = mount()
        let dir = try await fs.mkdir(parent: .root, name: "d", mode: 0o755, caller: testCaller)
        let other = try await fs.mkdir(parent: .root, name: "e", mode: 0o755, caller: testCaller)
        let old = FileTime(seconds: 1_000_000_000)
        for directory in [dir.inode, other.inode] { _ = try await fs.setattr(directory, AttributeChanges(modified: old)) }
        #expect(try await fs.getattr(dir.inode).modified == old)

        let (created, handle) = try await fs.create(parent: dir.inode, name: "f")
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        let afterCreate = try await fs.getattr(dir.inode)
        #expect(afterCreate.modified > old && afterCreate.changed >= afterCreate.modified)

        // tar and rsync set a directory's times after filling it: those are shown.
        _ = try await fs.setattr(dir.inode, AttributeChanges(modified: old))
        #expect(try await fs.getattr(dir.inode).modified == old)
        let fileBefore = try await fs.getattr(created.inode)

        try await Task.sleep(for: .milliseconds(20))
        try await fs.rename(parent: dir.inode, name: "f", newParent: other.inode, newName: "g", flags: 0)
        #expect(try await fs.getattr(dir.inode).modified > old)
        #expect(try await fs.getattr(other.inode).modified > old)
        let moved = try await fs.lookup(parent: other.inode, name: "g")
        #expect(moved.changed > fileBefore.changed && moved.modified == fileBefore.modified)

        _ = try await fs.setattr(other.inode, AttributeChanges(modified: old))
        try await fs.unlink(parent: other.inode, name: "g")
        #expect(try await fs.getattr(other.inode).modified > old)
    }

    @Test func chmodChownAndTimesAreStoredAsS3fsWritesThem() async throws {
        let attributeStore = AttributeKeepingStore()
        let fs = makeFileSystem(attributeStore)
        let (created, handle) = try await fs.create(parent: .root, name: "f")
        _ = try await write(fs, handle, at: 0, [1, 2, 3]).get()
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        let time = FileTime(seconds: 1_577_934_245, nanoseconds: 123_000_000)
        let changed = try await fs.setattr(created.inode, AttributeChanges(permissions: 0o600, uid: 12, gid: 34, modified: time))
        #expect(changed.mode == UInt32(S_IFREG) | 0o600)
        #expect(changed.modified == time)
        let metadata = attributeStore.options("f")?.metadata
        #expect(metadata?["mode"] == String(UInt32(S_IFREG) | 0o600))
        #expect(metadata?["uid"] == "12")
        #expect(metadata?["gid"] == "34")
        #expect(metadata?["mtime"] == "1577934245.123000000")
        // A new mount reads them back.
        let remounted = makeFileSystem(attributeStore)
        let again = try await remounted.lookup(parent: .root, name: "f")
        #expect(again.mode == UInt32(S_IFREG) | 0o600)
        #expect((again.uid, again.gid) == (12, 34))
        #expect(again.modified == time)
    }

    @Test func posixChangesBeforeTheFirstPartWaitForCompletion() async throws {
        // tar, rsync and cp -a: write, then chown, chmod, utimens, then close. One request after
        // completion applies all three; the upload is not initiated again for each.
        let attributeStore = AttributeKeepingStore()
        let fs = makeFileSystem(attributeStore)
        let (created, handle) = try await fs.create(parent: .root, name: "t")
        _ = try await write(fs, handle, at: 0, [1, 2, 3]).get()
        let time = FileTime(seconds: 1_000_000_000, nanoseconds: 0)
        _ = try await fs.setattr(created.inode, AttributeChanges(uid: 12, gid: 34))
        _ = try await fs.setattr(created.inode, AttributeChanges(permissions: 0o600))
        _ = try await fs.setattr(created.inode, AttributeChanges(accessed: time, modified: time))
        #expect(attributeStore.inner.contents.withLock { ($0.nextUpload, $0.abortCalls) } == (2, 0))
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        let metadata = attributeStore.options("t")?.metadata
        #expect(metadata?["mode"] == String(UInt32(S_IFREG) | 0o600))
        #expect((metadata?["uid"], metadata?["gid"]) == ("12", "34"))
        #expect(metadata?["mtime"] == "1000000000")
        #expect(attributeStore.inner.contents.withLock { ($0.nextUpload, $0.abortCalls) } == (2, 0))
        #expect(try await fs.getattr(created.inode).modified == time)
    }

    @Test func aStoreThatDropsMarkerMetadataMakesDirectoryMetadataChangesEOPNOTSUPP() async throws {
        let dropping = InMemoryStore(keepsMarkerMetadata: false)
        let fs = makeFileSystem(dropping)
        let dir = try await fs.mkdir(parent: .root, name: "d", mode: 0o700, caller: testCaller)
        #expect(fs.markersKeepMetadata.withLock { $0 } == false)  // learned from the mkdir
        let chmod = AttributeChanges(permissions: 0o750)
        #expect(await errno { _ = try await fs.setattr(dir.inode, chmod) } == .notSupported)
        #expect(await errno { try await fs.setxattr(dir.inode, name: "user.tag", value: Array("v".utf8), flags: 0) } == .notSupported)
        // A store that keeps them: learned at the first mkdir, and chmod of a directory works.
        let keeping = mount()
        let kept = try await keeping.mkdir(parent: .root, name: "k", mode: 0o700, caller: testCaller)
        #expect(keeping.markersKeepMetadata.withLock { $0 } == true)
        #expect(try await keeping.setattr(kept.inode, chmod).mode & 0o777 == 0o750)
    }

    @Test func attributeNamesThatAreCanonicallyEquivalentAreTwoAttributes() async throws {
        // Linux compares xattr names byte for byte; keyed by `String`, the NFD name read and
        // replaced the NFC one's value.
        let composed = "user.caf\u{E9}", decomposed = "user.cafe\u{301}"
        let attributeStore = AttributeKeepingStore()
        let fs = makeFileSystem(attributeStore)
        let (created, handle) = try await fs.create(parent: .root, name: "f")
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        try await fs.setxattr(created.inode, name: composed, value: Array("NFC".utf8))
        #expect(await errno { _ = try await fs.getxattr(created.inode, name: decomposed) } == .noAttribute)
        try await fs.setxattr(created.inode, name: decomposed, value: Array("NFD".utf8))
        let remounted = makeFileSystem(attributeStore)  // read back from the stored metadata
        let file = try await remounted.lookup(parent: .root, name: "f").inode
        #expect(try await remounted.getxattr(file, name: composed) == Array("NFC".utf8))
        #expect(try await remounted.getxattr(file, name: decomposed) == Array("NFD".utf8))
        #expect(try await remounted.listxattr(file).filter { $0.hasPrefix("user.caf") }.map { Array($0.utf8) }
                == [Array(decomposed.utf8), Array(composed.utf8)])  // by bytes
    }

    @Test func otherUserAttributesLiveInTheXattrMetadata() async throws {
        let attributeStore = AttributeKeepingStore()
        let fs = makeFileSystem(attributeStore)
        let (created, handle) = try await fs.create(parent: .root, name: "f")
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        try await fs.setxattr(created.inode, name: "user.foo", value: Array("bar".utf8))
        #expect(attributeStore.options("f")?.metadata["xattr"] == #"{"user.foo":"YmFy"}"#)
        #expect(try await fs.getxattr(created.inode, name: "user.foo") == Array("bar".utf8))
        #expect(try await fs.listxattr(created.inode).contains("user.foo"))
        #expect(try await !fs.listxattr(created.inode).contains("user.obs.meta.mode"))
        #expect(await errno { try await fs.setxattr(created.inode, name: "user.foo", value: [1], flags: ObsFileSystem.createOnly) } == .exists)
        #expect(await errno { try await fs.setxattr(created.inode, name: "security.x", value: [1]) } == .notSupported)
        #expect(await errno { try await fs.setxattr(created.inode, name: "user.big", value: [UInt8](repeating: 1, count: 2000)) } == .tooBig)
        // Many attributes fill the store's 8 KiB of metadata: then ENOSPC, nothing half-stored.
        var stored = 0
        while stored < 100, await errno(of: { try await fs.setxattr(created.inode, name: "user.n\(stored)", value: [UInt8](repeating: 2, count: 1000)) }) == nil {
            stored += 1
        }
        #expect(stored > 3 && stored < 8)
        #expect(await errno { try await fs.setxattr(created.inode, name: "user.n\(stored)", value: [UInt8](repeating: 2, count: 1000)) } == .noSpace)
        #expect(try await fs.listxattr(created.inode).filter { $0.hasPrefix("user.n") }.count == stored)
        for index in 0..<stored { try await fs.removexattr(created.inode, name: "user.n\(index)") }
        try await fs.removexattr(created.inode, name: "user.foo")
        #expect(await errno { _ = try await fs.getxattr(created.inode, name: "user.foo") } == .noAttribute)
        #expect(attributeStore.options("f")?.metadata["xattr"] == nil)
    }

    @Test func symlinksInS3fsFormat() async throws {
        let fs = mount()
        let link = try await fs.symlink(parent: .root, name: "l", target: "../somewhere/else", caller: testCaller)
        #expect(link.kind == .symlink)
        #expect(link.mode == UInt32(S_IFLNK) | 0o777)
        #expect(store.object("l") == Array("../somewhere/else".utf8))
        let linkMode: String? = store.contents.withLock { $0.written[ObjectKey("l")]?.metadata["mode"] }
        #expect(linkMode == String(UInt32(S_IFLNK) | 0o777))
        let remounted = mount()
        let found = try await remounted.lookup(parent: .root, name: "l")
        #expect(found.kind == .symlink)
        #expect(try await remounted.readlink(found.inode) == "../somewhere/else")
        #expect(await errno { _ = try fs.link(link.inode, parent: .root, name: "hard") } == .notSupported)
    }

    /// FIFOs, sockets and device nodes are empty objects whose mode names their type, as s3fs
    /// stores them, and a device's number is `rdev`; a remount finds both.
    @Test func specialFilesAreEmptyObjectsInS3fsFormat() async throws {
        let fs = mount()
        let device: UInt64 = 259  // makedev(1, 3)
        for (name, kind) in [("fifo", FileKind.fifo), ("socket", .socket), ("char", .characterDevice), ("block", .blockDevice)] {
            let made = try await fs.mknod(parent: .root, name: name, mode: kind.typeBits | 0o640, device: device, caller: testCaller)
            #expect(made.kind == kind)
            #expect(made.mode == kind.typeBits | 0o640)
            #expect(made.device == (kind == .characterDevice || kind == .blockDevice ? device : 0))
            #expect(store.object(name) == [])
            let metadata: [String: String]? = store.contents.withLock { $0.written[ObjectKey(name)]?.metadata }
            #expect(metadata?["mode"] == String(kind.typeBits | 0o640))
            #expect(metadata?["rdev"] == (kind == .characterDevice || kind == .blockDevice ? "259" : nil))
        }
        let remounted = mount()
        #expect(try await remounted.lookup(parent: .root, name: "fifo").mode == UInt32(S_IFIFO) | 0o640)
        let char = try await remounted.lookup(parent: .root, name: "char")
        #expect(char.kind == .characterDevice && char.device == device)
        #expect(try await remounted.lookup(parent: .root, name: "socket").kind == .socket)
        #expect(try await remounted.lookup(parent: .root, name: "block").kind == .blockDevice)
        #expect(await errno { _ = try await fs.mknod(parent: .root, name: "dir", mode: UInt32(S_IFDIR) | 0o755, caller: testCaller) } == .invalidArgument)
        #expect(await errno { _ = try await fs.mknod(parent: .root, name: "fifo", mode: UInt32(S_IFIFO) | 0o644, caller: testCaller) } == .exists)
    }

    @Test func renameOfAFileCopiesAndDeletesAndReplacesTheTarget() async throws {
        store.seed("a", [1, 2, 3], metadata: ["mode": "33216"])
        store.seed("b", [9])
        let fs = mount()
        let a = try await fs.lookup(parent: .root, name: "a")
        #expect(await errno { try await fs.rename(parent: .root, name: "a", newParent: .root, newName: "b", flags: ObsFileSystem.renameNoReplace) } == .exists)
        #expect(await errno { try await fs.rename(parent: .root, name: "a", newParent: .root, newName: "b", flags: ObsFileSystem.renameExchange) } == .invalidArgument)
        // RENAME_WHITEOUT would leave no whiteout behind: refused, nothing renamed.
        #expect(await errno { try await fs.rename(parent: .root, name: "a", newParent: .root, newName: "w", flags: ObsFileSystem.renameWhiteout) } == .invalidArgument)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "w") } == .noEntry)
        try await fs.rename(parent: .root, name: "a", newParent: .root, newName: "b", flags: 0)
        #expect(store.object("a") == nil)
        #expect(store.object("b") == [1, 2, 3])
        #expect(store.contents.withLock { $0.written[ObjectKey("b")]?.metadata["mode"] } == "33216")
        // The kernel's inode follows the name.
        #expect(try await fs.getattr(a.inode).size == 3)
        #expect(try await fs.lookup(parent: .root, name: "b").inode == a.inode)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "a") } == .noEntry)
    }

    @Test func aRenamedFileGetsTheContentTypeOfItsNewNameUnlessOneWasSet() async throws {
        // rsync's temporary name, a type inferred from the old name, and one set by hand.
        store.seed(".photo.jpg.Xy12", [1], contentType: "application/octet-stream")
        store.seed("notes.txt", [2], contentType: "text/plain")
        store.seed("custom.txt", [3], contentType: "text/x-custom")
        let fs = mount()
        for (name, newName) in [(".photo.jpg.Xy12", "photo.jpg"), ("notes.txt", "notes.bin"), ("custom.txt", "custom.html")] {
            try await fs.rename(parent: .root, name: name, newParent: .root, newName: newName, flags: 0)
        }
        let types = store.contents.withLock { written in
            ["photo.jpg", "notes.bin", "custom.html"].map { written.written[ObjectKey($0)]?.contentType }
        }
        #expect(types == ["image/jpeg", "application/octet-stream", "text/x-custom"])
    }

    @Test func anOpenAsksAgainForAFileKnownLongerThanOpenRevalidateAndReadsAnotherClientsReplacement() async throws {
        // s3fs's test_external_modification: `echo old > f`, another client overwrites f, `cmp`
        // read EIO (the GET pinned to the old ETag) until attr_timeout= passed.
        func fileSystem(revalidatingAfter seconds: Duration) -> ObsFileSystem {
            var configuration = mount().configuration
            configuration.read.openRevalidation = seconds
            return ObsFileSystem(configuration: configuration, store: store, logger: mount().logger)
        }
        func readAll(_ fs: ObsFileSystem, _ inode: InodeNumber) async throws -> [UInt8] {
            let opened = try await fs.open(inode, flags: O_RDONLY)
            defer { Task { await fs.release(opened.handle) } }
            return try await fs.read(opened.handle, at: 0, count: 100).gathered()
        }
        /// `name` read through `fs`, then replaced by another client, 300 ms ago.
        func readThenReplaced(_ fs: ObsFileSystem, _ name: String) async throws -> InodeNumber {
            store.seed(name, Array("old\n".utf8))
            let inode = try await fs.lookup(parent: .root, name: name).inode
            #expect(try await readAll(fs, inode) == Array("old\n".utf8))
            store.seed(name, Array("new new\n".utf8))
            try await Task.sleep(for: .milliseconds(300))
            return inode
        }
        let fs = fileSystem(revalidatingAfter: .milliseconds(200))
        let replaced = try await readThenReplaced(fs, "f")
        // The open answers ESTALE: the kernel looks the name up again, gets the new object's
        // inode and opens it (the program sees nothing).
        #expect(await errno { _ = try await readAll(fs, replaced) } == .stale)
        let f = try await fs.lookup(parent: .root, name: "f").inode
        #expect(f != replaced)
        #expect(try await readAll(fs, f) == Array("new new\n".utf8))
        #expect(try await fs.getattr(f).size == 8)

        // A descriptor reading the old version keeps its inode: the new open answers ESTALE
        // (the kernel looks the name up again) and the name's new inode reads the new version.
        let reader = try await fs.open(f, flags: O_RDONLY)
        store.seed("f", Array("newest\n".utf8))
        try await Task.sleep(for: .milliseconds(300))
        #expect(await errno { _ = try await fs.open(f, flags: O_RDONLY) } == .stale)
        let renewed = try await fs.lookup(parent: .root, name: "f").inode
        #expect(renewed != f)
        #expect(try await readAll(fs, renewed) == Array("newest\n".utf8))
        await fs.release(reader.handle)

        // At attr_timeout= (10 s here) the open trusts what it knows: EIO at the first read.
        let trusting = fileSystem(revalidatingAfter: .seconds(10))
        let g = try await readThenReplaced(trusting, "g")
        #expect(await errno { _ = try await readAll(trusting, g) } == .io)
    }

    /// A file another client replaced gets a new inode at an open also when no descriptor here
    /// has it open (the open answers ESTALE and the kernel looks the name up again), and with
    /// writeback_cache also at a `stat` (an open of the inode then answers ESTALE; it answered
    /// ENOENT). Refreshed in place, the kernel kept its size of the inode (with writeback_cache
    /// whatever getattr answers; without, it sent none before the read), and a second mount read
    /// the new object cut to, or padded with zeros to, an older version's size (helper-47's and
    /// helper-49's two-mount stress).
    @Test(arguments: [false, true])
    func aFileAnotherClientReplacedGetsANewInode(writebackCache: Bool) async throws {
        var configuration = makeFileSystem(store, attributeTimeout: .milliseconds(250), writebackCache: writebackCache).configuration
        configuration.read.openRevalidation = .milliseconds(100)
        let fs = ObsFileSystem(configuration: configuration, store: store, logger: mount().logger)
        store.seed("f", Array("old\n".utf8))
        let f = try await fs.lookup(parent: .root, name: "f").inode
        let opened = try await fs.open(f, flags: O_RDONLY)
        #expect(try await fs.read(opened.handle, at: 0, count: 100).gathered() == Array("old\n".utf8))
        await fs.release(opened.handle)
        // An open finds the replacement.
        store.seed("f", Array("a longer new version\n".utf8))
        try await Task.sleep(for: .milliseconds(150))
        #expect(await errno { _ = try await fs.open(f, flags: O_RDONLY) } == .stale)
        let renewed = try await fs.lookup(parent: .root, name: "f")
        #expect(renewed.inode != f && renewed.size == 21)
        let reopened = try await fs.open(renewed.inode, flags: O_RDONLY)
        #expect(try await fs.read(reopened.handle, at: 0, count: 100).gathered() == Array("a longer new version\n".utf8))
        await fs.release(reopened.handle)
        // A stat finds it: it shows the new size; with writeback_cache an open of that inode
        // answers ESTALE (it answered ENOENT), without it the inode was refreshed in place.
        store.seed("f", Array("newest\n".utf8))
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await fs.getattr(renewed.inode).size == 7)
        if writebackCache {
            #expect(await errno { _ = try await fs.open(renewed.inode, flags: O_RDONLY) } == .stale)
            #expect(try await fs.lookup(parent: .root, name: "f").inode != renewed.inode)
        } else {
            let same = try await fs.open(renewed.inode, flags: O_RDONLY)
            #expect(try await fs.read(same.handle, at: 0, count: 100).gathered() == Array("newest\n".utf8))
            await fs.release(same.handle)
        }
    }

    @Test func anAppendAfterAnotherClientsReplacementChangesTheNewVersion() async throws {
        // `echo x >> f` within attr_timeout= of another client's upload of f: the composition
        // on the version the mount knew failed at close (EIO) and the bytes were lost.
        store.seed("f", Array("abc".utf8))
        let fs = mount()
        let f = try await fs.lookup(parent: .root, name: "f").inode
        store.seed("f", Array("vwxyz".utf8))
        #expect(await errno { _ = try await fs.open(f, flags: O_WRONLY | O_APPEND) } == .stale)  // the kernel looks the name up again
        let renewed = try await fs.lookup(parent: .root, name: "f").inode
        let appending = try await fs.open(renewed, flags: O_WRONLY | O_APPEND)
        #expect(try await fs.getattr(renewed).size == 5)
        _ = try await write(fs, appending.handle, at: 5, Array("!".utf8)).get()
        try await fs.flush(appending.handle, writer: WriterIdentity(7))
        await fs.release(appending.handle)
        #expect(store.object("f") == Array("vwxyz!".utf8))
    }

    @Test func aTruncateAfterAnotherClientsReplacementCutsTheNewVersion() async throws {
        // `truncate -s 2 f` within attr_timeout= of another client's upload of f: composed on
        // the version the mount knew, it failed with EIO.
        store.seed("f", Array("abc".utf8))
        let fs = mount()
        let f = try await fs.lookup(parent: .root, name: "f").inode
        store.seed("f", Array("vwxyz".utf8))
        #expect(await errno { _ = try await fs.setattr(f, AttributeChanges(size: 2)) } == .stale)  // truncate(2) looks the name up again
        let renewed = try await fs.lookup(parent: .root, name: "f").inode
        _ = try await fs.setattr(renewed, AttributeChanges(size: 2))
        #expect(store.object("f") == Array("vw".utf8))
        #expect(try await fs.getattr(renewed).size == 2)
    }

    @Test func renameAboveTheSingleCopyLimitIsAMultipartCopy() async throws {
        let bytes = pattern(Int(3 * minimumPart + 17))
        store.seed("big", bytes)
        var configuration = mount().configuration
        configuration.singleCopyLimit = minimumPart
        configuration.copyPartSize = minimumPart
        let fs = ObsFileSystem(configuration: configuration, store: store, logger: mount().logger)
        try await fs.rename(parent: .root, name: "big", newParent: .root, newName: "moved", flags: 0)
        #expect(store.object("moved") == bytes)
        #expect(store.object("big") == nil)
        #expect(store.contents.withLock { $0.copyCalls } == 4)
        #expect(store.uploadsInProgress == 0)
    }

    @Test func renameOfADirectoryMovesEveryKeyAndARepeatedMoveFinishesAnInterruptedOne() async throws {
        for index in 0..<30 { store.seed("src/sub/f\(index)", [UInt8(index)]) }
        store.seed("src/", contentType: "application/x-directory")
        let fs = mount()
        let source = try await fs.lookup(parent: .root, name: "src")
        try await fs.rename(parent: .root, name: "src", newParent: .root, newName: "dst", flags: 0)
        let keys = store.contents.withLock { $0.objects.keys.map(\.rawValue) }
        #expect(keys.filter { $0.hasPrefix("src") }.isEmpty)
        #expect(keys.filter { $0.hasPrefix("dst/sub/") }.count == 30)
        #expect(keys.contains("dst/"))
        #expect(!keys.contains("dst/" + KeyNaming.renameRecordName))  // deleted after the last delete
        #expect(try await fs.getattr(source.inode).kind == .directory)
        // An interrupted rename: part of the target exists and the whole source still does; its
        // record names the source.
        for index in 0..<5 { store.seed("again/f\(index)", [1]) }
        for index in 0..<2 { store.seed("half/f\(index)", [1]) }
        store.seed("half/" + KeyNaming.renameRecordName, Array("again/".utf8))
        try await fs.rename(parent: .root, name: "again", newParent: .root, newName: "half", flags: 0)
        #expect(store.contents.withLock { $0.objects.keys.filter { $0.rawValue.hasPrefix("half/f") }.count } == 5)
        // Interrupted during the copies of a source without a marker: the target's marker,
        // which the rename made, does not make it another directory.
        for index in 0..<5 { store.seed("keys/f\(index)", [2]) }
        store.seed("made/", contentType: "application/x-directory")
        store.seed("made/f0", [2])
        store.seed("made/" + KeyNaming.renameRecordName, Array("keys/".utf8))
        try await fs.rename(parent: .root, name: "keys", newParent: .root, newName: "made", flags: 0)
        #expect(store.contents.withLock { $0.objects.keys.filter { $0.rawValue.hasPrefix("made/f") }.count } == 5)
        #expect(store.contents.withLock { $0.objects.keys.filter { $0.rawValue.hasPrefix("keys") }.isEmpty })
        // Interrupted during the deletes: what is left of the source is in the target, same sizes.
        for index in 0..<5 { store.seed("whole/f\(index)", [3, 3]) }
        store.seed("left/", contentType: "application/x-directory")
        for index in 3..<5 { store.seed("left/f\(index)", [3, 3]) }
        store.seed("whole/" + KeyNaming.renameRecordName, Array("left/".utf8))
        try await fs.rename(parent: .root, name: "left", newParent: .root, newName: "whole", flags: 0)
        #expect(store.contents.withLock { $0.objects.keys.filter { $0.rawValue.hasPrefix("whole/f") }.count } == 5)
        #expect(store.contents.withLock { $0.objects.keys.filter { $0.rawValue.hasPrefix("left") }.isEmpty })
        #expect(store.contents.withLock { $0.objects.keys.filter { $0.rawValue.hasSuffix(KeyNaming.renameRecordName) }.isEmpty })
        // Files of the same names and sizes uploaded in parts (ETags that are no MD5s), without
        // a record: another directory, not an earlier rename; it was taken for one and its files
        // overwritten (found by a helper's stress run). With a record of another source: the same.
        for (directory, bytes) in [("m", "hello"), ("n", "OLD!!"), ("o", "other")] {
            store.seed("\(directory)/x", Array(bytes.utf8))
            store.contents.withLock { $0.etags[ObjectKey("\(directory)/x")] = ETag(String(repeating: directory, count: 32) + "-1") }
        }
        store.seed("o/" + KeyNaming.renameRecordName, Array("elsewhere/".utf8))
        for target in ["n", "o"] {
            #expect(await errno { try await fs.rename(parent: .root, name: "m", newParent: .root, newName: target, flags: 0) } == .notEmpty)
        }
        #expect(store.object("n/x") == Array("OLD!!".utf8) && store.object("o/x") == Array("other".utf8) && store.object("m/x") == Array("hello".utf8))
        // The same names of other sizes, and keys of its own: another directory, not empty.
        store.seed("p/f0", [1])
        store.seed("q/f0", [1, 2])
        store.seed("q/f1", [1])
        #expect(await errno { try await fs.rename(parent: .root, name: "p", newParent: .root, newName: "q", flags: 0) } == .notEmpty)
        // Only names the source also has, but other content: not an earlier rename (its copies
        // have the source's sizes), so not replaced.
        store.seed("s/f0", [1])
        store.seed("s/f1", [1])
        store.seed("t/f0", [9, 9, 9])
        #expect(await errno { try await fs.rename(parent: .root, name: "s", newParent: .root, newName: "t", flags: 0) } == .notEmpty)
        #expect(store.object("t/f0") == [9, 9, 9])
        // The same names and sizes, other bytes (other MD5 ETags): not copies, so not replaced.
        store.seed("u/f0", [1, 1])
        store.seed("v/f0", [2, 2])
        #expect(await errno { try await fs.rename(parent: .root, name: "u", newParent: .root, newName: "v", flags: 0) } == .notEmpty)
        #expect(store.object("v/f0") == [2, 2])
        // A target holding a name the source lacks that sorts after the source's first name: the
        // deletes go in key order, so no leftover of them (its other, same-sized file is kept).
        store.seed("k/f", Array("AAAA".utf8))
        store.seed("l/f", Array("BBBB".utf8))
        store.seed("l/g", [1])
        store.contents.withLock { contents in  // uploaded in parts: ETags that are no MD5 of the bytes
            contents.etags[ObjectKey("k/f")] = ETag("0123456789abcdef0123456789abcdef-1")
            contents.etags[ObjectKey("l/f")] = ETag("fedcba9876543210fedcba9876543210-1")
        }
        #expect(await errno { try await fs.rename(parent: .root, name: "k", newParent: .root, newName: "l", flags: 0) } == .notEmpty)
        #expect(store.object("l/f") == Array("BBBB".utf8))
        // An empty directory onto one holding only an empty subdirectory: not empty.
        store.seed("e/", contentType: "application/x-directory")
        store.seed("g/", contentType: "application/x-directory")
        store.seed("g/sub/", contentType: "application/x-directory")
        #expect(await errno { try await fs.rename(parent: .root, name: "e", newParent: .root, newName: "g", flags: 0) } == .notEmpty)
        #expect(store.object("e/") != nil && store.object("g/sub/") != nil)
        // A target with keys of its own is not empty.
        store.seed("x/one", [1])
        store.seed("y/other", [1])
        #expect(await errno { try await fs.rename(parent: .root, name: "x", newParent: .root, newName: "y", flags: 0) } == .notEmpty)
        #expect(await errno { try await fs.rename(parent: .root, name: "x", newParent: try await fs.lookup(parent: .root, name: "x").inode, newName: "in", flags: 0) } == .invalidArgument)
    }

    /// s3fs's older markers of a directory with files in it (`d_$folder$`, an object `d` of
    /// Content-Type application/x-directory) go with a rename: left behind, the old name showed
    /// as an empty directory.
    @Test func aRenameTakesS3fsOlderDirectoryMarkersAlong() async throws {
        store.seed("old_$folder$", [])
        store.seed("old/f", [1])
        store.seed("legacy", [], contentType: "application/x-directory")
        store.seed("legacy/f", [2])
        let fs = mount()
        for (source, target) in [("old", "new"), ("legacy", "moved")] {
            try await fs.rename(parent: .root, name: source, newParent: .root, newName: target, flags: 0)
            #expect(await errno { _ = try await fs.lookup(parent: .root, name: source) } == .noEntry, "\(source)")
        }
        #expect(store.contents.withLock { $0.objects.keys.map(\.rawValue).sorted() } == ["moved/", "moved/f", "new/", "new/f"])
    }

    /// An empty directory that has `user.obs.*` attributes (its hidden attributes object) is
    /// replaced by a rename as any empty directory (it answered ENOTEMPTY); its attributes go.
    @Test func aRenameReplacesAnEmptyDirectoryThatHasAttributes() async throws {
        store.seed("e/", contentType: "application/x-directory")
        store.seed("e/f", [1])
        store.seed("t/", contentType: "application/x-directory")
        store.seed("t/" + DirectoryAttributes.objectName, Array("storage_class=WARM\n".utf8))
        let fs = mount()
        try await fs.rename(parent: .root, name: "e", newParent: .root, newName: "t", flags: 0)
        #expect(store.contents.withLock { $0.objects.keys.map(\.rawValue).sorted() } == ["t/", "t/f"])
        // The same on a parallel file system bucket (one native rename).
        let local = try LocalOBS(fileSystemBucket: true)
        defer { local.stop() }
        var marker = ObjectOptions()
        marker.contentType = "application/x-directory"
        for (key, bytes) in [("e/", []), ("e/f", [1]), ("t/", []), ("t/" + DirectoryAttributes.objectName, Array("storage_class=WARM\n".utf8))] {
            _ = try await local.store.putObject(ObjectKey(key), bytes: bytes, options: key.hasSuffix("/") ? marker : ObjectOptions())
        }
        let native = makeFileSystem(local.store)
        try await native.rename(parent: .root, name: "e", newParent: .root, newName: "t", flags: 0)
        let listed = try await local.store.listObjects(prefix: "", delimiter: nil, marker: nil, maxKeys: 100).objects.map(\.key.rawValue)
        #expect(listed.sorted() == ["t/", "t/f"])
    }

    /// A file created in a directory while it is renamed (by copies) ends up under the new
    /// name: it stayed under the old prefix, listed by neither.
    @Test func aNameMadeInADirectoryBeingRenamedLandsUnderTheNewName() async throws {
        let faulty = FaultInjectingStore()
        faulty.inner.seed("src/", contentType: "application/x-directory")
        faulty.inner.seed("src/a", [1])
        let fs = makeFileSystem(faulty)
        let source = try await fs.lookup(parent: .root, name: "src")
        faulty.hold(.copy)
        let renaming = Task { try await fs.rename(parent: .root, name: "src", newParent: .root, newName: "dst", flags: 0) }
        let deadline = ContinuousClock.now + .seconds(30)
        while faulty.heldCount(.copy) == 0 {
            try #require(ContinuousClock.now < deadline, "the rename never reached its copies")
            try await Task.sleep(for: .milliseconds(5))
        }
        let creating = Task { () throws -> FileHandleID in
            try await fs.create(parent: source.inode, name: "made-during", mode: 0o644, flags: O_WRONLY | O_CREAT | O_TRUNC, caller: testCaller).1
        }
        try await Task.sleep(for: .milliseconds(50))
        faulty.release(.copy)
        try await renaming.value
        let handle = try await creating.value
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(faulty.inner.contents.withLock { $0.objects.keys.map(\.rawValue).sorted() } == ["dst/", "dst/a", "dst/made-during"])
    }

    @Test func namesThatWouldNotReadBackAsMadeAreRefusedWithEINVAL() async throws {
        // `report_$folder$` showed as a directory `report`; a file of Content-Type
        // application/x-directory turned into a directory; `.obsmount-dir-attrs` answered ENOENT.
        let fs = mount()
        for name in ["report_$folder$", DirectoryAttributes.objectName] {
            #expect(await errno { _ = try await fs.create(parent: .root, name: name) } == .invalidArgument, "\(name)")
            #expect(await errno { _ = try await fs.mkdir(parent: .root, name: name, mode: 0o755, caller: testCaller) } == .invalidArgument, "\(name)")
        }
        let (_, handle) = try await fs.create(parent: .root, name: "file")
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(await errno { try await fs.rename(parent: .root, name: "file", newParent: .root, newName: "x_$folder$", flags: 0) } == .invalidArgument)
        for type in ["application/x-directory", "Application/X-Directory; charset=binary"] {
            var options = ObjectOptions()
            #expect(throws: ObjectAttributeError.self) {
                try ObjectAttributeName.contentType.apply(Array(type.utf8), to: &options, mount: UploadMountOptions(), now: .now())
            }
            #expect(options.contentType == nil)
        }
        #expect(try await fs.lookup(parent: .root, name: "file").kind == .regular)
        #expect(store.contents.withLock { $0.objects.keys.map(\.rawValue) } == ["file"])
    }

    @Test func aRenamedDirectoryKeepsItsModificationTime() async throws {
        // `touch -d 2009 d; mv d e`: e showed the rename's time as its mtime (only its ctime
        // changes, as on a local filesystem); its parent's mtime is the rename's.
        let fs = mount(attributeTimeout: .zero)
        let directory = try await fs.mkdir(parent: .root, name: "d", mode: 0o755, caller: testCaller)
        let set = FileTime(seconds: 1_252_487_349, nanoseconds: 0)
        _ = try await fs.setattr(directory.inode, AttributeChanges(modified: set))
        let before = FileTime.now()
        try await fs.rename(parent: .root, name: "d", newParent: .root, newName: "e", flags: 0)
        let moved = try await fs.getattr(directory.inode)
        #expect(moved.modified == set)
        #expect(moved.changed >= before)
        #expect(try await fs.getattr(.root).modified >= before)
    }

    /// chmod and utimens show the times they store: the ctime shown was taken after the stored
    /// one and went back when read from the store (tar: "file changed as we read it"), and a
    /// directory's mtime moved by a create in it went back to its marker's at a chmod.
    @Test func metadataChangesShowTheTimesTheyStore() async throws {
        let local = try LocalOBS()
        defer { local.stop() }
        let fs = makeFileSystem(local.store, attributeTimeout: .zero)
        let (created, handle) = try await fs.create(parent: .root, name: "f")
        await fs.release(handle)
        for change in [AttributeChanges(permissions: 0o600), AttributeChanges(modified: FileTime(seconds: 1_000_000_000))] {
            let shown = try await fs.setattr(created.inode, change)
            let stored = try #require(try await local.store.headObject(ObjectKey("f"))?.metadata["ctime"])
            #expect(shown.changed.description == stored)
            #expect(try await fs.getattr(created.inode).changed == shown.changed)  // asked of the store again
        }
        // `touch -d` opens the file for writing first (a change session that writes nothing).
        let touching = try await fs.open(created.inode, flags: O_WRONLY, opener: ProcessID(4)).handle
        let touched = try await fs.setattr(created.inode, AttributeChanges(accessed: FileTime(seconds: 7), modified: FileTime(seconds: 7)))
        await fs.release(touching)
        #expect(try await local.store.headObject(ObjectKey("f"))?.metadata["ctime"] == touched.changed.description)
        #expect(try await fs.getattr(created.inode).changed == touched.changed)
        // `touch -a` too, changing the atime alone: the mtime stays (it showed the touch's time).
        let accessing = try await fs.open(created.inode, flags: O_WRONLY, opener: ProcessID(4)).handle
        let accessed = try await fs.setattr(created.inode, AttributeChanges(accessed: FileTime(seconds: 9)))
        #expect(accessed.modified == FileTime(seconds: 7) && accessed.accessed == FileTime(seconds: 9))
        #expect(try await fs.getattr(created.inode).modified == FileTime(seconds: 7))
        await fs.release(accessing)
        #expect(try await local.store.headObject(ObjectKey("f"))?.metadata["mtime"] == FileTime(seconds: 7).description)
        #expect(try await fs.getattr(created.inode).modified == FileTime(seconds: 7))
        let directory = try await fs.mkdir(parent: .root, name: "d", mode: 0o755, caller: testCaller)
        _ = try await fs.setattr(directory.inode, AttributeChanges(modified: FileTime(seconds: 1_500_000_000)))
        let beforeCreate = FileTime.now()
        let (_, inside) = try await fs.create(parent: directory.inode, name: "g")
        await fs.release(inside)
        #expect(try await fs.getattr(directory.inode).modified >= beforeCreate)
        #expect(try await fs.setattr(directory.inode, AttributeChanges(permissions: 0o700)).modified >= beforeCreate)
    }

    @Test func aChownThatChangesNothingChangesTheCtime() async throws {
        // chown(f, -1, -1): the kernel sends the ctime alone; Linux (and pjdfstest) moves it.
        store.seed("f", [1], metadata: ["mode": "33188", "mtime": "1000000000", "ctime": "1000000000"])
        let fs = mount()
        let file = try await fs.lookup(parent: .root, name: "f")
        var changes = AttributeChanges()
        changes.changeTimeOnly = true
        let before = FileTime.now()
        let after = try await fs.setattr(file.inode, changes)
        #expect(after.changed >= before)
        #expect(after.modified == FileTime(seconds: 1_000_000_000, nanoseconds: 0))
        #expect(after.mode == file.mode && after.uid == file.uid)
    }

    @Test func unlinkOfAFileBeingWrittenLeavesNothing() async throws {
        let fs = mount()
        let (created, handle) = try await fs.create(parent: .root, name: "tmp")
        _ = try await write(fs, handle, at: 0, pattern(Int(minimumPart) + 10)).get()
        try await fs.unlink(parent: .root, name: "tmp")
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "tmp") } == .noEntry)
        let orphan = try await fs.getattr(created.inode)
        #expect(orphan.size == Int64(minimumPart) + 10)  // the open file lives on
        #expect(orphan.linkCount == 0)  // with no name
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("tmp") == nil)
        #expect(store.uploadsInProgress == 0)
    }

    /// A temporary file (open, unlink, write, read back, write behind, ftruncate), as mkstemp
    /// users and Python's TemporaryFile do: it works as on a local disk, and leaves nothing.
    @Test func aFileUnlinkedWhileBeingWrittenIsReadBackAndChangedThroughItsDescriptor() async throws {
        let fs = mount()
        let (created, handle) = try await fs.create(parent: .root, name: "tmp")
        let data = pattern(2 * Int(minimumPart) + 10)
        _ = try await write(fs, handle, at: 0, data).get()
        try await fs.unlink(parent: .root, name: "tmp")
        #expect(try await fs.read(handle, at: 0, count: 100).gathered() == Array(data[0..<100]))
        _ = try await write(fs, handle, at: 10, [7, 7]).get()  // behind what was streamed
        #expect(try await fs.read(handle, at: 8, count: 6).gathered() == [data[8], data[9], 7, 7, data[12], data[13]])
        _ = try await fs.setattr(created.inode, AttributeChanges(size: 1000))  // ftruncate
        #expect(try await fs.getattr(created.inode).size == 1000)
        _ = try await write(fs, handle, at: 1000, [5]).get()
        #expect(try await fs.read(handle, at: 998, count: 10).gathered() == [data[998], data[999], 5])
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "tmp") } == .noEntry)  // hidden
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("tmp") == nil)
        #expect(store.uploadsInProgress == 0)
    }

    /// `open(O_CREAT|O_RDWR|O_TRUNC); unlink; ftruncate(86930); pread`: zeros up to that length,
    /// not the end of the file (found by a helper's stress run); nothing is left stored.
    @Test func aFileUnlinkedWhileBeingWrittenAndExtendedReadsItsZeros() async throws {
        let fs = mount()
        let (created, handle) = try await fs.create(parent: .root, name: "tmp")
        try await fs.unlink(parent: .root, name: "tmp")
        _ = try await fs.setattr(created.inode, AttributeChanges(size: 86_930))
        #expect(try await fs.read(handle, at: 26_200, count: 131_072).gathered() == [UInt8](repeating: 0, count: 60_730))
        _ = try await write(fs, handle, at: 86_930, [7]).get()
        #expect(try await fs.read(handle, at: 86_929, count: 10).gathered() == [0, 7])
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("tmp") == nil)
        #expect(store.uploadsInProgress == 0)
    }

    /// `w=open(O_CREAT|O_WRONLY|O_TRUNC); r=open(O_RDONLY); write(w); close(w); unlink; pread(r)`:
    /// the reader opened during the stream reads the object its writer stored, which stays hidden
    /// until its last release (it answered EBUSY; found by a helper's stress run).
    @Test func aReaderOpenedDuringTheStreamReadsTheFileAfterItsUnlink() async throws {
        let fs = mount()
        let (created, writer) = try await fs.create(parent: .root, name: "f")
        let reader = try await fs.open(created.inode, flags: O_RDONLY).handle
        let data = pattern(65_536)
        _ = try await write(fs, writer, at: 0, data).get()
        try await fs.flush(writer, writer: WriterIdentity(7))
        await fs.release(writer)
        try await fs.unlink(parent: .root, name: "f")
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "f") } == .noEntry)
        #expect(try await fs.read(reader, at: 0, count: 100_000).gathered() == data)
        #expect(store.object("f") == data)  // hidden, until the last release
        await fs.release(reader)
        #expect(store.object("f") == nil)
    }

    /// A reader that completed a stream (its read), then the file unlinked, written on and closed
    /// by its writer: the reader reads it all to the end, as on a local disk (found by a helper).
    @Test func aStreamReadByAnotherDescriptorStaysReadableAfterItsUnlinkAndTheWritersClose() async throws {
        let fs = mount()
        let (created, writer) = try await fs.create(parent: .root, name: "f")
        let first = pattern(9000)
        _ = try await write(fs, writer, at: 0, first).get()
        let reader = try await fs.open(created.inode, flags: O_RDONLY).handle
        #expect(try await fs.read(reader, at: 0, count: 100_000).gathered() == first)
        try await fs.unlink(parent: .root, name: "f")
        let more = pattern(100, seed: 4)
        _ = try await write(fs, writer, at: 9000, more).get()
        try await fs.flush(writer, writer: WriterIdentity(7))
        await fs.release(writer)
        #expect(try await fs.read(reader, at: 0, count: 100_000).gathered() == first + more)
        await fs.release(reader)
        #expect(store.object("f") == nil)
        #expect(store.uploadsInProgress == 0)
    }

    /// The same, with the reader's first read after the writer's close: the upload was aborted
    /// and the reader read ENOENT; it is stored hidden for the reader instead.
    @Test func aStreamUnlinkedAndClosedStaysReadableForADescriptorOpenedDuringIt() async throws {
        let fs = mount()
        let (created, writer) = try await fs.create(parent: .root, name: "f")
        let reader = try await fs.open(created.inode, flags: O_RDONLY).handle
        let data = pattern(9100)
        _ = try await write(fs, writer, at: 0, data).get()
        try await fs.unlink(parent: .root, name: "f")
        try await fs.flush(writer, writer: WriterIdentity(7))
        await fs.release(writer)
        #expect(try await fs.read(reader, at: 0, count: 100_000).gathered() == data)
        await fs.release(reader)
        #expect(store.object("f") == nil)
        #expect(store.uploadsInProgress == 0)
    }

    /// Once this mount made the name again, the unlinked file cannot be completed under it.
    @Test func aFileUnlinkedWhileBeingWrittenWhoseNameWasMadeAgainIsNotReadBack() async throws {
        let fs = mount()
        let (_, handle) = try await fs.create(parent: .root, name: "tmp")
        _ = try await write(fs, handle, at: 0, [1, 2, 3]).get()
        try await fs.unlink(parent: .root, name: "tmp")
        let (_, again) = try await fs.create(parent: .root, name: "tmp")
        _ = try await write(fs, again, at: 0, [9]).get()
        #expect(await errno { _ = try await fs.read(handle, at: 0, count: 3) } == .busy)
        try await fs.flush(again, writer: WriterIdentity(8))
        await fs.release(again)
        await fs.release(handle)
        #expect(store.object("tmp") == [9])
        #expect(store.uploadsInProgress == 0)
    }

    /// O_TRUNC starts an upload; without it the open changes the existing object (Compose/).
    @Test(arguments: [O_WRONLY | O_TRUNC, O_WRONLY])
    func anOpenForWritingRacingAnUnlinkPutsNoObjectBack(flags: Int32) async throws {
        store.seed("f", [1, 2, 3])
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults)
        let file = try await fs.lookup(parent: .root, name: "f")
        // The unlink has looked for uploads of the file (none) and waits for its DELETE; the open
        // (of the inode the kernel resolved before the unlink) comes now.
        faults.hold(.delete)
        let unlink = Task { try await fs.unlink(parent: .root, name: "f") }
        #expect(try await eventually { faults.heldCount(.delete) == 1 })
        var handle: FileHandleID?
        let refused = await errno { handle = try await fs.open(file.inode, flags: flags).handle }
        faults.release(.delete)
        try await unlink.value
        if let handle {  // an upload that started: its close must not write the unlinked name again
            _ = try await write(fs, handle, at: 0, [7, 7]).get()
            try? await fs.flush(handle, writer: WriterIdentity(7))
            await fs.release(handle)
        }
        #expect(refused == .noEntry)
        #expect(store.object("f") == nil)
        #expect(store.uploadsInProgress == 0)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "f") } == .noEntry)
    }

    @Test func aFileUnlinkedWhileOpenForReadingIsReadUntilItsLastRelease() async throws {
        store.seed("kept", Array("still here".utf8))
        let fs = mount()
        let file = try await fs.lookup(parent: .root, name: "kept")
        let first = try await fs.open(file.inode, flags: O_RDONLY)
        let second = try await fs.open(file.inode, flags: O_RDONLY)
        try await fs.unlink(parent: .root, name: "kept")
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "kept") } == .noEntry)
        #expect(try await names(fs, .root).isEmpty)
        #expect(try await fs.read(first.handle, at: 0, count: 100).gathered() == Array("still here".utf8))
        await fs.release(first.handle)
        #expect(store.object("kept") != nil)  // the second descriptor still reads it
        #expect(try await fs.read(second.handle, at: 6, count: 100).gathered() == Array("here".utf8))
        await fs.release(second.handle)
        #expect(store.object("kept") == nil)
    }

    /// Another client stores a new object under the name of a file unlinked (or renamed away)
    /// while open here: the last close deletes only the version it kept (it deleted the other
    /// client's new file).
    @Test(arguments: [false, true])
    func anotherClientsObjectUnderTheNameOfAHiddenFileStaysAtItsLastClose(renamed: Bool) async throws {
        store.seed("f", Array("kept".utf8))
        let fs = mount()
        let file = try await fs.lookup(parent: .root, name: "f")
        let reader = try await fs.open(file.inode, flags: O_RDONLY)
        if renamed {
            try await fs.rename(parent: .root, name: "f", newParent: .root, newName: "g", flags: 0)
        } else {
            try await fs.unlink(parent: .root, name: "f")
        }
        store.seed("f", Array("another client's".utf8))
        await fs.release(reader.handle)
        #expect(store.object("f") == Array("another client's".utf8))
        // Without another client, the kept version goes at the last close.
        let fresh = mount()
        let again = try await fresh.lookup(parent: .root, name: renamed ? "g" : "f")
        let second = try await fresh.open(again.inode, flags: O_RDONLY)
        try await fresh.unlink(parent: .root, name: renamed ? "g" : "f")
        await fresh.release(second.handle)
        #expect(store.object(renamed ? "g" : "f") == nil)
    }

    /// A listing while the last close's DELETE of a file unlinked while open is under way does
    /// not show it (it did, and `stat` of the name then answered ENOENT).
    @Test func aFileUnlinkedWhileOpenStaysHiddenUntilItsDeleteIsAnswered() async throws {
        let (faults, fs, reader) = try await unlinkedWhileReadBesideAnother()
        let directory = try await fs.lookup(parent: .root, name: "d")
        faults.hold(.delete)
        let releasing = Task { await fs.release(reader.handle) }
        #expect(try await eventually { faults.heldCount(.delete) == 1 })
        #expect(try await names(fs, directory.inode) == ["g": .regular])
        faults.release(.delete)
        await releasing.value
        #expect(store.object("d/f") == nil)
        #expect(try await names(fs, directory.inode) == ["g": .regular])
    }

    /// A descriptor reading `d/f` when this mount rewrote it (`O_TRUNC`) reads the new version
    /// after `mv d e`, as before the rename (helper-47: it read ENOENT, the old key).
    @Test func aReaderOfAnOlderVersionReadsThisMountsRewriteAfterItsDirectorysRename() async throws {
        store.seed("d/")
        store.seed("d/f", pattern(1000))
        let fs = mount()
        let directory = try await fs.lookup(parent: .root, name: "d")
        let file = try await fs.lookup(parent: directory.inode, name: "f")
        let reader = try await fs.open(file.inode, flags: O_RDONLY)
        #expect(try await fs.read(reader.handle, at: 0, count: 10).gathered() == Array(pattern(1000)[0..<10]))
        let writer = try await fs.open(file.inode, flags: O_WRONLY | O_TRUNC)
        _ = try await write(fs, writer.handle, at: 0, [UInt8](repeating: 7, count: 50)).get()
        try await fs.flush(writer.handle, writer: WriterIdentity(7))
        await fs.release(writer.handle)
        try await fs.rename(parent: .root, name: "d", newParent: .root, newName: "e", flags: 0)
        #expect(try await fs.read(reader.handle, at: 0, count: 100).gathered() == [UInt8](repeating: 7, count: 50))
        await fs.release(reader.handle)
    }

    /// A read of a file this mount wrote while its directory's rename deletes the sources (the
    /// stream already on the copy): it read on from the copy's source version, which answered
    /// 412, and EIO from then on (helper-47, files over 8 MiB: their copies get other ETags).
    @Test func aReadDuringItsDirectorysRenameOfAFileWrittenHereReadsTheCopy() async throws {
        store.seed("d/")
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults)
        let directory = try await fs.lookup(parent: .root, name: "d")
        let (created, writer) = try await fs.create(parent: directory.inode, name: "f")
        let body = pattern(3000)
        _ = try await write(fs, writer, at: 0, body).get()
        try await fs.flush(writer, writer: WriterIdentity(7))
        await fs.release(writer)
        let reader = try await fs.open(created.inode, flags: O_RDONLY)
        #expect(try await fs.read(reader.handle, at: 0, count: 10).gathered() == Array(body[0..<10]))
        faults.hold(.delete)
        let renaming = Task { try await fs.rename(parent: .root, name: "d", newParent: .root, newName: "e", flags: 0) }
        #expect(try await eventually { faults.heldCount(.delete) >= 1 })
        #expect(try await fs.read(reader.handle, at: 0, count: 5000).gathered() == body)
        faults.release(.delete)
        try await renaming.value
        #expect(try await fs.read(reader.handle, at: 100, count: 10).gathered() == Array(body[100..<110]))
        await fs.release(reader.handle)
    }

    /// `mv d e` while the last close of `d/f`, unlinked while open, is deleting it: the rename
    /// neither copies it (it showed up in `e`) nor fails on it (helper-49: a copy of a source
    /// deleted after the listing failed the rename with ENOENT, half done).
    /// The last close of a file unlinked while open deletes its object after a HEAD; a file this
    /// mount made under the name meanwhile, stored before the DELETE went, stays (helper-52's R5:
    /// it was deleted when its create came after the close and its object before the DELETE).
    @Test func aFileMadeUnderTheNameDuringTheLastCloseOfAnUnlinkedOneStays() async throws {
        store.seed("f", [1])
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults)
        let old = try await fs.lookup(parent: .root, name: "f")
        let reader = try await fs.open(old.inode, flags: O_RDONLY)
        try await fs.unlink(parent: .root, name: "f")
        faults.hold(.headAnswer)
        let releasing = Task { await fs.release(reader.handle) }
        #expect(try await eventually { faults.heldCount(.headAnswer) == 1 })  // the HEAD found the old object
        let (_, writer) = try await fs.create(parent: .root, name: "f")
        _ = try await write(fs, writer, at: 0, [9]).get()
        try await fs.flush(writer, writer: WriterIdentity(7))
        faults.release(.headAnswer)
        await releasing.value
        await fs.release(writer)
        #expect(store.object("f") == [9])
    }

    @Test func aDirectoryRenameDuringTheLastCloseOfAFileUnlinkedInItSkipsThatFile() async throws {
        let (faults, fs, reader) = try await unlinkedWhileReadBesideAnother()
        faults.hold(.delete)
        let releasing = Task { await fs.release(reader.handle) }
        #expect(try await eventually { faults.heldCount(.delete) == 1 })
        let renaming = Task { try await fs.rename(parent: .root, name: "d", newParent: .root, newName: "e", flags: 0) }
        #expect(try await eventually { faults.heldCount(.delete) >= 2 })  // the rename deletes its sources
        faults.release(.delete)
        try await renaming.value
        await releasing.value
        #expect(store.object("e/g") == [2] && store.object("e/f") == nil)
        #expect(store.object("d/f") == nil && store.object("d/g") == nil)
    }

    /// `d/NAME` seeded with `bytes`, looked up through a fault-injecting store.
    func fileBelowDirectory(_ name: String, _ bytes: [UInt8]) async throws -> (FaultInjectingStore, ObsFileSystem, FileAttributes) {
        store.seed("d/")
        store.seed("d/" + name, bytes)
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults)
        let directory = try await fs.lookup(parent: .root, name: "d")
        return (faults, fs, try await fs.lookup(parent: directory.inode, name: name))
    }

    /// `unlinkedWhileRead` with `d/f` and `d/g` seeded, through a fault-injecting store.
    func unlinkedWhileReadBesideAnother(logger: Logger? = nil) async throws -> (FaultInjectingStore, ObsFileSystem, OpenedFile) {
        store.seed("d/")
        store.seed("d/f", [1])
        store.seed("d/g", [2])
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults, logger: logger)
        return (faults, fs, try await unlinkedWhileRead(fs))
    }

    /// A reader of `d/f` on a parallel file system bucket reads on under `e/f` as soon as the
    /// native rename of `d` is done, while the rename still deletes s3fs's older markers of `d`
    /// (helper-49: reads in that window went to the old key, ENOENT).
    @Test func aReaderFollowsANativeDirectoryRenameBeforeItsOlderMarkersAreDeleted() async throws {
        let pfs = InMemoryStore(isFileSystemBucket: true)
        pfs.seed("d/", contentType: "application/x-directory")
        let body = pattern(3000)
        pfs.seed("d/f", body)
        let faults = FaultInjectingStore(pfs)
        let fs = makeFileSystem(faults)
        let directory = try await fs.lookup(parent: .root, name: "d")
        let file = try await fs.lookup(parent: directory.inode, name: "f")
        let reader = try await fs.open(file.inode, flags: O_RDONLY)
        faults.hold(.delete)
        let renaming = Task { try await fs.rename(parent: .root, name: "d", newParent: .root, newName: "e", flags: 0) }
        #expect(try await eventually { faults.heldCount(.delete) >= 1 })
        #expect(pfs.object("e/f") == body)
        #expect(try await fs.read(reader.handle, at: 0, count: 5000).gathered() == body)
        faults.release(.delete)
        try await renaming.value
        await fs.release(reader.handle)
    }

    /// Directory `d` with `f` (and whatever else was seeded) in it; `f` opened for reading, then unlinked.
    func unlinkedWhileRead(_ fs: ObsFileSystem) async throws -> OpenedFile {
        let directory = try await fs.lookup(parent: .root, name: "d")
        let file = try await fs.lookup(parent: directory.inode, name: "f")
        let reader = try await fs.open(file.inode, flags: O_RDONLY)
        try await fs.unlink(parent: directory.inode, name: "f")
        return reader
    }

    @Test func aFileUnlinkedWhileOpenTakesTimesAndModeInMemory() async throws {
        // writeback_cache: the kernel sends the ctime an unlink gave the file before the close;
        // answering ENOENT failed the close with EIO. fchmod and futimens of such a file work too.
        store.seed("d/")
        store.seed("d/f", [1])
        let fs = mount()
        let directory = try await fs.lookup(parent: .root, name: "d")
        let file = try await fs.lookup(parent: directory.inode, name: "f")
        let reader = try await unlinkedWhileRead(fs)
        let time = FileTime(seconds: 1_000, nanoseconds: 5)
        let changed = try await fs.setattr(file.inode, AttributeChanges(permissions: 0o600, modified: time))
        #expect(changed.modified == time && changed.mode & 0o7777 == 0o600)
        #expect(await errno { _ = try await fs.setattr(file.inode, AttributeChanges(size: 0)) } == .noEntry)
        #expect(store.object("d/f") == [1])  // hidden and unchanged until the last close
        await fs.release(reader.handle)
        #expect(await errno { _ = try await fs.setattr(file.inode, AttributeChanges(modified: time)) } == .noEntry)
    }

    @Test func aDirectoryHoldingOnlyFilesUnlinkedWhileOpenCanBeRemoved() async throws {
        store.seed("d/")
        store.seed("d/f", [1])
        let fs = mount()
        let reader = try await unlinkedWhileRead(fs)
        try await fs.rmdir(parent: .root, name: "d")  // rm -r while a reader holds a file
        #expect(store.object("d/f") == nil && store.object("d/") == nil)
        await fs.release(reader.handle)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "d") } == .noEntry)
    }

    /// `rm -r` of a directory while a close composes a file unlinked there (stress-ng's seek
    /// stressor: another process's flush, or the release that follows it): the removal waits for
    /// the composition, which therefore neither fails (ENOENT: the object gone from under it)
    /// nor lands after the DELETE and brings the file, and with it the directory, back. Later
    /// flushes store nothing.
    @Test(arguments: [false, true])
    func aDirectoryRemovedWhileAFileUnlinkedThereIsComposedStaysRemoved(releaseUnderWay: Bool) async throws {
        let (faults, fs, file) = try await fileBelowDirectory("f", [1, 2, 3])
        let appending = try await fs.open(file.inode, flags: O_WRONLY | O_APPEND)
        _ = try await write(fs, appending.handle, at: 3, [4]).get()
        try await fs.unlink(parent: try await fs.lookup(parent: .root, name: "d").inode, name: "f")
        faults.holdParts()
        let flushing = Task { try await fs.flush(appending.handle, writer: WriterIdentity(8)) }
        #expect(try await eventually { faults.heldPartCount == 1 })
        // The release waits for the composition, its handle already gone from the open ones.
        let releasing = releaseUnderWay ? Task { await fs.release(appending.handle) } : nil
        try await Task.sleep(for: .milliseconds(20))
        let removing = Task { try await fs.rmdir(parent: .root, name: "d") }
        try await Task.sleep(for: .milliseconds(20))
        faults.release(.uploadPart)
        try await flushing.value
        try await removing.value
        if let releasing {
            await releasing.value
        } else {
            _ = try await write(fs, appending.handle, at: 4, [5]).get()
            try await fs.flush(appending.handle, writer: WriterIdentity(7))
            await fs.release(appending.handle)
        }
        #expect(store.object("d/f") == nil && store.object("d/") == nil)
        #expect(store.uploadsInProgress == 0)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "d") } == .noEntry)
    }

    /// `mv d e` while a descriptor reads `d/f`, unlinked: the descriptor reads on, as on a local
    /// disk. The rename deleted the object with the sources (the reader got EIO); on a parallel
    /// file system bucket the object moved and, its name dropped, showed up in `e` after the close.
    @Test(arguments: [false, true])
    func aFileUnlinkedWhileOpenMovesWithItsRenamedDirectoryAndIsReadOn(fileSystemBucket: Bool) async throws {
        let store = fileSystemBucket ? InMemoryStore(isFileSystemBucket: true) : self.store
        store.seed("d/")
        store.seed("d/f", Array("unlinked".utf8))
        store.seed("d/g", [2])
        let fs = makeFileSystem(store)
        let reader = try await unlinkedWhileRead(fs)
        try await fs.rename(parent: .root, name: "d", newParent: .root, newName: "e", flags: 0)
        #expect(store.object("e/g") == [2] && store.object("d/f") == nil && store.object("d/g") == nil)
        let moved = try await fs.lookup(parent: .root, name: "e")
        #expect(try await names(fs, moved.inode) == ["g": .regular])  // still hidden
        #expect(await errno { _ = try await fs.lookup(parent: moved.inode, name: "f") } == .noEntry)
        #expect(try await fs.read(reader.handle, at: 0, count: 100).gathered() == Array("unlinked".utf8))
        await fs.release(reader.handle)
        #expect(store.object("e/f") == nil)
        #expect(try await names(fs, moved.inode) == ["g": .regular])
    }

    /// The reader's last release during the rename's copies deletes the old object: the copy of
    /// it fails, which fails nothing, and nothing of it is left in the renamed directory.
    /// The rename's copy of the file, held while its last close deletes it, fails: the rename
    /// goes on without it and logs no error (it logged one).
    @Test func aFileUnlinkedWhileOpenAndClosedDuringItsDirectorysRenameLeavesNothing() async throws {
        let log = LogCapture()
        let (faults, fs, reader) = try await unlinkedWhileReadBesideAnother(logger: log.logger)
        faults.hold(.copy)
        let renaming = Task { try await fs.rename(parent: .root, name: "d", newParent: .root, newName: "e", flags: 0) }
        #expect(try await eventually { faults.heldCount(.copy) == 2 })
        await fs.release(reader.handle)
        #expect(store.object("d/f") == nil)
        faults.release(.copy)
        try await renaming.value
        #expect(store.object("e/g") == [2] && store.object("e/f") == nil && store.object("d/g") == nil)
        #expect(log.lines.filter { $0.hasPrefix("error") } == [])
    }

    @Test func theObjectOfAFileUnlinkedWhileOpenStaysWhenTheNameIsMadeAgain() async throws {
        store.seed("name", [1, 2, 3])
        let fs = mount()
        let old = try await fs.lookup(parent: .root, name: "name")
        let reader = try await fs.open(old.inode, flags: O_RDONLY)
        try await fs.unlink(parent: .root, name: "name")
        let (_, writer) = try await fs.create(parent: .root, name: "name")
        _ = try await write(fs, writer, at: 0, [9]).get()
        try await fs.flush(writer, writer: WriterIdentity(7))
        await fs.release(writer)
        await fs.release(reader.handle)
        #expect(store.object("name") == [9])
    }

    @Test func aDirectoryMadeUnderTheNameOfAFileUnlinkedWhileOpenDoesNotKeepItsObject() async throws {
        // open n; unlink n; mkdir n; rmdir n; close: the file came back for good (its object was
        // kept as "the name made again"), and a listing fetched while it was hidden showed it
        // once the close deleted it.
        store.seed("n", Array("old file".utf8))
        let fs = mount()
        let old = try await fs.lookup(parent: .root, name: "n")
        let reader = try await fs.open(old.inode, flags: O_RDONLY)
        try await fs.unlink(parent: .root, name: "n")
        _ = try await fs.mkdir(parent: .root, name: "n", mode: 0o755, caller: testCaller)
        try await fs.rmdir(parent: .root, name: "n")
        #expect(try await names(fs, .root).isEmpty)
        await fs.release(reader.handle)
        #expect(store.object("n") == nil)
        #expect(try await names(fs, .root).isEmpty)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "n") } == .noEntry)
    }

    /// The completion of a close stores the object: an unlink arriving meanwhile waits for it,
    /// then deletes what it stored (its DELETE first would be undone by the completion).
    @Test func anUnlinkWaitsForTheCloseCompletingTheFile() async throws {
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults)
        let (_, handle) = try await fs.create(parent: .root, name: "tmp")
        _ = try await write(fs, handle, at: 0, [1, 2, 3]).get()
        faults.hold(.complete)
        let closing = Task { try await fs.flush(handle, writer: WriterIdentity(7)) }
        #expect(try await eventually { faults.heldCount(.complete) == 1 })
        let unlinked = OneShot<Void>()
        let unlinking = Task {
            try await fs.unlink(parent: .root, name: "tmp")
            unlinked.fulfill(())
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(unlinked.current == nil)
        faults.release(.complete)
        try await closing.value
        try await unlinking.value
        #expect(store.object("tmp") == nil)
        let (_, again) = try await fs.create(parent: .root, name: "tmp")
        try await fs.flush(again, writer: WriterIdentity(8))  // an empty file: one PUT
        await fs.release(again)
        await fs.release(handle)
        #expect(store.object("tmp") == [])  // the new file's object, not deleted for the unlinked one
        #expect(store.uploadsInProgress == 0)
    }

    /// An unlink that comes first bars the completion: the close stores nothing, and the
    /// release aborts the upload.
    @Test func aFileUnlinkedBeforeItsCloseIsNeverStored() async throws {
        let fs = mount()
        let (_, handle) = try await fs.create(parent: .root, name: "tmp")
        _ = try await write(fs, handle, at: 0, [1, 2, 3]).get()
        try await fs.unlink(parent: .root, name: "tmp")
        try await fs.flush(handle, writer: WriterIdentity(7))
        #expect(store.object("tmp") == nil)
        await fs.release(handle)
        #expect(store.object("tmp") == nil)
        #expect(store.uploadsInProgress == 0)
    }

    /// A second writer's open completes the first writer's upload to join it; an unlink
    /// arriving meanwhile waits for that completion, so its DELETE cannot land before it. Both
    /// descriptors then write the unlinked file (or the open finds the name gone), as on a
    /// local disk: never EIO, and nothing stays stored under the name.
    @Test func anUnlinkRacingASecondWritersOpenLeavesBothWritingTheUnlinkedFile() async throws {
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults)
        let (attributes, first) = try await fs.create(parent: .root, name: "f")
        _ = try await write(fs, first, at: 0, [1, 2, 3], writer: WriterIdentity(7)).get()
        faults.hold(.complete)
        faults.hold(.delete)
        let joining = Task { try await fs.open(attributes.inode, flags: O_WRONLY).handle }
        #expect(try await eventually { faults.heldCount(.complete) == 1 })
        let unlinking = Task { try await fs.unlink(parent: .root, name: "f") }
        try await Task.sleep(for: .milliseconds(20))
        // The completion lands first; a DELETE sent meanwhile would land after it.
        faults.release(.complete)
        _ = try await eventually { faults.heldCount(.delete) == 1 }
        faults.release(.delete)
        let second: FileHandleID?
        do {
            second = try await joining.value
        } catch let error as FileSystemError {
            #expect(error.errno == .noEntry)
            second = nil
        }
        try await unlinking.value
        _ = try await write(fs, first, at: 3, [4], writer: WriterIdentity(7)).get()
        try await fs.flush(first, writer: WriterIdentity(7))
        // Gone, or kept hidden for the descriptors until the last release: never other bytes.
        #expect([nil, [1, 2, 3, 4]].contains(store.object("f")))
        if let second {
            _ = try await write(fs, second, at: 0, [9], writer: WriterIdentity(8)).get()
            try await fs.flush(second, writer: WriterIdentity(8))
            await fs.release(second)
        }
        await fs.release(first)
        #expect(store.object("f") == nil)
        #expect(store.uploadsInProgress == 0)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "f") } == .noEntry)
    }

    /// A second writer's open waits for an unlink under way; when the first writer's release
    /// ended the upload meanwhile (unlinked: aborted), the open finds the file gone (ENOENT),
    /// never EIO.
    @Test func aSecondWriterOpeningAFileUnlinkedAndReleasedMeanwhileFindsItGone() async throws {
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults)
        let (attributes, first) = try await fs.create(parent: .root, name: "f")
        _ = try await write(fs, first, at: 0, [1, 2, 3]).get()
        faults.hold(.delete)
        let unlinking = Task { try await fs.unlink(parent: .root, name: "f") }
        #expect(try await eventually { faults.heldCount(.delete) == 1 })
        let joining = Task { try await fs.open(attributes.inode, flags: O_WRONLY | O_TRUNC) }
        try await Task.sleep(for: .milliseconds(20))
        try await fs.flush(first, writer: WriterIdentity(7))
        await fs.release(first)
        faults.release(.delete)
        try await unlinking.value
        #expect(await errno { _ = try await joining.value } == .noEntry)
        #expect(store.object("f") == nil)
        #expect(store.uploadsInProgress == 0)
    }

    @Test func fallocatePastTheEndExtendsWithZerosAndKeepSizeChangesNothing() async throws {
        store.seed("old", [1, 2, 3])
        let fs = mount()
        let old = try await fs.lookup(parent: .root, name: "old")
        try await fs.allocate(old.inode, offset: 0, length: 2, mode: 0)  // within the file: nothing to do
        try await fs.allocate(old.inode, offset: 2, length: 100, mode: 0x01)  // FALLOC_FL_KEEP_SIZE
        #expect(store.object("old") == [1, 2, 3])
        try await fs.allocate(old.inode, offset: 1, length: 7, mode: 0)
        #expect(store.object("old") == [1, 2, 3, 0, 0, 0, 0, 0])
        #expect(await errno { try await fs.allocate(old.inode, offset: 0, length: 2, mode: 0x01 | 0x02) } == .notSupported)  // PUNCH_HOLE
        #expect(store.object("old") == [1, 2, 3, 0, 0, 0, 0, 0])

        let (created, handle) = try await fs.create(parent: .root, name: "new")
        _ = try await write(fs, handle, at: 0, [7, 7]).get()
        try await fs.allocate(created.inode, offset: 0, length: 5, mode: 0)
        #expect(try await fs.getattr(created.inode).size == 5)
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("new") == [7, 7, 0, 0, 0])

        // A file unlinked while open: what is not supported says so (not ENOENT), the rest works.
        let (temporary, open) = try await fs.create(parent: .root, name: "tmp")
        try await fs.unlink(parent: .root, name: "tmp")
        #expect(await errno { try await fs.allocate(temporary.inode, offset: 0, length: 8, mode: 0x10) } == .notSupported)  // ZERO_RANGE
        try await fs.allocate(temporary.inode, offset: 0, length: 8, mode: 0)
        #expect(try await fs.getattr(temporary.inode).size == 8)
        await fs.release(open)
        #expect(store.object("tmp") == nil)
    }

    @Test func aSetGroupIDDirectoryGivesItsGroupToNewNames() async throws {
        let fs = mount()
        let shared = try await fs.mkdir(parent: .root, name: "shared", mode: 0o775, caller: testCaller)
        _ = try await fs.setattr(shared.inode, AttributeChanges(permissions: 0o2775, gid: 4321))
        let (file, handle) = try await fs.create(parent: shared.inode, name: "f")
        await fs.release(handle)
        let directory = try await fs.mkdir(parent: shared.inode, name: "d", mode: 0o755, caller: testCaller)
        let link = try await fs.symlink(parent: shared.inode, name: "s", target: "f", caller: testCaller)
        #expect(file.gid == 4321 && file.mode & UInt32(S_ISGID) == 0)
        #expect(directory.gid == 4321 && directory.mode & 0o7777 == 0o2755)
        #expect(link.gid == 4321)
        let plain = try await fs.mkdir(parent: .root, name: "plain", mode: 0o755, caller: testCaller)
        #expect(plain.gid == testCaller.gid && plain.mode & UInt32(S_ISGID) == 0)
    }

    @Test func aFileRenamedWhileOpenForReadingIsReadOnAndItsNewNameOpensTheCopy() async throws {
        let fs = mount()
        let (created, writer) = try await fs.create(parent: .root, name: "r")
        _ = try await write(fs, writer, at: 0, Array("renamed while read".utf8)).get()
        try await fs.flush(writer, writer: WriterIdentity(7))
        await fs.release(writer)  // a multipart ETag; the copy will have another
        let reader = try await fs.open(created.inode, flags: O_RDONLY)
        try await fs.rename(parent: .root, name: "r", newParent: .root, newName: "s", flags: 0)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "r") } == .noEntry)
        #expect(try await fs.read(reader.handle, at: 8, count: 100).gathered() == Array("while read".utf8))
        #expect(fs.table.inode(created.inode)?.facts.etag == store.contents.withLock { $0.etags[ObjectKey("s")] })  // the copy's
        let again = try await fs.open(created.inode, flags: O_RDONLY)  // the kernel's inode, now named s
        #expect(try await fs.read(again.handle, at: 0, count: 7).gathered() == Array("renamed".utf8))
        await fs.release(again.handle)
        #expect(try await names(fs, .root) == ["s": .regular])
        #expect(store.object("r") == nil)  // the reader reads the copy: the source went at once
        await fs.release(reader.handle)
        #expect(store.object("r") == nil && store.object("s") == Array("renamed while read".utf8))
    }

    /// `name` seeded with [1, 2, 3], opened for appending, and [4] written.
    func appendingOne(_ fs: ObsFileSystem, to name: String) async throws -> OpenedFile {
        store.seed(name, [1, 2, 3])
        let file = try await fs.lookup(parent: .root, name: name)
        let appending = try await fs.open(file.inode, flags: O_WRONLY | O_APPEND)
        _ = try await write(fs, appending.handle, at: 3, [4]).get()
        return appending
    }

    /// `mv log log.1` beside the logger that holds `log` open and goes on writing (logrotate):
    /// the rename stores the changes first, moves the file, and the logger's later writes change
    /// the renamed file. Before, EBUSY until the logger closed it.
    @Test func aFileOpenForChangesIsRenamedWithThemAndItsWriterGoesOn() async throws {
        let fs = mount()
        let appending = try await appendingOne(fs, to: "log")
        try await fs.rename(parent: .root, name: "log", newParent: .root, newName: "log.1", flags: 0)
        #expect(store.object("log") == nil && store.object("log.1") == [1, 2, 3, 4])
        _ = try await write(fs, appending.handle, at: 4, [5]).get()
        try await fs.flush(appending.handle, writer: WriterIdentity(7))
        await fs.release(appending.handle)
        #expect(store.object("log") == nil && store.object("log.1") == [1, 2, 3, 4, 5])
        #expect(store.uploadsInProgress == 0)
    }

    /// `( echo foo; mv r.txt r.bin; echo bar ) > r.txt`: the copy took the new name's type, and
    /// the composition of the later writes kept the old one's (found by helper-43).
    @Test func theWritesAfterARenameKeepTheContentTypeOfTheNewName() async throws {
        let fs = mount()
        store.seed("r.txt", [1], contentType: "text/plain")
        let file = try await fs.lookup(parent: .root, name: "r.txt")
        let appending = try await fs.open(file.inode, flags: O_WRONLY | O_APPEND)
        _ = try await write(fs, appending.handle, at: 1, [2]).get()
        try await fs.rename(parent: .root, name: "r.txt", newParent: .root, newName: "r.bin", flags: 0)
        _ = try await write(fs, appending.handle, at: 2, [3]).get()
        try await fs.flush(appending.handle, writer: WriterIdentity(7))
        await fs.release(appending.handle)
        #expect(store.object("r.bin") == [1, 2, 3])
        #expect(store.contents.withLock { $0.written[ObjectKey("r.bin")]?.contentType } == "application/octet-stream")
    }

    /// `mv log log.1` right after `echo x >> log`: close() returned, the kernel's release has
    /// not arrived. A write through a descriptor still open (a dup) then changes the new name,
    /// and the file moves again with it.
    @Test func aFileClosedByItsOpenerIsRenamedBeforeItsRelease() async throws {
        let fs = mount()
        let appending = try await appendingOne(fs, to: "log")
        try await fs.flush(appending.handle, writer: WriterIdentity(7))
        try await fs.rename(parent: .root, name: "log", newParent: .root, newName: "log.1", flags: 0)
        #expect(store.object("log") == nil && store.object("log.1") == [1, 2, 3, 4])
        #expect(try await fs.read(appending.handle, at: 0, count: 10).gathered() == [1, 2, 3, 4])
        _ = try await write(fs, appending.handle, at: 4, [5]).get()
        try await fs.rename(parent: .root, name: "log.1", newParent: .root, newName: "log.2", flags: 0)
        await fs.release(appending.handle)
        #expect(store.object("log") == nil && store.object("log.1") == nil && store.object("log.2") == [1, 2, 3, 4, 5])
    }

    /// While a rename moves a file, a write through its descriptor waits for the rename's end
    /// (it would be composed under the old name), and a truncate answers EBUSY; afterwards both
    /// are taken again.
    @Test func aWriteWaitsWhileARenameRetiresTheSession() async throws {
        let fs = mount()
        let appending = try await appendingOne(fs, to: "log")
        let file = try await fs.lookup(parent: .root, name: "log")
        let session = try #require(fs.changes(of: file.inode))
        try await fs.flush(appending.handle, writer: WriterIdentity(7))
        #expect(session.retire())
        let writing = Task { await write(fs, appending.handle, at: 4, [5]) }
        try await Task.sleep(for: .milliseconds(30))
        #expect(session.size == 4)  // held
        #expect(await errno { try session.truncate(to: 1) } == .busy)
        session.unretire()
        #expect(try await writing.value.get() == 1)
        await fs.release(appending.handle)
        #expect(store.object("log") == [1, 2, 3, 4, 5])
    }

    /// A write that arrives while the rename copies the file lands in the renamed file.
    @Test func aWriteDuringARenamesCopyLandsInTheRenamedFile() async throws {
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults)
        let appending = try await appendingOne(fs, to: "log")
        faults.hold(.copy)
        let renaming = Task { try await fs.rename(parent: .root, name: "log", newParent: .root, newName: "log.1", flags: 0) }
        #expect(try await eventually { faults.heldCount(.copy) == 1 })
        let writing = Task { await write(fs, appending.handle, at: 4, [5]) }
        try await Task.sleep(for: .milliseconds(30))
        faults.release(.copy)
        try await renaming.value
        #expect(try await writing.value.get() == 1)
        try await fs.flush(appending.handle, writer: WriterIdentity(7))
        await fs.release(appending.handle)
        #expect(store.object("log") == nil && store.object("log.1") == [1, 2, 3, 4, 5])
    }

    /// `mv d e` while an open for writing of `d/t` is being initiated (helper-47: `mv` beside a
    /// loop rewriting `d/t` answered EBUSY 2 to 8 times a run): the rename waits for the
    /// initiation, the writer goes on as changes, and the rename takes the file along.
    @Test func aDirectoryRenameDuringAnOpenForWritingBelowItTakesTheFileAlong() async throws {
        let (faults, fs, file) = try await fileBelowDirectory("t", [1, 2, 3])
        faults.hold(.initiate)
        let opening = Task { try await fs.open(file.inode, flags: O_WRONLY | O_TRUNC) }
        #expect(try await eventually { faults.heldCount(.initiate) == 1 })
        let renaming = Task { try await fs.rename(parent: .root, name: "d", newParent: .root, newName: "e", flags: 0) }
        try await Task.sleep(for: .milliseconds(50))
        faults.release(.initiate)
        let handle = try await opening.value.handle
        try await renaming.value
        _ = try await write(fs, handle, at: 0, [9, 9]).get()
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("e/t") == [9, 9])
        #expect(store.object("d/t") == nil)
        #expect(store.uploadsInProgress == 0)
    }

    /// An open for writing during a rename of its file waits for it and changes the file under
    /// its new name, with and without O_TRUNC; it answered EBUSY (helper-44's fsstress: `open`
    /// beside `mv f g; mv g f`).
    @Test func anOpenForWritingDuringARenameWaitsAndOpensTheRenamedFile() async throws {
        for flags in [O_WRONLY, O_WRONLY | O_TRUNC] {
            let faults = FaultInjectingStore(store)
            let fs = makeFileSystem(faults)
            store.seed("f", [1, 2, 3])
            let file = try await fs.lookup(parent: .root, name: "f")
            faults.hold(.copy)
            let renaming = Task { try await fs.rename(parent: .root, name: "f", newParent: .root, newName: "g", flags: 0) }
            #expect(try await eventually { faults.heldCount(.copy) == 1 })
            let opening = Task { try await fs.open(file.inode, flags: flags) }
            try await Task.sleep(for: .milliseconds(30))
            faults.release(.copy)
            try await renaming.value
            let opened = try await opening.value
            _ = try await write(fs, opened.handle, at: 0, [9]).get()
            try await fs.flush(opened.handle, writer: WriterIdentity(7))
            await fs.release(opened.handle)
            #expect(store.object("f") == nil)
            #expect(store.object("g") == (flags & O_TRUNC != 0 ? [9] : [9, 2, 3]))
            try await store.deleteObject(ObjectKey("g"))
        }
    }

    /// `(sleep 0.1; mv f f.new; echo bar) > f`: the child's exit closes the new, empty file
    /// first (it is stored empty), then the rename, then the write. The write was composed under
    /// the old name (`f` held the bytes, `f.new` stayed empty and failed reads with EIO); it
    /// changes the renamed file (found by helper-40).
    @Test func aFileStoredEmptyByAnotherProcessesCloseIsWrittenUnderItsNewName() async throws {
        let fs = mount()
        let opener = ProcessID(40)
        let (_, handle) = try await fs.create(parent: .root, name: "f", mode: 0o644, caller: Caller(uid: 1000, gid: 1000, umask: 0o022, process: opener))
        try await fs.flush(handle, writer: WriterIdentity(9), process: ProcessID(41), heldByOthers: { false })  // the child's exit
        try await fs.rename(parent: .root, name: "f", newParent: .root, newName: "f.new", flags: 0)
        _ = try await write(fs, handle, at: 0, Array("bar\n".utf8)).get()
        try await fs.flush(handle, writer: WriterIdentity(7), process: opener)
        await fs.release(handle)
        #expect(store.object("f") == nil && store.object("f.new") == Array("bar\n".utf8))
        let renamed = try await fs.lookup(parent: .root, name: "f.new")
        let reader = try await fs.open(renamed.inode, flags: O_RDONLY)
        #expect(try await fs.read(reader.handle, at: 0, count: 10).gathered() == Array("bar\n".utf8))
        await fs.release(reader.handle)
    }

    /// `mv d d2 & rm d/f1`: the unlink (and a rename below, a chmod) waits for the directory's
    /// rename and applies to the new name. During the copy it made the rename fail on the key
    /// gone from under it (GNU mv then moved `d` into the partial `d2`); after the copy it deleted
    /// the old key and the file came back under the new name (found by helper-42).
    @Test func changesBelowADirectoryBeingRenamedWaitForItAndApplyToTheNewName() async throws {
        for name in ["f1", "f2", "f3"] { store.seed("d/" + name, Array(name.utf8)) }
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults)
        let directory = try await fs.lookup(parent: .root, name: "d")
        faults.hold(.copy)
        let renaming = Task { try await fs.rename(parent: .root, name: "d", newParent: .root, newName: "d2", flags: 0) }
        #expect(try await eventually { faults.heldCount(.copy) > 0 })
        let unlinking = Task { try await fs.unlink(parent: directory.inode, name: "f1") }
        let moving = Task { try await fs.rename(parent: directory.inode, name: "f2", newParent: directory.inode, newName: "g2", flags: 0) }
        try await Task.sleep(for: .milliseconds(30))
        #expect(store.object("d/f1") != nil)  // not deleted under the copy
        faults.release(.copy)
        try await renaming.value
        try await unlinking.value
        try await moving.value
        #expect(store.contents.withLock { $0.objects.keys.map(\.rawValue).filter { $0.hasPrefix("d") }.sorted() } == ["d2/", "d2/f3", "d2/g2"])
        #expect(store.object("d2/g2") == Array("f2".utf8))
        #expect(await errno { _ = try await fs.lookup(parent: directory.inode, name: "f1") } == .noEntry)
    }

    /// `mv build build.old` while the build still writes a log in it and streams a new file:
    /// the rename stores both as they stand, moves them, and the writers go on under the new
    /// names. It answered EBUSY while a file below was written or held changes not stored yet.
    @Test func aDirectoryHoldingFilesBeingWrittenIsRenamedAndTheWritersGoOn() async throws {
        store.seed("d/log", [1, 2, 3])
        let fs = mount()
        let directory = try await fs.lookup(parent: .root, name: "d")
        let file = try await fs.lookup(parent: directory.inode, name: "log")
        let appending = try await fs.open(file.inode, flags: O_WRONLY | O_APPEND)
        _ = try await write(fs, appending.handle, at: 3, [4]).get()
        let (_, streaming) = try await fs.create(parent: directory.inode, name: "new")
        _ = try await write(fs, streaming, at: 0, [7, 7]).get()
        try await fs.rename(parent: .root, name: "d", newParent: .root, newName: "e", flags: 0)
        #expect(store.object("e/log") == [1, 2, 3, 4] && store.object("e/new") == [7, 7])
        _ = try await write(fs, appending.handle, at: 4, [5]).get()
        _ = try await write(fs, streaming, at: 2, [8]).get()
        try await fs.flush(appending.handle, writer: WriterIdentity(7))
        try await fs.flush(streaming, writer: WriterIdentity(7))
        await fs.release(appending.handle)
        await fs.release(streaming)
        #expect(store.object("d/log") == nil && store.object("d/new") == nil)
        #expect(store.object("e/log") == [1, 2, 3, 4, 5] && store.object("e/new") == [7, 7, 8])
        #expect(store.uploadsInProgress == 0)
    }

    /// The replaced file loses its name: what its descriptor writes later is dropped at the last
    /// close, as a local filesystem drops it; the new occupant of the name is untouched.
    @Test func aReplacedFileClosedByItsOpenerKeepsItsChangesAwayFromTheNewOccupant() async throws {
        store.seed("new", [9, 9])
        let fs = mount()
        let appending = try await appendingOne(fs, to: "old")
        try await fs.flush(appending.handle, writer: WriterIdentity(7))
        try await fs.rename(parent: .root, name: "new", newParent: .root, newName: "old", flags: 0)
        #expect(store.object("old") == [9, 9])
        _ = try await write(fs, appending.handle, at: 4, [5]).get()
        try await fs.flush(appending.handle, writer: WriterIdentity(7))
        await fs.release(appending.handle)
        #expect(store.object("old") == [9, 9] && store.object("new") == nil)
    }

    /// `mv new old` while a program still writes `old`, with changes not stored yet or as a new
    /// file being streamed: the rename replaces it (it answered EBUSY), and what the program
    /// writes later is dropped at its last close, as a local filesystem drops it.
    @Test func aFileBeingWrittenIsReplacedByARenameAndItsLaterWritesAreDropped() async throws {
        store.seed("new", [9, 9])
        let fs = mount()
        let appending = try await appendingOne(fs, to: "old")
        try await fs.rename(parent: .root, name: "new", newParent: .root, newName: "old", flags: 0)
        #expect(store.object("old") == [9, 9] && store.object("new") == nil)
        _ = try await write(fs, appending.handle, at: 4, [5]).get()
        try await fs.flush(appending.handle, writer: WriterIdentity(7))
        await fs.release(appending.handle)
        #expect(store.object("old") == [9, 9])
        store.seed("n", [7])
        let (_, streaming) = try await fs.create(parent: .root, name: "w")
        _ = try await write(fs, streaming, at: 0, [1, 2]).get()
        try await fs.rename(parent: .root, name: "n", newParent: .root, newName: "w", flags: 0)
        #expect(store.object("w") == [7] && store.object("n") == nil)
        _ = try await write(fs, streaming, at: 2, [3]).get()
        try await fs.flush(streaming, writer: WriterIdentity(7))
        await fs.release(streaming)
        #expect(store.object("w") == [7])
        #expect(store.uploadsInProgress == 0)
    }

    @Test func changesToAFileUnlinkedWhileOpenAreNotStored() async throws {
        let fs = mount()
        let appending = try await appendingOne(fs, to: "f")
        try await fs.unlink(parent: .root, name: "f")
        let (_, again) = try await fs.create(parent: .root, name: "f")
        _ = try await write(fs, again, at: 0, [9]).get()
        try await fs.flush(again, writer: WriterIdentity(8))
        await fs.release(again)
        try await fs.flush(appending.handle, writer: WriterIdentity(7))  // succeeds, as on a local filesystem
        await fs.release(appending.handle)
        #expect(store.object("f") == [9])  // the new file, not the unlinked one's changes
    }

    /// A forked child's close flushes the descriptor its parent releases at the same moment.
    /// When the file was unlinked meanwhile, the release waits for the child's composition
    /// before deleting the hidden object. Before, the DELETE went first: the composition then
    /// stored the unlinked file again under its name, or (when it still had to copy from the
    /// object) failed the child's close with ENOENT (stress-ng's seek stressor).
    @Test func theLastReleaseOfAnUnlinkedFileDeletesItOnlyAfterAFlushComposingIt() async throws {
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults)
        let appending = try await appendingOne(fs, to: "f")
        try await fs.unlink(parent: .root, name: "f")
        faults.holdParts()
        let flushing = Task { try await fs.flush(appending.handle, writer: WriterIdentity(8)) }
        #expect(try await eventually { faults.heldPartCount == 1 })
        let releasing = Task { await fs.release(appending.handle) }
        try await Task.sleep(for: .milliseconds(20))
        faults.release(.uploadPart)
        try await flushing.value
        await releasing.value
        #expect(store.object("f") == nil)
        #expect(store.uploadsInProgress == 0)
    }

    @Test func anOpenPinsTheVersionItReadsWhenTheETagIsUnknown() async throws {
        store.seed("f", [1, 2, 3])
        let fs = mount()
        let file = try await fs.lookup(parent: .root, name: "f")
        fs.table.inode(file.inode)?.state.withLock { $0.facts.etag = nil }  // as after a chmod's copy onto itself
        store.seed("f", [7, 7, 7, 7, 7])  // another client replaces the object
        let reader = try await fs.open(file.inode, flags: O_RDONLY)
        #expect(reader.directIO)  // the kernel was told 3 bytes
        #expect(try await fs.read(reader.handle, at: 0, count: 100).gathered() == [7, 7, 7, 7, 7])  // not 3 of them
        await fs.release(reader.handle)
    }

    /// `(echo foo; mv f f.new; echo bar) > f` (s3fs's test_rename_before_close): the stream is
    /// completed as it stands, moved, and the writer goes on as changes to the renamed file.
    /// An empty file just created moves too. Before, EBUSY until the close.
    @Test func aFileBeingWrittenIsRenamedAndItsWriterGoesOn() async throws {
        let fs = mount()
        let (_, handle) = try await fs.create(parent: .root, name: "w")
        _ = try await write(fs, handle, at: 0, [1, 2, 3]).get()
        try await fs.rename(parent: .root, name: "w", newParent: .root, newName: "v", flags: 0)
        #expect(store.object("w") == nil && store.object("v") == [1, 2, 3])
        _ = try await write(fs, handle, at: 3, [4]).get()
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("w") == nil && store.object("v") == [1, 2, 3, 4])
        let (_, empty) = try await fs.create(parent: .root, name: "e")
        try await fs.rename(parent: .root, name: "e", newParent: .root, newName: "f", flags: 0)
        try await fs.flush(empty, writer: WriterIdentity(7))
        await fs.release(empty)
        #expect(store.object("e") == nil && store.object("f") == [])
        #expect(store.uploadsInProgress == 0)
    }

    @Test func readdirplusHandsOverOnlyFreshMetadataAndCountsLookups() async throws {
        store.seed("known", [1])
        store.seed("unknown", [2])
        let fs = mount()
        let known = try await fs.lookup(parent: .root, name: "known")
        let handle = try fs.openDirectory(.root)
        let entries = try await fs.readDirectory(handle, directory: .root, from: 2)
        fs.releaseDirectory(handle)
        #expect(entries.map(\.name) == ["known", "unknown"])
        #expect(entries[0].inode == known.inode)
        #expect(entries[1].inode == nil)
        #expect(fs.entryAttributes(entries[0], in: .root)?.inode == known.inode)
        #expect(fs.entryAttributes(entries[1], in: .root) == nil)
        // Two lookups (lookup + readdirplus) must be forgotten before the inode goes.
        fs.forget(known.inode, count: 1)
        #expect(try await fs.getattr(known.inode).inode == known.inode)
        fs.forget(known.inode, count: 1)
        #expect(await errno { _ = try await fs.getattr(known.inode) } == .noEntry)
    }

    @Test func aNameListedAsOnlyAFileIsLookedUpWithOneHead() async throws {
        store.seed("d/a", [1])
        store.seed("d/b", [2])
        store.seed("d/c", [3])
        store.seed("d/c-1", [4])
        store.seed("d/c/x", [5])
        // Two names per page: [a, b] (its end proves there is no `a/`), [c, c-1] (ends before
        // where `c/` is listed), [c/].
        let fs = makeFileSystem(store, listPageSize: 2)
        let directory = try await fs.lookup(parent: .root, name: "d")
        _ = try await names(fs, directory.inode)
        let (lists, heads) = store.contents.withLock { ($0.listCalls, $0.headCalls) }
        #expect(try await fs.lookup(parent: directory.inode, name: "a").size == 1)
        // HEADs only (its own, and maybe the one sent ahead for `b`), no LIST.
        #expect(store.contents.withLock { $0.listCalls } == lists)
        #expect(store.contents.withLock { $0.headCalls } > heads)
        // `c` was listed as a file on a page that could not prove there is no `c/`: the full
        // lookup finds the directory, which wins.
        #expect(try await fs.lookup(parent: directory.inode, name: "c").kind == .directory)
    }

    @Test func lookupsAfterAListingFindTheHeadsSentAheadForTheNamesThatFollow() async throws {
        let names = (0..<100).map { String(format: "f%03d", $0) }
        for (index, name) in names.enumerated() { store.seed("d/\(name)", [UInt8](repeating: 1, count: index + 1)) }
        let faults = FaultInjectingStore(store)
        // Answers fetched ahead are trusted for attr_timeout=: long enough for a loaded machine.
        let fs = makeFileSystem(faults, attributeTimeout: .seconds(600))
        let directory = try await fs.lookup(parent: .root, name: "d")
        _ = try await self.names(fs, directory.inode)
        let heads = store.contents.withLock { $0.headCalls }
        // The first lookup sends its HEAD and those of the next names at once.
        faults.hold(.head)
        let first = Task { try await fs.lookup(parent: directory.inode, name: names[0]) }
        #expect(try await eventually { faults.heldCount(.head) == 1 + ListedPrefetch.parallel })
        faults.release(.head)
        #expect(try await first.value.size == 1)
        // Every name is found with its own size, and no name was asked for twice.
        for (index, name) in names.enumerated().dropFirst() {
            #expect(try await fs.lookup(parent: directory.inode, name: name).size == Int64(index + 1))
        }
        #expect(store.contents.withLock { $0.headCalls } - heads == names.count)
    }

    @Test func aChangeThisMountMakesDropsTheHeadsSentAhead() async throws {
        store.seed("d/a", [1])
        store.seed("d/b", [2])
        let fs = makeFileSystem(store)
        let directory = try await fs.lookup(parent: .root, name: "d")
        _ = try await names(fs, directory.inode)
        _ = try await fs.lookup(parent: directory.inode, name: "a")  // sends b's HEAD ahead
        #expect(try await eventually { store.contents.withLock { $0.headCalls } >= 3 })
        // b is replaced through this mount: the answer fetched ahead is stale and not used.
        let (_, handle) = try await fs.create(parent: directory.inode, name: "b")
        _ = try await write(fs, handle, at: 0, [7, 7, 7, 7]).get()
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        let b = try #require(fs.table.child(directory.inode, "b"))
        fs.forget(b.number, count: 1)
        #expect(try await fs.lookup(parent: directory.inode, name: "b").size == 4)
    }

    @Test func aParallelFileSystemBucketRenamesInOneRequest() async throws {
        let pfs = InMemoryStore(isFileSystemBucket: true)
        pfs.seed("dir/", contentType: "application/x-directory")
        for index in 0..<20 { pfs.seed("dir/f\(index)", [UInt8(index)]) }
        pfs.seed("file", [7])
        pfs.seed("empty/", contentType: "application/x-directory")
        let fs = makeFileSystem(pfs)
        try await fs.rename(parent: .root, name: "dir", newParent: .root, newName: "moved", flags: 0)
        try await fs.rename(parent: .root, name: "file", newParent: .root, newName: "renamed", flags: 0)
        #expect(pfs.contents.withLock { ($0.renameCalls, $0.copyCalls) } == (2, 0))
        #expect(pfs.object("moved/f19") == [19])
        #expect(pfs.object("renamed") == [7])
        #expect(pfs.contents.withLock { $0.objects.keys.filter { $0.rawValue.hasPrefix("dir") }.isEmpty })
        // An empty directory is replaced; a non-empty one is not.
        try await fs.rename(parent: .root, name: "moved", newParent: .root, newName: "empty", flags: 0)
        #expect(pfs.object("empty/f3") == [3])
        pfs.seed("other/x", [1])
        #expect(await errno { try await fs.rename(parent: .root, name: "other", newParent: .root, newName: "empty", flags: 0) } == .notEmpty)
    }

    @Test func readersFollowANativeRenameOfTheirFileOrItsDirectory() async throws {
        // The parallel file system bucket moves the object itself: the old key is gone at once,
        // and a reader's later GETs ask for the new one (before, they failed with ENOENT).
        let pfs = InMemoryStore(isFileSystemBucket: true)
        let body = pattern(3 << 20)
        pfs.seed("file", body)
        pfs.seed("dir/", contentType: "application/x-directory")
        pfs.seed("dir/inner", body)
        let fs = makeFileSystem(pfs)
        let file = try await fs.lookup(parent: .root, name: "file")
        let directory = try await fs.lookup(parent: .root, name: "dir")
        let inner = try await fs.lookup(parent: directory.inode, name: "inner")
        var readers: [FileHandleID] = []
        for inode in [file.inode, inner.inode] {
            let reader = try await fs.open(inode, flags: O_RDONLY).handle
            #expect(try await fs.read(reader, at: 0, count: 1000).gathered() == Array(body[0..<1000]))
            readers.append(reader)
        }
        try await fs.rename(parent: .root, name: "file", newParent: .root, newName: "renamed", flags: 0)
        try await fs.rename(parent: .root, name: "dir", newParent: .root, newName: "moved", flags: 0)
        #expect(pfs.object("file") == nil && pfs.object("dir/inner") == nil)
        for reader in readers {
            // Far from what was read: a new GET.
            #expect(try await fs.read(reader, at: 2 << 20, count: 1000).gathered() == Array(body[(2 << 20)..<((2 << 20) + 1000)]))
            await fs.release(reader)
        }
    }

    @Test func readdirplusFetchesUnknownNamesWithParallelHeads() async throws {
        for index in 0..<10 { store.seed("f\(index)", [1], metadata: ["mode": "33216", "uid": "42"]) }
        store.seed("d/", metadata: ["mode": "448"], contentType: "application/x-directory")
        store.seed("d/inside", [1])
        let fs = mount()
        let handle = try fs.openDirectory(.root)
        let heads = store.contents.withLock { $0.headCalls }
        let entries = try await fs.readDirectory(handle, directory: .root, from: 2, plus: true)
        fs.releaseDirectory(handle)
        #expect(store.contents.withLock { $0.headCalls } - heads == 11)
        let attributes = entries.compactMap { fs.entryAttributes($0, in: .root) }
        #expect(attributes.count == 11)
        #expect(attributes.filter { $0.kind == .regular }.allSatisfy { $0.mode == UInt32(S_IFREG) | 0o700 && $0.uid == 42 })
        #expect(attributes.first { $0.kind == .directory }?.mode == UInt32(S_IFDIR) | 0o700)
        // The names are known now: a lookup asks nothing.
        let before = store.contents.withLock { ($0.headCalls, $0.listCalls) }
        _ = try await fs.lookup(parent: .root, name: "f3")
        #expect(store.contents.withLock { ($0.headCalls, $0.listCalls) } == before)
    }
}

extension NamespaceTreeTests {
    /// Objects other tools stored (no `mode` metadata) and implied directories show s3fs's modes,
    /// 0640 and 0750, so that a bucket looks the same through s3fs and obsmount (s3fs's
    /// test_external_directory_creation); the mount root 0755. `umask=` sets all of them.
    @Test(arguments: [nil, 0o022] as [UInt32?])
    func objectsWithoutMetadataShowS3fsModesUnlessUmaskIsSet(umask: UInt32?) async throws {
        store.seed("plain", [1])
        store.seed("implied/child", [2])
        store.seed("marker/", contentType: "application/x-directory")
        let fs = makeFileSystem(store, umask: umask)
        let (file, directory) = umask == nil ? (UInt32(0o640), UInt32(0o750)) : (0o644, 0o755)
        #expect(try await fs.lookup(parent: .root, name: "plain").mode == UInt32(S_IFREG) | file)
        #expect(try await fs.lookup(parent: .root, name: "implied").mode == UInt32(S_IFDIR) | directory)
        #expect(try await fs.lookup(parent: .root, name: "marker").mode == UInt32(S_IFDIR) | directory)
        #expect(try await fs.getattr(.root).mode == UInt32(S_IFDIR) | 0o755)
    }

    /// The mount root's mode, owner, times and xattrs: on a whole bucket in the hidden
    /// `.obsmount-root` (never listed, never made by a program), on a prefix in its marker; read
    /// back by the next mount.
    @Test(arguments: ["", "team/"])
    func theRootKeepsItsMetadataAcrossMounts(prefix: String) async throws {
        let first = makeFileSystem(store, prefix: prefix)
        #expect(try await first.getattr(.root).mode & 0o7777 == 0o755)  // the default
        _ = try await first.setattr(.root, AttributeChanges(permissions: 0o1777, uid: 1234, gid: 5678, modified: FileTime(seconds: 1_000_000_000, nanoseconds: 0)))
        try await first.setxattr(.root, name: "user.note", value: Array("kept".utf8))
        let marker = prefix.isEmpty ? ".obsmount-root" : prefix
        #expect(store.object(marker) == [])
        let again = makeFileSystem(store, prefix: prefix)
        let root = try await again.getattr(.root)
        #expect(root.mode & 0o7777 == 0o1777 && root.uid == 1234 && root.gid == 5678)
        #expect(root.modified == FileTime(seconds: 1_000_000_000, nanoseconds: 0))
        #expect(try await again.getxattr(.root, name: "user.note") == Array("kept".utf8))
        #expect(try await names(again, .root).isEmpty)
        #expect(await errno { _ = try await again.lookup(parent: .root, name: ".obsmount-root") } == .noEntry)
        if prefix.isEmpty {
            #expect(await errno { _ = try await again.create(parent: .root, name: ".obsmount-root") } == .invalidArgument)  // kept by obsmount: it cannot be made
        }
    }
}
