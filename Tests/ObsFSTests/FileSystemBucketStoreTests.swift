// FileSystemBucketStore through OBSClientStore against an in-process obs-local: the store answers
// `fileSystemBucket` only on a parallel file system bucket, and its native calls change the
// objects as read back from the server (one request each, per the request log).
import OBSClient
import OBSHashing
import OBSProtocol
import Testing
@testable import ObsFS

@Suite struct FileSystemBucketStoreTests {
    static func region(_ bytes: [UInt8]) -> MemoryRegion { MemoryRegion(owner: AlignedMemory(copying: bytes)) }

    @Test func onlyAParallelFileSystemBucketIsOne() throws {
        let plain = try LocalOBS()
        defer { plain.stop() }
        let pfs = try LocalOBS(fileSystemBucket: true)
        defer { pfs.stop() }
        #expect(plain.store.fileSystemBucket == nil)
        #expect(pfs.store.fileSystemBucket != nil)
        #expect(InMemoryStore().fileSystemBucket == nil)
    }

    @Test func nativeCallsChangeTheObjectsInOneRequestEach() async throws {
        let local = try LocalOBS(fileSystemBucket: true)
        defer { local.stop() }
        #expect(try await local.client.isFileSystemBucket(local.bucket))
        let store = try #require(local.store.fileSystemBucket)
        _ = try await store.putObject(ObjectKey("a/f"), bytes: Array("0123456789".utf8), options: ObjectOptions())
        _ = try await store.putObject(ObjectKey("a/g"), bytes: [7], options: ObjectOptions())
        let before = try local.requests().count

        let etag = try await store.modifyNatively(ObjectKey("a/f"), position: 8, bytes: Self.region(Array("XYZ".utf8)))
        try await store.truncateNatively(ObjectKey("a/f"), length: 13)
        try await store.renameNatively(ObjectKey("a/"), to: ObjectKey("b/"))

        let operations = try local.requests().dropFirst(before).map { $0["operation"] as? String }
        #expect(operations == ["ModifyObject", "TruncateObject", "RenameObject"])
        #expect(etag != nil)
        #expect(try await store.objectBytes(ObjectKey("b/f")) == Array("01234567XYZ".utf8) + [0, 0])
        #expect(try await store.objectBytes(ObjectKey("b/g")) == [7])
        #expect(try await store.headObject(ObjectKey("a/f")) == nil)
        let missing = await #expect(throws: OBSClientError.self) { try await store.renameNatively(ObjectKey("a/f"), to: ObjectKey("c")) }
        #expect(missing?.serviceCode == .noSuchKey)
    }
}
