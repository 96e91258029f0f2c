// What the server remembers about buckets, objects, uploads and parts. Records are Codable and
// persisted as small JSON files by `MetadataJournal`; object attributes are kept dialect-neutral
// (OBS names) and rendered in the asking request's dialect.
import OBSProtocol

/// A header-like name/value pair kept in order (user metadata, persistent headers, tags).
struct NameValue: Codable, Sendable, Equatable {
    var name: String
    var value: String
}

/// Everything an upload stored about an object besides its bytes.
struct ObjectAttributes: Codable, Sendable, Equatable {
    var contentType: String?
    var contentEncoding: String?
    var contentDisposition: String?
    var contentLanguage: String?
    var cacheControl: String?
    /// The HTTP `Expires` header.
    var expires: String?
    /// `x-obs-meta-*`, names without the prefix, lower-cased.
    var userMetadata: [NameValue] = []
    /// OBS name: STANDARD, WARM, COLD or DEEP_ARCHIVE; nil for the bucket default.
    var storageClass: String?
    var websiteRedirectLocation: String?
    /// `x-obs-expires`: days after last modification.
    var expirationDays: Int?
    var tags: [NameValue] = []
    /// `x-obs-persistent-headers`, values decoded.
    var persistentHeaders: [NameValue] = []
    var objectLockMode: String?
    var objectLockRetainUntil: String?
    /// OBS name: `kms` or `AES256`.
    var serverSideEncryption: String?
    var kmsKeyID: String?
    var bucketKeyEnabled: String?
    /// SSE-C: the algorithm and the key's MD5 (base64). The key itself is never stored.
    var customerAlgorithm: String?
    var customerKeyMD5: String?
}

/// Who a grant is for.
enum Grantee: Codable, Sendable, Equatable {
    case user(id: String)
    case everyone
}

struct Grant: Codable, Sendable, Equatable {
    var grantee: Grantee
    /// READ, WRITE, READ_ACP, WRITE_ACP or FULL_CONTROL.
    var permission: String
}

/// An object's (or bucket's) access control list.
struct AccessControl: Codable, Sendable, Equatable {
    var ownerID: String
    var delivered: Bool = false
    var grants: [Grant]

    /// The ACL a canned name stands for.
    static func canned(_ acl: CannedACL, ownerID: String) -> AccessControl {
        var grants = [Grant(grantee: .user(id: ownerID), permission: "FULL_CONTROL")]
        switch acl {
        case .publicRead, .publicReadDelivered:
            grants.append(Grant(grantee: .everyone, permission: "READ"))
        case .publicReadWrite, .publicReadWriteDelivered:
            grants.append(Grant(grantee: .everyone, permission: "READ"))
            grants.append(Grant(grantee: .everyone, permission: "WRITE"))
        case .private, .bucketOwnerFullControl:
            break
        }
        return AccessControl(ownerID: ownerID, delivered: acl == .publicReadDelivered || acl == .publicReadWriteDelivered, grants: grants)
    }
}

struct BucketRecord: Codable, Sendable {
    var name: String
    /// Milliseconds since the epoch.
    var created: Int64
    /// A parallel file system bucket (created with `x-obs-fs-file-interface: Enabled`): serves
    /// rename, modify and truncate. Absent in records of ordinary buckets.
    var fileInterface: Bool?

    var isFileSystem: Bool { fileInterface == true }
}

struct ObjectRecord: Codable, Sendable {
    var key: String
    var size: Int64
    var etag: String
    var lastModified: Int64
    var segments: [Segment]
    var attributes: ObjectAttributes
    var acl: AccessControl
    /// Created by append (`x-obs-object-type: Appendable`).
    var appendable: Bool = false
    /// CRCs of the whole object; nil for objects stored before obs-local kept them.
    var checksums: StoredChecksums?

    var objectKey: ObjectKey { ObjectKey(key) }
    /// `x-obs-object-type` and `x-obs-next-append-position` of an appendable object (the same in
    /// every dialect).
    var appendHeaders: [(String, String)] {
        appendable ? [("x-obs-object-type", "Appendable"), ("x-obs-next-append-position", String(size))] : []
    }
    var lastModifiedTimestamp: Timestamp { Timestamp(millisecondsSinceEpoch: lastModified) }
}

struct UploadRecord: Codable, Sendable {
    var uploadID: String
    var key: String
    var initiated: Int64
    var attributes: ObjectAttributes
    var acl: AccessControl
    var initiatorID: String
}

struct PartRecord: Codable, Sendable {
    var number: Int
    var size: Int64
    /// Hex MD5 of the part.
    var etag: String
    var lastModified: Int64
    var segment: Segment
    /// CRCs of the part's bytes; nil for parts stored before obs-local kept them.
    var checksums: StoredChecksums?
}
