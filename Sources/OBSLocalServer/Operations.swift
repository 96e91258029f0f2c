// Every operation of obs-local: request parameters and headers in, store calls, response headers
// and XML documents out (documents from OBSProtocol). `precheck` runs on the event loop before a
// body is read, so a doomed upload is refused without receiving its bytes; `perform` runs on the
// thread pool once the body is in.
import NIOCore
import OBSHashing
import OBSProtocol

/// What the body of a request became.
enum OperationInput: Sendable {
    case none
    /// A collected XML document.
    case document([UInt8])
    /// A streamed body, written as a blob.
    case blob(WrittenBlob)
}

struct Operations: Sendable {
    let store: ObjectStore
    let clock: Clock
    /// The smallest part but the last that a complete signed in V2/V4 accepts (OBS: 100 KiB).
    let s3MinimumPartSize: Int64

    /// Every access key acts as one account; its domain ID is derived from the key.
    static func ownerID(for accessKey: String) -> String { Hash.sha256(accessKey.utf8).prefix(16).hexString }

    // MARK: Before the body

    func precheck(_ request: RoutedRequest, dialect: Dialect) throws(OBSLocalError) {
        guard let bucket = request.bucket, request.operation != .createBucket else { return }
        try store.headBucket(bucket)
        guard let key = request.key else { return }
        switch request.operation {
        case .putObject:
            _ = try declaredLength(request, limit: ProtocolLimits.maximumPartSize)
            _ = try contentMD5(request)
            _ = try ObjectAttributes(parsing: request.headers, dialect: dialect, now: clock())
            _ = try AccessControl(parsing: request.headers, dialect: dialect, ownerID: "")
        case .uploadPart:
            _ = try partNumber(request)
            _ = try declaredLength(request, limit: ProtocolLimits.maximumPartSize)
            _ = try contentMD5(request)
            let upload = try store.upload(bucket, key, try uploadID(request))
            try RequestCustomerKey.check(try RequestCustomerKey.parse(request.headers, dialect: dialect), against: upload.attributes)
        case .appendObject:
            _ = try declaredLength(request, limit: ProtocolLimits.maximumPartSize)
            _ = try contentMD5(request)
            if let existing = try store.checkAppend(bucket, key, position: try appendPosition(request)) {
                try RequestCustomerKey.check(try RequestCustomerKey.parse(request.headers, dialect: dialect), against: existing.attributes)
            } else {
                _ = try ObjectAttributes(parsing: request.headers, dialect: dialect, now: clock())
            }
        case .modifyObject:
            try store.requireFileSystem(bucket)
            _ = try declaredLength(request, limit: ProtocolLimits.maximumPartSize)
            _ = try contentMD5(request)
            let existing = try store.checkModify(bucket, key, position: try appendPosition(request))
            try RequestCustomerKey.check(try RequestCustomerKey.parse(request.headers, dialect: dialect), against: existing.attributes)
        case .truncateObject, .renameObject:
            try store.requireFileSystem(bucket)
        default:
            break
        }
    }

    // MARK: After the body

