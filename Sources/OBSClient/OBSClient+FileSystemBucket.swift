// Parallel file system (PFS) buckets: OBS buckets created with `x-obs-fs-file-interface:
// Enabled` also serve rename (`POST ?name=&rename`), modify (`PUT ?modify&position=`) and
// truncate (`PUT ?truncate&length=`) of objects. Elsewhere these fail (obs-local answers 405
// MethodNotAllowed); `isFileSystemBucket` tells which kind a bucket is.
//
// Retries: modify and truncate are idempotent and retried as any request. Rename is not: when an
// attempt was lost in transport and the retry answers NoSuchKey, the first attempt may have done
// the rename; it is taken as done when the new name exists.
import CurlTransport
import OBSHashing
import OBSProtocol

extension OBSClient {
    /// The header that creates a parallel file system bucket and that HEAD bucket answers for
    /// one (the same name in every dialect).
    static let fileInterfaceHeader = "x-obs-fs-file-interface"

    /// Whether the bucket is a parallel file system (HEAD bucket answers
    /// `x-obs-fs-file-interface: Enabled`). A missing bucket is `.service` NoSuchBucket.
    public func isFileSystemBucket(_ bucket: BucketName) async throws(OBSClientError) -> Bool {
        let response = try await send(OperationRequest(operation: "HeadBucket", method: "HEAD", bucket: bucket))
        return response.headers[Self.fileInterfaceHeader]?.lowercasedASCII == "enabled"
    }

    /// Creates a parallel file system bucket.
    public func createFileSystemBucket(_ bucket: BucketName) async throws(OBSClientError) {
        var headers = HeaderFields()
        headers[Self.fileInterfaceHeader] = "Enabled"
        _ = try await send(OperationRequest(operation: "CreateBucket", method: "PUT", bucket: bucket, headers: headers))
    }

    /// Renames an object, or a directory (`key/` and every key under it) in one request; an
    /// object of the new name is replaced. The new name goes as an absolute path (`/new/key`).
    public func renameObject(bucket: BucketName, key: ObjectKey, to newKey: ObjectKey) async throws(OBSClientError) {
        let call = OperationRequest(operation: "RenameObject", method: "POST", bucket: bucket, key: key,
                                    query: [QueryItem("name", "/" + newKey.rawValue), QueryItem("rename")])
        var history = AttemptHistory()
        do {
            _ = try await send(call, history: &history)
        } catch .service(let error) where error.code == .noSuchKey && history.earlierAttemptLostInTransport {
            guard await exists(bucket: bucket, key: newKey) else { throw .service(error) }
            logger.notice("rename answered NoSuchKey after a lost attempt; the new name exists",
                          metadata: ["bucket": "\(bucket)", "key": "\(key)", "to": "\(newKey)"])
        }
    }

    /// An object of that key, or keys under `key/`.
    private func exists(bucket: BucketName, key: ObjectKey) async -> Bool {
        if (try? await headObject(bucket: bucket, key: key)) != nil { return true }
        let prefix = key.rawValue.hasSuffix("/") ? key.rawValue : key.rawValue + "/"
        guard let page = try? await listObjects(bucket: bucket, prefix: prefix, maxKeys: 1) else { return false }
        return !page.contents.isEmpty || !page.commonPrefixes.isEmpty
    }

    /// Writes caller memory over an existing object from byte `position` (at most its length; the
    /// object grows when the body reaches past its end); at most 5 GB per call. `md5`, when
    /// given, is sent as Content-MD5. Returns the object's new ETag, if the service sent one (it
    /// is not the MD5 of the content).
    public func modifyObject(bucket: BucketName, key: ObjectKey, position: Int64, body: MemoryRegion,
                             md5: [UInt8]? = nil) async throws(OBSClientError) -> ETag? {
        guard position >= 0 else { throw .invalidArgument("a modify position is not negative, not \(position)") }
        guard Int64(body.count) <= ProtocolLimits.maximumPartSize else {
            throw .invalidArgument("a modify writes at most \(ProtocolLimits.maximumPartSize) bytes, not \(body.count)")
        }
        var headers = HeaderFields()
        if let md5 { headers["Content-MD5"] = Base64.encode(md5) }
        let response = try await send(OperationRequest(operation: "ModifyObject", method: "PUT", bucket: bucket, key: key,
                                                       query: [QueryItem("modify"), QueryItem("position", String(position))],
                                                       headers: headers, body: .memory(body)))
        return response.headers["ETag"].map(ETag.init)
    }

    /// Sets an object's length: shorter cuts it, longer appends zero bytes.
    public func truncateObject(bucket: BucketName, key: ObjectKey, length: Int64) async throws(OBSClientError) {
        guard length >= 0 else { throw .invalidArgument("a length is not negative, not \(length)") }
        _ = try await send(OperationRequest(operation: "TruncateObject", method: "PUT", bucket: bucket, key: key,
                                            query: [QueryItem("truncate"), QueryItem("length", String(length))]))
    }
}
