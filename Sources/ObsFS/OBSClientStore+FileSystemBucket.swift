// OBSClientStore on a parallel file system bucket: the native rename, modify and truncate of
// OBSClient+FileSystemBucket.swift. `isFileSystemBucket` is decided once at mount (HEAD bucket);
// on an ordinary bucket `fileSystemBucket` is nil and these are not called.
import OBSClient
import OBSHashing
import OBSProtocol

extension OBSClientStore: FileSystemBucketStore {
    public func renameNatively(_ source: ObjectKey, to destination: ObjectKey) async throws {
        try await client.renameObject(bucket: bucket, key: source, to: destination)
    }

    /// The body goes with its Content-MD5, so the store refuses bytes damaged on the way.
    public func modifyNatively(_ key: ObjectKey, position: Int64, bytes: MemoryRegion) async throws -> ETag? {
        let digest = StreamingDigest(.md5)
        digest.update(bytes.bytes)
        return try await client.modifyObject(bucket: bucket, key: key, position: position, body: bytes, md5: digest.finalize())
    }

    public func truncateNatively(_ key: ObjectKey, length: Int64) async throws {
        try await client.truncateObject(bucket: bucket, key: key, length: length)
    }

    /// `PUT ?metadata` with `REPLACE_NEW` and the whole user metadata: the names given replace
    /// theirs (whether the store merges them by name or replaces the set), Content-Type and the
    /// other headers stay.
    public func replaceUserMetadataNatively(_ key: ObjectKey, with metadata: [String: String]) async throws {
        var options = ObjectOptions()
        options.metadata = metadata
        try await client.modifyMetadata(bucket: bucket, key: key, directive: .replaceNew, options: options)
    }
}
