// Parallel file system (PFS) buckets: the operations OBS serves only on buckets created with
// `x-obs-fs-file-interface: Enabled` — rename of a file or of a whole directory, modify (write a
// body at a position), truncate (shrink, or grow with zeros). Each is one change of records under
// the store's lock, so other requests see the object (or directory) before or after it, never
// half of it; no byte is copied (segments are cut into stretches of the blobs they had).
//
// Choices where the API reference ("Renaming an Object", "Modifying an Object", "Truncating an
// Object") is silent:
// - on an ordinary bucket the three answer 405 MethodNotAllowed;
// - modify needs an existing object (404 NoSuchKey) and a position at most its length (400
//   InvalidArgument): it overwrites and may grow the object, it never leaves a hole;
// - the ETag after a modify or truncate is not the MD5 of the content (computing it would read the
//   whole object): it is an MD5 over the previous ETag and the change, new for every change; for
//   the same reason the object's CRCs are dropped (HEAD and GET then send none);
// - a rename moves the key `name` (one leading `/` dropped: the API takes an absolute path, the
//   SDKs send the key) and keeps everything else of the object (metadata, ACL, last-modified);
//   onto an existing object it replaces it. A key ending in `/`, or a key that is not an object
//   but has objects under `key/`, renames the directory: every key under `key/`, the marker
//   included. A directory is not renamed into itself (400 InvalidArgument) nor onto a non-empty
//   one (409 DirectoryNotEmpty, as rename(2) answers ENOTEMPTY).
// - The journal writes the renamed records before removing the old ones: a crash in between
//   leaves both names (never neither).
import OBSHashing
import OBSProtocol

extension OBSLocalError {
    static let notFileSystemBucket = OBSLocalError(.methodNotAllowed, "The specified method is not allowed against this resource (the bucket is not a parallel file system).")
}

extension ObjectStore {
    /// Fails with 405 MethodNotAllowed unless the bucket is a parallel file system.
    func requireFileSystem(_ bucket: BucketName) throws(OBSLocalError) {
        guard try headBucket(bucket).isFileSystem else { throw .notFileSystemBucket }
    }

    // MARK: Modify

