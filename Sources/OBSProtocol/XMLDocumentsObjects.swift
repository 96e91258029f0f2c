// Object and bucket documents: listings, copy results, ACLs, tagging, bucket creation.

/// Reply to `GET /bucket?prefix&marker&delimiter&max-keys&encoding-type`.
public struct ListBucketResult: XMLWireDocument, Equatable {
    public static let rootName = "ListBucketResult"

    /// One object of the listing.
    public struct Object: Sendable, Equatable {
        public var key: ObjectKey
        public var lastModified: Timestamp
        public var etag: ETag
        public var size: Int64
        public var storageClass: StorageClass?
        public var owner: Owner?
        public init(key: ObjectKey, lastModified: Timestamp, etag: ETag, size: Int64, storageClass: StorageClass? = nil, owner: Owner? = nil) {
            self.key = key
            self.lastModified = lastModified
            self.etag = etag
            self.size = size
            self.storageClass = storageClass
            self.owner = owner
        }
    }

    public var name: BucketName
    public var prefix: String?
    public var marker: ObjectKey?
    /// Where the next page starts, when truncated (servers send it when a delimiter is given;
    /// otherwise the last key of the page is the next marker).
    public var nextMarker: ObjectKey?
    public var maxKeys: Int
    public var delimiter: String?
    public var isTruncated: Bool
    public var contents: [Object]
    public var commonPrefixes: [String]
    public var encodingType: KeyEncoding?

    public init(name: BucketName, prefix: String? = nil, marker: ObjectKey? = nil, nextMarker: ObjectKey? = nil, maxKeys: Int,
                delimiter: String? = nil, isTruncated: Bool, contents: [Object], commonPrefixes: [String] = [], encodingType: KeyEncoding? = nil) {
        self.name = name
        self.prefix = prefix
        self.marker = marker
        self.nextMarker = nextMarker
        self.maxKeys = maxKeys
        self.delimiter = delimiter
        self.isTruncated = isTruncated
        self.contents = contents
        self.commonPrefixes = commonPrefixes
        self.encodingType = encodingType
    }

    public init(xml root: XML.Element) throws(XML.ParseError) {
        let encoding = try KeyEncoding.read(from: root)
        encodingType = encoding
        name = BucketName(try root.requiredText("Name"))
        prefix = try encoding.optionalText(root, "Prefix")
        marker = try encoding.optionalKey(root, "Marker")
        nextMarker = try encoding.optionalKey(root, "NextMarker")
        maxKeys = try root.optionalInt("MaxKeys") ?? 1000
        delimiter = try encoding.optionalText(root, "Delimiter")
        isTruncated = try root.optionalBool("IsTruncated") ?? false
        contents = []
        for element in root.children("Contents") {
            contents.append(Object(key: try encoding.requiredKey(element, "Key"),
                                   lastModified: try element.requiredTimestamp("LastModified"),
                                   etag: try element.requiredETag("ETag"),
                                   size: try element.requiredSize("Size"),
                                   storageClass: element.optionalText("StorageClass").map(StorageClass.init(wireName:)),
                                   owner: try Owner.optional(element, "Owner")))
        }
        commonPrefixes = try encoding.readCommonPrefixes(root)
    }

    public func xml(for dialect: Dialect) -> XML.Element {
        var children: [XML.Element] = [.leaf("Name", name.rawValue)]
        children.append(encodingType.leaf("Prefix", prefix ?? ""))
        children.append(encodingType.leaf("Marker", marker?.rawValue ?? ""))
        children += encodingType.leaf("NextMarker", nextMarker)
        children.append(.leaf("MaxKeys", String(maxKeys)))
        children += encodingType.leaf("Delimiter", delimiter)
        children.append(.leaf("IsTruncated", String(isTruncated)))
        children += encodingType.encodingTypeElement()
        for object in contents {
            var fields: [XML.Element] = [
                encodingType.leaf("Key", object.key.rawValue),
                .leaf("LastModified", object.lastModified.iso8601),
                .leaf("ETag", object.etag.quoted),
                .leaf("Size", String(object.size)),
            ]
            if let owner = object.owner { fields.append(owner.xml("Owner")) }
            fields += .leaf("StorageClass", object.storageClass?.wireName(for: dialect))
            children.append(XML.Element("Contents", fields))
        }
        children += encodingType.commonPrefixes(commonPrefixes)
        return XML.Element(Self.rootName, children)
    }
}

// MARK: - Copy results

