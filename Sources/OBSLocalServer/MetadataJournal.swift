// Persistence of the server's records: one append-only log, `DIR/meta/journal.jsonl`, with
// one JSON line per change (a bucket, object, upload or part saved or removed). Appending a line
// creates no file, so a change costs one `write(2)` whatever the filesystem's cost of creating
// and deleting inodes. At start the log is replayed and replaced by a snapshot of what it
// describes (a temporary file, synced, renamed over it); while the server runs it is compacted
// the same way once it holds more than twice the lines of its last snapshot (and at least
// 10,000), so it stays proportional to what is stored. The snapshot of a running server is
// written in the background (about 30 µs per record): changes go on into the old log meanwhile,
// and are kept to be appended to the snapshot just before it replaces the log. A crash leaves
// the old log or the new one, at worst with a torn last line, which the replay skips. Data directories of earlier versions kept one JSON file per record
// (`LegacyRecordFiles`): they are read once, written into the log, then removed. `--memory` uses
// `TransientJournal`, which keeps nothing.
import FoundationEssentials
import OBSProtocol
import Synchronization
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// An object key compared by its UTF-8 bytes, as object stores do (Swift's `String` equality
/// would merge keys that differ only in Unicode normalisation).
struct StoredKey: Hashable, Sendable {
    let bytes: [UInt8]
    init(_ key: String) { bytes = Array(key.utf8) }
    init(_ key: ObjectKey) { self.init(key.rawValue) }
}

/// A bucket and everything in it, as loaded at start-up and kept in memory.
struct StoredBucket: Sendable {
    var record: BucketRecord
    /// By key and in key order (ObjectIndex.swift).
    var objects = ObjectIndex()
    var uploads: [String: StoredUpload] = [:]
}

struct StoredUpload: Sendable {
    var record: UploadRecord
    var parts: [Int: PartRecord] = [:]
}

/// Where the records go. Called with the store's lock held, so calls never interleave.
protocol MetadataJournal: Sendable {
    func saveBucket(_ record: BucketRecord) throws
    func removeBucket(_ name: String)
    func saveObject(_ record: ObjectRecord, bucket: String) throws
    func removeObject(key: String, bucket: String)
    func saveUpload(_ record: UploadRecord, bucket: String) throws
    func savePart(_ record: PartRecord, uploadID: String, bucket: String) throws
    func removeUpload(_ uploadID: String, bucket: String)
    func load() throws -> [String: StoredBucket]
    /// Rewrites the journal as a snapshot of `buckets` (what it describes) when it has grown
    /// enough since the last one; called after changes, with the store's lock held.
    func compactIfDue(_ buckets: [String: StoredBucket])
}

/// Keeps nothing (`--memory`).
struct TransientJournal: MetadataJournal {
    func saveBucket(_ record: BucketRecord) throws {}
    func removeBucket(_ name: String) {}
    func saveObject(_ record: ObjectRecord, bucket: String) throws {}
    func removeObject(key: String, bucket: String) {}
    func saveUpload(_ record: UploadRecord, bucket: String) throws {}
    func savePart(_ record: PartRecord, uploadID: String, bucket: String) throws {}
    func removeUpload(_ uploadID: String, bucket: String) {}
    func load() throws -> [String: StoredBucket] { [:] }
    func compactIfDue(_ buckets: [String: StoredBucket]) {}
}

/// One line of the log: a change of one record.
enum JournalEntry: Codable {
    case bucket(BucketRecord)
    case removeBucket(name: String)
    case object(bucket: String, record: ObjectRecord)
    case removeObject(bucket: String, key: String)
    case upload(bucket: String, record: UploadRecord)
    case part(bucket: String, uploadID: String, record: PartRecord)
    case removeUpload(bucket: String, uploadID: String)

    /// Applies the change to `buckets` (records of a bucket that is gone are ignored).
    func apply(to buckets: inout [String: StoredBucket]) {
        switch self {
        case .bucket(let record):
            if buckets[record.name] == nil { buckets[record.name] = StoredBucket(record: record) } else { buckets[record.name]?.record = record }
        case .removeBucket(let name):
            buckets[name] = nil
        case .object(let bucket, let record):
            buckets[bucket]?.objects[StoredKey(record.key)] = record
        case .removeObject(let bucket, let key):
            buckets[bucket]?.objects[StoredKey(key)] = nil
        case .upload(let bucket, let record):
            if buckets[bucket]?.uploads[record.uploadID] == nil {
                buckets[bucket]?.uploads[record.uploadID] = StoredUpload(record: record)
            } else {
                buckets[bucket]?.uploads[record.uploadID]?.record = record
            }
        case .part(let bucket, let uploadID, let record):
            buckets[bucket]?.uploads[uploadID]?.parts[record.number] = record
        case .removeUpload(let bucket, let uploadID):
            buckets[bucket]?.uploads[uploadID] = nil
        }
    }

