// The three request dialects, the credentials they sign with, and the dialect-specific header
// names (x-obs-* against x-amz-*).
import OBSHashing

/// How requests are written and signed.
public enum Dialect: String, Sendable, CaseIterable, CustomStringConvertible {
    /// OBS-native: `x-obs-*` headers, `Authorization: OBS AK:sig` (HMAC-SHA1).
    case obs
    /// S3-compatible signature V2: `x-amz-*` headers, `Authorization: AWS AK:sig` (HMAC-SHA1).
    case v2
    /// S3-compatible signature V4: `x-amz-*` headers, `AWS4-HMAC-SHA256`.
    case v4

    public var description: String { rawValue }

    /// `x-obs-` or `x-amz-`.
    public var headerPrefix: String { self == .obs ? "x-obs-" : "x-amz-" }
    /// `x-obs-meta-` or `x-amz-meta-`.
    public var metadataPrefix: String { headerPrefix + "meta-" }

    /// The dialect's name for a header given by its suffix: `header("acl")` → `x-obs-acl`.
    public func header(_ suffix: String) -> String { headerPrefix + suffix }

    /// The security-token header.
    public var securityTokenHeader: String { header("security-token") }
    /// The request-ID response header.
    public var requestIDHeader: String { header("request-id") }
}

/// An access key, its secret and an optional security token (temporary credentials).
/// Printing it never shows the secret or the token.
public struct Credentials: Sendable, CustomStringConvertible {
    public var accessKey: String
    public var secretKey: SecretBytes
    public var securityToken: String?

    public init(accessKey: String, secretKey: SecretBytes, securityToken: String? = nil) {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.securityToken = securityToken
    }

    public init(accessKey: String, secretKey: String, securityToken: String? = nil) {
        self.init(accessKey: accessKey, secretKey: SecretBytes(secretKey), securityToken: securityToken)
    }

    public var description: String { "Credentials(accessKey: \(accessKey), secret: <redacted>\(securityToken == nil ? "" : ", token: <redacted>"))" }
}
