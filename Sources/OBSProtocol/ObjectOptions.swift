// Object options: every parameter of InitiateMultipartUpload (and PUT) as a typed value, their
// headers in each dialect, the inverse parse for the server, and the validation rules.
import OBSHashing

/// A storage class, held by its OBS name. Open to classes this list does not name (a listing
/// from another S3 store may report them); `isKnown` tells the four OBS classes apart.
public struct StorageClass: Hashable, Sendable, CustomStringConvertible {
    /// The OBS name (`STANDARD`, `WARM`, `COLD`, `DEEP_ARCHIVE`) or a foreign one as received.
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public static let standard = StorageClass("STANDARD")
    public static let warm = StorageClass("WARM")
    public static let cold = StorageClass("COLD")
    public static let deepArchive = StorageClass("DEEP_ARCHIVE")

    /// The four classes OBS defines.
    public static let known: [StorageClass] = [.standard, .warm, .cold, .deepArchive]
    public var isKnown: Bool { StorageClass.known.contains(self) }

    /// Renames between OBS and the S3 dialect, as the official SDK does.
    private static let s3Names: [StorageClass: String] = [.warm: "STANDARD_IA", .cold: "GLACIER"]

    /// The class a header or listing names, in either dialect: the S3 names `STANDARD_IA` and
    /// `GLACIER` are `WARM` and `COLD` (OBS never uses them otherwise).
    public init(wireName: String) {
        self = StorageClass.s3Names.first(where: { $0.value == wireName })?.key ?? StorageClass(wireName)
    }

    /// The name `dialect` writes for this class.
    public func wireName(for dialect: Dialect) -> String {
        dialect == .obs ? rawValue : StorageClass.s3Names[self] ?? rawValue
    }

    public var description: String { rawValue }
}

/// A canned ACL (`x-obs-acl` / `x-amz-acl`).
public enum CannedACL: String, Sendable, CaseIterable {
    case `private` = "private"
    case publicRead = "public-read"
    case publicReadWrite = "public-read-write"
    case publicReadDelivered = "public-read-delivered"
    case publicReadWriteDelivered = "public-read-write-delivered"
    case bucketOwnerFullControl = "bucket-owner-full-control"
}

/// The permission of an explicit grant header (`x-obs-grant-read: id=domainID,…`).
public enum GrantPermission: String, Sendable, CaseIterable, Comparable {
    case read = "grant-read"
    case readACP = "grant-read-acp"
    case writeACP = "grant-write-acp"
    case fullControl = "grant-full-control"

    public static func < (lhs: GrantPermission, rhs: GrantPermission) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Object lock mode (`x-obs-object-lock-mode`).
public enum ObjectLockMode: String, Sendable, CaseIterable {
    case compliance = "COMPLIANCE"
}

/// An SSE-C key: the 256-bit key (never printed) and the MD5 the request carries for it.
public struct CustomerKey: Sendable, Equatable, CustomStringConvertible {
    public static let algorithm = "AES256"
    public var key: SecretBytes
    /// MD5 of the key as sent in `…-customer-key-MD5`; computed from the key unless parsed.
    public var keyMD5: [UInt8]

    /// A key with its MD5 computed.
    public init(key: SecretBytes) {
        self.key = key
        keyMD5 = key.withBytes { Hash.md5($0) }
    }

    /// A key with the MD5 a request gave (which `ObjectOptions.violations` checks).
    public init(key: SecretBytes, keyMD5: [UInt8]) {
        self.key = key
        self.keyMD5 = keyMD5
    }

    /// Whether `keyMD5` is the key's MD5.
    public var md5Matches: Bool { key.withBytes { Hash.md5($0) } == keyMD5 }

    public var description: String { "CustomerKey(<redacted>, md5: \(Base64.encode(keyMD5)))" }

    /// The three SSE-C headers, needed on initiate, every part, and every read; with
    /// `copySource`, the `copy-source-…` ones that open the source of a copy.
    public func headers(for dialect: Dialect, copySource: Bool = false) -> HeaderFields {
        let stem = copySource ? "copy-source-server-side-encryption-customer-" : "server-side-encryption-customer-"
        var fields = HeaderFields()
        fields.add(name: dialect.header(stem + "algorithm"), value: CustomerKey.algorithm)
        fields.add(name: dialect.header(stem + "key"), value: key.withBytes { Base64.encode($0) })
        fields.add(name: dialect.header(stem + "key-MD5"), value: Base64.encode(keyMD5))
        return fields
    }

