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
