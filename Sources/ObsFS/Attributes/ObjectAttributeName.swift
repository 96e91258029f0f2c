// The `user.obs.*` extended attributes: one name per upload parameter, the read-only facts of an
// object, and the errors xattr calls answer with. Values are read and written in
// ObjectAttributeValues.swift; mount-option names are these names with `_` for `-`
// (ObjectAttributeMountOptions.swift). The reference is mount-options/xattrs.md.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import OBSProtocol

/// A failed xattr call or a rejected upload option: the errno the caller gets and a log message
/// naming the attribute and the rule it broke.
public struct ObjectAttributeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The POSIX error number (`EINVAL`, `ENOTSUP`, `EPERM`, `EBUSY`, `ENODATA`).
    public let errno: Int32
    /// The attribute as the caller named it (`user.obs.expires`), or a pattern such as
    /// `user.obs.meta.*` when a rule concerns several.
    public let attribute: String
    /// The rule in plain words.
    public let message: String

    public init(errno: Int32, attribute: String, message: String) {
        self.errno = errno
        self.attribute = attribute
        self.message = message
    }

    static func invalid(_ attribute: String, _ message: String) -> ObjectAttributeError {
        ObjectAttributeError(errno: EINVAL, attribute: attribute, message: message)
    }

    /// `user.obs.expires: must be a whole number of days, 0 or more (got -1) (EINVAL)`
    public var description: String { "\(attribute): \(message) (\(ObjectAttributeError.errnoName(errno)))" }

    private static func errnoName(_ errno: Int32) -> String {
        switch errno {
        case EINVAL: "EINVAL"
        case ENOTSUP: "ENOTSUP"
        case EPERM: "EPERM"
        case EBUSY: "EBUSY"
        case ENODATA: "ENODATA"
        default: "errno \(errno)"
        }
    }
}

/// One attribute of the `user.obs.` namespace.
///
/// Settable names hold one upload parameter each (`ObjectOptions` field); read-only names show
/// facts of the object or its upload and refuse writes with `EPERM`. Metadata and persistent
/// header names are lower-cased (HTTP header names are case-insensitive and stores report them
/// in lower case), so `user.obs.meta.Color` and `user.obs.meta.color` are one attribute.
public enum ObjectAttributeName: Hashable, Sendable, CustomStringConvertible {
    case acl
    case grant(GrantPermission)
    case storageClass
    /// `user.obs.meta.NAME`: one user metadata entry.
    case metadata(String)
    case contentType
    case contentEncoding
    case websiteRedirect
    /// `user.obs.sse`: `kms`, `obs` or `c` (the mount's SSE-C key).
    case encryption
    case kmsKeyID
    case kmsBucketKey
    case expires
    case tagging
    /// `user.obs.persistent.NAME`: one persistent header.
    case persistentHeader(String)
    case objectLockMode
    case objectLockRetainUntil
    /// `user.obs.encoding-type`: `url` or `none`, whether the upload's initiation asks for
    /// `encoding-type=url`; reads the mount option `encoding_type=` when no level sets it.
    case encodingType
    case etag
    case uploadID
    case versionID
    case size
    case lastModified
    /// `user.obs.expiry-date`: when the store will delete the object (from `x-obs-expiration`).
    case expiryDate

    /// The namespace every name starts with.
    public static let namespace = "user.obs."
    static let metadataPrefix = "meta."
    static let persistentPrefix = "persistent."

    /// Names without a variable part, by the text after `user.obs.`.
    static let fixedNames: [String: ObjectAttributeName] = {
        var names: [String: ObjectAttributeName] = [
            "acl": .acl, "storage-class": .storageClass, "content-type": .contentType,
            "content-encoding": .contentEncoding, "website-redirect": .websiteRedirect, "sse": .encryption,
            "sse-kms-key-id": .kmsKeyID, "sse-kms-bucket-key": .kmsBucketKey, "expires": .expires,
            "tagging": .tagging, "object-lock-mode": .objectLockMode,
            "object-lock-retain-until": .objectLockRetainUntil, "encoding-type": .encodingType,
            "etag": .etag, "upload_id": .uploadID, "version-id": .versionID, "size": .size,
            "last-modified": .lastModified, "expiry-date": .expiryDate,
        ]
        for permission in GrantPermission.allCases { names[permission.rawValue] = .grant(permission) }
        return names
    }()