    public static func == (lhs: CustomerKey, rhs: CustomerKey) -> Bool {
        lhs.keyMD5 == rhs.keyMD5 && lhs.key.withBytes { a in rhs.key.withBytes { b in a == b } }
    }
}

/// Server-side encryption of a new object.
public enum ServerSideEncryption: Sendable, Equatable {
    /// SSE-KMS: a KMS key (`region:domain:key/id` or `id`; the default key when nil) and whether
    /// the bucket key is used (needs a key id).
    case kms(keyID: String?, bucketKeyEnabled: Bool)
    /// SSE-OBS: keys managed by the service (`AES256`).
    case obs
    /// SSE-C: the caller's key.
    case customer(CustomerKey)
}

/// Whether InitiateMultipartUpload asks for `encoding-type=url` (the reply names the key
/// URL-encoded, so keys holding characters XML 1.0 cannot carry survive) or leaves the
/// parameter out (`none`, for S3-compatible stores that refuse it). A query parameter, not a
/// header: `headers(for:)` never carries it.
public enum KeyEncodingChoice: String, Sendable, CaseIterable {
    case url
    case omitted = "none"

    /// The choice that sends `encoding` (nil: `none`).
    public init(_ encoding: KeyEncoding?) { self = encoding == nil ? .omitted : .url }

    /// The `encoding-type` value to send; nil leaves the parameter out.
    public var keyEncoding: KeyEncoding? { self == .url ? .url : nil }
}

/// One object tag as `x-obs-tagging` carries it: `TagA=A&TagB` (a tag may have no value).
public struct ObjectTag: Sendable, Equatable {
    public var key: String
    public var value: String?
    public init(key: String, value: String? = nil) {
        self.key = key
        self.value = value
    }
}

/// Every parameter of InitiateMultipartUpload (and of PUT), typed. The client turns it into
/// headers with `headers(for:)`; the server reads it back with `init(parsing:dialect:)`, checks
/// it with `violations(now:)`, stores it and echoes it.
public struct ObjectOptions: Sendable, Equatable {
    public var acl: CannedACL?
    /// Explicit grants: domain IDs per permission.
    public var grants: [GrantPermission: [String]] = [:]
    public var storageClass: StorageClass?
    /// User metadata, name → value (the value may be any text; non-ASCII travels percent-encoded).
    public var metadata: [String: String] = [:]
    public var contentType: String?
    public var contentEncoding: String?
    public var websiteRedirectLocation: String?
    public var encryption: ServerSideEncryption?
    /// Days after the last modification at which the object expires.
    public var expiresDays: Int?
    public var tags: [ObjectTag] = []
    /// Headers returned on every GET/HEAD of the object, name → value.
    public var persistentHeaders: [String: String] = [:]
    public var objectLockMode: ObjectLockMode?
    public var objectLockRetainUntil: Timestamp?
    /// `encoding-type` of the initiation; nil follows the client's configuration. Not sent as a
    /// header and not stored with the object.
    public var encodingType: KeyEncodingChoice?

    public init() {}

    /// The parameters as they are named in violations.
    public enum Parameter: String, Sendable, CaseIterable, CustomStringConvertible {
        case acl, grants, storageClass = "storage class", metadata, contentType = "Content-Type",
             contentEncoding = "Content-Encoding", websiteRedirectLocation = "website redirect location",
             serverSideEncryption = "server-side encryption", kmsKeyID = "SSE-KMS key id",
             customerKey = "SSE-C key", expires, tagging, persistentHeaders = "persistent headers",
             objectLockMode = "object lock mode", objectLockRetainUntilDate = "object lock retain-until date"
        public var description: String { rawValue }
    }

    // MARK: Headers

    /// The header `x-obs-expires`, the same in every dialect.
    public static let expiresHeader = "x-obs-expires"

