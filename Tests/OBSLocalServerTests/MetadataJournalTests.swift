// The metadata log (MetadataJournal.swift): a torn last line is skipped, the log is compacted
// while the server runs, and a data directory of an earlier version (one JSON file per record,
// Fixtures/legacy-data-directory, written by obs-local before the log) is taken over.
import Foundation
import OBSHashing
import OBSProtocol
import Testing
@testable import OBSLocalServer

@Suite struct MetadataJournalTests {
    private func lines(of log: String) throws -> [Substring] {
        try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
    }

    @Test func aTornLastLineIsSkippedAndAppendsGoOnAfterIt() throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = directory + "/meta/journal.jsonl"
        do {
            let server = try TestServer(directory: directory)
            #expect(try server.client().send("PUT", "/bkt/a", body: Array("first".utf8)).status == 200)
            server.stop()
        }
        // A crash in the middle of an append.
        let handle = try #require(FileHandle(forWritingAtPath: log))
        handle.seekToEndOfFile()
        handle.write(Data("{\"object\":{\"bucket\":\"bkt\",\"rec".utf8))
        handle.closeFile()
        do {
            let server = try TestServer(directory: directory)
            let client = server.client()
            #expect(try client.send("GET", "/bkt/a").body == Array("first".utf8))
            #expect(try client.send("PUT", "/bkt/b", body: Array("second".utf8)).status == 200)
            server.stop()
        }
        #expect(try lines(of: log).allSatisfy { $0.hasPrefix("{") && $0.hasSuffix("}") })
        let server = try TestServer(directory: directory)
        defer { server.stop() }
        let client = server.client()
        #expect(try client.send("GET", "/bkt/a").body == Array("first".utf8))
        #expect(try client.send("GET", "/bkt/b").body == Array("second".utf8))
    }

    @Test func theLogIsCompactedOnceItHasGrownPastItsSnapshot() throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = try LogJournal(directory: directory, minimumLinesBeforeCompaction: 10)
        var buckets = try journal.load()
        var lineCounts: [Int] = []
        func record(_ entry: JournalEntry, _ save: () throws -> Void) throws {
            try save()
            entry.apply(to: &buckets)
            journal.compactIfDue(buckets)
            lineCounts.append(try lines(of: journal.path).count)
        }
        let bucket = BucketRecord(name: "bkt", created: 1)
        try record(.bucket(bucket)) { try journal.saveBucket(bucket) }
        for version in 1...40 {
            let object = ObjectRecord(key: "same", size: Int64(version), etag: String(version), lastModified: Int64(version), segments: [],
                                      attributes: ObjectAttributes(), acl: AccessControl.canned(.private, ownerID: "o"))
            try record(.object(bucket: "bkt", record: object)) { try journal.saveObject(object, bucket: "bkt") }
        }
        // 41 changes, never more than the snapshot's 2 lines plus 10 appended (without compaction: 41).
        #expect(lineCounts.max() == 12)
        #expect(lineCounts.count == 41)
        let reloaded = try LogJournal(directory: directory).load()
        #expect(reloaded["bkt"]?.objects.count == 1)
        #expect(reloaded["bkt"]?.objects[StoredKey("same")]?.size == 40)
    }

    @Test func aDataDirectoryOfAnEarlierVersionIsTakenOverByTheLog() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/legacy-data-directory").path
        let directory = TestServer.makeTemporaryDirectory() + "/data"
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        try FileManager.default.copyItem(atPath: fixture, toPath: directory)
        let pendingUpload = "7D293615DCBC97F9246F0D0001ADB5A4"
        let pendingPart = Array(repeating: UInt8(ascii: "p"), count: 1000)
        do {
            let server = try TestServer(directory: directory)
            let client = server.client()
            let kept = try client.send("GET", "/bkt/kept")
            #expect(kept.body == Array("stored before the journal was a log\n".utf8))
            #expect(kept.headers["x-obs-meta-color"] == "blue")
            #expect(try client.send("GET", "/bkt/pending", query: "uploadId=\(pendingUpload)").elements("PartNumber") == ["1"])
            server.stop()
        }
        // The record files are gone, and the log alone holds what they said.
        #expect(!FileManager.default.fileExists(atPath: directory + "/meta/bkt"))
        #expect(FileManager.default.fileExists(atPath: directory + "/meta/journal.jsonl"))
        let server = try TestServer(directory: directory)
        defer { server.stop() }
        let client = server.client()
        #expect(try client.send("GET", "/bkt/kept").headers["x-obs-meta-color"] == "blue")
        let complete = try client.send("POST", "/bkt/pending", query: "uploadId=\(pendingUpload)",
                                       body: completeBody([(1, ETag(md5: Hash.md5(pendingPart)).quoted)]))
        #expect(complete.status == 200)
        #expect(try client.send("GET", "/bkt/pending").body == pendingPart)
    }
}
