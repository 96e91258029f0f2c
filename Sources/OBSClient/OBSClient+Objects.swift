// Single-object operations: put, append, get, head, delete, list, copy, metadata, ACL; and the
// bucket operations.
import CurlTransport
import OBSHashing
import OBSProtocol

/// How a copy sets the destination's metadata.
public enum CopyMetadata: Sendable {
    /// Keep the source's metadata (`metadata-directive: COPY`).
    case copy
    /// Replace it with these options (`REPLACE`).
    case replace(ObjectOptions)
}

/// How `PUT ?metadata` treats the metadata it does not name.
public enum MetadataDirective: String, Sendable {
    /// Change or add the given fields, keep the rest.
    case replaceNew = "REPLACE_NEW"
    /// Replace everything but the storage class with the given fields.
    case replace = "REPLACE"
}

/// The result of a read into caller memory.
public struct ObjectRead: Sendable {
    /// What the reply's headers say about the object.
    public var info: ObjectInfo
    /// Bytes written at the start of the destination.
    public var byteCount: Int
}

/// The result of an append.
public struct AppendResult: Sendable, Equatable {
    /// The position the next append must give: the object's new length.
    public var nextPosition: Int64
    /// The object's ETag after the append, if the service sent one.
    public var etag: ETag?
}

extension OBSClientError {
    /// The service refused a conditional request (`If-Match` and friends): 412
    /// PreconditionFailed. A read pinned to an ETag fails so when the object was replaced.
    public var isPreconditionFailed: Bool {
        guard case .service(let error) = self else { return false }
        return error.status == 412 || error.code == .preconditionFailed
    }
}

extension OBSClient {
    // MARK: Writing

    /// Writes a whole object from caller memory (sent in place). `md5`, when given, is sent as
    /// Content-MD5 and compared with the returned ETag (unless the object is encrypted with KMS
    /// or a customer key).
    public func putObject(bucket: BucketName, key: ObjectKey, body: MemoryRegion, md5: [UInt8]? = nil,
                          options: ObjectOptions = ObjectOptions()) async throws(OBSClientError) -> StoredObject {
        try await put(bucket: bucket, key: key, body: .memory(body), md5: md5, options: options)
    }

    /// Writes a small whole object from bytes; the MD5 is computed and checked.
    public func putObject(bucket: BucketName, key: ObjectKey, bytes: [UInt8], options: ObjectOptions = ObjectOptions()) async throws(OBSClientError) -> StoredObject {
        try await put(bucket: bucket, key: key, body: .bytes(bytes), md5: Hash.md5(bytes), options: options)
    }

    private func put(bucket: BucketName, key: ObjectKey, body: RequestBody, md5: [UInt8]?, options: ObjectOptions) async throws(OBSClientError) -> StoredObject {
        var headers = try headers(for: options)
        if let md5 { headers["Content-MD5"] = Base64.encode(md5) }
        let call = OperationRequest(operation: "PutObject", method: "PUT", bucket: bucket, key: key, headers: headers, body: body)
        let response = try await send(call)
        guard let header = response.headers["ETag"] else { throw malformed(call, response, "no ETag header") }
        let etag = ETag(header)
        let verdict = try verdict(on: response, etag: etag, md5: md5, checksum: nil, expectedETag: md5.map { ETag(md5: $0) })
        return StoredObject(etag: etag, versionID: response.headers[dialect.header("version-id")].map(VersionID.init), verdict: verdict)
    }

    /// Appends caller memory to an appendable object (or creates one at position 0). The
    /// position must equal the object's current length (`409 PositionNotEqualToLength`).
    /// `options` apply when the append creates the object.
    public func appendObject(bucket: BucketName, key: ObjectKey, position: Int64, body: MemoryRegion, md5: [UInt8]? = nil,
                             options: ObjectOptions = ObjectOptions()) async throws(OBSClientError) -> AppendResult {
        var headers = try headers(for: options)
        if let md5 { headers["Content-MD5"] = Base64.encode(md5) }
        let call = OperationRequest(operation: "AppendObject", method: "POST", bucket: bucket, key: key,
                                    query: [QueryItem("append"), QueryItem("position", String(position))], headers: headers, body: .memory(body))
        let response = try await send(call)
        guard let next = response.headers["x-obs-next-append-position"].flatMap({ Int64($0) }) else {
            throw malformed(call, response, "no x-obs-next-append-position header")
        }
        return AppendResult(nextPosition: next, etag: response.headers["ETag"].map(ETag.init))
    }

    // MARK: Reading

