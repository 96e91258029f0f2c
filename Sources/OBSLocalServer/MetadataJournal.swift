// Persistence of the server's records: one small JSON file per bucket, object, upload and part,
// each replaced atomically, under `DIR/meta/`. Object files are named by the SHA-256 of the key
// and upload directories by the upload ID the server issued, so no client-supplied text is ever
// joined into a path. `--memory` uses `TransientJournal`, which keeps nothing.
import FoundationEssentials
import OBSHashing
import OBSProtocol

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
}

/// JSON files under a directory.
struct DiskJournal: MetadataJournal {
    let directory: String

    init(directory: String) throws {
        self.directory = directory
        try FileSystem.makeDirectories(directory)
    }

    private func bucketDirectory(_ bucket: String) -> String { directory + "/" + bucket }
    private func objectPath(_ key: String, bucket: String) -> String {
        bucketDirectory(bucket) + "/objects/" + Hash.sha256(key.utf8).hexString + ".json"
    }
    private func uploadDirectory(_ uploadID: String, bucket: String) -> String { bucketDirectory(bucket) + "/uploads/" + uploadID }

    private func write(_ value: some Encodable, to path: String) throws {
        let data = try JSONEncoder().encode(value)
        try FileSystem.writeAtomically(path, Array(data))
    }

    private func read<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(try FileSystem.readFile(path)))
    }

    func saveBucket(_ record: BucketRecord) throws {
        let dir = bucketDirectory(record.name)
        try FileSystem.makeDirectories(dir + "/objects")
        try FileSystem.makeDirectories(dir + "/uploads")
        try write(record, to: dir + "/bucket.json")
    }

    func removeBucket(_ name: String) {
        let dir = bucketDirectory(name)
        FileSystem.removeDirectory(dir + "/objects")
        FileSystem.removeDirectory(dir + "/uploads")
        FileSystem.removeDirectory(dir)
    }

    func saveObject(_ record: ObjectRecord, bucket: String) throws {
        try write(record, to: objectPath(record.key, bucket: bucket))
    }

    func removeObject(key: String, bucket: String) { FileSystem.remove(objectPath(key, bucket: bucket)) }

    func saveUpload(_ record: UploadRecord, bucket: String) throws {
        let dir = uploadDirectory(record.uploadID, bucket: bucket)
        try FileSystem.makeDirectories(dir)
        try write(record, to: dir + "/upload.json")
    }

    func savePart(_ record: PartRecord, uploadID: String, bucket: String) throws {
        try write(record, to: uploadDirectory(uploadID, bucket: bucket) + "/part-\(record.number).json")
    }

    func removeUpload(_ uploadID: String, bucket: String) {
        FileSystem.removeDirectory(uploadDirectory(uploadID, bucket: bucket))
    }

    func load() throws -> [String: StoredBucket] {
        var buckets: [String: StoredBucket] = [:]
        for name in FileSystem.list(directory) {
            let dir = bucketDirectory(name)
            guard let record = try? read(BucketRecord.self, from: dir + "/bucket.json") else { continue }
            var bucket = StoredBucket(record: record)
            for file in FileSystem.list(dir + "/objects") where file.hasSuffix(".json") {
                if let object = try? read(ObjectRecord.self, from: dir + "/objects/" + file) {
                    bucket.objects[StoredKey(object.key)] = object
                }
            }
            for uploadID in FileSystem.list(dir + "/uploads") {
                let uploadDir = dir + "/uploads/" + uploadID
                guard let upload = try? read(UploadRecord.self, from: uploadDir + "/upload.json") else { continue }
                var stored = StoredUpload(record: upload)
                for file in FileSystem.list(uploadDir) where file.hasPrefix("part-") && file.hasSuffix(".json") {
                    if let part = try? read(PartRecord.self, from: uploadDir + "/" + file) { stored.parts[part.number] = part }
                }
                bucket.uploads[upload.uploadID] = stored
            }
            buckets[name] = bucket
        }
        return buckets
    }
}
