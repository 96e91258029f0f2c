// From a request line and headers to an operation on a bucket and key: path-style
// (`/bucket/key`) or virtual-host (`Host: bucket.localhost:PORT`) addressing, and the
// sub-resource query keys that select multipart, ACL, tagging, metadata, append and the parallel
// file system operations (rename, modify, truncate).
import OBSProtocol

/// The operations obs-local serves; names as in the request log and fault rules.
enum Operation: String, Sendable {
    case listBuckets = "ListBuckets"
    case createBucket = "CreateBucket"
    case headBucket = "HeadBucket"
    case deleteBucket = "DeleteBucket"
    case getBucketLocation = "GetBucketLocation"
    case listObjects = "ListObjects"
    case listMultipartUploads = "ListMultipartUploads"
    case deleteObjects = "DeleteObjects"
    case putObject = "PutObject"
    case copyObject = "CopyObject"
    case getObject = "GetObject"
    case headObject = "HeadObject"
    case deleteObject = "DeleteObject"
    case initiateMultipartUpload = "InitiateMultipartUpload"
    case uploadPart = "UploadPart"
    case uploadPartCopy = "UploadPartCopy"
    case completeMultipartUpload = "CompleteMultipartUpload"
    case abortMultipartUpload = "AbortMultipartUpload"
    case listParts = "ListParts"
    case appendObject = "AppendObject"
    case setObjectMetadata = "SetObjectMetadata"
    case putObjectACL = "PutObjectAcl"
    case getObjectACL = "GetObjectAcl"
    case putObjectTagging = "PutObjectTagging"
    case getObjectTagging = "GetObjectTagging"
    case deleteObjectTagging = "DeleteObjectTagging"
    case renameObject = "RenameObject"
    case modifyObject = "ModifyObject"
    case truncateObject = "TruncateObject"

    /// How the request body is consumed.
    enum BodyUse {
        /// Streamed into a new blob.
        case stream
        /// Collected in memory up to a limit (XML documents).
        case collect(limit: Int)
        /// Read and dropped.
        case ignore
    }

    var bodyUse: BodyUse {
        switch self {
        case .putObject, .uploadPart, .appendObject, .modifyObject: .stream
        // 10,000 parts of about 100 bytes each, with room to spare.
        case .completeMultipartUpload: .collect(limit: 4 << 20)
        case .putObjectACL, .putObjectTagging, .deleteObjects, .createBucket: .collect(limit: 1 << 20)
        default: .ignore
        }
    }
}

/// A request resolved to its operation and target.
struct RoutedRequest: Sendable {
    var wire: WireRequest
    var operation: Operation
    var bucket: BucketName?
    var key: ObjectKey?
    /// The bucket named by the Host header, when virtual-host addressed (it is signed as such).
    var virtualHostBucket: BucketName?

    func query(_ name: String) -> String? { wire.queryValue(name) }
    var headers: HeaderFields { wire.headers }
}

enum Router {
    /// The longest key accepted, in UTF-8 bytes.
    static let maximumKeyBytes = 1024

    /// The bucket a `Host` header names (`bucket.localhost[:port]`), if any.
    static func virtualHostBucket(host: String?) -> BucketName? {
        guard var host = host?.lowercasedASCII else { return nil }
        if let colon = host.lastIndex(of: ":"), !host.hasSuffix("]") { host = String(host[..<colon]) }
        let suffix = ".localhost"
        guard host.hasSuffix(suffix), host.utf8.count > suffix.utf8.count else { return nil }
        return BucketName(String(host.dropLast(suffix.count)))
    }

    static func route(_ wire: WireRequest) throws(OBSLocalError) -> RoutedRequest {
        let hostBucket = virtualHostBucket(host: wire.headers["Host"])
        guard wire.path.hasPrefix("/") else { throw OBSLocalError(.invalidArgument, "The request path must start with /.") }
        var bucketName: String?
        var encodedKey: Substring = ""
        let rest = wire.path.dropFirst()
        if let hostBucket {
            bucketName = hostBucket.rawValue
            encodedKey = rest
        } else if !rest.isEmpty {
            let pieces = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            bucketName = PercentEncoding.decode(String(pieces[0]))
            guard bucketName != nil else { throw OBSLocalError("InvalidURI", "Couldn't parse the specified URI.", status: 400) }
            encodedKey = pieces.count == 2 ? pieces[1] : ""
        }
        guard let keyText = PercentEncoding.decode(String(encodedKey)) else {
            throw OBSLocalError("InvalidURI", "Couldn't parse the specified URI.", status: 400)
        }
        guard keyText.utf8.count <= maximumKeyBytes else {
            throw OBSLocalError(.keyTooLong, "Your key is too long (at most \(maximumKeyBytes) bytes).")
        }
        let bucket = bucketName.map(BucketName.init)
        let key = keyText.isEmpty ? nil : ObjectKey(keyText)
        let operation = try operation(method: wire.method, bucket: bucket, key: key, wire: wire)
        return RoutedRequest(wire: wire, operation: operation, bucket: bucket, key: key, virtualHostBucket: hostBucket)
    }

    private static func operation(method: String, bucket: BucketName?, key: ObjectKey?, wire: WireRequest) throws(OBSLocalError) -> Operation {
        func has(_ name: String) -> Bool { wire.queryValue(name) != nil }
        let notAllowed = OBSLocalError(.methodNotAllowed, "The specified method is not allowed against this resource.")
        guard bucket != nil else {
            guard method == "GET" else { throw notAllowed }
            return .listBuckets
        }
        guard key != nil else {
            switch method {
            case "PUT":
                if has("acl") || has("policy") || has("versioning") || has("lifecycle") || has("tagging") { throw notImplemented(wire) }
                return .createBucket
            case "HEAD": return .headBucket
            case "DELETE": return .deleteBucket
            case "POST":
                guard has("delete") else { throw notAllowed }
                return .deleteObjects
            case "GET":
                if has("uploads") { return .listMultipartUploads }
                if has("location") { return .getBucketLocation }
                if has("acl") || has("policy") || has("versioning") || has("lifecycle") || has("tagging") || has("versions") {
                    throw notImplemented(wire)
                }
                return .listObjects
            default: throw notAllowed
            }
        }
        let copySource = wire.headers["x-obs-copy-source"] ?? wire.headers["x-amz-copy-source"]
        switch method {
        case "PUT":
            if has("partNumber") || has("uploadId") { return copySource != nil ? .uploadPartCopy : .uploadPart }
            if has("modify") { return .modifyObject }
            if has("truncate") { return .truncateObject }
            if has("acl") { return .putObjectACL }
            if has("tagging") { return .putObjectTagging }
            if has("metadata") { return .setObjectMetadata }
            return copySource != nil ? .copyObject : .putObject
        case "GET":
            if has("uploadId") { return .listParts }
            if has("acl") { return .getObjectACL }
            if has("tagging") { return .getObjectTagging }
            return .getObject
        case "HEAD": return .headObject
        case "DELETE":
            if has("uploadId") { return .abortMultipartUpload }
            if has("tagging") { return .deleteObjectTagging }
            return .deleteObject
        case "POST":
            if has("uploads") { return .initiateMultipartUpload }
            if has("uploadId") { return .completeMultipartUpload }
            if has("append") { return .appendObject }
            if has("rename") { return .renameObject }
            throw notAllowed
        default: throw notAllowed
        }
    }

    private static func notImplemented(_ wire: WireRequest) -> OBSLocalError {
        OBSLocalError(.notImplemented, "obs-local does not implement this request (\(wire.method) \(wire.target)).")
    }
}
