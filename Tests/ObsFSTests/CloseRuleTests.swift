// The close rule: the flush from the process that opened the file completes it; flushes from
// other processes (children that inherited the descriptor) pass without completing.
#if canImport(Glibc)
import Glibc
#endif
import OBSProtocol
import Synchronization
import Testing
@testable import ObsFS

struct CloseRuleTests {
    let shell = ProcessID(100)

    @Test func childrenOfTheOpenerDoNotCompleteTheFile() async throws {
        // `{ cat a; cat b; } > f`: the shell opens f, two children write and exit, the shell closes.
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (created, handle) = try await fs.create(parent: .root, name: "f", mode: 0o644,
                                                    caller: Caller(uid: 0, gid: 0, umask: 0o022, process: shell))
        let a = pattern(Int(minimumPart) + 5, seed: 1)
        let b = pattern(1000, seed: 2)
        let firstCat = fs.write(handle, at: 0, bytes: a, writer: WriterIdentity(11), process: ProcessID(101))
        #expect(await firstCat.count == a.count)
        try await fs.flush(handle, writer: WriterIdentity(11), process: ProcessID(101))
        #expect(store.completeCalls == 0)
        let secondCat = fs.write(handle, at: Int64(a.count), bytes: b, writer: WriterIdentity(12), process: ProcessID(102))
        #expect(await secondCat.count == b.count)
        try await fs.flush(handle, writer: WriterIdentity(12), process: ProcessID(102))
        #expect(store.completeCalls == 0)
        try await fs.flush(handle, writer: WriterIdentity(10), process: shell)
        #expect(store.object("f") == a + b)
        await fs.release(handle)
        #expect(try await fs.getattr(created.inode).size == Int64(a.count + b.count))
    }

    @Test func theOpenersOtherThreadsCompleteIt() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f", mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: shell))
        let bytes = pattern(300)
        #expect(await fs.write(handle, at: 0, bytes: bytes, writer: WriterIdentity(10), process: shell).count == bytes.count)
        // Another thread of the opener (same descriptor table, other thread ID) closes.
        try await fs.flush(handle, writer: WriterIdentity(10), process: ProcessID(177))
        #expect(store.object("f") == bytes)
        await fs.release(handle)
    }

    /// A file the shell created and a child (process 101) wrote 300 bytes into.
    func fileAChildWrote() async throws -> (store: InMemoryStore, fs: ObsFileSystem, handle: FileHandleID, bytes: [UInt8]) {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f", mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: shell))
        let bytes = pattern(300)
        #expect(await fs.write(handle, at: 0, bytes: bytes, writer: WriterIdentity(11), process: ProcessID(101)).count == bytes.count)
        return (store, fs, handle, bytes)
    }

    @Test func aFileNoFlushCompletedIsCompletedAtRelease() async throws {
        let (store, fs, handle, bytes) = try await fileAChildWrote()
        try await fs.flush(handle, writer: WriterIdentity(11), process: ProcessID(101))
        #expect(store.object("f") == nil)
        await fs.release(handle)
        #expect(store.object("f") == bytes)
    }
}

struct EmptyFileFailureTests {
    @Test func aFailedEmptyObjectReportedByCloseIsNotWrittenAtRelease() async throws {
        let store = FaultInjectingStore()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "empty")
        store.fail(.putEmpty, nth: 1)
        #expect(await errno { try await fs.flush(handle, writer: WriterIdentity(7)) } == .io)
        await fs.release(handle)
        #expect(store.inner.object("empty") == nil)
        #expect(store.inner.uploadsInProgress == 0)
    }
}

extension ObsFileSystem {
    /// A write as the kernel delivers it, from `process`.
    func write(_ handle: FileHandleID, at offset: Int64, bytes: [UInt8], writer: WriterIdentity, process: ProcessID,
               appending: Bool = false) -> WriteAdmission {
        bytes.withUnsafeBytes { write(handle, at: offset, bytes: $0, writer: writer, process: process, appending: appending) }
    }
}

extension WriteAdmission {
    /// The bytes written once the admission is decided; -1 when refused.
    var count: Int {
        get async {
            switch self {
            case .accepted(let count): count
            case .refused: -1
            case .waiting(let pending): (try? await pending.outcome.get()) ?? -1
            }
        }
    }
}

