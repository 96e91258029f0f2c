// From an operation (method, bucket, key, query, headers, body) to a signed HTTP request:
// the URL for the addressing style, the Host header, the dialect's signature.
import CurlTransport
import OBSHashing
import OBSProtocol

/// One logical call to the service. It is signed afresh for every attempt.
struct OperationRequest: Sendable {
    /// The operation's name for logs and errors (`UploadPart`).
    var operation: String
    var method: String
    var bucket: BucketName?
    var key: ObjectKey?
    var query: [QueryItem] = []
    var headers = HeaderFields()
    var body: RequestBody = .none
    var destination: ResponseDestination = .smallDocument
    var timeout: Duration?

    /// Operations whose answer comes only after the server copied or assembled the data (up to
    /// 5 GiB per copied part): they may stay silent far longer than a stalled connection would.
    static let serverWorkOperations: Set<String> = ["UploadPartCopy", "CopyObject", "CompleteMultipartUpload", "RenameObject"]

    /// Neither the body nor the response is bulk data in caller memory.
    var movesNoBulkData: Bool {
        if case .memory = body { return false }
        if case .memory = destination { return false }
        return true
    }
}

/// Builds and signs wire requests for one endpoint, addressing style and dialect.
struct RequestBuilder: Sendable {
    let endpoint: Endpoint
    let addressing: Addressing
    let dialect: Dialect

    /// Hex SHA-256 of the empty body, which V4 signs for every request without one.
    static let emptyPayloadHash = Hash.sha256([UInt8]()).hexString

    /// The unsigned wire form (path, query, headers with Host) and the bucket named by the Host
    /// header under virtual-host addressing.
    func wireRequest(for call: OperationRequest) -> (request: WireRequest, host: String, virtualHostBucket: BucketName?) {
        let encodedKey = call.key.map { PercentEncoding.encodePath($0.rawValue) }
        var path: String
        var host = endpoint.authority
        var virtualHostBucket: BucketName?
        switch (addressing, call.bucket) {
        case (_, nil):
            path = "/"
        case (.pathStyle, let bucket?):
            path = "/" + bucket.rawValue + (encodedKey.map { "/" + $0 } ?? "")
        case (.virtualHost, let bucket?):
            host = bucket.rawValue + "." + endpoint.authority
            virtualHostBucket = bucket
            path = "/" + (encodedKey ?? "")
        }
        var headers = call.headers
        headers["Host"] = host
        if case .bytes(let bytes) = call.body {
            headers["Content-MD5"] = Base64.encode(Hash.md5(bytes))
        }
        return (WireRequest(method: call.method, path: path, query: call.query, headers: headers), host, virtualHostBucket)
    }

    /// The request for the transport, dated `date` and signed by `signer`.
    func signedRequest(for call: OperationRequest, at date: Timestamp, by signer: RequestSigner) -> HTTPRequest {
        var (wire, host, virtualHostBucket) = wireRequest(for: call)
        // Only V4 signs the payload's hash; OBS and V2 never read it.
        let payloadHash: String? = switch (dialect, call.body) {
        case (.obs, _), (.v2, _): nil
        case (.v4, .none): RequestBuilder.emptyPayloadHash
        case (.v4, .bytes(let bytes)): Hash.sha256(bytes).hexString
        case (.v4, .memory): nil // part and object bodies: UNSIGNED-PAYLOAD, never hashed twice
        }
        signer.sign(&wire, at: date, virtualHostBucket: virtualHostBucket, payloadHash: payloadHash)
        let url = endpoint.scheme.rawValue + "://" + host + wire.target
        var request = HTTPRequest(method: call.method, url: url, headers: wire.headers, body: call.body,
                                  destination: call.destination, timeout: call.timeout)
        request.awaitsServerWork = OperationRequest.serverWorkOperations.contains(call.operation)
        return request
    }
}