    private static func encryptionHeader(_ dialect: Dialect) -> String { dialect.header("server-side-encryption") }
    private static func kmsKeyIDHeader(_ dialect: Dialect) -> String {
        dialect.header(dialect == .obs ? "server-side-encryption-kms-key-id" : "server-side-encryption-aws-kms-key-id")
    }
    private static func kmsValue(_ dialect: Dialect) -> String { dialect == .obs ? "kms" : "aws:kms" }

    /// The request headers for these options in `dialect`, in a fixed order.
    public func headers(for dialect: Dialect) -> HeaderFields {
        var fields = HeaderFields()
        fields.add(dialect, "acl", acl?.rawValue)
        for permission in grants.keys.sorted() where !(grants[permission]?.isEmpty ?? true) {
            fields.add(dialect, permission.rawValue, grants[permission]!.map { "id=\($0)" }.joined(separator: ","))
        }
        addDescriptiveHeaders(to: &fields, dialect: dialect)
        addEncryptionHeaders(to: &fields, dialect: dialect, isRequest: true)
        if let expiresDays { fields.add(name: ObjectOptions.expiresHeader, value: String(expiresDays)) }
        if !tags.isEmpty {
            fields.add(dialect, "tagging", tags.map { tag in
                PercentEncoding.encode(tag.key, keepSlash: false) + (tag.value.map { "=" + PercentEncoding.encode($0, keepSlash: false) } ?? "")
            }.joined(separator: "&"))
        }
        if !persistentHeaders.isEmpty {
            fields.add(dialect, "persistent-headers", persistentHeaders.keys.sorted().map { name in
                name + ":" + Base64.encode(persistentHeaders[name]!.utf8)
            }.joined(separator: ","))
        }
        addLockHeaders(to: &fields, dialect: dialect)
        return fields
    }

    /// The headers a GET or HEAD of the object answers with in `dialect`: storage class,
    /// metadata, Content-Type and -Encoding, redirect, encryption (for SSE-KMS the key id and the
    /// bucket-key flag, for SSE-C the algorithm and key MD5, never the key), `expiration` (`expiry-date="…"`: `lastModified` plus the days,
    /// rounded up to the next midnight UTC as S3 lifecycle rules are; OBS's exact rounding is not
    /// documented), the tag count, the persistent headers under their own names, and the lock.
    public func responseHeaders(for dialect: Dialect, lastModified: Timestamp) -> HeaderFields {
        var fields = HeaderFields()
        addDescriptiveHeaders(to: &fields, dialect: dialect)
        addEncryptionHeaders(to: &fields, dialect: dialect, isRequest: false)
        if let expiresDays {
            fields.add(dialect, "expiration", ObjectOptions.expirationHeaderValue(lastModified: lastModified, days: expiresDays))
        }
        if !tags.isEmpty { fields.add(dialect, "tagging-count", String(tags.count)) }
        for name in persistentHeaders.keys.sorted() { fields.add(name: name, value: persistentHeaders[name]!) }
        addLockHeaders(to: &fields, dialect: dialect)
        return fields
    }

    /// The `x-obs-expiration` reply value of an object uploaded with `expires` = `days`: the
    /// object expires `days` after its last modification, rounded up to the next midnight UTC.
    public static func expirationHeaderValue(lastModified: Timestamp, days: Int) -> String {
        let secondsPerDay: Int64 = 86_400
        let due = lastModified.secondsSinceEpoch + Int64(days) * secondsPerDay
        let midnight = (due + secondsPerDay - 1).floorDiv(secondsPerDay) * secondsPerDay
        return "expiry-date=\"\(Timestamp(secondsSinceEpoch: midnight).rfc1123)\""
    }

    /// Storage class, metadata, Content-Type, Content-Encoding, website redirect.
    private func addDescriptiveHeaders(to fields: inout HeaderFields, dialect: Dialect) {
        fields.add(dialect, "storage-class", storageClass?.wireName(for: dialect))
        for name in metadata.keys.sorted() {
            fields.add(name: dialect.metadataPrefix + name, value: ObjectOptions.encodeHeaderValue(metadata[name]!))
        }
        if let contentType { fields.add(name: "Content-Type", value: contentType) }
        if let contentEncoding { fields.add(name: "Content-Encoding", value: contentEncoding) }
        fields.add(dialect, "website-redirect-location", websiteRedirectLocation)
    }

