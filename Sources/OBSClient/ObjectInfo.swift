// What HEAD and GET replies say about an object, read from the headers of the dialect.
import CurlTransport
import OBSProtocol

/// An object's attributes as HEAD (or GET) reports them.
public struct ObjectInfo: Sendable {
    /// Size of the whole object (HEAD), or of the returned range (ranged GET: see `contentRange`).
    public var contentLength: Int64
    /// The object's ETag (`…-n` for multipart uploads).
    public var etag: ETag?
    /// `Content-Type`.
    public var contentType: String?
    /// `Last-Modified`, to the second.
    public var lastModified: Timestamp?
    /// The storage class; the service omits the header for STANDARD.
    public var storageClass: StorageClass
    /// User metadata: names without the `x-obs-meta-`/`x-amz-meta-` prefix, lower-cased; values
    /// percent-decoded when validly encoded (clients such as the official SDK encode them).
    public var metadata: [String: String]
    /// The lifecycle expiration the service reports (`x-obs-expiration`), verbatim.
    public var expiration: String?
    /// The version read, when the bucket keeps versions.
    public var versionID: VersionID?
    /// Where a website request for the object is redirected.
    public var websiteRedirectLocation: String?
    /// `bytes a-b/total` of a ranged GET.
    public var contentRange: String?
    /// `Appendable` for objects written by append.
    public var objectType: String?
    /// Where the next append must start, for appendable objects.
    public var nextAppendPosition: Int64?
    /// Every header of the reply.
    public var headers: HeaderFields

    /// Reads the headers of a reply in `dialect`.
    public init(headers: HeaderFields, dialect: Dialect) {
        self.headers = headers
        let names = DialectHeaderNames.of(dialect)
        contentLength = headers["Content-Length"].flatMap { Int64($0) } ?? 0
        etag = headers["ETag"].map(ETag.init)
        contentType = headers["Content-Type"]
        lastModified = headers["Last-Modified"].flatMap { Timestamp(rfc1123: $0) }
        storageClass = headers[names.storageClass].map(StorageClass.init(wireName:)) ?? .standard
        var metadata: [String: String] = [:]
        let prefix = names.metadataPrefix
        for field in headers where field.name.hasPrefixIgnoringASCIICase(prefix) {
            let name = String(decoding: field.name.utf8.dropFirst(prefix.utf8.count), as: UTF8.self).lowercasedASCII
            metadata[name] = PercentEncoding.decode(field.value) ?? field.value
        }
        self.metadata = metadata
        expiration = headers[names.expiration]
        versionID = headers[names.versionID].map(VersionID.init)
        websiteRedirectLocation = headers[names.websiteRedirectLocation]
        contentRange = headers["Content-Range"]
        // These two stay x-obs- in every dialect.
        objectType = headers["x-obs-object-type"]
        nextAppendPosition = headers["x-obs-next-append-position"].flatMap { Int64($0) }
    }

    /// The total object size of a ranged GET (`Content-Range: bytes a-b/total`), else the length.
    public var totalSize: Int64 {
        if let contentRange, let slash = contentRange.lastIndex(of: "/"), let total = Int64(contentRange[contentRange.index(after: slash)...]) {
            return total
        }
        return contentLength
    }
}

/// The dialect's names of the headers `ObjectInfo` reads, built once per dialect rather than on
/// every HEAD.
private struct DialectHeaderNames {
    let metadataPrefix, storageClass, expiration, versionID, websiteRedirectLocation: String

    init(_ dialect: Dialect) {
        metadataPrefix = dialect.metadataPrefix
        storageClass = dialect.header("storage-class")
        expiration = dialect.header("expiration")
        versionID = dialect.header("version-id")
        websiteRedirectLocation = dialect.header("website-redirect-location")
    }

    private static let obs = DialectHeaderNames(.obs)
    private static let amz = DialectHeaderNames(.v4)

    static func of(_ dialect: Dialect) -> DialectHeaderNames { dialect == .obs ? obs : amz }
}
