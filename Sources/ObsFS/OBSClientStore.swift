// The ObjectStore the mount uses: OBSClient operations on one bucket.
import Logging
import OBSClient
import OBSProtocol

/// `ObjectStore` over an `OBSClient`, for one bucket. Errors stay `OBSClientError`
/// (ErrnoMapping reads the service code out of them).
public struct OBSClientStore: ObjectStore {
    public let client: OBSClient
    public let bucket: BucketName
    /// The mount's SSE-C key (`sse_c_key_file=`): a HEAD refused with 400 is sent again with it,
    /// for SSE-C objects, whose HEAD needs the key.
    public let customerKey: CustomerKey?
    /// The checksum the mount's parts carry (`checksum=`), declared on initiation where the
    /// dialect wants it.
    public let checksum: ChecksumAlgorithm?
    /// The bucket is a parallel file system (decided at mount by HEAD bucket): the native
    /// rename, modify and truncate apply (OBSClientStore+FileSystemBucket.swift).
    public var isFileSystemBucket: Bool

    /// The journal of this mount's open uploads and the retries of failed aborts; nil: none kept.
    public let uploadJournal: UploadJournal?
    public let backgroundAborts: BackgroundAborts?

    public init(client: OBSClient, bucket: BucketName, customerKey: CustomerKey? = nil, checksum: ChecksumAlgorithm? = nil,
                isFileSystemBucket: Bool = false, journal: UploadJournal? = nil, logger: Logger = Logger(label: "obsmount")) {
        self.client = client
        self.bucket = bucket
        self.customerKey = customerKey
        self.checksum = checksum
        self.isFileSystemBucket = isFileSystemBucket
        uploadJournal = journal
        // A background abort tries quickly; its own back-off spaces the rounds.
        let quick = client.retrying(RetryPolicy())
        backgroundAborts = journal.map { journal in
            BackgroundAborts(journal: journal, logger: logger) { upload in
                try await quick.abortMultipartUpload(bucket: bucket, key: upload.key, uploadID: upload.uploadID)
            }
        }
    }

    /// Aborts, in the background, the uploads that mounts of this bucket and prefix which are gone
    /// left in their journals; returns them.
    public func abortOrphanedUploads() -> [JournaledUpload] {
        guard let uploadJournal, let backgroundAborts else { return [] }
        let orphans = uploadJournal.adoptOrphans()
        for orphan in orphans { backgroundAborts.add(orphan, reason: "left by an earlier mount that ended without finishing it") }
        return orphans
    }

    /// A one-key listing: unlike HEAD bucket it answers with the error code (InvalidAccessKeyId,
    /// SignatureDoesNotMatch, NoSuchBucket, AccessDenied) for the one-line diagnosis.
    public func checkBucket() async throws {
        _ = try await client.listObjects(bucket: bucket, maxKeys: 1)
    }

    public func headObject(_ key: ObjectKey) async throws -> ObjectAttributes? {
        guard let info = try await head(key, customerKey: nil) else { return nil }
        return ObjectAttributes(size: info.contentLength, etag: info.etag, lastModified: info.lastModified, metadata: info.metadata,
                                contentType: info.contentType)
    }

    /// HEAD; nil for 404. A 400 is retried with the mount's SSE-C key, when there is one.
    func head(_ key: ObjectKey, customerKey: CustomerKey?) async throws -> ObjectInfo? {
        let status: Int
        do {
            return try await client.headObject(bucket: bucket, key: key, customerKey: customerKey)
        } catch {
            guard case .service(let service) = error else { throw error }
            status = service.status
            guard status == 404 || (status == 400 && customerKey == nil && self.customerKey != nil) else { throw error }
        }
        return status == 404 ? nil : try await head(key, customerKey: self.customerKey)
    }