/// The reply of a server-side copy: when the copy was made and the new ETag.
public protocol CopyResultDocument: XMLWireDocument, Equatable {
    var lastModified: Timestamp { get }
    var etag: ETag { get }
    init(lastModified: Timestamp, etag: ETag)
}

extension CopyResultDocument {
    public init(xml root: XML.Element) throws(XML.ParseError) {
        self.init(lastModified: try root.requiredTimestamp("LastModified"), etag: try root.requiredETag("ETag"))
    }

    public func xml(for dialect: Dialect) -> XML.Element {
        XML.Element(Self.rootName, [.leaf("LastModified", lastModified.iso8601), .leaf("ETag", etag.quoted)])
    }
}

/// Reply to `PUT /bucket/dest` with a copy source.
public struct CopyObjectResult: CopyResultDocument {
    public static let rootName = "CopyObjectResult"
    public var lastModified: Timestamp
    public var etag: ETag
    public init(lastModified: Timestamp, etag: ETag) {
        self.lastModified = lastModified
        self.etag = etag
    }
}

/// Reply to an upload-part request with a copy source.
public struct CopyPartResult: CopyResultDocument {
    public static let rootName = "CopyPartResult"
    public var lastModified: Timestamp
    public var etag: ETag
    public init(lastModified: Timestamp, etag: ETag) {
        self.lastModified = lastModified
        self.etag = etag
    }
}

// MARK: - ACL

/// An object or bucket ACL (`PUT/GET ?acl`). Reads both the OBS form (`<Canned>Everyone</Canned>`,
/// `<Delivered>`) and the S3 form (`xsi:type="CanonicalUser"`/`"Group"` with the AllUsers URI);
/// writes the form of the dialect.
public struct AccessControlPolicy: XMLWireDocument, Equatable {
    public static let rootName = "AccessControlPolicy"
    static let allUsersURI = "http://acs.amazonaws.com/groups/global/AllUsers"
    static let schemaInstanceNamespace = "http://www.w3.org/2001/XMLSchema-instance"

    /// Who a grant is for.
    public enum Grantee: Sendable, Equatable {
        /// An account, by domain ID.
        case user(id: String)
        /// Everyone, anonymous included (OBS `Canned` `Everyone`, S3 group AllUsers).
        case everyone
    }

    public enum Permission: String, Sendable, CaseIterable {
        case read = "READ"
        case write = "WRITE"
        case readACP = "READ_ACP"
        case writeACP = "WRITE_ACP"
        case fullControl = "FULL_CONTROL"
    }

    public struct Grant: Sendable, Equatable {
        public var grantee: Grantee
        public var permission: Permission
        /// OBS bucket ACLs: whether the grant is inherited by objects.
        public var delivered: Bool?
        public init(grantee: Grantee, permission: Permission, delivered: Bool? = nil) {
            self.grantee = grantee
            self.permission = permission
            self.delivered = delivered
        }
    }

    public var owner: Owner
    /// OBS object ACLs: whether the bucket ACL is delivered to the object.
    public var delivered: Bool?
    public var grants: [Grant]

    public init(owner: Owner, delivered: Bool? = nil, grants: [Grant]) {
        self.owner = owner
        self.delivered = delivered
        self.grants = grants
    }

    public init(xml root: XML.Element) throws(XML.ParseError) {
        owner = try Owner(xml: root.requiredChild("Owner"))
        delivered = try root.optionalBool("Delivered")
        grants = []
        for element in root.child("AccessControlList")?.children("Grant") ?? [] {
            let permissionText = try element.requiredText("Permission").trimmingSpaces
            guard let permission = Permission(rawValue: permissionText) else { throw XML.ParseError("unknown permission \(permissionText)") }
            grants.append(Grant(grantee: try Self.grantee(element.requiredChild("Grantee")), permission: permission,
                                delivered: try element.optionalBool("Delivered")))
        }
    }

    private static func grantee(_ element: XML.Element) throws(XML.ParseError) -> Grantee {
        if let id = element.optionalText("ID") { return .user(id: id) }
        if let canned = element.optionalText("Canned") {
            guard canned == "Everyone" else { throw XML.ParseError("unknown canned grantee \(canned)") }
            return .everyone
        }
        if let uri = element.optionalText("URI") {
            guard uri == allUsersURI else { throw XML.ParseError("unsupported grantee group \(uri)") }
            return .everyone
        }
        throw XML.ParseError("<Grantee> names no ID, Canned or URI")
    }

