// Object headers both ways: reading the initiate/PUT/metadata headers of a request (either
// dialect) into dialect-neutral `ObjectAttributes` and an ACL, with the protocol's validation,
// and rendering stored attributes as GET/HEAD response headers in the asking dialect.
import OBSHashing
import OBSProtocol

/// Storage class names: OBS-native against S3.
enum StorageClassName {
    static let obsNames: Set<String> = ["STANDARD", "WARM", "COLD", "DEEP_ARCHIVE"]

    /// The OBS name for a header value in `dialect`; nil when unknown.
    static func canonical(_ value: String, dialect: Dialect) -> String? {
        if dialect == .obs { return obsNames.contains(value) ? value : nil }
        switch value {
        case "STANDARD": return "STANDARD"
        case "STANDARD_IA": return "WARM"
        case "GLACIER": return "COLD"
        case "DEEP_ARCHIVE": return "DEEP_ARCHIVE"
        default: return nil
        }
    }

    static func render(_ obsName: String, dialect: Dialect) -> String {
        guard dialect != .obs else { return obsName }
        switch obsName {
        case "WARM": return "STANDARD_IA"
        case "COLD": return "GLACIER"
        default: return obsName
        }
    }
}

/// SSE-C headers of a request, checked: algorithm AES256, a 256-bit key whose MD5 matches.
struct CustomerKey: Equatable {
    var algorithm: String
    var keyMD5: String

    /// Nil when the request carries none of the three headers.
    static func parse(_ headers: HeaderFields, dialect: Dialect, copySource: Bool = false) throws(OBSLocalError) -> CustomerKey? {
        let stem = copySource ? "copy-source-server-side-encryption-customer-" : "server-side-encryption-customer-"
        let algorithm = headers[dialect.header(stem + "algorithm")]
        let key = headers[dialect.header(stem + "key")]
        let md5 = headers[dialect.header(stem + "key-MD5")]
        if algorithm == nil && key == nil && md5 == nil { return nil }
        guard let algorithm, let key, let md5 else {
            throw OBSLocalError(.invalidArgument, "SSE-C requires the algorithm, the key and the key MD5 headers together.")
        }
        guard algorithm == "AES256" else {
            throw OBSLocalError(.invalidArgument, "The SSE-C algorithm must be AES256.")
        }
        guard var keyBytes = Base64.decode(key), keyBytes.count == 32 else {
            throw OBSLocalError(.invalidArgument, "The SSE-C key must be a base64-encoded 256-bit key.")
        }
        defer { zeroize(&keyBytes) }
        guard Base64.encode(Hash.md5(keyBytes)) == md5 else {
            throw OBSLocalError(.invalidArgument, "The calculated MD5 hash of the key did not match the hash that was provided.")
        }
        return CustomerKey(algorithm: algorithm, keyMD5: md5)
    }

    /// Refuses a request whose SSE-C key does not match the one the object was written with.
    static func check(_ provided: CustomerKey?, against attributes: ObjectAttributes) throws(OBSLocalError) {
        switch (attributes.customerKeyMD5, provided) {
        case (nil, nil): return
        case (nil, .some):
            throw OBSLocalError(.invalidRequest, "The object was not stored with server-side encryption with a customer key; do not send SSE-C headers.")
        case (.some, nil):
            throw OBSLocalError(.invalidRequest, "The object was stored using a form of server-side encryption with a customer key; the correct parameters must be provided to access it.")
        case (.some(let stored), .some(let given)):
            guard stored == given.keyMD5 else {
                throw OBSLocalError(.accessDenied, "The SSE-C key does not match the key the object was stored with.")
            }
        }
    }
}