    /// Checks a modify before its body is read: the object exists and `position` is within it.
    func checkModify(_ bucket: BucketName, _ key: ObjectKey, position: Int64) throws(OBSLocalError) -> ObjectRecord {
        try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            try Self.modifyTarget(b.objects[StoredKey(key)], key: key, position: position)
        }
    }

    private static func modifyTarget(_ existing: ObjectRecord?, key: ObjectKey, position: Int64) throws(OBSLocalError) -> ObjectRecord {
        guard let existing else { throw .noSuchKey(key) }
        guard position <= existing.size else {
            throw OBSLocalError(.invalidArgument, "The position \(position) is beyond the end of the object (\(existing.size) bytes).")
        }
        return existing
    }

    /// Writes a blob over the object from `position`, growing it when the blob reaches past its end.
    func modify(_ bucket: BucketName, _ key: ObjectKey, position: Int64, blob: WrittenBlob) throws(OBSLocalError) -> ObjectRecord {
        let (record, freed) = try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) -> (ObjectRecord, [BlobID]) in
            let existing = try Self.modifyTarget(b.objects[StoredKey(key)], key: key, position: position)
            let end = position + blob.length
            guard max(existing.size, end) <= ProtocolLimits.maximumFileSystemObjectSize else {
                throw OBSLocalError(.entityTooLarge, "Your proposed upload exceeds the maximum allowed object size.")
            }
            guard blob.length > 0 else { return (existing, [blob.id]) }
            var record = existing
            record.segments = existing.segments.segments(covering: 0..<position) + [blob.segment]
                + existing.segments.segments(covering: min(end, existing.size)..<existing.size)
            record.size = max(existing.size, end)
            record.etag = Self.changedETag(existing.etag, change: "modify \(position) \(blob.md5.hexString)")
            record.checksums = nil
            record.lastModified = nowMilliseconds
            let updated = record
            try journaled { try journal.saveObject(updated, bucket: bucket.rawValue) }
            b.objects[StoredKey(key)] = updated
            return (updated, unreferenced(existing.segments, by: updated.segments))
        }
        blobs.delete(freed)
        return record
    }

    /// The ETag of an object after a change in place: new for every change, not a content MD5.
    private static func changedETag(_ previous: String, change: String) -> String {
        ETag(md5: Hash.md5(Array((previous + " " + change).utf8))).value
    }

    // MARK: Truncate

    /// Cuts the object to `length` bytes, or grows it with zeros.
    func truncate(_ bucket: BucketName, _ key: ObjectKey, length: Int64) throws(OBSLocalError) -> ObjectRecord {
        guard (0...ProtocolLimits.maximumFileSystemObjectSize).contains(length) else {
            throw OBSLocalError(.invalidArgument, "The length must be from 0 to \(ProtocolLimits.maximumFileSystemObjectSize).")
        }
        // Zeros are written outside the lock; the object may change meanwhile, so they are made
        // for the length seen and the change is retried when that was too short.
        var zeros: Segment?
        defer { if let zeros { blobs.delete([zeros.blob]) } }
        while true {
            let seen = try object(bucket, key).size
            if seen < length, (zeros?.length ?? 0) < length - seen {
                if let old = zeros { blobs.delete([old.blob]) }
                zeros = nil
                do { zeros = try blobs.makeZeros(length: length - seen) } catch { throw OBSLocalError(.internalError, "Growing the object failed: \(error)") }
            }
            let available = zeros
            let outcome = try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) -> (ObjectRecord, [BlobID], usedZeros: Bool)? in
                guard let existing = b.objects[StoredKey(key)] else { throw .noSuchKey(key) }
                var record = existing
                record.segments = existing.segments.segments(covering: 0..<min(length, existing.size))
                var usedZeros = false
                if existing.size < length {
                    guard let available, available.length >= length - existing.size else { return nil }
                    record.segments.append(Segment(blob: available.blob, offset: 0, length: length - existing.size))
                    usedZeros = true
                }
                record.size = length
                record.etag = Self.changedETag(existing.etag, change: "truncate \(length)")
                record.checksums = nil
                record.lastModified = nowMilliseconds
                let updated = record
                try journaled { try journal.saveObject(updated, bucket: bucket.rawValue) }
                b.objects[StoredKey(key)] = updated
                return (updated, unreferenced(existing.segments, by: updated.segments), usedZeros)
            }
            guard let (record, freed, usedZeros) = outcome else { continue }
            if usedZeros { zeros = nil }
            blobs.delete(freed)
            return record
        }
    }

    // MARK: Rename

    /// Renames a file, or a directory with everything under it; see the design note for the rules.
    func rename(_ bucket: BucketName, _ source: ObjectKey, to target: ObjectKey) throws(OBSLocalError) {
        guard target.rawValue.utf8.count <= Router.maximumKeyBytes else {
            throw OBSLocalError(.keyTooLong, "Your key is too long (at most \(Router.maximumKeyBytes) bytes).")
        }
        let freed = try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) -> [BlobID] in
            guard StoredKey(source) != StoredKey(target) else {
                guard b.objects[StoredKey(source)] != nil || Self.hasKeys(under: Self.directoryPrefix(source), in: b) else { throw .noSuchKey(source) }
                return []
            }
            if !source.rawValue.hasSuffix("/"), let object = b.objects[StoredKey(source)] {
                return try renameObjects([(object, target.rawValue)], in: &b, bucket: bucket)
            }
            let prefix = Self.directoryPrefix(source), targetPrefix = Self.directoryPrefix(target)
            let moving = b.objects.values.filter { $0.key.utf8.starts(with: prefix.utf8) }
            guard !moving.isEmpty else { throw .noSuchKey(source) }
            guard !targetPrefix.utf8.starts(with: prefix.utf8) else {
                throw OBSLocalError(.invalidArgument, "A directory cannot be moved into itself.")
            }
            let occupied = b.objects.keys.contains { $0.bytes.starts(with: targetPrefix.utf8) && $0 != StoredKey(targetPrefix) }
            guard !occupied else { throw OBSLocalError("DirectoryNotEmpty", "The target directory is not empty.", status: 409) }
            let moves = moving.map { ($0, targetPrefix + String(decoding: $0.key.utf8.dropFirst(prefix.utf8.count), as: UTF8.self)) }
            if let long = moves.first(where: { $0.1.utf8.count > Router.maximumKeyBytes }) {
                throw OBSLocalError(.keyTooLong, "Your key is too long (at most \(Router.maximumKeyBytes) bytes): \(long.1).")
            }
            return try renameObjects(moves, in: &b, bucket: bucket)
        }
        blobs.delete(freed)
    }

    /// `key/`, the prefix of what a directory holds.
    private static func directoryPrefix(_ key: ObjectKey) -> String {
        key.rawValue.hasSuffix("/") ? key.rawValue : key.rawValue + "/"
    }

    private static func hasKeys(under prefix: String, in bucket: StoredBucket) -> Bool {
        bucket.objects.keys.contains { $0.bytes.starts(with: prefix.utf8) }
    }

    /// Moves each record to its new key, replacing what was there; returns the replaced blobs.
    private func renameObjects(_ moves: [(ObjectRecord, String)], in bucket: inout StoredBucket, bucket name: BucketName) throws(OBSLocalError) -> [BlobID] {
        var freed: [BlobID] = []
        for (object, newKey) in moves {
            var moved = object
            moved.key = newKey
            let record = moved
            try journaled { try journal.saveObject(record, bucket: name.rawValue) }
            journal.removeObject(key: object.key, bucket: name.rawValue)
            bucket.objects[StoredKey(object.key)] = nil
            if let replaced = bucket.objects.updateValue(record, forKey: StoredKey(newKey)) {
                freed += replaced.segments.map(\.blob)
            }
        }
        return freed
    }
}