    public func xml(for dialect: Dialect) -> XML.Element {
        var children = [owner.xml("Owner")]
        if dialect == .obs { children += .leaf("Delivered", delivered.map { String($0) }) }
        children.append(XML.Element("AccessControlList", grants.map { grant in
            var fields = [granteeXML(grant.grantee, dialect: dialect), .leaf("Permission", grant.permission.rawValue)]
            if dialect == .obs { fields += .leaf("Delivered", grant.delivered.map { String($0) }) }
            return XML.Element("Grant", fields)
        }))
        return XML.Element(Self.rootName, children)
    }

    private func granteeXML(_ grantee: Grantee, dialect: Dialect) -> XML.Element {
        switch (grantee, dialect) {
        case (.user(let id), .obs):
            XML.Element("Grantee", [.leaf("ID", id)])
        case (.everyone, .obs):
            XML.Element("Grantee", [.leaf("Canned", "Everyone")])
        case (.user(let id), _):
            XML.Element("Grantee", attributes: s3GranteeAttributes("CanonicalUser"), [.leaf("ID", id)])
        case (.everyone, _):
            XML.Element("Grantee", attributes: s3GranteeAttributes("Group"), [.leaf("URI", Self.allUsersURI)])
        }
    }

    private func s3GranteeAttributes(_ type: String) -> [XML.Attribute] {
        [XML.Attribute("xmlns:xsi", Self.schemaInstanceNamespace), XML.Attribute("xsi:type", type)]
    }
}

// MARK: - Tagging

/// Object tags (`PUT/GET ?tagging`).
public struct Tagging: XMLWireDocument, Equatable {
    public static let rootName = "Tagging"

    public struct Tag: Sendable, Equatable {
        public var key: String
        public var value: String
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    public var tags: [Tag]

    public init(tags: [Tag]) { self.tags = tags }

    public init(xml root: XML.Element) throws(XML.ParseError) {
        tags = []
        for element in root.child("TagSet")?.children("Tag") ?? [] {
            tags.append(Tag(key: try element.requiredText("Key"), value: element.childText("Value") ?? ""))
        }
    }

    public func xml(for dialect: Dialect) -> XML.Element {
        XML.Element(Self.rootName, [XML.Element("TagSet", tags.map { tag in
            XML.Element("Tag", [.leaf("Key", tag.key), .leaf("Value", tag.value)])
        })])
    }
}

// MARK: - Buckets

/// Reply to `GET /` (list buckets).
public struct ListAllMyBucketsResult: XMLWireDocument, Equatable {
    public static let rootName = "ListAllMyBucketsResult"

    public struct Bucket: Sendable, Equatable {
        public var name: BucketName
        public var creationDate: Timestamp
        /// OBS: the bucket's region.
        public var location: String?
        public init(name: BucketName, creationDate: Timestamp, location: String? = nil) {
            self.name = name
            self.creationDate = creationDate
            self.location = location
        }
    }

    public var owner: Owner
    public var buckets: [Bucket]

    public init(owner: Owner, buckets: [Bucket]) {
        self.owner = owner
        self.buckets = buckets
    }

    public init(xml root: XML.Element) throws(XML.ParseError) {
        owner = try Owner(xml: root.requiredChild("Owner"))
        buckets = []
        for element in root.child("Buckets")?.children("Bucket") ?? [] {
            buckets.append(Bucket(name: BucketName(try element.requiredText("Name")),
                                  creationDate: try element.requiredTimestamp("CreationDate"),
                                  location: element.optionalText("Location")))
        }
    }

    public func xml(for dialect: Dialect) -> XML.Element {
        XML.Element(Self.rootName, [owner.xml("Owner"), XML.Element("Buckets", buckets.map { bucket in
            XML.Element("Bucket", [.leaf("Name", bucket.name.rawValue), .leaf("CreationDate", bucket.creationDate.iso8601)]
                + .leaf("Location", bucket.location))
        })])
    }
}

/// Body of `PUT /bucket`: the region. OBS writes `<Location>`, S3 `<LocationConstraint>`;
/// both are read.
public struct CreateBucketConfiguration: XMLWireDocument, Equatable {
    public static let rootName = "CreateBucketConfiguration"
    public var location: String

    public init(location: String) { self.location = location }

    public init(xml root: XML.Element) throws(XML.ParseError) {
        guard let location = root.optionalText("Location") ?? root.optionalText("LocationConstraint") else {
            throw XML.ParseError.missing("Location", in: Self.rootName)
        }
        self.location = location
    }

    public func xml(for dialect: Dialect) -> XML.Element {
        XML.Element(Self.rootName, [.leaf(dialect == .obs ? "Location" : "LocationConstraint", location)])
    }
}
