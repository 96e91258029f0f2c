// Multipart-upload documents: initiate, complete (request and reply), list parts, list uploads.

/// Reply to `POST /bucket/key?uploads`.
public struct InitiateMultipartUploadResult: XMLWireDocument, Equatable {
    public static let rootName = "InitiateMultipartUploadResult"
    public var bucket: BucketName
    public var key: ObjectKey
    public var uploadID: UploadID
    /// Set when the request asked for `encoding-type=url`: the key is percent-encoded on the wire.
    public var encodingType: KeyEncoding?

    public init(bucket: BucketName, key: ObjectKey, uploadID: UploadID, encodingType: KeyEncoding? = nil) {
        self.bucket = bucket
        self.key = key
        self.uploadID = uploadID
        self.encodingType = encodingType
    }

    public init(xml root: XML.Element) throws(XML.ParseError) {
        encodingType = try KeyEncoding.read(from: root)
        bucket = BucketName(try root.requiredText("Bucket"))
        key = try encodingType.requiredKey(root, "Key")
        uploadID = UploadID(try root.requiredText("UploadId"))
    }

    public func xml(for dialect: Dialect) -> XML.Element {
        XML.Element(Self.rootName, [
            .leaf("Bucket", bucket.rawValue),
            encodingType.leaf("Key", key.rawValue),
            .leaf("UploadId", uploadID.rawValue),
        ] + encodingType.encodingTypeElement())
    }
}

/// Body of `POST /bucket/key?uploadId=U`: the parts to assemble, in ascending order.
public struct CompleteMultipartUpload: XMLWireDocument, Equatable {
    public static let rootName = "CompleteMultipartUpload"

    public struct Part: Sendable, Equatable {
        public var partNumber: PartNumber
        public var etag: ETag
        /// The part's CRC-32C, which S3 wants listed when the upload declared it (`ChecksumCRC32C`).
        public var checksum: Checksum?
        public init(partNumber: PartNumber, etag: ETag, checksum: Checksum? = nil) {
            self.partNumber = partNumber
            self.etag = etag
            self.checksum = checksum
        }
    }

    public var parts: [Part]

    public init(parts: [Part]) { self.parts = parts }

    public init(xml root: XML.Element) throws(XML.ParseError) {
        parts = []
        for element in root.children("Part") {
            let checksum = element.optionalText(Self.crc32cElement).flatMap { Checksum(.crc32c, headerValue: $0) }
            parts.append(Part(partNumber: try element.requiredPartNumber("PartNumber"), etag: try element.requiredETag("ETag"), checksum: checksum))
        }
    }

    private static let crc32cElement = "ChecksumCRC32C"

    public func xml(for dialect: Dialect) -> XML.Element {
        XML.Element(Self.rootName, parts.map { part in
            var children: [XML.Element] = [.leaf("PartNumber", part.partNumber.description), .leaf("ETag", part.etag.quoted)]
            if dialect != .obs, let checksum = part.checksum, checksum.algorithm == .crc32c {
                children.append(.leaf(Self.crc32cElement, checksum.headerValue))
            }
            return XML.Element("Part", children)
        })
    }
}

/// Reply to a successful complete.
public struct CompleteMultipartUploadResult: XMLWireDocument, Equatable {
    public static let rootName = "CompleteMultipartUploadResult"
    public var location: String
    public var bucket: BucketName
    public var key: ObjectKey
    /// The composite ETag `hex(MD5(M1‖…‖Mn))-n`.
    public var etag: ETag
    public var encodingType: KeyEncoding?

    public init(location: String, bucket: BucketName, key: ObjectKey, etag: ETag, encodingType: KeyEncoding? = nil) {
        self.location = location
        self.bucket = bucket
        self.key = key
        self.etag = etag
        self.encodingType = encodingType
    }

    public init(xml root: XML.Element) throws(XML.ParseError) {
        encodingType = try KeyEncoding.read(from: root)
        location = root.childText("Location") ?? ""
        bucket = BucketName(try root.requiredText("Bucket"))
        key = try encodingType.requiredKey(root, "Key")
        etag = try root.requiredETag("ETag")
    }

    public func xml(for dialect: Dialect) -> XML.Element {
        XML.Element(Self.rootName, [
            .leaf("Location", location),
            .leaf("Bucket", bucket.rawValue),
            encodingType.leaf("Key", key.rawValue),
            .leaf("ETag", etag.quoted),
        ] + encodingType.encodingTypeElement())
    }
}

/// Reply to `GET /bucket/key?uploadId=U[&max-parts&part-number-marker]`.
public struct ListPartsResult: XMLWireDocument, Equatable {
    public static let rootName = "ListPartsResult"

