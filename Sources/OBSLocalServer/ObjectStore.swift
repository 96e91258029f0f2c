// The object store's state machine: buckets, objects, multipart uploads and parts, and every
// rule and error code of the protocol about them. Bytes live in `BlobStorage`; this type only
// moves blob references (completing an upload lists its part blobs in the object, O(parts)).
// Thread-safe; methods are synchronous and called from the thread pool or, for the quick
// lookups done before a body is read, from the event loop.
import OBSHashing
import OBSProtocol
import Synchronization

/// An error answered to the client with its OBS code.
struct OBSLocalError: Error, Sendable, CustomStringConvertible {
    var code: ObsErrorCode
    var message: String
    var status: Int

    init(_ code: ObsErrorCode, _ message: String, status: Int? = nil) {
        self.code = code
        self.message = message
        self.status = status ?? code.httpStatus
    }

    var description: String { "\(status) \(code): \(message)" }

    static func noSuchBucket(_ bucket: BucketName) -> OBSLocalError { OBSLocalError(.noSuchBucket, "The specified bucket does not exist: \(bucket).") }
    static func noSuchKey(_ key: ObjectKey) -> OBSLocalError { OBSLocalError(.noSuchKey, "The specified key does not exist.") }
    static let malformedXML = OBSLocalError(.malformedXML, "The XML you provided was not well-formed or did not validate against our published schema.")
    static let missingContentLength = OBSLocalError(.missingContentLength, "You must provide the Content-Length HTTP header.")

    static func noSuchUpload(_ id: UploadID) -> OBSLocalError {
        OBSLocalError(.noSuchUpload, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")
    }
}

/// A page of a bucket listing.
struct ObjectListing: Sendable {
    var objects: [ObjectRecord] = []
    var commonPrefixes: [String] = []
    var isTruncated = false
    var nextMarker: String?
}

/// A page of multipart uploads.
struct UploadListing: Sendable {
    var uploads: [UploadRecord] = []
    var commonPrefixes: [String] = []
    var isTruncated = false
    var nextKeyMarker: String?
    var nextUploadIDMarker: String?
}

/// A page of parts.
struct PartListing: Sendable {
    var upload: UploadRecord
    var parts: [PartRecord] = []
    var isTruncated = false
    var nextPartNumberMarker: Int?
}

/// What a metadata change applies (`PUT ?metadata`).
enum MetadataDirective: String, Sendable {
    case replaceNew = "REPLACE_NEW"
    case replace = "REPLACE"
}

final class ObjectStore: Sendable {
    let blobs: any BlobStorage
    let journal: any MetadataJournal
    /// Every bucket with its objects, uploads and parts. Held for each change of records and the
    /// journal write of that change, so the files always match memory; never held across blob I/O.
    private let buckets: Mutex<[String: StoredBucket]>
    private let clock: Clock

    init(blobs: any BlobStorage, journal: any MetadataJournal, clock: @escaping Clock) throws {
        self.blobs = blobs
        self.journal = journal
        self.clock = clock
        var loaded = try journal.load()
        ObjectStore.dropCompletedUploads(&loaded, journal: journal)
        buckets = Mutex(loaded)
        collectUnreferencedBlobs(loaded)
    }

    /// A crash between writing a completed object and removing its upload leaves both; the
    /// object wins (aborting the upload would delete the object's part files).
    private static func dropCompletedUploads(_ loaded: inout [String: StoredBucket], journal: any MetadataJournal) {
        for (name, bucket) in loaded {
            let inObjects = Set(bucket.objects.values.flatMap { $0.segments.map(\.blob) })
            for (id, upload) in bucket.uploads where upload.parts.values.contains(where: { inObjects.contains($0.segment.blob) }) {
                journal.removeUpload(id, bucket: name)
                loaded[name]?.uploads[id] = nil
            }
        }
    }

    /// Deletes blobs no record names: bodies cut short by a crash, parts of an upload whose
    /// directory was removed.
    private func collectUnreferencedBlobs(_ loaded: [String: StoredBucket]) {
        var referenced = Set<BlobID>()
        for bucket in loaded.values {
            for object in bucket.objects.values { referenced.formUnion(object.segments.map(\.blob)) }
            for upload in bucket.uploads.values { referenced.formUnion(upload.parts.values.map(\.segment.blob)) }
        }
        blobs.delete(blobs.allBlobs().filter { !referenced.contains($0) })
    }