    public func listObjects(prefix: String, delimiter: String?, marker: String?, maxKeys: Int) async throws -> ObjectListing {
        let page = try await client.listObjects(bucket: bucket, prefix: prefix, delimiter: delimiter, after: marker.map(ObjectKey.init), maxKeys: maxKeys)
        var next: String?
        if page.isTruncated {
            // NextMarker comes with a delimiter; else the page's last entry is the marker.
            let last = [page.contents.last?.key.rawValue, page.commonPrefixes.last].compactMap { $0 }.max { ObjectKey($0) < ObjectKey($1) }
            next = page.nextMarker?.rawValue ?? last
        }
        return ObjectListing(
            objects: page.contents.map { ObjectListing.Entry(key: $0.key, attributes: ObjectAttributes(size: $0.size, etag: $0.etag, lastModified: $0.lastModified)) },
            commonPrefixes: page.commonPrefixes,
            nextMarker: next)
    }

    public func initiateUpload(_ key: ObjectKey, options: ObjectOptions) async throws -> UploadID {
        let uploadID = try await client.initiateMultipartUpload(bucket: bucket, key: key, options: options, checksum: checksum)
        uploadJournal?.recordInitiated(JournaledUpload(key: key, uploadID: uploadID))
        return uploadID
    }

    public func uploadPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, body: MemoryRegion, integrity: PartIntegrity,
                           customerKey: CustomerKey?) async throws -> PartReceipt {
        try await client.uploadPart(bucket: bucket, key: key, uploadID: uploadID, partNumber: number, body: body, integrity: integrity,
                                    customerKey: customerKey)
    }

    public func completeUpload(_ key: ObjectKey, uploadID: UploadID, parts: [PartReceipt]) async throws -> StoredObject {
        let stored = try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: uploadID, receipts: parts)
        uploadJournal?.recordFinished(uploadID)
        return stored
    }

    /// With a journal, a failed abort is handed to the background retries before the error is
    /// thrown, and tried only a few times here: close() does not wait for an outage twice.
    public func abortUpload(_ key: ObjectKey, uploadID: UploadID) async throws {
        guard let uploadJournal, let backgroundAborts else {
            return try await client.abortMultipartUpload(bucket: bucket, key: key, uploadID: uploadID)
        }
        do {
            // The quick attempts a failing close() waits for: no retry starts after 2 s, however
            // long each attempt stalls (the background aborts retry the rest).
            try await client.retrying(RetryPolicy(timeLimit: .seconds(2))).abortMultipartUpload(bucket: bucket, key: key, uploadID: uploadID)
            uploadJournal.recordFinished(uploadID)
        } catch {
            if error.serviceCode == .noSuchUpload {
                uploadJournal.recordFinished(uploadID)
            } else {
                backgroundAborts.add(JournaledUpload(key: key, uploadID: uploadID), reason: "its abort failed: \(error)",
                                     startAfter: .seconds(1))
            }
            throw error
        }
    }

    public func putEmptyObject(_ key: ObjectKey, options: ObjectOptions) async throws -> ETag {
        try await client.putObject(bucket: bucket, key: key, bytes: [], options: options).etag
    }

    public func putObject(_ key: ObjectKey, bytes: [UInt8], options: ObjectOptions) async throws -> ETag {
        try await client.putObject(bucket: bucket, key: key, bytes: bytes, options: options).etag
    }

    public func objectBytes(_ key: ObjectKey) async throws -> [UInt8]? {
        do {
            return try await client.getObjectBytes(bucket: bucket, key: key, limit: 1 << 20).bytes
        } catch .service(let error) where error.status == 404 {
            return nil
        }
    }

    public func copyObject(_ source: ObjectKey, to destination: ObjectKey, options: ObjectOptions) async throws -> ETag {
        try await client.copyObject(from: bucket, source, to: bucket, destination, metadata: .replace(options)).etag
    }

    public func copyPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, source: ObjectKey, range: ClosedRange<Int64>) async throws -> ETag {
        try await client.copyPart(bucket: bucket, key: key, uploadID: uploadID, partNumber: number, sourceBucket: bucket, sourceKey: source,
                                  sourceRange: range)
    }

    public func deleteObject(_ key: ObjectKey) async throws {
        try await client.deleteObject(bucket: bucket, key: key)
    }
}