    /// Encryption headers; a reply carries SSE-C's algorithm and key MD5 but never the key, and
    /// echoes the SSE-KMS bucket-key flag as S3 does.
    private func addEncryptionHeaders(to fields: inout HeaderFields, dialect: Dialect, isRequest: Bool) {
        switch encryption {
        case .kms(let keyID, let bucketKeyEnabled):
            fields.add(name: ObjectOptions.encryptionHeader(dialect), value: ObjectOptions.kmsValue(dialect))
            if let keyID { fields.add(name: ObjectOptions.kmsKeyIDHeader(dialect), value: keyID) }
            if bucketKeyEnabled { fields.add(dialect, "server-side-encryption-bucket-key-enabled", "true") }
        case .obs:
            fields.add(name: ObjectOptions.encryptionHeader(dialect), value: "AES256")
        case .customer(let key):
            for field in key.headers(for: dialect) where isRequest || !field.name.hasSuffix("-key") {
                fields.add(name: field.name, value: field.value)
            }
        case nil:
            break
        }
    }

    private func addLockHeaders(to fields: inout HeaderFields, dialect: Dialect) {
        fields.add(dialect, "object-lock-mode", objectLockMode?.rawValue)
        fields.add(dialect, "object-lock-retain-until-date", objectLockRetainUntil?.iso8601)
    }

    /// Characters the official SDK leaves unescaped in header values (besides `A-Z a-z 0-9 - _ . ~`).
    private static let headerValueSafe = Set(" ;/?:@&=+$,'*".unicodeScalars)

    /// Percent-encodes a header value the way the official SDK does (`vé %` → `v%C3%A9 %25`).
    static func encodeHeaderValue(_ value: String) -> String {
        var out = ""
        for scalar in value.unicodeScalars {
            if headerValueSafe.contains(scalar) { out.unicodeScalars.append(scalar) } else { out += PercentEncoding.encode(String(scalar), keepSlash: true) }
        }
        return out
    }

    // MARK: Parsing (server)

