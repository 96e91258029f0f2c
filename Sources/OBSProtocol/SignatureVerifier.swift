// Server side of signing: recognises the dialect from the Authorization header, recomputes the
// canonical string with the same code the client signs with, and compares in constant time.
import OBSHashing

/// Checks request signatures for a set of access keys.
public struct SignatureVerifier: Sendable {
    /// What a verified request was signed as.
    public struct Identity: Sendable, Equatable {
        public var accessKey: String
        public var dialect: Dialect
    }

    /// Largest accepted difference between the request's date and the server clock.
    public static let allowedSkewSeconds: Int64 = 15 * 60

    private let secrets: [String: SecretBytes]

    public init(secrets: [String: SecretBytes]) { self.secrets = secrets }

    /// Verifies `request`. Throws `SignatureFailure` with the error code to answer.
    public func verify(_ request: WireRequest, virtualHostBucket: BucketName?, now: Timestamp) throws(SignatureFailure) -> Identity {
        guard let authorization = request.headers["Authorization"] else {
            throw SignatureFailure(.accessDenied, "Anonymous access is not allowed.")
        }
        if authorization.hasPrefix("AWS4-HMAC-SHA256 ") {
            return try verifyV4(request, authorization: authorization, now: now)
        }
        let dialect: Dialect
        let rest: Substring
        if authorization.hasPrefix("OBS ") {
            dialect = .obs
            rest = authorization.dropFirst(4)
        } else if authorization.hasPrefix("AWS ") {
            dialect = .v2
            rest = authorization.dropFirst(4)
        } else {
            throw SignatureFailure(.accessDenied, "Unsupported Authorization type.")
        }
        guard let colon = rest.lastIndex(of: ":") else { throw SignatureFailure(.accessDenied, "Malformed Authorization header.") }
        let accessKey = String(rest[..<colon]), given = String(rest[rest.index(after: colon)...])
        guard let secret = secrets[accessKey] else {
            throw SignatureFailure(.invalidAccessKeyId, "The access key Id you provided does not exist in our records.")
        }
        let dateText = request.headers[dialect.header("date")] ?? request.headers["Date"]
        try checkSkew(dateText.flatMap { Timestamp(rfc1123: $0) ?? Timestamp(iso8601Basic: $0) }, now: now)
        let text = Canonical.stringToSign(for: request, dialect: dialect, virtualHostBucket: virtualHostBucket)
        let expected = Canonical.hmacSHA1Signature(secret: secret, stringToSign: text)
        guard constantTimeEqual(expected, given) else {
            throw SignatureFailure(.signatureDoesNotMatch, "The request signature we calculated does not match the signature you provided.", stringToSign: text)
        }
        return Identity(accessKey: accessKey, dialect: dialect)
    }

    private func verifyV4(_ request: WireRequest, authorization: String, now: Timestamp) throws(SignatureFailure) -> Identity {
        var fields: [String: String] = [:]
        for part in authorization.dropFirst("AWS4-HMAC-SHA256 ".count).split(separator: ",") {
            let pair = String(part).trimmingSpaces.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        guard let credential = fields["Credential"], let signedList = fields["SignedHeaders"], let given = fields["Signature"] else {
            throw SignatureFailure(.accessDenied, "Malformed AWS4-HMAC-SHA256 Authorization header.")
        }
        let scopeParts = credential.split(separator: "/", omittingEmptySubsequences: false)
        guard scopeParts.count == 5, scopeParts[3] == "s3", scopeParts[4] == "aws4_request" else {
            throw SignatureFailure(.accessDenied, "Malformed credential scope.")
        }
        let accessKey = String(scopeParts[0]), region = String(scopeParts[2])
        guard let secret = secrets[accessKey] else {
            throw SignatureFailure(.invalidAccessKeyId, "The access key Id you provided does not exist in our records.")
        }
        let date: Timestamp? = if let amzDate = request.headers["x-amz-date"] {
            Timestamp(iso8601Basic: amzDate) ?? Timestamp(rfc1123: amzDate)
        } else {
            request.headers["Date"].flatMap { Timestamp(rfc1123: $0) }
        }
        try checkSkew(date, now: now)
        guard let date, date.yyyymmdd == scopeParts[1] else {
            throw SignatureFailure(.signatureDoesNotMatch, "Credential scope date does not match the request date.")
        }
        let signedHeaders = signedList.split(separator: ";").map(String.init)
        let payloadHash = request.headers["x-amz-content-sha256"] ?? RequestSigner.unsignedPayload
        let canonical = Canonical.v4CanonicalRequest(for: request, signedHeaders: signedHeaders, payloadHash: payloadHash)
        let text = Canonical.v4StringToSign(canonicalRequest: canonical, date: date, scope: scopeParts[1...].joined(separator: "/"))
        let expected = Canonical.v4Signature(secret: secret, dateStamp: String(scopeParts[1]), region: region, stringToSign: text)
        guard constantTimeEqual(expected, given) else {
            throw SignatureFailure(.signatureDoesNotMatch, "The request signature we calculated does not match the signature you provided.", stringToSign: text)
        }
        return Identity(accessKey: accessKey, dialect: .v4)
    }

    private func checkSkew(_ date: Timestamp?, now: Timestamp) throws(SignatureFailure) {
        guard let date else { throw SignatureFailure(.accessDenied, "The request has no valid Date.") }
        let skew = abs(date.secondsSinceEpoch - now.secondsSinceEpoch)
        if skew > SignatureVerifier.allowedSkewSeconds {
            throw SignatureFailure(.requestTimeTooSkewed, "The difference between the request time and the server's time is too large.")
        }
    }

    private func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }
}

/// Why a signature was refused: the error code and message to answer with.
public struct SignatureFailure: Error, Sendable {
    public var code: ObsErrorCode
    public var message: String
    /// The server's string to sign, returned in the error body as S3 does, for debugging.
    public var stringToSign: String?

    public init(_ code: ObsErrorCode, _ message: String, stringToSign: String? = nil) {
        self.code = code
        self.message = message
        self.stringToSign = stringToSign
    }
}
