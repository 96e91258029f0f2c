// What the filesystem needs from an object store. The OBS client implements it
// (OBSClientStore); tests use an in-memory store and a fault-injecting one. Part receipts and
// stored objects are the client's types: integrity is decided there, once.
import OBSClient
import OBSProtocol

/// What the store knows about one object.
public struct ObjectAttributes: Sendable, Equatable {
    public var size: Int64
    public var etag: ETag?
    public var lastModified: Timestamp?
    /// User metadata (names without the dialect's prefix); empty where the answer has none (listings).
    public var metadata: [String: String]
    public var contentType: String?

    public init(size: Int64, etag: ETag?, lastModified: Timestamp?, metadata: [String: String] = [:], contentType: String? = nil) {
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
        self.metadata = metadata
        self.contentType = contentType
    }
}

/// One page of a listing with a delimiter.
public struct ObjectListing: Sendable {
    public struct Entry: Sendable {
        public var key: ObjectKey
        public var attributes: ObjectAttributes
        public init(key: ObjectKey, attributes: ObjectAttributes) {
            self.key = key
            self.attributes = attributes
        }
    }

    public var objects: [Entry]
    /// Common prefixes, each ending with the delimiter.
    public var commonPrefixes: [String]
    /// The marker for the next page; nil on the last page.
    public var nextMarker: String?

    public init(objects: [Entry], commonPrefixes: [String], nextMarker: String?) {
        self.objects = objects
        self.commonPrefixes = commonPrefixes
        self.nextMarker = nextMarker
    }
}

/// The object-store operations the filesystem uses. Errors are `ServiceError` for answers of
/// the store and anything else for transport failures; `ErrnoMapping` turns both into errno.
/// Every call may be made from any task, concurrently.
public protocol ObjectStore: Sendable {
    /// One request that proves the bucket exists and the credentials are accepted.
    func checkBucket() async throws
    /// The object's attributes, nil when it does not exist.
    func headObject(_ key: ObjectKey) async throws -> ObjectAttributes?
    /// Lists keys under `prefix`, grouping at `delimiter` (none: every key below), starting after `marker`.
    func listObjects(prefix: String, delimiter: String?, marker: String?, maxKeys: Int) async throws -> ObjectListing
    func initiateUpload(_ key: ObjectKey, options: ObjectOptions) async throws -> UploadID
    /// Sends one part straight from `body` with what proves its bytes (Content-MD5 or a checksum)
    /// and the upload's SSE-C key, which every part must carry. The receipt's verdict is final:
    /// the store has decided integrity from the answer (a mismatch throws).
    func uploadPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, body: MemoryRegion, integrity: PartIntegrity,
                    customerKey: CustomerKey?) async throws -> PartReceipt
    /// Completes with the receipts of the parts (ascending); the object's checksum and the
    /// composite ETag are derived and checked from them (a mismatch throws).
    func completeUpload(_ key: ObjectKey, uploadID: UploadID, parts: [PartReceipt]) async throws -> StoredObject
    func abortUpload(_ key: ObjectKey, uploadID: UploadID) async throws
    /// Creates a zero-byte object; returns its ETag.
    func putEmptyObject(_ key: ObjectKey, options: ObjectOptions) async throws -> ETag
    /// Creates a small object (a directory marker, a symlink) in one request; returns its ETag.
    func putObject(_ key: ObjectKey, bytes: [UInt8], options: ObjectOptions) async throws -> ETag
    /// A small object's bytes (at most 1 MiB: a symlink's target, directory attributes); nil
    /// when it does not exist.
    func objectBytes(_ key: ObjectKey) async throws -> [UInt8]?
    /// Copies `source` to `destination` server-side, replacing the metadata with `options` (which
    /// carry everything the copy keeps: metadata, Content-Type, storage class, ACL, encryption).
    func copyObject(_ source: ObjectKey, to destination: ObjectKey, options: ObjectOptions) async throws -> ETag
    /// Copies a byte range of `source` into part `number` of an upload; returns the part's ETag.
    func copyPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, source: ObjectKey, range: ClosedRange<Int64>) async throws -> ETag
    func deleteObject(_ key: ObjectKey) async throws
}