extension ObjectAttributes {
    /// Reads and validates the object headers of an initiate, PUT, append or copy (REPLACE).
    init(parsing headers: HeaderFields, dialect: Dialect, now: Timestamp) throws(OBSLocalError) {
        self.init()
        try apply(headers, dialect: dialect, directive: .replace, now: now)
        if let value = headers[dialect.header("storage-class")] {
            guard let name = StorageClassName.canonical(value, dialect: dialect) else {
                throw OBSLocalError("InvalidStorageClass", "The storage class you specified is not valid: \(value).", status: 400)
            }
            storageClass = name
        }
        if let days = headers["x-obs-expires"] {
            guard let value = Int(days), value >= 0 else { throw OBSLocalError(.invalidArgument, "x-obs-expires must be a non-negative integer.") }
            expirationDays = value
        }
        if let tagging = headers[dialect.header("tagging")] { tags = try Self.parseTagging(tagging) }
        if let persistent = headers["x-obs-persistent-headers"] { persistentHeaders = try Self.parsePersistentHeaders(persistent) }
        let lockMode = headers[dialect.header("object-lock-mode")], lockDate = headers[dialect.header("object-lock-retain-until-date")]
        if lockMode != nil || lockDate != nil {
            guard let lockMode, let lockDate else {
                throw OBSLocalError(.invalidArgument, "x-obs-object-lock-mode and x-obs-object-lock-retain-until-date must be given together.")
            }
            guard lockMode == "COMPLIANCE" else { throw OBSLocalError(.invalidArgument, "The object lock mode must be COMPLIANCE.") }
            guard let until = Timestamp(iso8601: lockDate), until > now else {
                throw OBSLocalError(.invalidArgument, "The retain-until date must be an ISO 8601 UTC time in the future.")
            }
            objectLockMode = lockMode
            objectLockRetainUntil = lockDate
        }
        try parseEncryption(headers, dialect: dialect)
        let metadataBytes = userMetadata.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
            + persistentHeaders.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
        guard metadataBytes <= ProtocolLimits.maximumMetadataBytes else {
            throw OBSLocalError(.metadataTooLarge, "Your metadata headers exceed the maximum allowed metadata size (\(metadataBytes) > 8192 bytes).")
        }
    }

    /// Applies the headers `PUT ?metadata` may change: everything given under REPLACE_NEW,
    /// everything (given or not) under REPLACE.
    mutating func apply(_ headers: HeaderFields, dialect: Dialect, directive: MetadataDirective, now: Timestamp) throws(OBSLocalError) {
        func take(_ name: String, _ field: WritableKeyPath<ObjectAttributes, String?>) {
            if let value = headers[name] { self[keyPath: field] = value } else if directive == .replace { self[keyPath: field] = nil }
        }
        take("Content-Type", \.contentType)
        take("Content-Encoding", \.contentEncoding)
        take("Content-Disposition", \.contentDisposition)
        take("Content-Language", \.contentLanguage)
        take("Cache-Control", \.cacheControl)
        take("Expires", \.expires)
        if let location = headers[dialect.header("website-redirect-location")] {
            guard location.hasPrefix("/") || location.hasPrefix("http://") || location.hasPrefix("https://"),
                  location.utf8.count <= ProtocolLimits.maximumRedirectBytes else {
                throw OBSLocalError(.invalidArgument, "The website redirect location must start with /, http:// or https:// and be at most 2 KB.")
            }
            websiteRedirectLocation = location
        } else if directive == .replace {
            websiteRedirectLocation = nil
        }
        var given: [NameValue] = []
        for field in headers {
            let name = field.name.lowercasedASCII
            guard name.hasPrefix(dialect.metadataPrefix) else { continue }
            given.append(NameValue(name: String(name.dropFirst(dialect.metadataPrefix.count)), value: field.value.trimmingSpaces))
        }
        if directive == .replace {
            userMetadata = given
        } else {
            for entry in given {
                if let index = userMetadata.firstIndex(where: { $0.name == entry.name }) { userMetadata[index] = entry } else { userMetadata.append(entry) }
            }
        }
    }