    /// One uploaded part.
    public struct Part: Sendable, Equatable {
        public var partNumber: PartNumber
        public var lastModified: Timestamp
        public var etag: ETag
        public var size: Int64
        public init(partNumber: PartNumber, lastModified: Timestamp, etag: ETag, size: Int64) {
            self.partNumber = partNumber
            self.lastModified = lastModified
            self.etag = etag
            self.size = size
        }
    }

    public var bucket: BucketName
    public var key: ObjectKey
    public var uploadID: UploadID
    public var initiator: Owner?
    public var owner: Owner?
    public var storageClass: StorageClass?
    /// Parts after this number were listed; nil from the first part.
    public var partNumberMarker: PartNumber?
    /// Where the next page starts, when truncated.
    public var nextPartNumberMarker: PartNumber?
    public var maxParts: Int
    public var isTruncated: Bool
    public var parts: [Part]
    public var encodingType: KeyEncoding?

    public init(bucket: BucketName, key: ObjectKey, uploadID: UploadID, initiator: Owner? = nil, owner: Owner? = nil,
                storageClass: StorageClass? = nil, partNumberMarker: PartNumber? = nil, nextPartNumberMarker: PartNumber? = nil,
                maxParts: Int, isTruncated: Bool, parts: [Part], encodingType: KeyEncoding? = nil) {
        self.bucket = bucket
        self.key = key
        self.uploadID = uploadID
        self.initiator = initiator
        self.owner = owner
        self.storageClass = storageClass
        self.partNumberMarker = partNumberMarker
        self.nextPartNumberMarker = nextPartNumberMarker
        self.maxParts = maxParts
        self.isTruncated = isTruncated
        self.parts = parts
        self.encodingType = encodingType
    }

    public init(xml root: XML.Element) throws(XML.ParseError) {
        encodingType = try KeyEncoding.read(from: root)
        bucket = BucketName(try root.requiredText("Bucket"))
        key = try encodingType.requiredKey(root, "Key")
        uploadID = UploadID(try root.requiredText("UploadId"))
        initiator = try Owner.optional(root, "Initiator")
        owner = try Owner.optional(root, "Owner")
        storageClass = root.optionalText("StorageClass").map { StorageClass(wireName: $0) }
        partNumberMarker = try root.partNumberMarker("PartNumberMarker")
        nextPartNumberMarker = try root.partNumberMarker("NextPartNumberMarker")
        maxParts = try root.optionalInt("MaxParts") ?? 1000
        isTruncated = try root.optionalBool("IsTruncated") ?? false
        parts = []
        for element in root.children("Part") {
            parts.append(Part(partNumber: try element.requiredPartNumber("PartNumber"),
                              lastModified: try element.requiredTimestamp("LastModified"),
                              etag: try element.requiredETag("ETag"),
                              size: try element.requiredSize("Size")))
        }
    }

    public func xml(for dialect: Dialect) -> XML.Element {
        var children: [XML.Element] = [
            .leaf("Bucket", bucket.rawValue),
            encodingType.leaf("Key", key.rawValue),
            .leaf("UploadId", uploadID.rawValue),
        ]
        if let initiator { children.append(initiator.xml("Initiator")) }
        if let owner { children.append(owner.xml("Owner")) }
        children += .leaf("StorageClass", storageClass?.wireName(for: dialect))
        children.append(.leaf("PartNumberMarker", String(partNumberMarker?.rawValue ?? 0)))
        children += .leaf("NextPartNumberMarker", nextPartNumberMarker?.description)
        children.append(.leaf("MaxParts", String(maxParts)))
        children.append(.leaf("IsTruncated", String(isTruncated)))
        children += encodingType.encodingTypeElement()
        children += parts.map { part in
            XML.Element("Part", [
                .leaf("PartNumber", part.partNumber.description),
                .leaf("LastModified", part.lastModified.iso8601),
                .leaf("ETag", part.etag.quoted),
                .leaf("Size", String(part.size)),
            ])
        }
        return XML.Element(Self.rootName, children)
    }
}

/// Reply to `GET /bucket?uploads[&prefix&delimiter&max-uploads&key-marker&upload-id-marker]`.
public struct ListMultipartUploadsResult: XMLWireDocument, Equatable {
    public static let rootName = "ListMultipartUploadsResult"