    /// The attribute `text` names; nil when `text` is outside `user.obs.` (not ours: the caller
    /// keeps its usual behaviour). An unknown `user.obs.` name is `ENOTSUP`; an empty or malformed
    /// metadata or persistent-header name is `EINVAL`.
    public static func parse(_ text: String) throws(ObjectAttributeError) -> ObjectAttributeName? {
        guard text.hasPrefix(namespace) else { return nil }
        let suffix = String(text.dropFirst(namespace.count))
        if let name = fixedNames[suffix] { return name }
        for (prefix, make) in [(metadataPrefix, ObjectAttributeName.metadata), (persistentPrefix, ObjectAttributeName.persistentHeader)]
        where suffix.hasPrefix(prefix) {
            let headerName = String(suffix.dropFirst(prefix.count))
            guard isHeaderToken(headerName) else {
                throw .invalid(text, "the name after \(namespace)\(prefix) must be 1 or more of A-Z a-z 0-9 - _")
            }
            return make(headerName.lowercasedASCII)
        }
        throw ObjectAttributeError(errno: ENOTSUP, attribute: text,
                                   message: "unknown attribute; see mount-options/xattrs.md for the user.obs. names")
    }

    /// The full name, `user.obs.storage-class`.
    public var description: String { ObjectAttributeName.namespace + suffix }

    /// The name without `user.obs.`.
    var suffix: String {
        switch self {
        case .metadata(let name): ObjectAttributeName.metadataPrefix + name
        case .persistentHeader(let name): ObjectAttributeName.persistentPrefix + name
        default: ObjectAttributeName.fixedNames.first { $0.value == self }!.key
        }
    }

    /// Whether writes are refused with `EPERM`.
    public var isReadOnly: Bool {
        switch self {
        case .etag, .uploadID, .versionID, .size, .lastModified, .expiryDate: true
        default: false
        }
    }

    /// The `ObjectOptions` parameters this attribute sets, as violations name them.
    var parameters: Set<ObjectOptions.Parameter> {
        switch self {
        case .acl: [.acl]
        case .grant: [.grants]
        case .storageClass: [.storageClass]
        case .metadata: [.metadata]
        case .persistentHeader: [.persistentHeaders, .metadata]
        case .contentType: [.contentType]
        case .contentEncoding: [.contentEncoding]
        case .websiteRedirect: [.websiteRedirectLocation]
        case .encryption, .kmsKeyID, .kmsBucketKey: [.serverSideEncryption, .kmsKeyID, .customerKey]
        case .expires: [.expires]
        case .tagging: [.tagging]
        case .objectLockMode, .objectLockRetainUntil: [.objectLockMode, .objectLockRetainUntilDate]
        case .encodingType, .etag, .uploadID, .versionID, .size, .lastModified, .expiryDate: []
        }
    }

    /// The attribute, or pattern of attributes, a violation of `parameter` is reported under.
    static func label(for parameter: ObjectOptions.Parameter) -> String {
        let suffix: String = switch parameter {
        case .acl: "acl"
        case .grants: "grant-*"
        case .storageClass: "storage-class"
        case .metadata: "meta.*"
        case .persistentHeaders: "persistent.*"
        case .contentType: "content-type"
        case .contentEncoding: "content-encoding"
        case .websiteRedirectLocation: "website-redirect"
        case .serverSideEncryption, .customerKey: "sse"
        case .kmsKeyID: "sse-kms-key-id"
        case .expires: "expires"
        case .tagging: "tagging"
        case .objectLockMode: "object-lock-mode"
        case .objectLockRetainUntilDate: "object-lock-retain-until"
        }
        return namespace + suffix
    }

    /// Header names as metadata and persistent headers use them: letters, digits, `-`, `_`.
    static func isHeaderToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"): true
            default: false
            }
        }
    }
}