    func perform(_ request: RoutedRequest, identity: SignatureVerifier.Identity, input: OperationInput) throws(OBSLocalError) -> ServerResponse {
        let dialect = identity.dialect
        let owner = Operations.ownerID(for: identity.accessKey)
        /// The checksum headers a body carried and matched, echoed by PUT and UploadPart.
        var checksumEcho: [(String, String)] = []
        switch input {
        case .blob(let blob):
            try checkDigests(request, blob: blob)
            checksumEcho = try blob.checksums.verify(request.headers, dialect: dialect)
        case .document(let body):
            if let expected = try contentMD5(request), expected != Hash.md5(body) {
                throw OBSLocalError(.badDigest, "The Content-MD5 you specified did not match what we received.")
            }
        case .none: break
        }
        guard let bucket = request.bucket else {
            let buckets = store.listBuckets().map {
                ListAllMyBucketsResult.Bucket(name: BucketName($0.name), creationDate: Timestamp(millisecondsSinceEpoch: $0.created))
            }
            return .xml(ListAllMyBucketsResult(owner: Owner(id: owner), buckets: buckets).serialized(for: dialect))
        }
        guard let key = request.key else { return try performOnBucket(request, bucket: bucket, dialect: dialect, input: input) }
        let now = clock()
        switch request.operation {
        case .putObject:
            guard case .blob(let blob) = input else { throw .missingContentLength }
            let attributes = try store.withBucketDefaults(bucket, try ObjectAttributes(parsing: request.headers, dialect: dialect, now: now))
            let acl = try AccessControl(parsing: request.headers, dialect: dialect, ownerID: owner)
            let record = try store.putObject(bucket, key, blob: blob, attributes: attributes, acl: acl)
            return ServerResponse(headers: [("ETag", ETag(record.etag).quoted)] + attributes.encryptionHeaders(dialect: dialect) + checksumEcho)
        case .copyObject:
            return try copyObject(request, bucket: bucket, key: key, dialect: dialect, owner: owner)
        case .getObject, .headObject:
            return try getObject(request, bucket: bucket, key: key, dialect: dialect)
        case .deleteObject:
            try store.deleteObject(bucket, key)
            return ServerResponse(status: 204)
        case .initiateMultipartUpload:
            let attributes = try store.withBucketDefaults(bucket, try ObjectAttributes(parsing: request.headers, dialect: dialect, now: now))
            let acl = try AccessControl(parsing: request.headers, dialect: dialect, ownerID: owner)
            let upload = try store.initiateUpload(bucket, key, attributes: attributes, acl: acl, initiatorID: owner)
            let document = InitiateMultipartUploadResult(bucket: bucket, key: key, uploadID: UploadID(upload.uploadID),
                                                         encodingType: try keyEncoding(request))
            return .xml(document.serialized(for: dialect), headers: attributes.encryptionHeaders(dialect: dialect))
        case .uploadPart:
            guard case .blob(let blob) = input else { throw .missingContentLength }
            let id = try uploadID(request)
            let part = try store.putPart(bucket, key, id, number: try partNumber(request), blob: blob)
            let upload = try store.upload(bucket, key, id)
            return ServerResponse(headers: [("ETag", ETag(part.etag).quoted)] + upload.attributes.encryptionHeaders(dialect: dialect) + checksumEcho)
        case .uploadPartCopy:
            return try uploadPartCopy(request, bucket: bucket, key: key, dialect: dialect)
        case .completeMultipartUpload:
            guard case .document(let body) = input, let document = try? CompleteMultipartUpload(parsing: body) else {
                throw .malformedXML
            }
            let minimumPartSize = dialect == .obs ? ProtocolLimits.minimumPartSize : s3MinimumPartSize
            let record = try store.completeUpload(bucket, key, try uploadID(request), parts: document.parts.map { ($0.partNumber, $0.etag) },
                                                  minimumPartSize: minimumPartSize) {
                (checksums: StoredChecksums?) throws(OBSLocalError) in _ = try checksums?.verify(request.headers, dialect: dialect)
            }
            let host = request.headers["Host"] ?? "127.0.0.1"
            let location = "http://\(host)/\(bucket.rawValue)/\(PercentEncoding.encodePath(key.rawValue))"
            let result = CompleteMultipartUploadResult(location: location, bucket: bucket, key: key, etag: ETag(record.etag),
                                                       encodingType: try keyEncoding(request))
            return .xml(result.serialized(for: dialect),
                        headers: record.attributes.encryptionHeaders(dialect: dialect) + (record.checksums?.headers(for: dialect) ?? []))
        case .abortMultipartUpload:
            try store.abortUpload(bucket, key, try uploadID(request))
            return ServerResponse(status: 204)
        case .listParts:
            return try listParts(request, bucket: bucket, key: key, dialect: dialect)
        case .appendObject:
            guard case .blob(let blob) = input else { throw .missingContentLength }
            let position = try appendPosition(request)
            let attributes = try ObjectAttributes(parsing: request.headers, dialect: dialect, now: now)
            let acl = try AccessControl(parsing: request.headers, dialect: dialect, ownerID: owner)
            let record = try store.append(bucket, key, position: position, blob: blob, attributes: attributes, acl: acl)
            return ServerResponse(headers: [("ETag", ETag(record.etag).quoted), ("x-obs-next-append-position", String(record.size))]
                                  + record.attributes.encryptionHeaders(dialect: dialect))
        case .setObjectMetadata:
            return try setMetadata(request, bucket: bucket, key: key, dialect: dialect)
        case .modifyObject:
            guard case .blob(let blob) = input else { throw .missingContentLength }
            let record: ObjectRecord
            do throws(OBSLocalError) {
                record = try store.modify(bucket, key, position: try appendPosition(request), blob: blob)
            } catch {
                store.blobs.delete([blob.id])
                throw error
            }
            return ServerResponse(headers: [("ETag", ETag(record.etag).quoted)] + record.attributes.encryptionHeaders(dialect: dialect))
        case .truncateObject:
            guard let text = request.query("length"), let length = Int64(text) else {
                throw OBSLocalError(.invalidArgument, "A truncate needs a length.")
            }
            _ = try store.truncate(bucket, key, length: length)
            return ServerResponse(status: 204)
        case .renameObject:
            guard var name = request.query("name"), !name.isEmpty else {
                throw OBSLocalError(.invalidArgument, "A rename needs the new name.")
            }
            if name.hasPrefix("/") { name.removeFirst() }
            guard !name.isEmpty else { throw OBSLocalError(.invalidArgument, "A rename needs the new name.") }
            try store.rename(bucket, key, to: ObjectKey(name))
            return ServerResponse(status: 204)
        case .putObjectACL:
            let acl: AccessControl
            if case .document(let body) = input, !body.isEmpty {
                guard let policy = try? AccessControlPolicy(parsing: body) else {
                    throw .malformedXML
                }
                guard policy.grants.count <= ProtocolLimits.maximumGrants else {
                    throw OBSLocalError(.invalidArgument, "An ACL holds at most 100 grants.")
                }
                acl = AccessControl(policy, ownerID: owner)
            } else {
                acl = try AccessControl(parsing: request.headers, dialect: dialect, ownerID: owner)
            }
            _ = try store.updateObject(bucket, key) { $0.acl = acl }
            return ServerResponse()
        case .getObjectACL:
            let record = try store.object(bucket, key)
            return .xml(record.acl.policy.serialized(for: dialect))
        case .putObjectTagging:
            guard case .document(let body) = input, let tagging = try? Tagging(parsing: body) else {
                throw .malformedXML
            }
            guard tagging.tags.count <= 10 else { throw OBSLocalError(.invalidArgument, "Object tags cannot be greater than 10.") }
            _ = try store.updateObject(bucket, key) { $0.attributes.tags = tagging.tags.map { NameValue(name: $0.key, value: $0.value) } }
            return ServerResponse()
        case .getObjectTagging:
            let record = try store.object(bucket, key)
            let tagging = Tagging(tags: record.attributes.tags.map { Tagging.Tag(key: $0.name, value: $0.value) })
            return .xml(tagging.serialized(for: dialect))
        case .deleteObjectTagging:
            _ = try store.updateObject(bucket, key) { $0.attributes.tags = [] }
            return ServerResponse(status: 204)
        case .listBuckets, .createBucket, .headBucket, .deleteBucket, .getBucketLocation, .listObjects, .listMultipartUploads, .deleteObjects:
            throw OBSLocalError(.methodNotAllowed, "The specified method is not allowed against this resource.")
        }
    }