    var nowMilliseconds: Int64 { clock().millisecondsSinceEpoch }

    // MARK: Buckets

    func listBuckets() -> [BucketRecord] {
        buckets.withLock { $0.values.map(\.record) }.sorted { $0.name < $1.name }
    }

    /// Creates a bucket; `fileSystem` makes it a parallel file system bucket.
    func createBucket(_ name: BucketName, fileSystem: Bool = false) throws(OBSLocalError) {
        guard BucketNaming.isValid(name.rawValue) else {
            throw OBSLocalError(.invalidBucketName, "The specified bucket name is not valid.")
        }
        let failure: OBSLocalError? = buckets.withLock { all in
            if all[name.rawValue] != nil {
                return OBSLocalError(.bucketAlreadyOwnedByYou, "Your previous request to create the named bucket succeeded and you already own it.")
            }
            let record = BucketRecord(name: name.rawValue, created: nowMilliseconds, fileInterface: fileSystem ? true : nil)
            do { try journal.saveBucket(record) } catch { return internalError(error) }
            all[name.rawValue] = StoredBucket(record: record)
            return nil
        }
        if let failure { throw failure }
    }

    /// Gives a bucket a default encryption (`kms`) for new objects that ask for none; nil removes it.
    func setDefaultEncryption(_ name: BucketName, _ algorithm: String?) throws(OBSLocalError) {
        try withBucket(name) { (b: inout StoredBucket) throws(OBSLocalError) in
            b.record.defaultEncryption = algorithm
            let record = b.record
            try journaled { try journal.saveBucket(record) }
        }
    }

    /// New objects' attributes with the bucket's default encryption when they ask for none.
    func withBucketDefaults(_ bucket: BucketName, _ attributes: ObjectAttributes) throws(OBSLocalError) -> ObjectAttributes {
        var attributes = attributes
        guard attributes.serverSideEncryption == nil, attributes.customerAlgorithm == nil else { return attributes }
        attributes.serverSideEncryption = try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in b.record.defaultEncryption }
        return attributes
    }

    /// The ETag of bytes whose MD5 is `md5`: the MD5, except for SSE-KMS objects of a bucket
    /// encrypted by default, whose ETags are not MD5s on OBS either (derived from the MD5 here,
    /// so completing from them still works).
    private static func etag(md5: [UInt8], attributes: ObjectAttributes, in bucket: StoredBucket) -> String {
        guard bucket.record.defaultEncryption != nil, attributes.serverSideEncryption == "kms" else { return md5.hexString }
        return Hash.md5(md5 + Array("obs-local kms".utf8)).hexString
    }

    @discardableResult
    func headBucket(_ name: BucketName) throws(OBSLocalError) -> BucketRecord {
        guard let record = buckets.withLock({ $0[name.rawValue]?.record }) else { throw .noSuchBucket(name) }
        return record
    }

    func deleteBucket(_ name: BucketName) throws(OBSLocalError) {
        let failure: OBSLocalError? = buckets.withLock { all in
            guard let bucket = all[name.rawValue] else { return .noSuchBucket(name) }
            guard bucket.objects.isEmpty, bucket.uploads.isEmpty else {
                return OBSLocalError(.bucketNotEmpty, "The bucket you tried to delete is not empty.")
            }
            journal.removeBucket(name.rawValue)
            all[name.rawValue] = nil
            return nil
        }
        if let failure { throw failure }
    }

    /// Runs `body` on a bucket under the lock; NoSuchBucket when absent.
    func withBucket<T>(_ name: BucketName, _ body: (inout StoredBucket) throws(OBSLocalError) -> T) throws(OBSLocalError) -> T {
        let result: Result<T, OBSLocalError> = buckets.withLock { all in
            // Move the bucket out so the change below does not copy its dictionaries.
            guard var bucket = all.removeValue(forKey: name.rawValue) else { return .failure(.noSuchBucket(name)) }
            let result: Result<T, OBSLocalError>
            do throws(OBSLocalError) { result = .success(try body(&bucket)) } catch { result = .failure(error) }
            all[name.rawValue] = bucket
            journal.compactIfDue(all)
            return result
        }
        return try result.get()
    }