    /// The entries that rebuild `buckets` from nothing.
    static func snapshot(of buckets: [String: StoredBucket]) -> [JournalEntry] {
        var entries: [JournalEntry] = []
        for (name, bucket) in buckets.sorted(by: { $0.key < $1.key }) {
            entries.append(.bucket(bucket.record))
            for object in bucket.objects.values { entries.append(.object(bucket: name, record: object)) }
            for (id, upload) in bucket.uploads {
                entries.append(.upload(bucket: name, record: upload.record))
                for part in upload.parts.values { entries.append(.part(bucket: name, uploadID: id, record: part)) }
            }
        }
        return entries
    }
}

/// The append-only log under a directory (the design note at the top of this file).
final class LogJournal: MetadataJournal, Sendable {
    let directory: String
    var path: String { directory + "/journal.jsonl" }
    /// Compaction waits for at least this many lines after a snapshot.
    let minimumLinesBeforeCompaction: Int

    private struct State {
        /// The log, open for appending; -1 until `load`.
        var descriptor: Int32 = -1
        /// Bytes in the log: a failed append is cut back to this length, so no torn line is
        /// followed by good ones.
        var length: Int64 = 0
        /// Lines in the last snapshot, and appended since.
        var snapshotLines = 0
        var appendedLines = 0
        /// While a compaction writes its snapshot: the lines appended since it took the records,
        /// which follow the snapshot in the new log.
        var appendedDuringCompaction: [[UInt8]]?
    }
    /// The open log, its counters and the compaction under way. Appends come one at a time
    /// (under the store's lock); a compaction swaps the log under this lock.
    private let state = Mutex(State())

    /// Runs a compaction off the request that made it due (the server's thread pool, whose
    /// shutdown waits for it before the data directory is unlocked).
    private let runInBackground: @Sendable (@escaping @Sendable () -> Void) -> Void

    init(directory: String, minimumLinesBeforeCompaction: Int = 10_000,
         runInBackground: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void) throws {
        self.directory = directory
        self.minimumLinesBeforeCompaction = minimumLinesBeforeCompaction
        self.runInBackground = runInBackground
        try FileSystem.makeDirectories(directory)
    }

    deinit {
        state.withLock { if $0.descriptor >= 0 { try? FileSystem.close($0.descriptor, path: path) } }
    }

    func saveBucket(_ record: BucketRecord) throws { try append(.bucket(record)) }
    func removeBucket(_ name: String) { try? append(.removeBucket(name: name)) }
    func saveObject(_ record: ObjectRecord, bucket: String) throws { try append(.object(bucket: bucket, record: record)) }
    func removeObject(key: String, bucket: String) { try? append(.removeObject(bucket: bucket, key: key)) }
    func saveUpload(_ record: UploadRecord, bucket: String) throws { try append(.upload(bucket: bucket, record: record)) }
    func savePart(_ record: PartRecord, uploadID: String, bucket: String) throws {
        try append(.part(bucket: bucket, uploadID: uploadID, record: record))
    }
    func removeUpload(_ uploadID: String, bucket: String) { try? append(.removeUpload(bucket: bucket, uploadID: uploadID)) }

    private func append(_ entry: JournalEntry) throws {
        var line = Array(try JSONEncoder().encode(entry))
        line.append(UInt8(ascii: "\n"))
        try state.withLock { state in
            guard state.descriptor >= 0 else { throw StorageIOError(operation: "append before load", path: path, errno: EBADF) }
            do {
                try line.withUnsafeBytes { try FileSystem.writeAll(state.descriptor, $0, path: path) }
            } catch {
                try? FileSystem.setLength(state.descriptor, state.length, path: path)
                throw error
            }
            state.length += Int64(line.count)
            state.appendedLines += 1
            state.appendedDuringCompaction?.append(line)
        }
    }

    /// Replays the log onto what a data directory of an earlier version holds, then replaces
    /// both with a snapshot.
    func load() throws -> [String: StoredBucket] {
        let legacy = LegacyRecordFiles(directory: directory)
        var buckets = legacy.load()
        if let bytes = try? FileSystem.readFile(path) {
            let decoder = JSONDecoder()
            for line in bytes.split(separator: UInt8(ascii: "\n")) {
                // A torn line (a crash in the middle of an append) is skipped.
                guard let entry = try? decoder.decode(JournalEntry.self, from: Data(line)) else { continue }
                entry.apply(to: &buckets)
            }
        }
        try writeSnapshot(of: buckets)
        legacy.remove()
        return buckets
    }

    func compactIfDue(_ buckets: [String: StoredBucket]) {
        let due = state.withLock { state -> Bool in
            guard state.appendedDuringCompaction == nil,
                  state.appendedLines > max(minimumLinesBeforeCompaction, 2 * state.snapshotLines) else { return false }
            state.appendedDuringCompaction = []
            return true
        }
        guard due else { return }
        // `buckets` is the store's value as of now (copied on its next change), written out of its lock.
        runInBackground { self.compact(buckets) }
    }

