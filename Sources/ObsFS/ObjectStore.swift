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

    public init(size: Int64, etag: ETag?, lastModified: Timestamp?) {
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
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
    /// Lists keys under `prefix`, grouping at `delimiter`, starting after `marker`.
    func listObjects(prefix: String, delimiter: String, marker: String?, maxKeys: Int) async throws -> ObjectListing
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
    func deleteObject(_ key: ObjectKey) async throws
}