    private func internalError(_ error: any Error) -> OBSLocalError {
        OBSLocalError(.internalError, "We encountered an internal error: \(error)")
    }

    func journaled(_ body: () throws -> Void) throws(OBSLocalError) {
        do { try body() } catch { throw internalError(error) }
    }

    // MARK: Objects

    func object(_ bucket: BucketName, _ key: ObjectKey) throws(OBSLocalError) -> ObjectRecord {
        try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            guard let object = b.objects[StoredKey(key)] else { throw .noSuchKey(key) }
            return object
        }
    }

    /// Stores a new object from a written blob (PUT, copy), replacing any object of that key.
    func putObject(_ bucket: BucketName, _ key: ObjectKey, blob: WrittenBlob, etag: ETag? = nil,
                   attributes: ObjectAttributes, acl: AccessControl) throws(OBSLocalError) -> ObjectRecord {
        let defaultETag = try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            Self.etag(md5: blob.md5, attributes: attributes, in: b)
        }
        let record = ObjectRecord(key: key.rawValue, size: blob.length, etag: etag?.value ?? defaultETag,
                                  lastModified: nowMilliseconds, segments: blob.length > 0 ? [blob.segment] : [],
                                  attributes: attributes, acl: acl, checksums: blob.checksums)
        if blob.length == 0 { blobs.delete([blob.id]) }
        let replaced = try replaceObject(bucket, record)
        blobs.delete(replaced)
        return record
    }

    /// Installs `record`, returning the blobs of the object it replaced.
    private func replaceObject(_ bucket: BucketName, _ record: ObjectRecord) throws(OBSLocalError) -> [BlobID] {
        try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            try journaled { try journal.saveObject(record, bucket: bucket.rawValue) }
            let old = b.objects.updateValue(record, forKey: StoredKey(record.key))
            return unreferenced(old?.segments ?? [], by: record.segments)
        }
    }

    func unreferenced(_ old: [Segment], by new: [Segment]) -> [BlobID] {
        let kept = Set(new.map(\.blob))
        return old.map(\.blob).filter { !kept.contains($0) }
    }

    func deleteObject(_ bucket: BucketName, _ key: ObjectKey) throws(OBSLocalError) {
        let freed = try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) -> [BlobID] in
            guard let old = b.objects.removeValue(forKey: StoredKey(key)) else { return [] }
            journal.removeObject(key: key.rawValue, bucket: bucket.rawValue)
            return old.segments.map(\.blob)
        }
        blobs.delete(freed)
    }

    /// Changes an object's record in place (ACL, tags, metadata).
    func updateObject(_ bucket: BucketName, _ key: ObjectKey, _ change: (inout ObjectRecord) throws(OBSLocalError) -> Void) throws(OBSLocalError) -> ObjectRecord {
        try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            guard var object = b.objects[StoredKey(key)] else { throw .noSuchKey(key) }
            try change(&object)
            let updated = object
            try journaled { try journal.saveObject(updated, bucket: bucket.rawValue) }
            b.objects[StoredKey(key)] = updated
            return updated
        }
    }

    /// Checks an append before its body is read: the object is absent (position 0) or appendable
    /// and `position` equals its length.
    func checkAppend(_ bucket: BucketName, _ key: ObjectKey, position: Int64) throws(OBSLocalError) -> ObjectRecord? {
        try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            try Self.appendTarget(b.objects[StoredKey(key)], position: position)
        }
    }

    private static func appendTarget(_ existing: ObjectRecord?, position: Int64) throws(OBSLocalError) -> ObjectRecord? {
        guard let existing else {
            guard position == 0 else {
                throw OBSLocalError(.positionNotEqualToLength, "Position is not equal to the length of the object (0).")
            }
            return nil
        }
        guard existing.appendable else {
            throw OBSLocalError(.objectNotAppendable, "The object is not appendable.")
        }
        guard existing.size == position else {
            throw OBSLocalError(.positionNotEqualToLength, "Position is not equal to the length of the object (\(existing.size)).")
        }
        return existing
    }

    /// Appends a written blob at `position`; the first append creates the object with `attributes`.
    func append(_ bucket: BucketName, _ key: ObjectKey, position: Int64, blob: WrittenBlob,
                attributes: ObjectAttributes, acl: AccessControl) throws(OBSLocalError) -> ObjectRecord {
        try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            let existing = try Self.appendTarget(b.objects[StoredKey(key)], position: position)
            guard (existing?.size ?? 0) + blob.length <= ProtocolLimits.maximumObjectSize else {
                throw OBSLocalError(.entityTooLarge, "Your proposed upload exceeds the maximum allowed object size.")
            }
            var record = existing ?? ObjectRecord(key: key.rawValue, size: 0, etag: "", lastModified: 0, segments: [],
                                                  attributes: attributes, acl: acl, appendable: true,
                                                  checksums: StoredChecksums(crc64ecma: CRC(.crc64ecma), crc32c: CRC(.crc32c)))
            if blob.length > 0 { record.segments.append(blob.segment) }
            record.checksums = StoredChecksums.combining([(record.checksums, record.size), (blob.checksums, blob.length)])
            record.size += blob.length
            record.etag = ETag(md5: blob.md5).value
            record.lastModified = nowMilliseconds
            let updated = record
            try journaled { try journal.saveObject(updated, bucket: bucket.rawValue) }
            b.objects[StoredKey(key)] = updated
            return updated
        }
    }

    /// One page: a binary search to the first key after the marker under the prefix, then the
    /// page's keys in order (each common prefix skipped in one search), under the store lock.
    func listObjects(_ bucket: BucketName, prefix: String, delimiter: String?, marker: String?, maxKeys: Int) throws(OBSLocalError) -> ObjectListing {
        try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            var listing = ObjectListing()
            var lastReturned: String?
            b.objects.walk(prefix: Array(prefix.utf8), after: marker.map { Array($0.utf8) }) { object in
                let group = KeyGrouping.commonPrefix(of: object.key, prefix: prefix, delimiter: delimiter)
                // The marker may be a common prefix returned on the previous page.
                if let group, group == marker { return .skip(past: Array(group.utf8)) }
                if listing.objects.count + listing.commonPrefixes.count == maxKeys {
                    listing.isTruncated = true
                    return .stop
                }
                if let group {
                    listing.commonPrefixes.append(group)
                    lastReturned = group
                    return .skip(past: Array(group.utf8))
                }
                listing.objects.append(object)
                lastReturned = object.key
                return .next
            }
            if listing.isTruncated { listing.nextMarker = lastReturned }
            return listing
        }
    }

    // MARK: Multipart uploads

    func initiateUpload(_ bucket: BucketName, _ key: ObjectKey, attributes: ObjectAttributes, acl: AccessControl, initiatorID: String) throws(OBSLocalError) -> UploadRecord {
        var generator = SystemRandomNumberGenerator()
        let id = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }.hexString.uppercased()
        let record = UploadRecord(uploadID: id, key: key.rawValue, initiated: nowMilliseconds,
                                  attributes: attributes, acl: acl, initiatorID: initiatorID)
        try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            try journaled { try journal.saveUpload(record, bucket: bucket.rawValue) }
            b.uploads[id] = StoredUpload(record: record)
        }
        return record
    }

    /// The upload `id` of `key`; NoSuchUpload when absent or for another key.
    func upload(_ bucket: BucketName, _ key: ObjectKey, _ id: UploadID) throws(OBSLocalError) -> UploadRecord {
        try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            guard let upload = b.uploads[id.rawValue], StoredKey(upload.record.key) == StoredKey(key) else { throw .noSuchUpload(id) }
            return upload.record
        }
    }

    /// Records a part (replacing an earlier part of that number) and returns its ETag.
    func putPart(_ bucket: BucketName, _ key: ObjectKey, _ id: UploadID, number: PartNumber, blob: WrittenBlob) throws(OBSLocalError) -> PartRecord {
        let now = nowMilliseconds
        let (part, replaced) = try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) -> (PartRecord, BlobID?) in
            guard var upload = b.uploads[id.rawValue], StoredKey(upload.record.key) == StoredKey(key) else { throw .noSuchUpload(id) }
            let part = PartRecord(number: number.rawValue, size: blob.length, etag: Self.etag(md5: blob.md5, attributes: upload.record.attributes, in: b),
                                  lastModified: now, segment: blob.segment, checksums: blob.checksums)
            try journaled { try journal.savePart(part, uploadID: id.rawValue, bucket: bucket.rawValue) }
            let old = upload.parts.updateValue(part, forKey: number.rawValue)
            b.uploads[id.rawValue] = upload
            return (part, old?.segment.blob)
        }
        if let replaced { blobs.delete([replaced]) }
        return part
    }

    /// Completes an upload from the client's part list; checks order, ETags and sizes (every part
    /// but the last at least `minimumPartSize`, which depends on the request's dialect).
    /// `verify` checks the object's checksums (combined from the parts') before anything changes.
    func completeUpload(_ bucket: BucketName, _ key: ObjectKey, _ id: UploadID, parts requested: [(PartNumber, ETag)], minimumPartSize: Int64,
                        verify: (StoredChecksums?) throws(OBSLocalError) -> Void = { _ in }) throws(OBSLocalError) -> ObjectRecord {
        guard !requested.isEmpty else {
            throw .malformedXML
        }
        for index in requested.indices.dropFirst() where requested[index].0 <= requested[index - 1].0 {
            throw OBSLocalError(.invalidPartOrder, "The list of parts was not in ascending order. Parts must be ordered by part number.")
        }
        let (record, freed) = try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) -> (ObjectRecord, [BlobID]) in
            guard let upload = b.uploads[id.rawValue], StoredKey(upload.record.key) == StoredKey(key) else { throw .noSuchUpload(id) }
            var chosen: [PartRecord] = []
            for (index, (number, etag)) in requested.enumerated() {
                guard let part = upload.parts[number.rawValue], part.etag == etag.value.lowercased() else {
                    throw OBSLocalError(.invalidPart, "One or more of the specified parts could not be found or the specified entity tag might not have matched the part's entity tag (part \(number)).")
                }
                if index < requested.count - 1 && part.size < minimumPartSize {
                    throw OBSLocalError(.entityTooSmall, "Your proposed upload is smaller than the minimum allowed object size (part \(number) is \(part.size) bytes, the minimum is \(minimumPartSize)).")
                }
                chosen.append(part)
            }
            let md5s = chosen.map { ETag($0.etag).md5Bytes ?? [] }
            let segments = chosen.map(\.segment).filter { $0.length > 0 }
            let checksums = StoredChecksums.combining(chosen.map { ($0.checksums, $0.size) })
            try verify(checksums)
            let object = ObjectRecord(key: key.rawValue, size: chosen.reduce(0) { $0 + $1.size },
                                      etag: ETag.composite(partMD5s: md5s).value, lastModified: nowMilliseconds,
                                      segments: segments, attributes: upload.record.attributes, acl: upload.record.acl,
                                      checksums: checksums)
            try journaled { try journal.saveObject(object, bucket: bucket.rawValue) }
            journal.removeUpload(id.rawValue, bucket: bucket.rawValue)
            b.uploads[id.rawValue] = nil
            let old = b.objects.updateValue(object, forKey: StoredKey(key))
            let used = Set(segments.map(\.blob))
            let discarded = upload.parts.values.map(\.segment.blob).filter { !used.contains($0) }
            return (object, discarded + unreferenced(old?.segments ?? [], by: segments))
        }
        blobs.delete(freed)
        return record
    }

    /// Moves an upload's initiation `seconds` into the past (admin interface: tests of tools
    /// that pick uploads by age).
    func backdateUpload(_ bucket: BucketName, _ id: UploadID, seconds: Int64) throws(OBSLocalError) {
        try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            guard var upload = b.uploads[id.rawValue] else { throw .noSuchUpload(id) }
            upload.record.initiated -= seconds * 1000
            let record = upload.record
            try journaled { try journal.saveUpload(record, bucket: bucket.rawValue) }
            b.uploads[id.rawValue] = upload
        }
    }

    func abortUpload(_ bucket: BucketName, _ key: ObjectKey, _ id: UploadID) throws(OBSLocalError) {
        let freed = try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) -> [BlobID] in
            guard let upload = b.uploads[id.rawValue], StoredKey(upload.record.key) == StoredKey(key) else { throw .noSuchUpload(id) }
            journal.removeUpload(id.rawValue, bucket: bucket.rawValue)
            b.uploads[id.rawValue] = nil
            return upload.parts.values.map(\.segment.blob)
        }
        blobs.delete(freed)
    }

    func listParts(_ bucket: BucketName, _ key: ObjectKey, _ id: UploadID, marker: Int, maxParts: Int) throws(OBSLocalError) -> PartListing {
        let upload = try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            guard let upload = b.uploads[id.rawValue], StoredKey(upload.record.key) == StoredKey(key) else { throw .noSuchUpload(id) }
            return upload
        }
        let parts = upload.parts.values.filter { $0.number > marker }.sorted { $0.number < $1.number }
        var listing = PartListing(upload: upload.record, parts: Array(parts.prefix(maxParts)))
        if parts.count > maxParts {
            listing.isTruncated = true
            listing.nextPartNumberMarker = listing.parts.last?.number
        }
        return listing
    }

    func listUploads(_ bucket: BucketName, prefix: String, delimiter: String?, keyMarker: String?, uploadIDMarker: String?, maxUploads: Int) throws(OBSLocalError) -> UploadListing {
        let uploads = try withBucket(bucket) { (b: inout StoredBucket) throws(OBSLocalError) in
            b.uploads.values.map(\.record).filter { $0.key.utf8.starts(with: prefix.utf8) }
        }.sorted { a, b in
            let (keyA, keyB) = (ObjectKey(a.key), ObjectKey(b.key))
            if keyA < keyB || keyB < keyA { return keyA < keyB }
            return (a.initiated, a.uploadID) < (b.initiated, b.uploadID)
        }
        var listing = UploadListing()
        var count = 0
        var markerPassed = keyMarker == nil
        var markerInitiated: Int64?
        if let keyMarker, let uploadIDMarker {
            markerInitiated = uploads.first { StoredKey($0.key) == StoredKey(keyMarker) && $0.uploadID == uploadIDMarker }?.initiated
        }
        for upload in uploads {
            if !markerPassed, let keyMarker {
                let key = ObjectKey(upload.key), marker = ObjectKey(keyMarker)
                if key < marker { continue }
                if StoredKey(key) == StoredKey(marker) {
                    // With an upload-ID marker, uploads of the marker key after that upload follow.
                    guard let markerInitiated, let uploadIDMarker,
                          (upload.initiated, upload.uploadID) > (markerInitiated, uploadIDMarker) else { continue }
                }
                markerPassed = true
            }
            let group = KeyGrouping.commonPrefix(of: upload.key, prefix: prefix, delimiter: delimiter)
            if let group, group == listing.commonPrefixes.last || group == keyMarker { continue }
            if count == maxUploads {
                listing.isTruncated = true
                break
            }
            if let group {
                listing.commonPrefixes.append(group)
                listing.nextKeyMarker = group
                listing.nextUploadIDMarker = nil
            } else {
                listing.uploads.append(upload)
                listing.nextKeyMarker = upload.key
                listing.nextUploadIDMarker = upload.uploadID
            }
            count += 1
        }
        if !listing.isTruncated {
            listing.nextKeyMarker = nil
            listing.nextUploadIDMarker = nil
        }
        return listing
    }
}

