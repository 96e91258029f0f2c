// Multipart uploads: initiate, upload part, copy part, complete, abort, list parts and uploads.
import CurlTransport
import OBSHashing
import OBSProtocol

/// A completed multipart upload (or PUT/append) as the service reports it.
public struct StoredObject: Sendable, Equatable {
    /// The object's ETag (composite `…-n` for multipart uploads).
    public var etag: ETag
    /// The version, when the bucket keeps versions.
    public var versionID: VersionID?
    /// The object's checksum, when the upload sent one.
    public var checksum: Checksum?
    /// What the service's answer proved about the object's bytes.
    public var verdict: IntegrityVerdict

    /// A stored object's identity.
    public init(etag: ETag, versionID: VersionID? = nil, checksum: Checksum? = nil, verdict: IntegrityVerdict = .unchecked) {
        self.etag = etag
        self.versionID = versionID
        self.checksum = checksum
        self.verdict = verdict
    }
}

extension OBSClient {
    /// Starts a multipart upload of an object with `options` (ACL, grants, storage class,
    /// metadata, content type, encryption, expiry, tags, persistent headers, object lock).
    /// `options.encodingType`, when set, chooses `encoding-type` instead of the configuration.
    /// `checksum` is the checksum the parts will carry (S3 wants CRC-32C declared here).
    /// Options the service would reject are rejected here, without a request.
    public func initiateMultipartUpload(bucket: BucketName, key: ObjectKey, options: ObjectOptions = ObjectOptions(),
                                        checksum: ChecksumAlgorithm? = nil) async throws(OBSClientError) -> UploadID {
        let encoding = options.encodingType.map(\.keyEncoding) ?? configuration.keyEncoding
        var headers = try headers(for: options)
        for field in checksum?.initiationHeaders(for: dialect) ?? HeaderFields() { headers[field.name] = field.value }
        let call = OperationRequest(operation: "InitiateMultipartUpload", method: "POST", bucket: bucket, key: key,
                                    query: [QueryItem("uploads")] + keyEncodingQuery(encoding), headers: headers)
        let response = try await send(call)
        let result = try decode(InitiateMultipartUploadResult.self, response, call)
        guard result.key == key else {
            // The server made an upload under another key (SeaweedFS turns a backslash into "/"): aborted,
            // through the same key as its initiation, so that none is left behind.
            try? await abortMultipartUpload(bucket: bucket, key: key, uploadID: result.uploadID)
            throw malformed(call, response, "upload initiated for key \(result.key), not \(key) (the upload \(result.uploadID) was aborted)")
        }
        return result.uploadID
    }

    /// Uploads one part from caller memory (sent in place; the region's owner stays alive until
    /// the transfer is done) with what proves its bytes (`integrity`: Content-MD5, a checksum
    /// header, or nothing), and decides from the reply what that proved (Integrity.swift): a
    /// mismatch throws, anything else is the receipt's verdict.
    /// `customerKey` is the upload's SSE-C key, which every part must carry again.
    public func uploadPart(bucket: BucketName, key: ObjectKey, uploadID: UploadID, partNumber: PartNumber,
                           body: MemoryRegion, integrity: PartIntegrity, customerKey: CustomerKey? = nil) async throws(OBSClientError) -> PartReceipt {
        var headers = customerKey?.headers(for: dialect) ?? HeaderFields()
        var md5: [UInt8]?
        var checksum: Checksum?
        switch integrity {
        case .md5(let digest):
            md5 = digest
            headers["Content-MD5"] = Base64.encode(digest)
        case .checksum(let value):
            checksum = value
            let header = value.header(for: dialect)
            headers[header.name] = header.value
        case .none:
            break
        }
        let call = OperationRequest(operation: "UploadPart", method: "PUT", bucket: bucket, key: key,
                                    query: [QueryItem("partNumber", partNumber.description), QueryItem("uploadId", uploadID.rawValue)],
                                    headers: headers, body: .memory(body))
        let response = try await send(call)
        guard let header = response.headers["ETag"] else { throw malformed(call, response, "no ETag header") }
        let etag = ETag(header)
        // An SSE-C part's ETag is never the MD5 of the plaintext.
        let expected = customerKey == nil ? md5.map { ETag(md5: $0) } : nil
        let verdict = try verdict(on: response, etag: etag, md5: md5, checksum: checksum, expectedETag: expected)
        return PartReceipt(number: partNumber, etag: etag, size: Int64(body.range.count), checksum: checksum, verdict: verdict)
    }

