// The close rule: the flush from the process that opened the file completes it; flushes from
// other processes (children that inherited the descriptor) pass without completing.
#if canImport(Glibc)
import Glibc
#endif
import OBSProtocol
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

    @Test func aFileNoFlushCompletedIsCompletedAtRelease() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f", mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: shell))
        let bytes = pattern(300)
        #expect(await fs.write(handle, at: 0, bytes: bytes, writer: WriterIdentity(11), process: ProcessID(101)).count == bytes.count)
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