/// Three processes `printf … >> f` on the same new name at once (found by a helper on a
/// parallel file system bucket): lines were lost when a completion and an earlier flush's empty
/// object crossed, or when an open came between a completion and its record.
extension CloseRuleTests {
    /// The empty object a flush PUT while nothing was written (another process's close) lands
    /// before the completion of what was written after it, never over it.
    @Test func aCompletionWaitsForTheEmptyObjectAnEarlierFlushIsWriting() async throws {
        let inner = InMemoryStore()
        let store = FaultInjectingStore(inner)
        let fs = makeFileSystem(store)
        let (opener, other) = (ProcessID(61), ProcessID(62))
        let (_, handle) = try await fs.create(parent: .root, name: "f", mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: opener))
        store.hold(.putEmpty)
        let emptyFlush = Task { try await fs.flush(handle, writer: WriterIdentity(62), process: other) }
        #expect(try await eventually { store.heldCount(.putEmpty) == 1 })
        let line = Array("p1 line\n".utf8)
        #expect(await fs.write(handle, at: 0, bytes: line, writer: WriterIdentity(61), process: opener).count == line.count)
        let completing = Task { try await fs.flush(handle, writer: WriterIdentity(61), process: opener) }
        try await Task.sleep(for: .milliseconds(50))
        store.release(.putEmpty)
        try await emptyFlush.value
        try await completing.value
        await fs.release(handle)
        #expect(inner.object("f") == line)
    }

    /// An upload's completion records the stored object before anyone can see the upload ended:
    /// an open without `O_TRUNC` then starts from what it stored (it saw an empty file and
    /// started a new upload that replaced it).
    @Test func theStoredObjectIsRecordedWhenTheUploadEnds() async throws {
        let inner = InMemoryStore()
        let fs = makeFileSystem(FaultInjectingStore(inner))
        let opener = ProcessID(63)
        let (created, handle) = try await fs.create(parent: .root, name: "g", mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: opener))
        let line = Array("first\n".utf8)
        #expect(await fs.write(handle, at: 0, bytes: line, writer: WriterIdentity(63), process: opener).count == line.count)
        let session = try #require(fs.upload(of: created.inode))
        _ = try await session.flush(writer: WriterIdentity(63), process: opener).get()  // the upload alone, not FileSystem.flush
        #expect(try await fs.getattr(created.inode).size == Int64(line.count))
        let appender = try await fs.open(created.inode, flags: O_WRONLY | O_APPEND, opener: ProcessID(64)).handle
        let more = Array("second\n".utf8)
        #expect(await fs.write(appender, at: Int64(line.count), bytes: more, writer: WriterIdentity(64), process: ProcessID(64), appending: true).count == more.count)
        try await fs.flush(appender, writer: WriterIdentity(64), process: ProcessID(64))
        await fs.release(appender)
        await fs.release(handle)
        #expect(inner.object("g") == line + more)
    }
}

/// An empty file whose close() returned (its zero-byte object written by the flush) while the
/// kernel's release has not arrived yet: `touch f; mv f g`, `sed -i` with an empty result,
/// `: > f; truncate -s 10 f`. It is the stored empty object, not a file being streamed.
struct StoredEmptyFileTests {
    let shell = ProcessID(100)
    let store = InMemoryStore()

    func closedEmpty(_ fs: ObsFileSystem, _ name: String) async throws -> (FileAttributes, FileHandleID) {
        let (created, handle) = try await fs.create(parent: .root, name: name, mode: 0o644,
                                                    caller: Caller(uid: 0, gid: 0, umask: 0o022, process: shell))
        try await fs.flush(handle, writer: WriterIdentity(10), process: shell)
        #expect(store.object(name) == [])
        return (created, handle)
    }

    @Test func itIsRenamedAndReadBeforeItsRelease() async throws {
        let fs = makeFileSystem(store)
        let (created, handle) = try await closedEmpty(fs, "f")
        let reader = try await fs.open(created.inode, flags: O_RDONLY)
        #expect(try await fs.read(reader.handle, at: 0, count: 100).gathered().isEmpty)
        await fs.release(reader.handle)
        try await fs.rename(parent: .root, name: "f", newParent: .root, newName: "g", flags: 0)
        await fs.release(handle)
        #expect(store.object("f") == nil)
        #expect(store.object("g") == [])
        #expect(store.uploadsInProgress == 0)
    }

