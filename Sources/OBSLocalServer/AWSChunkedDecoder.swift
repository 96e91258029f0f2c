// aws-chunked bodies (`Content-Encoding: aws-chunked`, `x-amz-content-sha256: STREAMING-…`), as V4
// clients stream uploads: `hex-size;chunk-signature=sig\r\n data \r\n` … a zero-size chunk, then
// optional trailer lines and an empty line. The decoder runs on the event loop and passes slices
// of the received buffers on without copying. For `STREAMING-AWS4-HMAC-SHA256-PAYLOAD…` it checks
// every chunk's signature, each chained to the previous one from the request's seed signature
// (trailer signatures are not checked); unsigned variants only lose their framing.
import NIOCore
import OBSHashing
import OBSProtocol

/// The chain of V4 chunk signatures of a signed streaming upload.
struct ChunkSignatureChain {
    let secret: SecretBytes
    let dateStamp: String
    let region: String
    let scope: String
    /// `x-amz-date` (or Date) in ISO 8601 basic form.
    let requestTime: String
    /// The seed signature, then each verified chunk's.
    var previousSignature: String

    static let emptyHash = Hash.sha256([UInt8]()).hexString

    /// The chain for a request signed `AWS4-HMAC-SHA256 Credential=AK/date/region/s3/aws4_request,…,Signature=…`.
    init?(authorization: String, requestTime: Timestamp, secret: SecretBytes) {
        var fields: [String: String] = [:]
        for part in authorization.dropFirst("AWS4-HMAC-SHA256 ".count).split(separator: ",") {
            let pair = String(part).trimmingSpaces.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        guard let credential = fields["Credential"], let seed = fields["Signature"] else { return nil }
        let scope = credential.split(separator: "/", omittingEmptySubsequences: false)
        guard scope.count == 5 else { return nil }
        self.secret = secret
        dateStamp = String(scope[1])
        region = String(scope[2])
        self.scope = scope[1...].joined(separator: "/")
        self.requestTime = requestTime.iso8601Basic
        previousSignature = seed
    }

    /// Checks one chunk's signature given the SHA-256 of its data, and advances the chain.
    mutating func verify(chunkSignature: String, dataHash: String) -> Bool {
        let text = "AWS4-HMAC-SHA256-PAYLOAD\n\(requestTime)\n\(scope)\n\(previousSignature)\n\(Self.emptyHash)\n\(dataHash)"
        let expected = Canonical.v4Signature(secret: secret, dateStamp: dateStamp, region: region, stringToSign: text)
        guard expected == chunkSignature else { return false }
        previousSignature = expected
        return true
    }
}

struct AWSChunkedDecoder {
    enum Failure: Error {
        case malformed
        case signatureMismatch
    }

    private enum State {
        case header
        case data(remaining: Int)
        case dataEnd(remaining: Int)
        case trailer
        case done
    }

    private var state = State.header
    private var line: [UInt8] = []
    static let maximumLine = 8192
    /// Present for signed streaming; then every chunk's data is hashed to check its signature.
    private var chain: ChunkSignatureChain?
    private var chunkSignature = ""
    private let chunkDigest: StreamingDigest?

    init(chain: ChunkSignatureChain? = nil) {
        self.chain = chain
        chunkDigest = chain == nil ? nil : StreamingDigest(.sha256)
    }

    var isComplete: Bool { if case .done = state { true } else { false } }

    /// Feeds received bytes; calls `emit` with payload slices.
    mutating func feed(_ input: ByteBuffer, emit: (ByteBuffer) -> Void) throws(Failure) {
        var buffer = input
        while buffer.readableBytes > 0 {
            switch state {
            case .header, .trailer:
                guard let byte = buffer.readInteger(as: UInt8.self) else { return }
                if byte != UInt8(ascii: "\n") {
                    line.append(byte)
                    guard line.count <= Self.maximumLine else { throw .malformed }
                    continue
                }
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                let text = line
                line = []
                if case .trailer = state {
                    if text.isEmpty { state = .done }
                    continue
                }
                try startChunk(header: text)
            case .data(let remaining):
                let count = Swift.min(remaining, buffer.readableBytes)
                let slice = buffer.readSlice(length: count)!
                slice.withUnsafeReadableBytes { chunkDigest?.update($0) }
                emit(slice)
                state = remaining == count ? .dataEnd(remaining: 2) : .data(remaining: remaining - count)
            case .dataEnd(let remaining):
                let byte = buffer.readInteger(as: UInt8.self)!
                guard byte == (remaining == 2 ? UInt8(ascii: "\r") : UInt8(ascii: "\n")) else { throw .malformed }
                if remaining == 2 {
                    state = .dataEnd(remaining: 1)
                } else {
                    try endChunk()
                    state = .header
                }
            case .done:
                throw .malformed
            }
        }
    }

    /// `hex-size[;chunk-signature=sig]`.
    private mutating func startChunk(header: [UInt8]) throws(Failure) {
        let pieces = header.split(separator: UInt8(ascii: ";"), maxSplits: 1, omittingEmptySubsequences: false)
        guard let sizeText = pieces.first, !sizeText.isEmpty, sizeText.count <= 16,
              let size = Int(String(decoding: sizeText, as: UTF8.self), radix: 16) else { throw .malformed }
        let extensions = pieces.count == 2 ? String(decoding: pieces[1], as: UTF8.self) : ""
        chunkSignature = extensions.hasPrefix("chunk-signature=") ? String(extensions.dropFirst("chunk-signature=".count)) : ""
        if size == 0 {
            // The final chunk is signed over empty data.
            try endChunk()
            state = .trailer
        } else {
            state = .data(remaining: size)
        }
    }

    private mutating func endChunk() throws(Failure) {
        guard chain != nil, let chunkDigest else { return }
        let dataHash = chunkDigest.finalize().hexString
        guard chain!.verify(chunkSignature: chunkSignature, dataHash: dataHash) else { throw .signatureMismatch }
    }
}