    /// Copies a byte range (or all) of an existing object into a part, server-side.
    /// `sourceIfMatch` copies only while the source's ETag is that one (`copy-source-if-match`),
    /// else the service answers 412 PreconditionFailed. `sourceCustomerKey` opens an SSE-C
    /// source; `customerKey` is the upload's SSE-C key, which every part must carry.
    public func copyPart(bucket: BucketName, key: ObjectKey, uploadID: UploadID, partNumber: PartNumber,
                         sourceBucket: BucketName, sourceKey: ObjectKey, sourceRange: ClosedRange<Int64>? = nil,
                         sourceVersion: VersionID? = nil, sourceIfMatch: ETag? = nil,
                         sourceCustomerKey: CustomerKey? = nil, customerKey: CustomerKey? = nil) async throws(OBSClientError) -> ETag {
        var headers = customerKey?.headers(for: dialect) ?? HeaderFields()
        for field in sourceCustomerKey?.headers(for: dialect, copySource: true) ?? HeaderFields() { headers.add(name: field.name, value: field.value) }
        headers[dialect.header("copy-source")] = copySource(sourceBucket, sourceKey, sourceVersion)
        if let sourceIfMatch { headers[dialect.header("copy-source-if-match")] = sourceIfMatch.quoted }
        if let sourceRange { headers[dialect.header("copy-source-range")] = "bytes=\(sourceRange.lowerBound)-\(sourceRange.upperBound)" }
        let call = OperationRequest(operation: "UploadPartCopy", method: "PUT", bucket: bucket, key: key,
                                    query: [QueryItem("partNumber", partNumber.description), QueryItem("uploadId", uploadID.rawValue)],
                                    headers: headers)
        let response = try await send(call)
        if let error = embeddedError(in: response) { throw .service(error) }
        return try decode(CopyPartResult.self, response, call).etag
    }

    /// Completes an upload from the receipts of its parts (ascending part numbers): sends the
    /// object's checksum combined from the parts' when every part carried one, and expects the
    /// composite ETag when every part's ETag was its MD5 (Integrity.swift).
    public func completeMultipartUpload(bucket: BucketName, key: ObjectKey, uploadID: UploadID,
                                        receipts: [PartReceipt]) async throws(OBSClientError) -> StoredObject {
        let allMD5 = !receipts.isEmpty && receipts.allSatisfy { $0.verdict == .etagMatchesMD5 }
        let checksums = receipts.compactMap { receipt in receipt.checksum.map { (checksum: $0, size: receipt.size) } }
        return try await complete(bucket: bucket, key: key, uploadID: uploadID,
                                  parts: receipts.map { CompleteMultipartUpload.Part(partNumber: $0.number, etag: $0.etag, checksum: $0.checksum) },
                                  expectedETag: allMD5 ? compositeETag(of: receipts.map(\.etag)) : nil,
                                  checksum: checksums.count == receipts.count ? Checksum.combining(checksums) : nil)
    }

    /// Completes an upload from the parts to keep, in ascending part-number order. With
    /// `expectedETag` the answered ETag must be it (unless the reply says the object is encrypted
    /// with KMS or a customer key); `checksum` (the object's) is sent and, when answered, compared.
    ///
    /// If an attempt is lost in transport (timeout, connection reset) the service may have
    /// completed the upload anyway, and the retry then answers `NoSuchUpload`. In that case the
    /// object is checked with HEAD: if its ETag equals `expectedETag` (by default the composite
    /// ETag of the parts' MD5s) the upload is taken as completed.
    public func completeMultipartUpload(bucket: BucketName, key: ObjectKey, uploadID: UploadID,
                                        parts: [(partNumber: PartNumber, etag: ETag)], expectedETag: ETag? = nil,
                                        checksum: Checksum? = nil) async throws(OBSClientError) -> StoredObject {
        try await complete(bucket: bucket, key: key, uploadID: uploadID,
                           parts: parts.map { CompleteMultipartUpload.Part(partNumber: $0.partNumber, etag: $0.etag) },
                           expectedETag: expectedETag, checksum: checksum)
    }