/// Rolling keys up to a delimiter (CommonPrefixes).
enum KeyGrouping {
    /// `prefix` + the rest of `key` up to and including the first `delimiter` after the prefix,
    /// or nil when the key has no delimiter there. `key` starts with the bytes of `prefix`
    /// (listings match prefixes by bytes, not by canonical equivalence).
    static func commonPrefix(of key: String, prefix: String, delimiter: String?) -> String? {
        guard let delimiter, !delimiter.isEmpty else { return nil }
        let rest = key.utf8.dropFirst(prefix.utf8.count)
        let restText = Substring(rest)
        guard let range = restText.firstRange(of: delimiter) else { return nil }
        return prefix + String(restText[..<range.upperBound])
    }
}

/// Bucket naming rules: 3–63 characters, lower-case letters, digits, `-` and `.`, starting and
/// ending with a letter or digit, no `..`, not an IP address.
enum BucketNaming {
    static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
        guard alnum(bytes.first!), alnum(bytes.last!) else { return false }
        guard bytes.allSatisfy({ alnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }) else { return false }
        guard !name.contains(".."), !name.contains(".-"), !name.contains("-.") else { return false }
        let looksLikeIP = name.split(separator: ".").count == 4 && name.split(separator: ".").allSatisfy { UInt8($0) != nil }
        return !looksLikeIP
    }
}