    /// Reads the options from request headers in `dialect`. Values that cannot be represented
    /// (an unknown ACL or lock mode, a non-integer expires, a malformed tagging, persistent-header
    /// or SSE-C header) are thrown as violations; check the rest with `violations(now:)`.
    /// A metadata value is percent-decoded when it is validly encoded (the SDK encodes every
    /// value); one that is not is kept as sent.
    public init(parsing headers: HeaderFields, dialect: Dialect) throws(ObjectOptionViolations) {
        var problems: [ObjectOptionViolation] = []
        func value(_ suffix: String) -> String? { headers[dialect.header(suffix)] }
        func reject(_ parameter: Parameter, _ message: String) { problems.append(ObjectOptionViolation(parameter, message)) }

        if let text = value("acl") {
            if let acl = CannedACL(rawValue: text) { self.acl = acl } else {
                reject(.acl, "unknown canned ACL \"\(text)\"; expected one of \(CannedACL.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        for permission in GrantPermission.allCases {
            guard let text = value(permission.rawValue) else { continue }
            var ids: [String] = []
            for entry in text.split(separator: ",") {
                let item = String(entry).trimmingSpaces
                guard item.hasPrefix("id="), item.count > 3 else {
                    reject(.grants, "\(dialect.header(permission.rawValue)) entry \"\(item)\" is not id=domainID")
                    continue
                }
                var id = Substring(item.dropFirst(3))
                if id.count >= 2, id.hasPrefix("\""), id.hasSuffix("\"") { id = id.dropFirst().dropLast() }
                ids.append(String(id))
            }
            grants[permission] = ids
        }
        storageClass = value("storage-class").map(StorageClass.init(wireName:))
        let metadataPrefix = dialect.metadataPrefix
        for field in headers where field.name.lowercasedASCII.hasPrefix(metadataPrefix) {
            metadata[String(field.name.dropFirst(metadataPrefix.count))] = PercentEncoding.decode(field.value) ?? field.value
        }
        contentType = headers["Content-Type"]
        contentEncoding = headers["Content-Encoding"]
        websiteRedirectLocation = value("website-redirect-location")
        if let text = headers[ObjectOptions.expiresHeader] {
            if let days = Int(text) { expiresDays = days } else { reject(.expires, "\"\(text)\" is not a whole number of days") }
        }
        if let text = value("tagging") {
            for pair in text.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = PercentEncoding.decodeForm(String(parts[0]))
                let tagValue = parts.count == 2 ? PercentEncoding.decodeForm(String(parts[1])) : nil
                guard let key, !key.isEmpty, parts.count == 1 || tagValue != nil else {
                    reject(.tagging, "\"\(pair)\" is not a URL-encoded Key=Value pair")
                    continue
                }
                tags.append(ObjectTag(key: key, value: tagValue))
            }
        }
        if let text = value("persistent-headers") {
            for entry in text.split(separator: ",") {
                let parts = entry.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, let bytes = Base64.decode(String(parts[1]).trimmingSpaces),
                      let decoded = String(validating: bytes, as: UTF8.self) else {
                    reject(.persistentHeaders, "\"\(entry)\" is not name:base64(value)")
                    continue
                }
                persistentHeaders[String(parts[0]).trimmingSpaces] = decoded
            }
        }
        if let text = value("object-lock-mode") {
            if let mode = ObjectLockMode(rawValue: text) { objectLockMode = mode } else { reject(.objectLockMode, "unknown mode \"\(text)\"; expected COMPLIANCE") }
        }
        if let text = value("object-lock-retain-until-date") {
            if let date = Timestamp(iso8601: text) { objectLockRetainUntil = date } else {
                reject(.objectLockRetainUntilDate, "\"\(text)\" is not an ISO 8601 UTC time such as 2015-07-01T04:11:15.297Z")
            }
        }
        encryption = ObjectOptions.parseEncryption(headers, dialect: dialect, reject: reject)
        guard problems.isEmpty else { throw ObjectOptionViolations(problems) }
    }

    private static func parseEncryption(_ headers: HeaderFields, dialect: Dialect, reject: (Parameter, String) -> Void) -> ServerSideEncryption? {
        let algorithm = headers[dialect.header("server-side-encryption-customer-algorithm")]
        let key = headers[dialect.header("server-side-encryption-customer-key")]
        let keyMD5 = headers[dialect.header("server-side-encryption-customer-key-MD5")]
        if algorithm != nil || key != nil || keyMD5 != nil {
            guard let algorithm, let key, let keyMD5 else {
                reject(.customerKey, "the algorithm, key and key MD5 headers must be sent together")
                return nil
            }
            guard algorithm == CustomerKey.algorithm else {
                reject(.customerKey, "algorithm \"\(algorithm)\" is not AES256")
                return nil
            }
            guard let keyBytes = Base64.decode(key), let md5Bytes = Base64.decode(keyMD5) else {
                reject(.customerKey, "the key and its MD5 must be base64")
                return nil
            }
            return .customer(CustomerKey(key: SecretBytes(keyBytes), keyMD5: md5Bytes))
        }
        switch headers[encryptionHeader(dialect)] {
        case nil:
            return nil
        case kmsValue(dialect):
            let bucketKey = headers[dialect.header("server-side-encryption-bucket-key-enabled")]
            return .kms(keyID: headers[kmsKeyIDHeader(dialect)], bucketKeyEnabled: bucketKey?.lowercasedASCII == "true")
        case "AES256":
            return .obs
        case let other?:
            reject(.serverSideEncryption, "unknown encryption \"\(other)\"; expected \(kmsValue(dialect)) or AES256")
            return nil
        }
    }

    // MARK: Validation

    /// The rules these options break at time `now` (empty when valid).
    public func violations(now: Timestamp) -> [ObjectOptionViolation] {
        var problems: [ObjectOptionViolation] = []
        func reject(_ parameter: Parameter, _ message: String, code: ObsErrorCode = .invalidArgument) {
            problems.append(ObjectOptionViolation(parameter, message, code: code))
        }
        if let storageClass, !storageClass.isKnown {
            reject(.storageClass, "unknown storage class \"\(storageClass)\"; expected one of STANDARD, WARM, COLD, DEEP_ARCHIVE",
                   code: "InvalidStorageClass")
        }
        if grants.values.contains(where: { $0.contains(where: \.isEmpty) }) { reject(.grants, "a grant names an empty domain ID") }
        if let expiresDays, expiresDays < 0 { reject(.expires, "must be a whole number of days, 0 or more (got \(expiresDays))") }
        if let location = websiteRedirectLocation {
            if !(location.hasPrefix("/") || location.hasPrefix("http://") || location.hasPrefix("https://")) {
                reject(.websiteRedirectLocation, "must start with /, http:// or https://")
            }
            if location.utf8.count > ProtocolLimits.maximumRedirectBytes {
                reject(.websiteRedirectLocation, "must be at most \(ProtocolLimits.maximumRedirectBytes) bytes (got \(location.utf8.count))")
            }
        }
        let metadataBytes = ProtocolLimits.metadataBytes(metadata) + ProtocolLimits.metadataBytes(persistentHeaders)
        if metadataBytes > ProtocolLimits.maximumMetadataBytes {
            reject(.metadata, "user metadata and persistent headers together must be at most \(ProtocolLimits.maximumMetadataBytes) bytes (got \(metadataBytes))",
                   code: .metadataTooLarge)
        }
        for name in persistentHeaders.keys where !ObjectOptions.isAllowedPersistentHeaderName(name) {
            reject(.persistentHeaders, "\"\(name)\" cannot be a persistent header: it must be a plain name, not x-obs-*, x-amz-* or a standard HTTP header")
        }
        switch (objectLockMode, objectLockRetainUntil) {
        case (.some, nil): reject(.objectLockRetainUntilDate, "a lock mode needs a retain-until date")
        case (nil, .some): reject(.objectLockMode, "a retain-until date needs a lock mode")
        case (.some, let date?) where date <= now: reject(.objectLockRetainUntilDate, "must be in the future (got \(date.iso8601))")
        default: break
        }
        switch encryption {
        case .kms(nil, true): reject(.kmsKeyID, "the bucket key needs a KMS key id")
        case .customer(let key):
            if key.key.count != 32 { reject(.customerKey, "the key must be 256 bits (32 bytes), got \(key.key.count) bytes") }
            if !key.md5Matches { reject(.customerKey, "the key MD5 does not match the key") }
        default: break
        }
        return problems
    }

    /// Standard headers a persistent header may not shadow.
    private static let standardHeaderNames: Set<String> = [
        "authorization", "cache-control", "connection", "content-disposition", "content-encoding", "content-language",
        "content-length", "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "host",
        "last-modified", "location", "range", "server", "transfer-encoding",
    ]

    private static func isAllowedPersistentHeaderName(_ name: String) -> Bool {
        let lower = name.lowercasedASCII
        let isToken = !name.isEmpty && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"): true
            default: false
            }
        }
        return isToken && !lower.hasPrefix("x-obs-") && !lower.hasPrefix("x-amz-") && !standardHeaderNames.contains(lower)
    }
}

