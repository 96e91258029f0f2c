// Request signing for the three dialects, and the canonical forms behind them. The client signs
// with `RequestSigner`; the server recomputes the same canonical strings in `SignatureVerifier`.
import OBSHashing
import Synchronization

/// The canonical strings of each dialect. Pure functions of the wire request.
public enum Canonical {
    /// Query keys that OBS and V2 sign as sub-resources (compared lower-cased), besides
    /// `response-*` and any key starting with the dialect's header prefix.
    public static let subResources: Set<String> = [
        "acl", "backtosource", "policy", "torrent", "logging", "location", "storageinfo", "quota",
        "storageclass", "storagepolicy", "requestpayment", "versions", "versioning", "versionid",
        "uploads", "uploadid", "partnumber", "website", "notification", "replication", "lifecycle",
        "deletebucket", "delete", "cors", "restore", "tagging", "append", "position", "encryption",
        "directcoldaccess", "rename", "name", "metadata", "modify", "attname", "truncate",
        "object-lock", "retention", "length", "inventory", "customdomain",
        "response-content-type", "response-content-language", "response-expires",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
        "x-image-process", "x-image-save-object", "x-image-save-bucket",
    ]

    /// OBS/V2 CanonicalizedResource: `/bucket/key?sub&sub2=v` (values not encoded).
    /// `virtualHostBucket` is the bucket named by the Host header, when virtual-host addressing.
    public static func resource(for request: WireRequest, dialect: Dialect, virtualHostBucket: BucketName?) -> String {
        var resource: String
        if let bucket = virtualHostBucket {
            resource = "/" + bucket.rawValue + (request.path == "/" ? "/" : request.path)
        } else {
            resource = request.path
        }
        let signed = request.query
            .filter { item in
                let lower = item.name.lowercasedASCII
                return subResources.contains(lower) || lower.hasPrefix(dialect.headerPrefix)
            }
            .sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        if !signed.isEmpty {
            resource += "?" + signed.map { item in
                guard let value = item.value, !value.isEmpty else { return item.name }
                return item.name + "=" + value
            }.joined(separator: "&")
        }
        return resource
    }

    /// OBS/V2 StringToSign: `VERB\nContent-MD5\nContent-Type\nDate\nCanonicalizedHeaders` +
    /// CanonicalizedResource.
    public static func stringToSign(for request: WireRequest, dialect: Dialect, virtualHostBucket: BucketName?) -> String {
        let prefix = dialect == .obs ? "x-obs-" : "x-amz-"
        var grouped: [String: [String]] = [:]
        for field in request.headers where field.name.hasPrefixIgnoringASCIICase(prefix) {
            let name = field.name.lowercasedASCII
            let value = name.hasPrefix(prefix + "meta-") ? field.value.trimmingSpaces : field.value
            grouped[name, default: []].append(value)
        }
        let dateLine = grouped[prefix + "date"] == nil ? (request.headers["Date"] ?? "") : ""
        var text = request.method + "\n"
        text += (request.headers["Content-MD5"] ?? "") + "\n"
        text += (request.headers["Content-Type"] ?? "") + "\n"
        text += dateLine + "\n"
        for name in grouped.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            text += name + ":" + grouped[name]!.joined(separator: ",") + "\n"
        }
        return text + resource(for: request, dialect: dialect, virtualHostBucket: virtualHostBucket)
    }

    /// V4 canonical request over the named (lower-case) signed headers.
    public static func v4CanonicalRequest(for request: WireRequest, signedHeaders: [String], payloadHash: String) -> String {
        let query = request.query
            .map { (PercentEncoding.encode($0.name, keepSlash: false), PercentEncoding.encode($0.value ?? "", keepSlash: false)) }
            .sorted { $0.0 == $1.0 ? $0.1.utf8.lexicographicallyPrecedes($1.1.utf8) : $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
            .map { $0.0 + "=" + $0.1 }
            .joined(separator: "&")
        var headerLines = ""
        for name in signedHeaders {
            let value = request.headers.values(name).map(collapseSpaces).joined(separator: ",")
            headerLines += name + ":" + value + "\n"
        }
        return [request.method, request.path, query, headerLines, signedHeaders.joined(separator: ";"), payloadHash]
            .joined(separator: "\n")
    }

    /// The V4 credential scope `yyyymmdd/region/s3/aws4_request`.
    public static func v4Scope(date: Timestamp, region: String) -> String {
        "\(date.yyyymmdd)/\(region)/s3/aws4_request"
    }

    /// V4 string to sign.
    public static func v4StringToSign(canonicalRequest: String, date: Timestamp, scope: String) -> String {
        "AWS4-HMAC-SHA256\n\(date.iso8601Basic)\n\(scope)\n\(Hash.sha256(canonicalRequest.utf8).hexString)"
    }

    /// Hex V4 signature; the derived keys are zeroed after use.
    public static func v4Signature(secret: SecretBytes, dateStamp: String, region: String, stringToSign: String) -> String {
        let signingKey = v4SigningKey(secret: secret, dateStamp: dateStamp, region: region)
        return signingKey.withBytes { Hash.hmac(.sha256, key: $0, message: stringToSign).hexString }
    }

    /// The V4 signing key of one day and region (the HMAC chain over `AWS4`+secret, the date,
    /// the region, `s3`, `aws4_request`); intermediate keys are zeroed.
    public static func v4SigningKey(secret: SecretBytes, dateStamp: String, region: String) -> SecretBytes {
        var key = secret.withBytes { Array("AWS4".utf8) + $0 }
        for step in [dateStamp, region, "s3", "aws4_request"] {
            var next = Hash.hmac(.sha256, key: key, message: step)
            zeroize(&key)
            swap(&key, &next)
        }
        return SecretBytes(key)
    }

    /// Hex V4 signature with a key from `v4SigningKey`, prepared for HMAC-SHA256.
    public static func v4Signature(signingKey: HMACKey, stringToSign: String) -> String {
        signingKey.authenticate(stringToSign.utf8).hexString
    }

    /// Base64 HMAC-SHA1 signature of OBS and V2.
    public static func hmacSHA1Signature(secret: SecretBytes, stringToSign: String) -> String {
        secret.withBytes { Base64.encode(Hash.hmac(.sha1, key: $0, message: stringToSign)) }
    }

    /// The same with the secret prepared once for HMAC-SHA1.
    public static func hmacSHA1Signature(key: HMACKey, stringToSign: String) -> String {
        Base64.encode(key.authenticate(stringToSign.utf8))
    }

    private static func collapseSpaces(_ value: String) -> String {
        // Most values have nothing to collapse (no tab, no padding, no run of spaces): as they are.
        var previousWasSpace = true
        var plain = true
        for byte in value.utf8 {
            let isSpace = byte == UInt8(ascii: " ")
            if byte == UInt8(ascii: "\t") || (isSpace && previousWasSpace) {
                plain = false
                break
            }
            previousWasSpace = isSpace
        }
        if plain && !previousWasSpace { return value }
        var out = ""
        var lastWasSpace = false
        for ch in value.trimmingSpaces {
            if ch == " " || ch == "\t" {
                if !lastWasSpace { out.append(" ") }
                lastWasSpace = true
            } else {
                out.append(ch)
                lastWasSpace = false
            }
        }
        return out
    }
}

