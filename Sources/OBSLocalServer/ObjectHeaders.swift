// Object headers both ways: reading the initiate/PUT/metadata headers of a request (either
// dialect) into dialect-neutral `ObjectAttributes` and an ACL, with the protocol's validation,
// and rendering stored attributes as GET/HEAD response headers in the asking dialect.
import OBSHashing
import OBSProtocol

/// The SSE-C headers of a request (algorithm AES256, a 256-bit key whose MD5 matches), reduced
/// to what the server keeps: the key's MD5.
struct RequestCustomerKey: Equatable {
    var algorithm: String
    /// Base64 MD5 of the key.
    var keyMD5: String

    /// Nil when the request carries none of the three headers; `copySource` reads the
    /// `x-obs-copy-source-server-side-encryption-customer-*` set.
    static func parse(_ headers: HeaderFields, dialect: Dialect, copySource: Bool = false) throws(OBSLocalError) -> RequestCustomerKey? {
        let stem = copySource ? "copy-source-server-side-encryption-customer-" : "server-side-encryption-customer-"
        let algorithm = headers[dialect.header(stem + "algorithm")]
        let key = headers[dialect.header(stem + "key")]
        let md5 = headers[dialect.header(stem + "key-MD5")]
        if algorithm == nil && key == nil && md5 == nil { return nil }
        guard let algorithm, let key, let md5 else {
            throw OBSLocalError(.invalidArgument, "SSE-C requires the algorithm, the key and the key MD5 headers together.")
        }
        guard algorithm == CustomerKey.algorithm else { throw OBSLocalError(.invalidArgument, "The SSE-C algorithm must be AES256.") }
        guard let keyBytes = Base64.decode(key), keyBytes.count == 32, let md5Bytes = Base64.decode(md5),
              CustomerKey(key: SecretBytes(keyBytes), keyMD5: md5Bytes).md5Matches else {
            throw OBSLocalError(.invalidArgument, "The SSE-C key must be a base64 256-bit key whose MD5 matches the key MD5 header.")
        }
        return RequestCustomerKey(algorithm: algorithm, keyMD5: md5)
    }

    /// Refuses a request whose SSE-C key does not match the one the object was written with.
    static func check(_ provided: RequestCustomerKey?, against attributes: ObjectAttributes) throws(OBSLocalError) {
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
    /// Reads and validates the object headers of an initiate, PUT, append or copy (REPLACE)
    /// with `ObjectOptions`; user metadata is kept as sent (the SDK percent-encodes values and
    /// reads them back verbatim).
    init(parsing headers: HeaderFields, dialect: Dialect, now: Timestamp) throws(OBSLocalError) {
        let options = try ObjectOptions.validated(headers, dialect: dialect, now: now)
        self.init()
        try apply(headers, dialect: dialect, directive: .replace, now: now)
        storageClass = options.storageClass?.rawValue
        expirationDays = options.expiresDays
        tags = options.tags.map { NameValue(name: $0.key, value: $0.value ?? "") }
        persistentHeaders = options.persistentHeaders.sorted { $0.key < $1.key }.map { NameValue(name: $0.key.lowercasedASCII, value: $0.value) }
        objectLockMode = options.objectLockMode?.rawValue
        objectLockRetainUntil = options.objectLockRetainUntil?.iso8601
        switch options.encryption {
        case .kms(let keyID, let bucketKeyEnabled):
            serverSideEncryption = "kms"
            kmsKeyID = keyID
            bucketKeyEnabled ? (self.bucketKeyEnabled = "true") : ()
        case .obs:
            serverSideEncryption = "AES256"
        case .customer(let key):
            customerAlgorithm = CustomerKey.algorithm
            customerKeyMD5 = Base64.encode(key.keyMD5)
        case nil:
            break
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
            out.append((dialect.header("storage-class"), StorageClass(storageClass).wireName(for: dialect)))
        }
        for entry in userMetadata { out.append((dialect.metadataPrefix + entry.name, entry.value)) }
        if let websiteRedirectLocation { out.append((dialect.header("website-redirect-location"), websiteRedirectLocation)) }
        if let expirationDays {
            out.append((dialect.header("expiration"), ObjectOptions.expirationHeaderValue(lastModified: lastModified, days: expirationDays)))
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
        let options = try ObjectOptions.validated(headers, dialect: dialect, now: nil)
        self = AccessControl.canned(options.acl ?? .private, ownerID: ownerID)
        let permissions: [GrantPermission: String] = [.read: "READ", .readACP: "READ_ACP", .writeACP: "WRITE_ACP", .fullControl: "FULL_CONTROL"]
        for (permission, ids) in options.grants.sorted(by: { $0.key < $1.key }) {
            grants += ids.map { Grant(grantee: .user(id: $0), permission: permissions[permission]!) }
        }
        guard grants.count <= ProtocolLimits.maximumGrants else {
            throw OBSLocalError(.invalidArgument, "An ACL holds at most 100 grants.")
        }
    }
}

extension ObjectOptions {
    /// Parses and validates, answering the first problem as an OBS error (`now` nil: parse only).
    static func validated(_ headers: HeaderFields, dialect: Dialect, now: Timestamp?) throws(OBSLocalError) -> ObjectOptions {
        let options: ObjectOptions
        do {
            options = try ObjectOptions(parsing: headers, dialect: dialect)
        } catch {
            let first = error.violations.first
            throw OBSLocalError(first?.code ?? .invalidArgument, "Invalid \(first?.parameter.rawValue ?? "header"): \(first?.message ?? "")")
        }
        if let now, let problem = options.violations(now: now).first {
            throw OBSLocalError(problem.code, "Invalid \(problem.parameter.rawValue): \(problem.message)")
        }
        return options
    }
}