    private mutating func parseEncryption(_ headers: HeaderFields, dialect: Dialect) throws(OBSLocalError) {
        let customer = try CustomerKey.parse(headers, dialect: dialect)
        if let sse = headers[dialect.header("server-side-encryption")] {
            let kmsName = dialect == .obs ? "kms" : "aws:kms"
            guard sse == kmsName || sse == "AES256" else {
                throw OBSLocalError(.invalidArgument, "Server-side encryption must be \(kmsName) or AES256.")
            }
            guard customer == nil else {
                throw OBSLocalError(.invalidArgument, "SSE-C cannot be combined with another server-side encryption.")
            }
            serverSideEncryption = sse == "AES256" ? "AES256" : "kms"
            let keyHeader = dialect == .obs ? "x-obs-server-side-encryption-kms-key-id" : "x-amz-server-side-encryption-aws-kms-key-id"
            kmsKeyID = headers[keyHeader]
            bucketKeyEnabled = headers[dialect.header("server-side-encryption-bucket-key-enabled")]
            if kmsKeyID != nil && serverSideEncryption != "kms" {
                throw OBSLocalError(.invalidArgument, "A KMS key ID needs KMS server-side encryption.")
            }
            if bucketKeyEnabled == "true" && kmsKeyID == nil {
                throw OBSLocalError(.invalidArgument, "A bucket key needs a KMS key ID.")
            }
        }
        if let customer {
            customerAlgorithm = customer.algorithm
            customerKeyMD5 = customer.keyMD5
        }
    }

    /// `TagA=A&TagB&TagC` (URL-encoded).
    static func parseTagging(_ text: String) throws(OBSLocalError) -> [NameValue] {
        var tags: [NameValue] = []
        for pair in text.split(separator: "&") {
            let pieces = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = PercentEncoding.decode(String(pieces[0]).replacing("+", with: " ")), !name.isEmpty,
                  let value = PercentEncoding.decode(pieces.count == 2 ? String(pieces[1]).replacing("+", with: " ") : "") else {
                throw OBSLocalError(.invalidArgument, "The tagging header is malformed.")
            }
            tags.append(NameValue(name: name, value: value))
        }
        guard tags.count <= 10 else { throw OBSLocalError(.invalidArgument, "Object tags cannot be greater than 10.") }
        return tags
    }

    /// `key1:base64(v1),key2:base64(v2)`.
    static func parsePersistentHeaders(_ text: String) throws(OBSLocalError) -> [NameValue] {
        var headers: [NameValue] = []
        for entry in text.split(separator: ",") {
            let pieces = entry.split(separator: ":", maxSplits: 1)
            let name = pieces.first.map { String($0).trimmingSpaces.lowercasedASCII } ?? ""
            guard pieces.count == 2, !name.isEmpty, !name.hasPrefix("x-obs-"), !name.hasPrefix("x-amz-"),
                  !Self.standardHeaders.contains(name),
                  let decoded = Base64.decode(String(pieces[1]).trimmingSpaces),
                  let value = String(validating: decoded, as: UTF8.self) else {
                throw OBSLocalError(.invalidArgument, "x-obs-persistent-headers must be key:base64(value) pairs without x-obs- or standard header names.")
            }
            headers.append(NameValue(name: name, value: value))
        }
        return headers
    }

    private static let standardHeaders: Set<String> = [
        "content-type", "content-length", "content-md5", "content-encoding", "content-disposition", "content-language",
        "cache-control", "expires", "etag", "last-modified", "date", "host", "authorization", "connection", "range",
    ]