    /// Reads an object, or the inclusive byte `range` of it, straight into caller memory.
    /// Fails with a transport `.responseTooLarge` error if the body does not fit. `customerKey`
    /// reads an SSE-C object; `ifMatch` fails the read with `PreconditionFailed` (412,
    /// `OBSClientError.isPreconditionFailed`) when the object's ETag is another.
    public func getObject(bucket: BucketName, key: ObjectKey, range: ClosedRange<Int64>? = nil, into destination: MemoryRegion,
                          customerKey: CustomerKey? = nil, ifMatch: ETag? = nil) async throws(OBSClientError) -> ObjectRead {
        let call = getCall(bucket: bucket, key: key, range: range, destination: .memory(destination), customerKey: customerKey, ifMatch: ifMatch)
        let response = try await send(call)
        try checkRange(range, call, response)
        return ObjectRead(info: ObjectInfo(headers: response.headers, dialect: dialect), byteCount: response.bytesWritten)
    }

    /// Reads a small object (or range) into bytes, at most `limit` of them.
    public func getObjectBytes(bucket: BucketName, key: ObjectKey, range: ClosedRange<Int64>? = nil, limit: Int = 16 << 20,
                               customerKey: CustomerKey? = nil, ifMatch: ETag? = nil) async throws(OBSClientError) -> (bytes: [UInt8], info: ObjectInfo) {
        let call = getCall(bucket: bucket, key: key, range: range, destination: .collect(limit: limit), customerKey: customerKey, ifMatch: ifMatch)
        let response = try await send(call)
        try checkRange(range, call, response)
        return (response.body, ObjectInfo(headers: response.headers, dialect: dialect))
    }

    private func getCall(bucket: BucketName, key: ObjectKey, range: ClosedRange<Int64>?, destination: ResponseDestination,
                         customerKey: CustomerKey?, ifMatch: ETag?) -> OperationRequest {
        var headers = customerKey?.headers(for: dialect) ?? HeaderFields()
        if let ifMatch { headers["If-Match"] = ifMatch.quoted }
        if let range { headers["Range"] = "bytes=\(range.lowerBound)-\(range.upperBound)" }
        return OperationRequest(operation: "GetObject", method: "GET", bucket: bucket, key: key, headers: headers, destination: destination)
    }

    /// A server that ignores Range answers 200 with the whole object: the bytes then start at 0.
    private func checkRange(_ range: ClosedRange<Int64>?, _ call: OperationRequest, _ response: HTTPResponse) throws(OBSClientError) {
        if let range, range.lowerBound > 0, response.status != 206 {
            throw malformed(call, response, "asked for bytes \(range), got status \(response.status) without a range")
        }
    }

    /// An object's attributes. A missing object is `.service` with code `NoSuchKey`.
    public func headObject(bucket: BucketName, key: ObjectKey, customerKey: CustomerKey? = nil) async throws(OBSClientError) -> ObjectInfo {
        let response = try await send(OperationRequest(operation: "HeadObject", method: "HEAD", bucket: bucket, key: key,
                                                       headers: customerKey?.headers(for: dialect) ?? HeaderFields()))
        return ObjectInfo(headers: response.headers, dialect: dialect)
    }

    // MARK: Deleting, listing, copying

    /// Deletes an object (or one version of it). Deleting a missing key succeeds.
    public func deleteObject(bucket: BucketName, key: ObjectKey, versionID: VersionID? = nil) async throws(OBSClientError) {
        let query = versionID.map { [QueryItem("versionId", $0.rawValue)] } ?? []
        _ = try await send(OperationRequest(operation: "DeleteObject", method: "DELETE", bucket: bucket, key: key, query: query))
    }

    /// One page of a bucket listing after `marker`. Keys are requested with the configured
    /// `encoding-type` (URL-encoded by default, so any key survives XML) and come back decoded.
    public func listObjects(bucket: BucketName, prefix: String? = nil, delimiter: String? = nil, after marker: ObjectKey? = nil,
                            maxKeys: Int? = nil) async throws(OBSClientError) -> ListBucketResult {
        var query = keyEncodingQuery
        if let prefix { query.append(QueryItem("prefix", prefix)) }
        if let delimiter { query.append(QueryItem("delimiter", delimiter)) }
        if let marker { query.append(QueryItem("marker", marker.rawValue)) }
        if let maxKeys { query.append(QueryItem("max-keys", String(maxKeys))) }
        let call = OperationRequest(operation: "ListObjects", method: "GET", bucket: bucket, query: query)
        return try decode(ListBucketResult.self, try await send(call), call)
    }

    /// All pages of a bucket listing.
    public func allObjects(bucket: BucketName, prefix: String? = nil, delimiter: String? = nil, pageSize: Int? = nil) -> Pages<ListBucketResult, ObjectKey> {
        Pages(start: nil) { [self] (marker: ObjectKey?) async throws(OBSClientError) in
            let page = try await listObjects(bucket: bucket, prefix: prefix, delimiter: delimiter, after: marker, maxKeys: pageSize)
            guard page.isTruncated else { return (page, nil) }
            // NextMarker is only sent with a delimiter; else the listing continues after its last entry.
            let last = [page.contents.last?.key, page.commonPrefixes.last.map(ObjectKey.init)].compactMap { $0 }.max()
            guard let next = page.nextMarker ?? last, marker.map({ $0 < next }) ?? true else {
                throw .malformedResponse(operation: "ListObjects", detail: "truncated listing without a new marker", requestID: nil)
            }
            return (page, next)
        }
    }