    private func complete(bucket: BucketName, key: ObjectKey, uploadID: UploadID, parts: [CompleteMultipartUpload.Part],
                          expectedETag: ETag?, checksum: Checksum?) async throws(OBSClientError) -> StoredObject {
        guard !parts.isEmpty else { throw .invalidArgument("a multipart upload needs at least one part") }
        let document = CompleteMultipartUpload(parts: parts)
        var headers = HeaderFields()
        headers["Content-Type"] = "application/xml"
        if let checksum {
            let header = checksum.header(for: dialect)
            headers[header.name] = header.value
        }
        let call = OperationRequest(operation: "CompleteMultipartUpload", method: "POST", bucket: bucket, key: key,
                                    query: [QueryItem("uploadId", uploadID.rawValue)], headers: headers,
                                    body: .bytes(document.serialized(for: dialect, withNamespace: false)))
        var history = AttemptHistory()
        let response: HTTPResponse
        do {
            response = try await send(call, history: &history)
        } catch .service(let error) where error.code == .noSuchUpload && history.earlierAttemptLostInTransport {
            let expected = expectedETag ?? compositeETag(of: parts.map(\.etag))
            guard let expected, let object = try? await headObject(bucket: bucket, key: key), object.etag == expected else {
                throw .service(error)
            }
            logger.notice("complete answered NoSuchUpload after a lost attempt; HEAD shows the completed object",
                          metadata: ["bucket": "\(bucket)", "key": "\(key)", "etag": "\(expected)"])
            return StoredObject(etag: expected, versionID: object.versionID, checksum: checksum, verdict: .etagMatchesMD5)
        }
        if let error = embeddedError(in: response) { throw .service(error) }
        let result = try decode(CompleteMultipartUploadResult.self, response, call)
        let verdict = try verdict(on: response, etag: result.etag, md5: nil, checksum: checksum, expectedETag: expectedETag)
        return StoredObject(etag: result.etag, versionID: response.headers[dialect.header("version-id")].map(VersionID.init),
                            checksum: checksum, verdict: verdict)
    }

    /// The ETag a completed upload of parts with these (plain MD5) ETags has; nil when a part's
    /// ETag is not an MD5 (encrypted uploads).
    public func compositeETag(of partETags: [ETag]) -> ETag? {
        var md5s: [[UInt8]] = []
        for etag in partETags {
            guard let md5 = etag.md5Bytes else { return nil }
            md5s.append(md5)
        }
        return ETag.composite(partMD5s: md5s)
    }

    /// Aborts an upload and discards its parts.
    public func abortMultipartUpload(bucket: BucketName, key: ObjectKey, uploadID: UploadID) async throws(OBSClientError) {
        _ = try await send(OperationRequest(operation: "AbortMultipartUpload", method: "DELETE", bucket: bucket, key: key,
                                            query: [QueryItem("uploadId", uploadID.rawValue)]))
    }

    /// One page of an upload's parts, after `marker`.
    public func listParts(bucket: BucketName, key: ObjectKey, uploadID: UploadID, after marker: PartNumber? = nil,
                          maxParts: Int? = nil) async throws(OBSClientError) -> ListPartsResult {
        var query = [QueryItem("uploadId", uploadID.rawValue)]
        if let maxParts { query.append(QueryItem("max-parts", String(maxParts))) }
        if let marker { query.append(QueryItem("part-number-marker", marker.description)) }
        let call = OperationRequest(operation: "ListParts", method: "GET", bucket: bucket, key: key, query: query)
        return try decode(ListPartsResult.self, try await send(call), call)
    }