    /// The headers GET and HEAD return for these attributes, in `dialect`.
    func responseHeaders(dialect: Dialect, lastModified: Timestamp) -> [(String, String)] {
        var out: [(String, String)] = []
        out.append(("Content-Type", contentType ?? "binary/octet-stream"))
        if let contentEncoding { out.append(("Content-Encoding", contentEncoding)) }
        if let contentDisposition { out.append(("Content-Disposition", contentDisposition)) }
        if let contentLanguage { out.append(("Content-Language", contentLanguage)) }
        if let cacheControl { out.append(("Cache-Control", cacheControl)) }
        if let expires { out.append(("Expires", expires)) }
        if let storageClass, storageClass != "STANDARD" {
            out.append((dialect.header("storage-class"), StorageClassName.render(storageClass, dialect: dialect)))
        }
        for entry in userMetadata { out.append((dialect.metadataPrefix + entry.name, entry.value)) }
        if let websiteRedirectLocation { out.append((dialect.header("website-redirect-location"), websiteRedirectLocation)) }
        if let expirationDays {
            // Objects expire at the first midnight (UTC) at least `days` after last modification.
            let day: Int64 = 86_400
            let expiry = (lastModified.secondsSinceEpoch / day + Int64(expirationDays) + 1) * day
            out.append((dialect.header("expiration"), "expiry-date=\"\(Timestamp(secondsSinceEpoch: expiry).rfc1123)\""))
        }
        if !tags.isEmpty { out.append((dialect.header("tagging-count"), String(tags.count))) }
        for entry in persistentHeaders { out.append((entry.name, entry.value)) }
        if let objectLockMode, let objectLockRetainUntil {
            out.append((dialect.header("object-lock-mode"), objectLockMode))
            out.append((dialect.header("object-lock-retain-until-date"), objectLockRetainUntil))
        }
        out += encryptionHeaders(dialect: dialect)
        return out
    }

    /// The encryption headers echoed by PUT, initiate, upload part, complete, GET and HEAD.
    func encryptionHeaders(dialect: Dialect) -> [(String, String)] {
        var out: [(String, String)] = []
        if let serverSideEncryption {
            out.append((dialect.header("server-side-encryption"), serverSideEncryption == "kms" && dialect != .obs ? "aws:kms" : serverSideEncryption))
            if let kmsKeyID {
                out.append((dialect == .obs ? "x-obs-server-side-encryption-kms-key-id" : "x-amz-server-side-encryption-aws-kms-key-id", kmsKeyID))
            }
            if let bucketKeyEnabled { out.append((dialect.header("server-side-encryption-bucket-key-enabled"), bucketKeyEnabled)) }
        }
        if let customerAlgorithm, let customerKeyMD5 {
            out.append((dialect.header("server-side-encryption-customer-algorithm"), customerAlgorithm))
            out.append((dialect.header("server-side-encryption-customer-key-MD5"), customerKeyMD5))
        }
        return out
    }
}

extension AccessControl {
    /// The ACL of a request's `x-obs-acl` and `x-obs-grant-*` headers (private by default).
    init(parsing headers: HeaderFields, dialect: Dialect, ownerID: String) throws(OBSLocalError) {
        let canned = headers[dialect.header("acl")] ?? "private"
        guard let acl = AccessControl.canned(canned, ownerID: ownerID) else {
            throw OBSLocalError(.invalidArgument, "The canned ACL \(canned) is not valid.")
        }
        self = acl
        let grantHeaders = [("grant-read", "READ"), ("grant-write", "WRITE"), ("grant-read-acp", "READ_ACP"),
                            ("grant-write-acp", "WRITE_ACP"), ("grant-full-control", "FULL_CONTROL")]
        for (suffix, permission) in grantHeaders {
            guard let value = headers[dialect.header(suffix)] else { continue }
            for entry in value.split(separator: ",") {
                let pair = entry.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces }
                guard pair.count == 2 else { throw OBSLocalError(.invalidArgument, "Malformed grant header \(dialect.header(suffix)).") }
                var target = pair[1]
                if target.hasPrefix("\"") && target.hasSuffix("\"") && target.count >= 2 { target = String(target.dropFirst().dropLast()) }
                switch pair[0].lowercasedASCII {
                case "id": grants.append(Grant(grantee: .user(id: target), permission: permission))
                case "uri" where target.hasSuffix("AllUsers") || target == "Everyone":
                    grants.append(Grant(grantee: .everyone, permission: permission))
                default: throw OBSLocalError(.invalidArgument, "Unsupported grantee \(pair[0]) in \(dialect.header(suffix)).")
                }
            }
        }
        guard grants.count <= ProtocolLimits.maximumGrants else {
            throw OBSLocalError(.invalidArgument, "An ACL holds at most 100 grants.")
        }
    }
}