    /// One upload in progress.
    public struct Upload: Sendable, Equatable {
        public var key: ObjectKey
        public var uploadID: UploadID
        public var initiator: Owner?
        public var owner: Owner?
        public var storageClass: StorageClass?
        public var initiated: Timestamp
        public init(key: ObjectKey, uploadID: UploadID, initiator: Owner? = nil, owner: Owner? = nil,
                    storageClass: StorageClass? = nil, initiated: Timestamp) {
            self.key = key
            self.uploadID = uploadID
            self.initiator = initiator
            self.owner = owner
            self.storageClass = storageClass
            self.initiated = initiated
        }
    }

    public var bucket: BucketName
    public var keyMarker: ObjectKey?
    public var uploadIDMarker: UploadID?
    public var nextKeyMarker: ObjectKey?
    public var nextUploadIDMarker: UploadID?
    public var prefix: String?
    public var delimiter: String?
    public var maxUploads: Int
    public var isTruncated: Bool
    public var uploads: [Upload]
    public var commonPrefixes: [String]
    public var encodingType: KeyEncoding?

    public init(bucket: BucketName, keyMarker: ObjectKey? = nil, uploadIDMarker: UploadID? = nil, nextKeyMarker: ObjectKey? = nil,
                nextUploadIDMarker: UploadID? = nil, prefix: String? = nil, delimiter: String? = nil, maxUploads: Int,
                isTruncated: Bool, uploads: [Upload], commonPrefixes: [String] = [], encodingType: KeyEncoding? = nil) {
        self.bucket = bucket
        self.keyMarker = keyMarker
        self.uploadIDMarker = uploadIDMarker
        self.nextKeyMarker = nextKeyMarker
        self.nextUploadIDMarker = nextUploadIDMarker
        self.prefix = prefix
        self.delimiter = delimiter
        self.maxUploads = maxUploads
        self.isTruncated = isTruncated
        self.uploads = uploads
        self.commonPrefixes = commonPrefixes
        self.encodingType = encodingType
    }

    public init(xml root: XML.Element) throws(XML.ParseError) {
        let encoding = try KeyEncoding.read(from: root)
        encodingType = encoding
        bucket = BucketName(try root.requiredText("Bucket"))
        keyMarker = try encoding.optionalKey(root, "KeyMarker")
        uploadIDMarker = root.optionalText("UploadIdMarker").map(UploadID.init)
        nextKeyMarker = try encoding.optionalKey(root, "NextKeyMarker")
        nextUploadIDMarker = root.optionalText("NextUploadIdMarker").map(UploadID.init)
        prefix = try encoding.optionalText(root, "Prefix")
        delimiter = try encoding.optionalText(root, "Delimiter")
        maxUploads = try root.optionalInt("MaxUploads") ?? 1000
        isTruncated = try root.optionalBool("IsTruncated") ?? false
        uploads = []
        for element in root.children("Upload") {
            uploads.append(Upload(key: try encoding.requiredKey(element, "Key"),
                                  uploadID: UploadID(try element.requiredText("UploadId")),
                                  initiator: try Owner.optional(element, "Initiator"),
                                  owner: try Owner.optional(element, "Owner"),
                                  storageClass: element.optionalText("StorageClass").map { StorageClass(wireName: $0) },
                                  initiated: try element.requiredTimestamp("Initiated")))
        }
        commonPrefixes = try encoding.readCommonPrefixes(root)
    }

    public func xml(for dialect: Dialect) -> XML.Element {
        var children: [XML.Element] = [.leaf("Bucket", bucket.rawValue)]
        children += encodingType.leaf("KeyMarker", keyMarker)
        children += .leaf("UploadIdMarker", uploadIDMarker?.rawValue)
        children += encodingType.leaf("NextKeyMarker", nextKeyMarker)
        children += .leaf("NextUploadIdMarker", nextUploadIDMarker?.rawValue)
        children += encodingType.leaf("Prefix", prefix)
        children += encodingType.leaf("Delimiter", delimiter)
        children.append(.leaf("MaxUploads", String(maxUploads)))
        children.append(.leaf("IsTruncated", String(isTruncated)))
        children += encodingType.encodingTypeElement()
        for upload in uploads {
            var fields: [XML.Element] = [encodingType.leaf("Key", upload.key.rawValue), .leaf("UploadId", upload.uploadID.rawValue)]
            if let initiator = upload.initiator { fields.append(initiator.xml("Initiator")) }
            if let owner = upload.owner { fields.append(owner.xml("Owner")) }
            fields += .leaf("StorageClass", upload.storageClass?.wireName(for: dialect))
            fields.append(.leaf("Initiated", upload.initiated.iso8601))
            children.append(XML.Element("Upload", fields))
        }
        children += encodingType.commonPrefixes(commonPrefixes)
        return XML.Element(Self.rootName, children)
    }
}