    /// All pages of an upload's parts.
    public func allParts(bucket: BucketName, key: ObjectKey, uploadID: UploadID, pageSize: Int? = nil) -> Pages<ListPartsResult, PartNumber> {
        Pages(start: nil) { [self] (marker: PartNumber?) async throws(OBSClientError) in
            let page = try await listParts(bucket: bucket, key: key, uploadID: uploadID, after: marker, maxParts: pageSize)
            guard page.isTruncated else { return (page, nil) }
            guard let next = page.nextPartNumberMarker ?? page.parts.last?.partNumber, marker.map({ next > $0 }) ?? true else {
                throw .malformedResponse(operation: "ListParts", detail: "truncated listing without a new marker", requestID: nil)
            }
            return (page, next)
        }
    }

    /// One page of a bucket's multipart uploads in progress.
    public func listMultipartUploads(bucket: BucketName, prefix: String? = nil, delimiter: String? = nil,
                                     after marker: UploadListMarker? = nil, maxUploads: Int? = nil) async throws(OBSClientError) -> ListMultipartUploadsResult {
        var query = [QueryItem("uploads")] + keyEncodingQuery
        if let prefix { query.append(QueryItem("prefix", prefix)) }
        if let delimiter { query.append(QueryItem("delimiter", delimiter)) }
        if let maxUploads { query.append(QueryItem("max-uploads", String(maxUploads))) }
        if let marker {
            query.append(QueryItem("key-marker", marker.key.rawValue))
            if let uploadID = marker.uploadID { query.append(QueryItem("upload-id-marker", uploadID.rawValue)) }
        }
        let call = OperationRequest(operation: "ListMultipartUploads", method: "GET", bucket: bucket, query: query)
        return try decode(ListMultipartUploadsResult.self, try await send(call), call)
    }

    /// All pages of a bucket's multipart uploads in progress.
    public func allMultipartUploads(bucket: BucketName, prefix: String? = nil, delimiter: String? = nil,
                                    pageSize: Int? = nil) -> Pages<ListMultipartUploadsResult, UploadListMarker> {
        Pages(start: nil) { [self] (marker: UploadListMarker?) async throws(OBSClientError) in
            let page = try await listMultipartUploads(bucket: bucket, prefix: prefix, delimiter: delimiter, after: marker, maxUploads: pageSize)
            guard page.isTruncated else { return (page, nil) }
            guard let key = page.nextKeyMarker ?? page.uploads.last?.key else {
                throw .malformedResponse(operation: "ListMultipartUploads", detail: "truncated listing without a next marker", requestID: nil)
            }
            let next = UploadListMarker(key: key, uploadID: page.nextUploadIDMarker ?? page.uploads.last?.uploadID)
            guard next != marker else {
                throw .malformedResponse(operation: "ListMultipartUploads", detail: "truncated listing repeats its marker", requestID: nil)
            }
            return (page, next)
        }
    }

    /// The headers of `options`, or `invalidArgument` naming every rule they break.
    func headers(for options: ObjectOptions) throws(OBSClientError) -> HeaderFields {
        let violations = options.violations(now: clock())
        guard violations.isEmpty else { throw .invalidArgument(ObjectOptionViolations(violations).description) }
        return options.headers(for: dialect)
    }

    /// `/bucket/encoded-key[?versionId=v]` for the copy-source headers.
    func copySource(_ bucket: BucketName, _ key: ObjectKey, _ version: VersionID?) -> String {
        "/" + bucket.rawValue + "/" + PercentEncoding.encodePath(key.rawValue) + (version.map { "?versionId=" + $0.rawValue } ?? "")
    }
}

/// Where a listing of multipart uploads continues: after this key (and upload ID).
public struct UploadListMarker: Sendable, Equatable {
    /// The last key listed.
    public var key: ObjectKey
    /// The last upload of that key listed, if the listing named it.
    public var uploadID: UploadID?

    /// A marker.
    public init(key: ObjectKey, uploadID: UploadID? = nil) {
        self.key = key
        self.uploadID = uploadID
    }
}