    private func performOnBucket(_ request: RoutedRequest, bucket: BucketName, dialect: Dialect, input: OperationInput) throws(OBSLocalError) -> ServerResponse {
        switch request.operation {
        case .createBucket:
            try store.createBucket(bucket, fileSystem: request.headers[Self.fileInterfaceHeader]?.lowercasedASCII == "enabled")
            return ServerResponse(headers: [("Location", "/" + bucket.rawValue)])
        case .headBucket:
            let record = try store.headBucket(bucket)
            let fileInterface = record.isFileSystem ? [(Self.fileInterfaceHeader, "Enabled")] : []
            return ServerResponse(headers: [(dialect.header("bucket-location"), "local")] + fileInterface)
        case .deleteBucket:
            try store.deleteBucket(bucket)
            return ServerResponse(status: 204)
        case .getBucketLocation:
            try store.headBucket(bucket)
            let element = dialect == .obs ? XML.Element("Location", text: "local") : XML.Element("LocationConstraint", text: "")
            return .xml(element.serialized(namespace: dialect.xmlNamespace))
        case .listObjects:
            return try listObjects(request, bucket: bucket, dialect: dialect)
        case .listMultipartUploads:
            return try listUploads(request, bucket: bucket, dialect: dialect)
        case .deleteObjects:
            return try deleteObjects(request, bucket: bucket, dialect: dialect, input: input)
        default:
            throw OBSLocalError(.methodNotAllowed, "The specified method is not allowed against this resource.")
        }
    }

    // MARK: Reading objects

    private func getObject(_ request: RoutedRequest, bucket: BucketName, key: ObjectKey, dialect: Dialect) throws(OBSLocalError) -> ServerResponse {
        var record = try store.object(bucket, key)
        var pin = store.blobs.pin(record.segments.map(\.blob))
        // Replaced before the pin took: the blobs may be gone; the version there now is served.
        while let now = try? store.object(bucket, key), now.segments != record.segments {
            record = now
            pin = store.blobs.pin(record.segments.map(\.blob))
        }
        try RequestCustomerKey.check(try RequestCustomerKey.parse(request.headers, dialect: dialect), against: record.attributes)
        let etag = ETag(record.etag)
        let lastModified = record.lastModifiedTimestamp
        if let failure = Preconditions.evaluate(request.headers, etag: etag, lastModified: lastModified) { return failure }
        var headers = record.attributes.responseHeaders(dialect: dialect, lastModified: lastModified)
        for (parameter, header) in Self.responseOverrides {
            if let value = request.query(parameter) {
                headers.removeAll { $0.0.lowercasedASCII == header.lowercasedASCII }
                headers.append((header, value))
            }
        }
        headers += [("ETag", etag.quoted), ("Last-Modified", lastModified.rfc1123), ("Accept-Ranges", "bytes")]
        headers += record.appendHeaders
        var range: Range<Int64> = 0..<record.size
        var status = 200
        if let rangeHeader = request.headers["Range"], let requested = try ByteRange.parse(rangeHeader, size: record.size) {
            range = requested
            status = 206
            headers.append(("Content-Range", "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(record.size)"))
        } else {
            headers += record.checksums?.headers(for: dialect) ?? []
        }
        if request.operation == .headObject {
            return ServerResponse(status: status, headers: headers, body: .lengthOnly(Int64(range.count)))
        }
        return ServerResponse(status: status, headers: headers, body: .blobs(record.segments.slices(covering: range), length: Int64(range.count), pin: pin))
    }

