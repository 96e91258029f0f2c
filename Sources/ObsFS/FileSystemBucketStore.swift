// What an OBS parallel file system (PFS) bucket adds to an object store: a rename that moves a
// file or a whole directory in one atomic request, and writes and length changes of an object in
// place, without composing a new object. The filesystem asks `ObjectStore.fileSystemBucket` and
// takes these paths when it answers a store; otherwise it falls back to copies and multipart
// composes. OBSClientStore conforms (OBSClientStore+FileSystemBucket.swift) and answers a
// store only when HEAD bucket said `x-obs-fs-file-interface: Enabled` at mount.
import OBSProtocol

/// An object store whose bucket is a parallel file system. Errors as `ObjectStore`'s
/// (`ErrnoMapping` maps them).
public protocol FileSystemBucketStore: ObjectStore {
    /// True when the bucket serves the native operations below; a store that conforms but
    /// answers false is an ordinary bucket.
    var isFileSystemBucket: Bool { get }
    /// Renames `source` to `destination` in one request: a file (an object of the new name is
    /// replaced), or a directory when `source` ends in `/` (the marker and every key under it;
    /// the destination directory must be empty). 404 NoSuchKey when nothing has that name.
    func renameNatively(_ source: ObjectKey, to destination: ObjectKey) async throws
    /// Writes `bytes` (at most 5 GB) over the object from `position`, which is at most its
    /// length; the object grows when the bytes reach past its end. Returns the new ETag when the
    /// store sent one (not the MD5 of the content).
    func modifyNatively(_ key: ObjectKey, position: Int64, bytes: MemoryRegion) async throws -> ETag?
    /// Sets the object's length: shorter cuts it, longer appends zeros.
    func truncateNatively(_ key: ObjectKey, length: Int64) async throws
    /// Sets the object's user metadata to `metadata`, every name given (the other headers stay):
    /// the native writes keep the metadata, and with it the modification time s3fs's `mtime`
    /// holds.
    func replaceUserMetadataNatively(_ key: ObjectKey, with metadata: [String: String]) async throws
}

extension ObjectStore {
    /// This store as a parallel file system bucket, when it is one; nil for ordinary buckets.
    public var fileSystemBucket: (any FileSystemBucketStore)? {
        guard let store = self as? any FileSystemBucketStore, store.isFileSystemBucket else { return nil }
        return store
    }
}
