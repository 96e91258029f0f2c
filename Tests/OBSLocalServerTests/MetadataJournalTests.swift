// The metadata log (MetadataJournal.swift): a torn last line is skipped, the log is compacted
// while the server runs, and a data directory of an earlier version (one JSON file per record,
// Fixtures/legacy-data-directory, written by obs-local before the log) is taken over.
import Foundation
import OBSHashing
import OBSProtocol
import Synchronization
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
        let journal = try LogJournal(directory: directory, minimumLinesBeforeCompaction: 10) { $0() }
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
        let reloaded = try LogJournal(directory: directory) { $0() }.load()
        #expect(reloaded["bkt"]?.objects.count == 1)
        #expect(reloaded["bkt"]?.objects[StoredKey("same")]?.size == 40)
    }

    /// A compaction writes its snapshot in the background: what changes meanwhile goes into the
    /// old log and follows the snapshot in the new one.
    @Test func changesDuringACompactionFollowItsSnapshot() throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let scheduled = Mutex<[@Sendable () -> Void]>([])
        let journal = try LogJournal(directory: directory, minimumLinesBeforeCompaction: 3) { work in scheduled.withLock { $0.append(work) } }
        var buckets = try journal.load()
        func object(_ key: String) -> ObjectRecord {
            ObjectRecord(key: key, size: 1, etag: key, lastModified: 1, segments: [], attributes: ObjectAttributes(),
                         acl: AccessControl.canned(.private, ownerID: "o"))
        }
        func change(_ entry: JournalEntry) throws {
            switch entry {
            case .bucket(let record): try journal.saveBucket(record)
            case .object(let bucket, let record): try journal.saveObject(record, bucket: bucket)
            case .removeObject(let bucket, let key): journal.removeObject(key: key, bucket: bucket)
            default: Issue.record("not used here")
            }
            entry.apply(to: &buckets)
            journal.compactIfDue(buckets)
        }
        try change(.bucket(BucketRecord(name: "bkt", created: 1)))
        for key in ["a", "b", "c"] { try change(.object(bucket: "bkt", record: object(key))) }
        #expect(scheduled.withLock { $0.count } == 1)  // due after 4 lines: a snapshot of bkt, a, b, c
        try change(.object(bucket: "bkt", record: object("d")))
        try change(.object(bucket: "bkt", record: object("e")))
        try change(.removeObject(bucket: "bkt", key: "a"))
        #expect(scheduled.withLock { $0.count } == 1)  // one compaction at a time
        let fileNumber = { try FileManager.default.attributesOfItem(atPath: journal.path)[.systemFileNumber] as? UInt64 }
        let oldLog = try fileNumber()
        #expect(try lines(of: journal.path).count == 7)  // the old log: every change
        scheduled.withLock { $0 }.forEach { $0() }
        #expect(try fileNumber() != oldLog)  // replaced
        let compacted = try lines(of: journal.path)  // the snapshot's 4 lines, then the 3 changes after it
        #expect(compacted.count == 7 && compacted[1].hasPrefix("{\"object\"") && compacted[6].hasPrefix("{\"removeObject\""))
        try change(.object(bucket: "bkt", record: object("f")))
        let reloaded = try LogJournal(directory: directory) { $0() }.load()
        #expect(reloaded["bkt"].map { $0.objects.keys.map { String(decoding: $0.bytes, as: UTF8.self) }.sorted() } == ["b", "c", "d", "e", "f"])
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