/// Signs requests for one dialect and one set of credentials.
public struct RequestSigner: Sendable {
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// Headers never signed by V4 (they may be changed by the transport).
    static let v4Unsigned: Set<String> = ["authorization", "user-agent", "expect", "connection", "content-length", "transfer-encoding", "accept-encoding"]

    public let dialect: Dialect
    public let credentials: Credentials
    public let region: String
    /// OBS and V2: the secret prepared for HMAC-SHA1 once, not on every request.
    private let secretKey: HMACKey?
    /// V4: the signing key of the day last signed for, derived once a day instead of with four
    /// HMACs per request.
    private let signingKeys = DailySigningKey()

    public init(dialect: Dialect, credentials: Credentials, region: String) {
        self.dialect = dialect
        self.credentials = credentials
        self.region = region
        secretKey = dialect == .v4 ? nil : credentials.secretKey.withBytes { HMACKey(.sha1, key: $0) }
    }

    /// Adds the date, token and `Authorization` headers. `Host` must already be set for V4.
    /// `payloadHash` is the hex SHA-256 of the body for V4, or nil for `UNSIGNED-PAYLOAD`.
    public func sign(_ request: inout WireRequest, at date: Timestamp, virtualHostBucket: BucketName? = nil, payloadHash: String? = nil) {
        if let token = credentials.securityToken { request.headers[dialect.securityTokenHeader] = token }
        switch dialect {
        case .obs, .v2:
            request.headers["Date"] = date.rfc1123
            let text = Canonical.stringToSign(for: request, dialect: dialect, virtualHostBucket: virtualHostBucket)
            let signature = secretKey.map { Canonical.hmacSHA1Signature(key: $0, stringToSign: text) }
                ?? Canonical.hmacSHA1Signature(secret: credentials.secretKey, stringToSign: text)
            request.headers["Authorization"] = "\(dialect == .obs ? "OBS" : "AWS") \(credentials.accessKey):\(signature)"
        case .v4:
            let hash = payloadHash ?? RequestSigner.unsignedPayload
            request.headers["x-amz-date"] = date.iso8601Basic
            request.headers["x-amz-content-sha256"] = hash
            var signedHeaders = request.headers.map { $0.name.lowercasedASCII }.filter { !RequestSigner.v4Unsigned.contains($0) }
            signedHeaders.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            signedHeaders.removeAdjacentDuplicates()
            let canonical = Canonical.v4CanonicalRequest(for: request, signedHeaders: signedHeaders, payloadHash: hash)
            let scope = Canonical.v4Scope(date: date, region: region)
            let text = Canonical.v4StringToSign(canonicalRequest: canonical, date: date, scope: scope)
            let dateStamp = date.yyyymmdd
            let signingKey = signingKeys.key(for: dateStamp) {
                Canonical.v4SigningKey(secret: credentials.secretKey, dateStamp: dateStamp, region: region).withBytes { HMACKey(.sha256, key: $0) }
            }
            let signature = Canonical.v4Signature(signingKey: signingKey, stringToSign: text)
            request.headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKey)/\(scope), SignedHeaders=\(signedHeaders.joined(separator: ";")), Signature=\(signature)"
        }
    }
}

/// One signer's V4 signing key and the day it is for; requests of another day derive their own.
private final class DailySigningKey: Sendable {
    /// The last derived key, replaced when a request of another day derives one.
    private let current = Mutex<(dateStamp: String, key: HMACKey)?>(nil)

    func key(for dateStamp: String, derive: () -> HMACKey) -> HMACKey {
        if let key = current.withLock({ $0?.dateStamp == dateStamp ? $0?.key : nil }) { return key }
        let key = derive() // outside the lock: four HMACs
        current.withLock { $0 = (dateStamp, key) }
        return key
    }
}

extension Array where Element: Equatable {
    /// Keeps the first of every run of equal elements (sorted: every element once).
    fileprivate mutating func removeAdjacentDuplicates() {
        guard count > 1 else { return }
        var kept = 1
        for index in 1..<count where self[index] != self[kept - 1] {
            self[kept] = self[index]
            kept += 1
        }
        removeLast(count - kept)
    }
}