    /// Copies an object server-side.
    public func copyObject(from sourceBucket: BucketName, _ sourceKey: ObjectKey, version sourceVersion: VersionID? = nil,
                           to bucket: BucketName, _ key: ObjectKey, metadata: CopyMetadata = .copy) async throws(OBSClientError) -> StoredObject {
        var headers = HeaderFields()
        if case .replace(let options) = metadata { headers = try self.headers(for: options) }
        headers[dialect.header("copy-source")] = copySource(sourceBucket, sourceKey, sourceVersion)
        headers[dialect.header("metadata-directive")] = if case .copy = metadata { "COPY" } else { "REPLACE" }
        let call = OperationRequest(operation: "CopyObject", method: "PUT", bucket: bucket, key: key, headers: headers)
        let response = try await send(call)
        if let error = embeddedError(in: response) { throw .service(error) }
        let result = try decode(CopyObjectResult.self, response, call)
        return StoredObject(etag: result.etag, versionID: response.headers[dialect.header("version-id")].map(VersionID.init))
    }

    /// Changes an object's metadata in place (`PUT ?metadata`): content type and encoding,
    /// user metadata, storage class, website redirect from `options`.
    ///
    /// An OBS operation: S3 servers do not know it. SeaweedFS takes the V4 request for a
    /// PutObject and truncates the object to 0 bytes (and rejects the V2 signature); there,
    /// copy the object onto itself with `CopyMetadata.replace` instead.
    public func modifyMetadata(bucket: BucketName, key: ObjectKey, directive: MetadataDirective,
                               options: ObjectOptions) async throws(OBSClientError) {
        var headers = try headers(for: options)
        headers[dialect.header("metadata-directive")] = directive.rawValue
        _ = try await send(OperationRequest(operation: "SetObjectMetadata", method: "PUT", bucket: bucket, key: key,
                                            query: [QueryItem("metadata")], headers: headers))
    }

    // MARK: ACL

    /// An object's ACL.
    public func objectACL(bucket: BucketName, key: ObjectKey) async throws(OBSClientError) -> AccessControlPolicy {
        let call = OperationRequest(operation: "GetObjectAcl", method: "GET", bucket: bucket, key: key, query: [QueryItem("acl")])
        return try decode(AccessControlPolicy.self, try await send(call), call)
    }

    /// Sets a canned ACL (`private`, `public-read`, …) on an object.
    public func setObjectACL(bucket: BucketName, key: ObjectKey, canned: CannedACL) async throws(OBSClientError) {
        var headers = HeaderFields()
        headers[dialect.header("acl")] = canned.rawValue
        _ = try await send(OperationRequest(operation: "SetObjectAcl", method: "PUT", bucket: bucket, key: key,
                                            query: [QueryItem("acl")], headers: headers))
    }

    /// Sets an object's ACL from explicit grants.
    public func setObjectACL(bucket: BucketName, key: ObjectKey, policy: AccessControlPolicy) async throws(OBSClientError) {
        guard policy.grants.count <= ProtocolLimits.maximumGrants else {
            throw .invalidArgument("\(policy.grants.count) grants, at most \(ProtocolLimits.maximumGrants) allowed")
        }
        var headers = HeaderFields()
        headers["Content-Type"] = "application/xml"
        _ = try await send(OperationRequest(operation: "SetObjectAcl", method: "PUT", bucket: bucket, key: key, query: [QueryItem("acl")],
                                            headers: headers, body: .bytes(policy.serialized(for: dialect, withNamespace: false))))
    }

    // MARK: Buckets

    /// Creates a bucket, optionally with a canned ACL.
    public func createBucket(_ bucket: BucketName, acl: CannedACL? = nil) async throws(OBSClientError) {
        var headers = HeaderFields()
        if let acl { headers[dialect.header("acl")] = acl.rawValue }
        _ = try await send(OperationRequest(operation: "CreateBucket", method: "PUT", bucket: bucket, headers: headers))
    }

    /// Whether the bucket exists and the credentials may use it (false for 404; 403 throws).
    public func bucketExists(_ bucket: BucketName) async throws(OBSClientError) -> Bool {
        do {
            _ = try await send(OperationRequest(operation: "HeadBucket", method: "HEAD", bucket: bucket))
            return true
        } catch .service(let error) where error.status == 404 {
            return false
        }
    }

    /// Deletes an empty bucket.
    public func deleteBucket(_ bucket: BucketName) async throws(OBSClientError) {
        _ = try await send(OperationRequest(operation: "DeleteBucket", method: "DELETE", bucket: bucket))
    }
}