    @Test func aTruncateBeforeItsReleaseIsStored() async throws {
        let fs = makeFileSystem(store)
        let (created, handle) = try await closedEmpty(fs, "f")
        _ = try await fs.setattr(created.inode, AttributeChanges(size: 10))
        let reader = try await fs.open(created.inode, flags: O_RDONLY)
        #expect(try await fs.read(reader.handle, at: 0, count: 100).gathered() == [UInt8](repeating: 0, count: 10))
        await fs.release(reader.handle)
        await fs.release(handle)
        #expect(store.object("f") == [UInt8](repeating: 0, count: 10))
        #expect(try await fs.getattr(created.inode).size == 10)
    }
}

/// `subprocess.Popen(cmd, stdout=f); f.close(); p.wait()`: the opener closes the file before the
/// process that inherited it writes. The close of the last process holding the file stores it,
/// so its bytes are the object's when that process has exited, not only after the release that
/// the kernel sends a moment later (found by a helper: the parent read the old bytes, or EBUSY).
extension CloseRuleTests {
    /// Nothing written when the opener closed: the child's last close completes the upload.
    @Test func theLastHoldersCloseCompletesAFileItsOpenerClosedBeforeItWasWritten() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (child, grandchild) = (ProcessID(101), ProcessID(102))
        let (_, handle) = try await fs.create(parent: .root, name: "f", mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: shell))
        try await fs.flush(handle, writer: WriterIdentity(10), process: shell)  // the parent's f.close()
        #expect(store.object("f") == [])
        let one = Array("one\n".utf8), two = Array("two\n".utf8)
        #expect(await fs.write(handle, at: 0, bytes: one, writer: WriterIdentity(11), process: grandchild).count == one.count)
        // The grandchild exits while the child still holds the file: nothing is stored.
        try await fs.flush(handle, writer: WriterIdentity(11), process: grandchild) { true }
        #expect(store.completeCalls == 0)
        #expect(await fs.write(handle, at: Int64(one.count), bytes: two, writer: WriterIdentity(11), process: child).count == two.count)
        try await fs.flush(handle, writer: WriterIdentity(11), process: child) { false }
        #expect(store.object("f") == one + two)
        #expect(store.completeCalls == 1)
        await fs.release(handle)
        #expect(store.object("f") == one + two)
        #expect(store.completeCalls == 1)
    }

    /// The opener wrote a header and closed (its close completed the file); the child's bytes
    /// continue it by composition, stored by the child's last close.
    @Test func theLastHoldersCloseStoresWhatItWroteAfterTheOpenerClosed() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let child = ProcessID(101)
        let (created, handle) = try await fs.create(parent: .root, name: "f", mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: shell))
        let header = Array("header\n".utf8)
        #expect(await fs.write(handle, at: 0, bytes: header, writer: WriterIdentity(10), process: shell).count == header.count)
        try await fs.flush(handle, writer: WriterIdentity(10), process: shell)
        #expect(store.object("f") == header)
        let body = pattern(Int(minimumPart) + 1000, seed: 3)
        #expect(await fs.write(handle, at: Int64(header.count), bytes: body, writer: WriterIdentity(11), process: child).count == body.count)
        try await fs.flush(handle, writer: WriterIdentity(11), process: child) { true }  // another holder remains
        #expect(store.object("f") == header)
        try await fs.flush(handle, writer: WriterIdentity(11), process: child) { false }
        #expect(store.object("f") == header + body)
        #expect(try await fs.getattr(created.inode).size == Int64(header.count + body.count))
        await fs.release(handle)
        #expect(store.object("f") == header + body)
    }

    /// While the opener has not closed, other processes' closes never ask who holds the file.
    @Test func childrenOfAnOpenerThatHoldsTheFileNeverAskWhoHoldsIt() async throws {
        let (store, fs, handle, bytes) = try await fileAChildWrote()
        let asked = Mutex(0)
        try await fs.flush(handle, writer: WriterIdentity(11), process: ProcessID(101)) {
            asked.withLock { $0 += 1 }
            return false
        }
        #expect(asked.withLock { $0 } == 0)
        #expect(store.completeCalls == 0)
        try await fs.flush(handle, writer: WriterIdentity(10), process: shell)
        #expect(store.object("f") == bytes)
        await fs.release(handle)
    }
}
