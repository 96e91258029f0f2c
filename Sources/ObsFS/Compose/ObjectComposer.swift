// What the composition executor needs from an object store: the multipart operations, a copy
// of a base range pinned to the base's ETag, and ranged reads (ObjectReader). OBSClientStore
// implements it (OBSClientStore+Compose.swift); tests use an in-memory composer.
import OBSClient
import OBSProtocol

/// Multipart uploads whose parts may be server-side copies of a pinned base. Every call may be
/// made from any task, concurrently. The requirements other than `copyPart` are ObjectStore's.
public protocol ObjectComposer: ObjectReader {
    func initiateUpload(_ key: ObjectKey, options: ObjectOptions) async throws -> UploadID
    func uploadPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, body: MemoryRegion, integrity: PartIntegrity,
                    customerKey: CustomerKey?) async throws -> PartReceipt
    /// Copies the bytes `range` of `source` into part `number`, only while the source's ETag is
    /// `sourceETag` (else throws `ObjectChangedError`); returns the part's ETag as the store
    /// answers it (not always an MD5: SeaweedFS answers other tags for copied parts).
    /// `customerKey` (SSE-C) opens the source and goes with the part, as both use the file's key.
    func copyPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, source: ObjectKey, range: Range<Int64>,
                  sourceETag: ETag?, customerKey: CustomerKey?) async throws -> ETag
    func completeUpload(_ key: ObjectKey, uploadID: UploadID, parts: [PartReceipt]) async throws -> StoredObject
    func abortUpload(_ key: ObjectKey, uploadID: UploadID) async throws
    func putEmptyObject(_ key: ObjectKey, options: ObjectOptions) async throws -> ETag
}

/// The bytes written since open, which the new object holds at the same offsets.
public protocol ChangedBytes: Sendable {
    /// Copies the changed bytes `range` (entirely inside the changed ranges the plan was made
    /// from) to `destination`, which is exactly `range.count` bytes.
    func copyBytes(_ range: Range<Int64>, into destination: UnsafeMutableRawBufferPointer)
}