    /// `response-content-type` and friends override the stored headers of a GET.
    private static let responseOverrides = [
        ("response-content-type", "Content-Type"), ("response-content-language", "Content-Language"),
        ("response-expires", "Expires"), ("response-cache-control", "Cache-Control"),
        ("response-content-disposition", "Content-Disposition"), ("response-content-encoding", "Content-Encoding"),
    ]

    // MARK: Copies

    /// The source of a copy: `x-obs-copy-source: /bucket/percent-encoded-key`.
    private func copySource(_ request: RoutedRequest, dialect: Dialect) throws(OBSLocalError) -> (BucketName, ObjectRecord) {
        guard let header = request.headers[dialect.header("copy-source")] ?? request.headers["x-obs-copy-source"] ?? request.headers["x-amz-copy-source"] else {
            throw OBSLocalError(.invalidArgument, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey.")
        }
        let withoutVersion = header.split(separator: "?", maxSplits: 1).first.map(String.init) ?? header
        guard let decoded = PercentEncoding.decode(withoutVersion) else {
            throw OBSLocalError(.invalidArgument, "The copy source is not correctly URL-encoded.")
        }
        // Split by bytes: a `/` before a key starting with a combining mark is one Character.
        let trimmed = decoded.utf8.first == UInt8(ascii: "/") ? decoded.utf8.dropFirst() : decoded.utf8[...]
        guard let slash = trimmed.firstIndex(of: UInt8(ascii: "/")), slash != trimmed.startIndex,
              trimmed.index(after: slash) != trimmed.endIndex else {
            throw OBSLocalError(.invalidArgument, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey.")
        }
        let bucket = BucketName(String(decoding: trimmed[..<slash], as: UTF8.self))
        let source = try store.object(bucket, ObjectKey(String(decoding: trimmed[trimmed.index(after: slash)...], as: UTF8.self)))
        try RequestCustomerKey.check(try RequestCustomerKey.parse(request.headers, dialect: dialect, copySource: true), against: source.attributes)
        return (bucket, source)
    }

    /// Copies bytes into a new blob (server side, on the thread pool).
    private func copyBytes(_ slices: [BlobSlice]) throws(OBSLocalError) -> WrittenBlob {
        do {
            let writer = try store.blobs.makeWriter(computeSHA256: false)
            do {
                for slice in slices { try store.blobs.read(slice) { try writer.append([$0]) } }
                return try writer.finish()
            } catch {
                writer.abort()
                throw error
            }
        } catch {
            throw OBSLocalError(.internalError, "Copying failed: \(error)")
        }
    }

    private func copyObject(_ request: RoutedRequest, bucket: BucketName, key: ObjectKey, dialect: Dialect, owner: String) throws(OBSLocalError) -> ServerResponse {
        let (sourceBucket, source) = try copySource(request, dialect: dialect)
        guard source.size <= ProtocolLimits.maximumPartSize else {
            throw OBSLocalError(.invalidRequest, "The specified copy source is larger than the maximum allowable size for a copy source: 5 GB.")
        }
        let directive = request.headers[dialect.header("metadata-directive")] ?? "COPY"
        var attributes: ObjectAttributes
        switch directive {
        case "COPY":
            attributes = source.attributes
            let customer = try RequestCustomerKey.parse(request.headers, dialect: dialect)
            attributes.customerAlgorithm = customer?.algorithm
            attributes.customerKeyMD5 = customer?.keyMD5
        case "REPLACE":
            attributes = try ObjectAttributes(parsing: request.headers, dialect: dialect, now: clock())
        default:
            throw OBSLocalError(.invalidArgument, "Unknown metadata directive \(directive).")
        }
        let acl = try AccessControl(parsing: request.headers, dialect: dialect, ownerID: owner)
        if sourceBucket == bucket && source.objectKey == key {
            // A copy onto itself changes metadata only (S3 clients' way to edit metadata): no bytes move.
            guard directive == "REPLACE" || attributes != source.attributes else {
                throw OBSLocalError(.invalidRequest, "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
            }
            let now = clock().millisecondsSinceEpoch
            let record = try store.updateObject(bucket, key) { object in
                object.attributes = attributes
                object.acl = acl
                object.lastModified = now
            }
            let result = CopyObjectResult(lastModified: record.lastModifiedTimestamp, etag: ETag(record.etag))
            return .xml(result.serialized(for: dialect), headers: attributes.encryptionHeaders(dialect: dialect))
        }
        let blob = try copyBytes(source.segments.slices(covering: 0..<source.size))
        let etag = source.segments.count > 1 ? ETag(blob.md5.hexString) : ETag(source.etag)
        let record = try store.putObject(bucket, key, blob: blob, etag: etag, attributes: attributes, acl: acl)
        let result = CopyObjectResult(lastModified: record.lastModifiedTimestamp, etag: ETag(record.etag))
        return .xml(result.serialized(for: dialect), headers: attributes.encryptionHeaders(dialect: dialect))
    }

    private func uploadPartCopy(_ request: RoutedRequest, bucket: BucketName, key: ObjectKey, dialect: Dialect) throws(OBSLocalError) -> ServerResponse {
        let number = try partNumber(request)
        let id = try uploadID(request)
        let upload = try store.upload(bucket, key, id)
        try RequestCustomerKey.check(try RequestCustomerKey.parse(request.headers, dialect: dialect), against: upload.attributes)
        let (_, source) = try copySource(request, dialect: dialect)
        if let ifMatch = request.headers[dialect.header("copy-source-if-match")], ETag(ifMatch) != ETag(source.etag) {
            throw Preconditions.preconditionFailed
        }
        var range: Range<Int64> = 0..<source.size
        if let header = request.headers[dialect.header("copy-source-range")] {
            guard let requested = try ByteRange.parse(header, size: source.size), header.hasPrefix("bytes="),
                  !header.contains("=-") else {
                throw OBSLocalError(.invalidArgument, "The x-obs-copy-source-range value must be of the form bytes=first-last.")
            }
            range = requested
        }
        guard Int64(range.count) <= ProtocolLimits.maximumPartSize else {
            throw OBSLocalError(.entityTooLarge, "A part copy is at most 5 GB.")
        }
        let blob = try copyBytes(source.segments.slices(covering: range))
        let part: PartRecord
        do throws(OBSLocalError) {
            part = try store.putPart(bucket, key, id, number: number, blob: blob)
        } catch {
            store.blobs.delete([blob.id])
            throw error
        }
        let result = CopyPartResult(lastModified: Timestamp(millisecondsSinceEpoch: part.lastModified), etag: ETag(part.etag))
        return .xml(result.serialized(for: dialect), headers: upload.attributes.encryptionHeaders(dialect: dialect))
    }

    private func setMetadata(_ request: RoutedRequest, bucket: BucketName, key: ObjectKey, dialect: Dialect) throws(OBSLocalError) -> ServerResponse {
        guard let directiveText = request.headers[dialect.header("metadata-directive")],
              let directive = MetadataDirective(rawValue: directiveText) else {
            throw OBSLocalError(.invalidArgument, "\(dialect.header("metadata-directive")) must be REPLACE_NEW or REPLACE.")
        }
        let now = clock()
        let record = try store.updateObject(bucket, key) { (object: inout ObjectRecord) throws(OBSLocalError) in
            var attributes = object.attributes
            try attributes.apply(request.headers, dialect: dialect, directive: directive, now: now)
            let options = try ObjectOptions.validated(request.headers, dialect: dialect, now: now)
            if let storageClass = options.storageClass { attributes.storageClass = storageClass.rawValue }
            if request.headers[dialect.header("tagging")] != nil || directive == .replace {
                attributes.tags = options.tags.map { NameValue(name: $0.key, value: $0.value ?? "") }
            }
            let metadataBytes = attributes.userMetadata.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
            guard metadataBytes <= ProtocolLimits.maximumMetadataBytes else {
                throw OBSLocalError(.metadataTooLarge, "Your metadata headers exceed the maximum allowed metadata size.")
            }
            object.attributes = attributes
        }
        var headers = record.attributes.responseHeaders(dialect: dialect, lastModified: record.lastModifiedTimestamp)
        headers += record.appendHeaders
        return ServerResponse(headers: headers)
    }

    // MARK: Listings

    private func listObjects(_ request: RoutedRequest, bucket: BucketName, dialect: Dialect) throws(OBSLocalError) -> ServerResponse {
        let version2 = request.query("list-type") == "2"
        let encoding = try keyEncoding(request)
        let prefix = request.query("prefix") ?? ""
        let delimiter = request.query("delimiter").flatMap { $0.isEmpty ? nil : $0 }
        let maxKeys = try boundedInteger(request, "max-keys", default: 1000, range: 0...Int.max)
        let marker: String?
        if version2 {
            if let token = request.query("continuation-token") {
                guard let bytes = Base64.decode(token), let decoded = String(validating: bytes, as: UTF8.self) else {
                    throw OBSLocalError(.invalidArgument, "The continuation token provided is incorrect.")
                }
                marker = decoded
            } else {
                marker = request.query("start-after")
            }
        } else {
            marker = request.query("marker")
        }
        let listing = try store.listObjects(bucket, prefix: prefix, delimiter: delimiter, marker: marker, maxKeys: min(maxKeys, 1000))
        let contents = listing.objects.map {
            ListBucketResult.Object(key: $0.objectKey, lastModified: $0.lastModifiedTimestamp, etag: ETag($0.etag), size: $0.size,
                                    storageClass: StorageClass($0.attributes.storageClass ?? "STANDARD"),
                                    owner: Owner(id: $0.acl.ownerID))
        }
        let result = ListBucketResult(name: bucket, prefix: prefix, marker: version2 ? nil : ObjectKey(marker ?? ""),
                                      nextMarker: version2 ? nil : listing.nextMarker.map(ObjectKey.init), maxKeys: maxKeys,
                                      delimiter: delimiter, isTruncated: listing.isTruncated, contents: contents,
                                      commonPrefixes: listing.commonPrefixes, encodingType: encoding)
        guard version2 else { return .xml(result.serialized(for: dialect)) }
        // ListObjectsV2 (awscli, s3fs with list-type=2): the V1 document plus the V2 fields.
        var element = result.xml(for: dialect)
        element.children.append(XML.Element("KeyCount", text: String(contents.count + listing.commonPrefixes.count)))
        if let token = request.query("continuation-token") { element.children.append(XML.Element("ContinuationToken", text: token)) }
        if let startAfter = request.query("start-after") {
            element.children.append(XML.Element("StartAfter", text: encoding == .url ? PercentEncoding.encodePath(startAfter) : startAfter))
        }
        if listing.isTruncated, let next = listing.nextMarker {
            element.children.append(XML.Element("NextContinuationToken", text: Base64.encode(Array(next.utf8))))
        }
        return .xml(element.serialized(namespace: dialect.xmlNamespace))
    }

    private func listUploads(_ request: RoutedRequest, bucket: BucketName, dialect: Dialect) throws(OBSLocalError) -> ServerResponse {
        let prefix = request.query("prefix") ?? ""
        let delimiter = request.query("delimiter").flatMap { $0.isEmpty ? nil : $0 }
        let maxUploads = try boundedInteger(request, "max-uploads", default: 1000, range: 1...1000)
        let keyMarker = request.query("key-marker").flatMap { $0.isEmpty ? nil : $0 }
        let uploadIDMarker = request.query("upload-id-marker").flatMap { $0.isEmpty ? nil : $0 }
        let listing = try store.listUploads(bucket, prefix: prefix, delimiter: delimiter, keyMarker: keyMarker,
                                            uploadIDMarker: uploadIDMarker, maxUploads: maxUploads)
        let uploads = listing.uploads.map {
            ListMultipartUploadsResult.Upload(key: ObjectKey($0.key), uploadID: UploadID($0.uploadID), initiator: Owner(id: $0.initiatorID),
                                              owner: Owner(id: $0.acl.ownerID), storageClass: StorageClass($0.attributes.storageClass ?? "STANDARD"),
                                              initiated: Timestamp(millisecondsSinceEpoch: $0.initiated))
        }
        let result = ListMultipartUploadsResult(
            bucket: bucket, keyMarker: keyMarker.map(ObjectKey.init), uploadIDMarker: uploadIDMarker.map(UploadID.init),
            nextKeyMarker: listing.nextKeyMarker.map(ObjectKey.init), nextUploadIDMarker: listing.nextUploadIDMarker.map(UploadID.init),
            prefix: prefix, delimiter: delimiter, maxUploads: maxUploads, isTruncated: listing.isTruncated, uploads: uploads,
            commonPrefixes: listing.commonPrefixes, encodingType: try keyEncoding(request))
        return .xml(result.serialized(for: dialect))
    }

    private func listParts(_ request: RoutedRequest, bucket: BucketName, key: ObjectKey, dialect: Dialect) throws(OBSLocalError) -> ServerResponse {
        let maxParts = try boundedInteger(request, "max-parts", default: 1000, range: 1...1000)
        let marker = try boundedInteger(request, "part-number-marker", default: 0, range: 0...PartNumber.range.upperBound)
        let listing = try store.listParts(bucket, key, try uploadID(request), marker: marker, maxParts: maxParts)
        let parts = listing.parts.compactMap { part in
            PartNumber(part.number).map {
                ListPartsResult.Part(partNumber: $0, lastModified: Timestamp(millisecondsSinceEpoch: part.lastModified), etag: ETag(part.etag), size: part.size)
            }
        }
        let result = ListPartsResult(
            bucket: bucket, key: key, uploadID: UploadID(listing.upload.uploadID), initiator: Owner(id: listing.upload.initiatorID),
            owner: Owner(id: listing.upload.acl.ownerID), storageClass: StorageClass(listing.upload.attributes.storageClass ?? "STANDARD"),
            partNumberMarker: PartNumber(marker), nextPartNumberMarker: listing.nextPartNumberMarker.flatMap(PartNumber.init),
            maxParts: maxParts, isTruncated: listing.isTruncated, parts: parts, encodingType: try keyEncoding(request))
        return .xml(result.serialized(for: dialect))
    }

    /// `POST /bucket?delete`: `<Delete><Quiet/><Object><Key/></Object>…</Delete>`.
    private func deleteObjects(_ request: RoutedRequest, bucket: BucketName, dialect: Dialect, input: OperationInput) throws(OBSLocalError) -> ServerResponse {
        guard case .document(let body) = input, let root = try? XML.parse(body), root.localName == "Delete" else {
            throw .malformedXML
        }
        let quiet = root.childText("Quiet") == "true"
        let keys = root.children("Object").compactMap { $0.childText("Key") }
        guard keys.count <= 1000 else { throw OBSLocalError(.malformedXML, "At most 1000 keys can be deleted at once.") }
        var results: [XML.Element] = []
        for key in keys {
            try store.deleteObject(bucket, ObjectKey(key))
            if !quiet { results.append(XML.Element("Deleted", [XML.Element("Key", text: key)])) }
        }
        return .xml(XML.Element("DeleteResult", results).serialized(namespace: dialect.xmlNamespace))
    }

    // MARK: Parameters

    private func uploadID(_ request: RoutedRequest) throws(OBSLocalError) -> UploadID {
        guard let id = request.query("uploadId"), !id.isEmpty else { throw .noSuchUpload(UploadID("")) }
        return UploadID(id)
    }

    private func partNumber(_ request: RoutedRequest) throws(OBSLocalError) -> PartNumber {
        guard let text = request.query("partNumber"), let value = Int(text), let number = PartNumber(value) else {
            throw OBSLocalError(.invalidArgument, "Part number must be an integer between 1 and 10000, inclusive.")
        }
        return number
    }

    /// `x-obs-fs-file-interface`: `Enabled` on CreateBucket makes a parallel file system bucket,
    /// and HEAD bucket answers it for one (the same name in every dialect).
    static let fileInterfaceHeader = "x-obs-fs-file-interface"

    /// The `position` of an append or a modify.
    private func appendPosition(_ request: RoutedRequest) throws(OBSLocalError) -> Int64 {
        guard let text = request.query("position"), let position = Int64(text), position >= 0 else {
            throw OBSLocalError(.invalidArgument, "An append or a modify needs a non-negative position.")
        }
        return position
    }

    private func keyEncoding(_ request: RoutedRequest) throws(OBSLocalError) -> KeyEncoding? {
        guard let value = request.query("encoding-type") else { return nil }
        guard let encoding = KeyEncoding(rawValue: value) else { throw OBSLocalError(.invalidArgument, "Invalid Encoding Method specified in Request.") }
        return encoding
    }

    private func boundedInteger(_ request: RoutedRequest, _ name: String, default fallback: Int, range: ClosedRange<Int>) throws(OBSLocalError) -> Int {
        guard let text = request.query(name) else { return fallback }
        guard let value = Int(text), value >= range.lowerBound else {
            throw OBSLocalError(.invalidArgument, "\(name) must be an integer of at least \(range.lowerBound).")
        }
        return min(value, range.upperBound)
    }

    /// The body length the request announces: Content-Length, or for aws-chunked bodies
    /// `x-amz-decoded-content-length`.
    private func declaredLength(_ request: RoutedRequest, limit: Int64) throws(OBSLocalError) -> Int64 {
        let text = request.headers["x-amz-decoded-content-length"] ?? request.headers["Content-Length"]
        guard let text else {
            throw .missingContentLength
        }
        guard let length = Int64(text), length >= 0 else { throw OBSLocalError(.invalidArgument, "Invalid Content-Length.") }
        guard length <= limit else {
            throw OBSLocalError(.entityTooLarge, "Your proposed upload exceeds the maximum allowed size (5 GB).")
        }
        return length
    }

    /// The binary MD5 of `Content-MD5`, when present; InvalidDigest when malformed.
    private func contentMD5(_ request: RoutedRequest) throws(OBSLocalError) -> [UInt8]? {
        guard let text = request.headers["Content-MD5"] else { return nil }
        guard let bytes = Base64.decode(text), bytes.count == 16 else {
            throw OBSLocalError(.invalidDigest, "The Content-MD5 you specified was invalid.")
        }
        return bytes
    }

    /// Content-MD5, the V4 payload hash and the decoded length of an aws-chunked body.
    private func checkDigests(_ request: RoutedRequest, blob: WrittenBlob) throws(OBSLocalError) {
        if let expected = try contentMD5(request), expected != blob.md5 {
            throw OBSLocalError(.badDigest, "The Content-MD5 you specified did not match what we received.")
        }
        if let expected = request.headers["x-amz-content-sha256"], PayloadHash.isHexDigest(expected),
           let actual = blob.sha256, actual.hexString != expected.lowercased() {
            throw OBSLocalError("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.", status: 400)
        }
        if let decoded = request.headers["x-amz-decoded-content-length"], Int64(decoded) != blob.length {
            throw OBSLocalError(.incompleteBody, "You did not provide the number of bytes specified by the x-amz-decoded-content-length header.")
        }
    }
}

/// `Range: bytes=a-b`, `bytes=a-`, `bytes=-n`.
enum ByteRange {
    /// The satisfiable range, nil when the header is not a single byte range (ignored, as S3
    /// does); InvalidRange when it starts beyond the object.
    static func parse(_ header: String, size: Int64) throws(OBSLocalError) -> Range<Int64>? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst(6)
        let pieces = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard pieces.count == 2 else { return nil }
        let first = pieces[0].trimmingPrefixSpaces, last = pieces[1].trimmingPrefixSpaces
        let unsatisfiable = OBSLocalError(.invalidRange, "The requested range is not satisfiable.")
        if first.isEmpty {
            guard let suffix = Int64(last), suffix >= 0 else { return nil }
            guard suffix > 0, size > 0 else { throw unsatisfiable }
            return max(0, size - suffix)..<size
        }
        guard let start = Int64(first), start >= 0 else { return nil }
        let end: Int64
        if last.isEmpty {
            end = size - 1
        } else {
            guard let value = Int64(last), value >= start else { return nil }
            end = min(value, size - 1)
        }
        guard start < size else { throw unsatisfiable }
        return start..<(end + 1)
    }
}

private extension Substring {
    var trimmingPrefixSpaces: String { String(self).trimmingSpaces }
}

/// Conditional GET/HEAD headers.
enum Preconditions {
    static func evaluate(_ headers: HeaderFields, etag: ETag, lastModified: Timestamp) -> ServerResponse? {
        func matches(_ list: String) -> Bool {
            list.split(separator: ",").contains { candidate in
                let text = String(candidate).trimmingSpaces
                return text == "*" || ETag(PercentEncoding.decode(text) ?? text) == etag
            }
        }
        let seconds = lastModified.secondsSinceEpoch
        if let ifMatch = headers["If-Match"], !matches(ifMatch) { return .failure(preconditionFailed) }
        if let text = headers["If-Unmodified-Since"], let date = Timestamp(rfc1123: text), seconds > date.secondsSinceEpoch {
            return .failure(preconditionFailed)
        }
        if let ifNoneMatch = headers["If-None-Match"], matches(ifNoneMatch) { return ServerResponse(status: 304, headers: [("ETag", etag.quoted)]) }
        if let text = headers["If-Modified-Since"], let date = Timestamp(rfc1123: text), seconds <= date.secondsSinceEpoch {
            return ServerResponse(status: 304, headers: [("ETag", etag.quoted)])
        }
        return nil
    }

    static let preconditionFailed = OBSLocalError(.preconditionFailed, "At least one of the pre-conditions you specified did not hold.")
}

extension AccessControl {
    /// From a `PUT ?acl` document.
    init(_ policy: AccessControlPolicy, ownerID: String) {
        self.init(ownerID: ownerID, delivered: policy.delivered ?? false, grants: policy.grants.map { grant in
            let grantee: Grantee = switch grant.grantee {
            case .user(let id): .user(id: id)
            case .everyone: .everyone
            }
            return Grant(grantee: grantee, permission: grant.permission.rawValue)
        })
    }

    /// The `GET ?acl` document.
    var policy: AccessControlPolicy {
        AccessControlPolicy(owner: Owner(id: ownerID), delivered: delivered, grants: grants.compactMap { grant in
            guard let permission = AccessControlPolicy.Permission(rawValue: grant.permission) else { return nil }
            let grantee: AccessControlPolicy.Grantee = switch grant.grantee {
            case .user(let id): .user(id: id)
            case .everyone: .everyone
            }
            return AccessControlPolicy.Grant(grantee: grantee, permission: permission)
        })
    }
}
