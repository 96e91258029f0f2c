// aws-chunked bodies (`STREAMING-…` V4 payloads): the decoder alone and an upload end to end.
import NIOCore
import OBSHashing
import OBSProtocol
import Testing
@testable import OBSLocalServer

@Suite struct AWSChunkedTests {
    /// `size;chunk-signature=…` framing and a trailer, as V4 clients stream bodies.
    static func encode(_ payload: [UInt8], chunkSize: Int, trailer: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        var offset = 0
        while offset < payload.count {
            let chunk = payload[offset..<min(offset + chunkSize, payload.count)]
            out += Array("\(String(chunk.count, radix: 16));chunk-signature=\(String(repeating: "0", count: 64))\r\n".utf8) + chunk + Array("\r\n".utf8)
            offset += chunk.count
        }
        out += Array("0;chunk-signature=\(String(repeating: "0", count: 64))\r\n".utf8)
        if let trailer { out += Array("\(trailer)\r\n".utf8) }
        return out + Array("\r\n".utf8)
    }

    @Test(arguments: [1, 7, 4096, 1 << 20])
    func decoderReassemblesThePayloadWhateverTheReadSizes(readSize: Int) throws {
        let payload = randomBytes(100_000)
        let encoded = Self.encode(payload, chunkSize: 8192, trailer: "x-amz-checksum-crc32:AAAAAA==")
        var decoder = AWSChunkedDecoder()
        var decoded: [UInt8] = []
        var offset = 0
        while offset < encoded.count {
            let piece = ByteBuffer(bytes: encoded[offset..<min(offset + readSize, encoded.count)])
            try decoder.feed(piece) { decoded += Array($0.readableBytesView) }
            offset += readSize
        }
        #expect(decoded == payload)
        #expect(decoder.isComplete)
    }

    @Test func decoderRefusesBadFraming() {
        var decoder = AWSChunkedDecoder()
        #expect(throws: AWSChunkedDecoder.Failure.self) { try decoder.feed(ByteBuffer(string: "zz;x\r\nabc")) { _ in } }
        var missingCRLF = AWSChunkedDecoder()
        #expect(throws: AWSChunkedDecoder.Failure.self) { try missingCRLF.feed(ByteBuffer(string: "3\r\nabcXY")) { _ in } }
    }

    @Test func streamingUploadIsDecodedAndStored() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client(dialect: .v4)
        let payload = randomBytes(300_000)
        let body = Self.encode(payload, chunkSize: 65536, trailer: "x-amz-checksum-crc32:AAAAAA==")
        var wire = WireRequest(method: "PUT", path: "/bkt/streamed", headers: [
            "Content-Encoding": "aws-chunked", "Content-Length": String(body.count),
            "x-amz-decoded-content-length": String(payload.count), "x-amz-trailer": "x-amz-checksum-crc32",
        ])
        let streaming = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        let reply = try client.exchange(client.signedHead(&wire, payloadHash: streaming) + body)
        #expect(reply.status == 200, "\(reply.text)")
        #expect(reply.headers["ETag"] == ETag(md5: Hash.md5(payload)).quoted)
        #expect(try client.send("GET", "/bkt/streamed").body == payload)
        // A decoded length that does not match the chunks is refused.
        wire.headers["x-amz-decoded-content-length"] = String(payload.count + 1)
        let short = try client.exchange(client.signedHead(&wire, payloadHash: streaming) + body)
        #expect(short.status == 400 && short.errorCode == "IncompleteBody")
    }
}

/// Signed streaming (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), checked against the example of the
/// AWS documentation ("Signature Calculations for the Authorization Header: Transferring Payload
/// in Multiple Chunks"): 65 KiB + 1 KiB of `a`, seed signature and the three chunk signatures.
@Suite struct ChunkSignatureTests {
    static let authorization = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        + "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
        + "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    static let chunkSignatures = [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ]

    static func chain() throws -> ChunkSignatureChain {
        try #require(ChunkSignatureChain(authorization: authorization, requestTime: Timestamp(iso8601Basic: "20130524T000000Z")!,
                                         secret: SecretBytes("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")))
    }

    static func body(signatures: [String]) -> [UInt8] {
        let sizes = [65536, 1024, 0]
        var out: [UInt8] = []
        for (size, signature) in zip(sizes, signatures) {
            out += Array("\(String(size, radix: 16));chunk-signature=\(signature)\r\n".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: size) + Array("\r\n".utf8)
        }
        return out
    }

    @Test func documentedChunkSignaturesVerify() throws {
        var decoder = AWSChunkedDecoder(chain: try Self.chain())
        var decoded = 0
        let encoded = Self.body(signatures: Self.chunkSignatures)
        for start in stride(from: 0, to: encoded.count, by: 1000) {
            try decoder.feed(ByteBuffer(bytes: encoded[start..<min(start + 1000, encoded.count)])) { decoded += $0.readableBytes }
        }
        #expect(decoded == 66560 && decoder.isComplete)
    }

    @Test func alteredChunkIsRefused() throws {
        var signatures = Self.chunkSignatures
        signatures[1] = String(repeating: "0", count: 64)
        var decoder = AWSChunkedDecoder(chain: try Self.chain())
        #expect(throws: AWSChunkedDecoder.Failure.signatureMismatch) {
            try decoder.feed(ByteBuffer(bytes: Self.body(signatures: signatures))) { _ in }
        }
    }
}