/// One broken rule: the parameter, the rule in plain words, and the error code to answer with.
public struct ObjectOptionViolation: Error, Sendable, Equatable, CustomStringConvertible {
    public var parameter: ObjectOptions.Parameter
    public var message: String
    public var code: ObsErrorCode

    public init(_ parameter: ObjectOptions.Parameter, _ message: String, code: ObsErrorCode = .invalidArgument) {
        self.parameter = parameter
        self.message = message
        self.code = code
    }

    /// `storage class: unknown storage class "X"; …`
    public var description: String { "\(parameter): \(message)" }

    /// The error the server answers with.
    public func serviceError(resource: String? = nil, requestID: String? = nil) -> ServiceError {
        ServiceError(status: code.httpStatus, code: code, message: description, requestID: requestID, resource: resource)
    }
}

/// Values in request headers that `ObjectOptions` cannot represent.
public struct ObjectOptionViolations: Error, Sendable, Equatable, CustomStringConvertible {
    public var violations: [ObjectOptionViolation]
    public init(_ violations: [ObjectOptionViolation]) { self.violations = violations }
    public var description: String { violations.map(\.description).joined(separator: "; ") }
}

extension HeaderFields {
    /// Appends the dialect's header `suffix` (`acl` → `x-obs-acl`) when there is a value.
    fileprivate mutating func add(_ dialect: Dialect, _ suffix: String, _ value: String?) {
        if let value { add(name: dialect.header(suffix), value: value) }
    }
}
