// Blobs a GET is sending outlive a replacement of their object (BlobStorage.swift): the GET
// sends the version it started with, as on S3, instead of being cut when the next part's blob
// is gone (a client saw `curl error 18` and retried).
import Foundation
import NIOCore
import Testing
@testable import OBSLocalServer

@Suite struct BlobPinTests {
    private func blob(in storage: any BlobStorage, _ text: String) throws -> BlobID {
        let writer = try storage.makeWriter(computeSHA256: false)
        try writer.append([ByteBuffer(string: text)])
        return try writer.finish().id
    }

    private func exists(_ blob: BlobID, in storage: any BlobStorage) -> Bool {
        storage.allBlobs().contains(blob)
    }

    @Test(arguments: [false, true])
    func aDeletedBlobStaysUntilTheLastPinIsGone(inMemory: Bool) throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let storage: any BlobStorage = inMemory ? MemoryBlobStorage() : try DiskBlobStorage(directory: directory)
        let (sent, free) = (try blob(in: storage, "sent"), try blob(in: storage, "free"))
        var first: BlobPin? = storage.pin([sent])
        var second: BlobPin? = storage.pin([sent])
        storage.delete([sent, free])
        #expect(!exists(free, in: storage))
        #expect(exists(sent, in: storage))
        first = nil
        #expect(exists(sent, in: storage))  // the other GET still sends it
        second = nil
        #expect(!exists(sent, in: storage))
        _ = (first, second)
        // A pin of a blob nobody deletes leaves it when released.
        let kept = try blob(in: storage, "kept")
        do { _ = storage.pin([kept]) }
        #expect(exists(kept, in: storage))
    }
}