    private func compact(_ buckets: [String: StoredBucket]) {
        do {
            let (snapshot, lines) = try Self.encoded(JournalEntry.snapshot(of: buckets))
            let replacement = try FileSystem.Replacement(of: path)
            do {
                try replacement.write(snapshot)
                try state.withLock { state in
                    let appended = state.appendedDuringCompaction ?? []
                    for line in appended { try replacement.write(line) }
                    let length = snapshot.count + appended.reduce(0) { $0 + $1.count }
                    adopt(try replacement.commit(), into: &state, length: Int64(length), snapshotLines: lines, appendedLines: appended.count)
                }
            } catch {
                replacement.abandon()
                throw error
            }
        } catch {
            // The log stays as it is (it holds every change), and a later change tries again.
            state.withLock { $0.appendedDuringCompaction = nil }
        }
    }

    /// The lines of `entries`, and how many.
    private static func encoded(_ entries: [JournalEntry]) throws -> (bytes: [UInt8], lines: Int) {
        let encoder = JSONEncoder()
        var bytes: [UInt8] = []
        for entry in entries {
            bytes.append(contentsOf: try encoder.encode(entry))
            bytes.append(UInt8(ascii: "\n"))
        }
        return (bytes, entries.count)
    }

    /// Writes the snapshot beside the log, syncs it, renames it over the log and appends to it
    /// from then on (at start, before any append).
    private func writeSnapshot(of buckets: [String: StoredBucket]) throws {
        let (bytes, lines) = try Self.encoded(JournalEntry.snapshot(of: buckets))
        let replacement = try FileSystem.Replacement(of: path)
        let descriptor: Int32
        do {
            try replacement.write(bytes)
            descriptor = try replacement.commit()
        } catch {
            replacement.abandon()
            throw error
        }
        state.withLock { adopt(descriptor, into: &$0, length: Int64(bytes.count), snapshotLines: lines, appendedLines: 0) }
    }

    /// Appends through `descriptor`, the log just renamed into place, from now on.
    private func adopt(_ descriptor: Int32, into state: inout State, length: Int64, snapshotLines: Int, appendedLines: Int) {
        if state.descriptor >= 0 { try? FileSystem.close(state.descriptor, path: path) }
        state.descriptor = descriptor
        state.length = length
        state.snapshotLines = snapshotLines
        state.appendedLines = appendedLines
        state.appendedDuringCompaction = nil
    }
}

/// The records of earlier versions: one JSON file per bucket, object, upload and part under
/// the journal's directory (objects named by the SHA-256 of the key, uploads by their ID).
/// Read once at start, when the log takes them over, then removed.
struct LegacyRecordFiles {
    let directory: String

    private func bucketDirectories() -> [(name: String, path: String)] {
        FileSystem.list(directory).map { (name: $0, path: directory + "/" + $0) }.filter { FileSystem.exists($0.path + "/bucket.json") }
    }

    private func read<T: Decodable>(_ type: T.Type, from path: String) -> T? {
        guard let bytes = try? FileSystem.readFile(path) else { return nil }
        return try? JSONDecoder().decode(type, from: Data(bytes))
    }

    func load() -> [String: StoredBucket] {
        var buckets: [String: StoredBucket] = [:]
        for (name, dir) in bucketDirectories() {
            guard let record = read(BucketRecord.self, from: dir + "/bucket.json") else { continue }
            var bucket = StoredBucket(record: record)
            for file in FileSystem.list(dir + "/objects") where file.hasSuffix(".json") {
                if let object = read(ObjectRecord.self, from: dir + "/objects/" + file) { bucket.objects[StoredKey(object.key)] = object }
            }
            for uploadID in FileSystem.list(dir + "/uploads") {
                let uploadDir = dir + "/uploads/" + uploadID
                guard let upload = read(UploadRecord.self, from: uploadDir + "/upload.json") else { continue }
                var stored = StoredUpload(record: upload)
                for file in FileSystem.list(uploadDir) where file.hasPrefix("part-") && file.hasSuffix(".json") {
                    if let part = read(PartRecord.self, from: uploadDir + "/" + file) { stored.parts[part.number] = part }
                }
                bucket.uploads[upload.uploadID] = stored
            }
            buckets[name] = bucket
        }
        return buckets
    }

    /// Removes the record files (once the log holds what they said).
    func remove() {
        for (_, dir) in bucketDirectories() {
            FileSystem.removeDirectory(dir + "/objects")
            for uploadID in FileSystem.list(dir + "/uploads") { FileSystem.removeDirectory(dir + "/uploads/" + uploadID) }
            FileSystem.removeDirectory(dir + "/uploads")
            FileSystem.removeDirectory(dir)
        }
    }
}
