// Integrity decided once, in the client (OBSClient/Integrity.swift): the checksum headers per
// dialect, the verdicts and mismatches of UploadPart and CompleteMultipartUpload, the object's
// checksum combined from the part receipts, the ETag rules under encryption. Scripted transport.
import CurlTransport
import OBSClient
import OBSHashing
import OBSProtocol
import Testing

@Suite("Integrity")
struct IntegrityTests {
    let bucket = BucketName("bkt")
    let key = ObjectKey("k")
    let bytes: [UInt8] = Array("the bytes of one part".utf8)
    var body: MemoryRegion { MemoryRegion(owner: AlignedMemory(copying: bytes)) }
    var crc64: Checksum { bytes.withUnsafeBytes { Checksum(.crc64ecma, of: $0) } }
    var crc32c: Checksum { bytes.withUnsafeBytes { Checksum(.crc32c, of: $0) } }
    let someETag = "\"0123456789abcdef0123456789abcdef\""

    func client(_ answers: [ScriptedTransport.Answer], dialect: Dialect) -> (OBSClient, ScriptedTransport) {
        let transport = ScriptedTransport(answers)
        return (OBSClient(configuration: .scripted(dialect: dialect, maxAttempts: 1), transport: transport), transport)
    }

    func completeResult(_ etag: String) -> String {
        "<CompleteMultipartUploadResult><Location>/bkt/k</Location><Bucket>bkt</Bucket><Key>k</Key><ETag>\(etag)</ETag></CompleteMultipartUploadResult>"
    }

    @Test func checksumHeadersPerDialect() {
        #expect(crc64.header(for: .obs) == ("x-obs-checksum-crc64ecma", String(crc64.crc.value)))
        #expect(crc64.header(for: .v4).name == "x-amz-checksum-crc64ecma")
        // CRC-32C goes on the wire as base64 of its 4 big-endian bytes.
        let check = Checksum(CRC(.crc32c, of: "123456789".utf8))
        #expect(check.header(for: .v4) == ("x-amz-checksum-crc32c", "4waSgw=="))
        #expect(Checksum(.crc32c, headerValue: "4waSgw==") == check)
        #expect(Checksum(.crc64ecma, headerValue: "11051210869376104954") == Checksum(CRC(.crc64ecma, of: "123456789".utf8)))
        #expect(Checksum(.crc64ecma, headerValue: "x12") == nil)
        #expect(Checksum(.crc32c, headerValue: "AAAAAAA=") == nil)
    }

    @Test func crc64PartIsSentAndItsEchoConfirmed() async throws {
        let (client, transport) = client([Reply.headers(200, [("ETag", someETag), ("x-obs-checksum-crc64ecma", crc64.headerValue)])], dialect: .obs)
        let receipt = try await client.uploadPart(bucket: bucket, key: key, uploadID: UploadID("U"), partNumber: .first, body: body,
                                                  integrity: .checksum(crc64))
        #expect(receipt == PartReceipt(number: .first, etag: ETag(someETag), size: Int64(bytes.count), checksum: crc64, verdict: .checksumEchoed))
        let request = try #require(transport.requests.first)
        #expect(request.headers["x-obs-checksum-crc64ecma"] == crc64.headerValue)
        #expect(request.headers["Content-MD5"] == nil)
    }

    @Test func aDifferentChecksumInTheReplyIsAMismatch() async throws {
        let (client, _) = client([Reply.headers(200, [("ETag", someETag), ("x-amz-checksum-crc32c", "AAAAAA==")])], dialect: .v4)
        do {
            _ = try await client.uploadPart(bucket: bucket, key: key, uploadID: UploadID("U"), partNumber: .first, body: body, integrity: .checksum(crc32c))
            Issue.record("a different checksum must be reported")
        } catch {
            guard case .checksumMismatch(let sent, let received, _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(sent == crc32c)
            #expect(received == "AAAAAA==")
        }
    }

    @Test func aReplyWithoutTheChecksumIsAcceptedByTheService() async throws {
        let (client, _) = client([Reply.headers(200, [("ETag", someETag)])], dialect: .v4)
        let receipt = try await client.uploadPart(bucket: bucket, key: key, uploadID: UploadID("U"), partNumber: .first, body: body, integrity: .checksum(crc32c))
        #expect(receipt.verdict == .acceptedByService)
        let (composite, _) = self.client([Reply.headers(200, [("ETag", someETag), ("x-amz-checksum-crc32c", "AAAAAA==-2")])], dialect: .v4)
        #expect(try await composite.uploadPart(bucket: bucket, key: key, uploadID: UploadID("U"), partNumber: .first, body: body,
                                               integrity: .checksum(crc32c)).verdict == .acceptedByService)
        let (unchecked, _) = self.client([Reply.headers(200, [("ETag", someETag)])], dialect: .v4)
        #expect(try await unchecked.uploadPart(bucket: bucket, key: key, uploadID: UploadID("U"), partNumber: .first, body: body, integrity: .none).verdict == .unchecked)
    }

    /// A bucket's default SSE-KMS: ETags are not MD5s, the reply says so, the client accepts the
    /// part (the service checked Content-MD5) and the complete expects no composite ETag.
    @Test func defaultKMSEncryptionIsAcceptedFromTheReply() async throws {
        let kms = [("x-obs-server-side-encryption", "kms")]
        let (client, transport) = client([Reply.headers(200, [("ETag", someETag)] + kms),
                                          Reply.status(200, completeResult("\"ffff-1\""), headers: HeaderFields(kms.map { (name: $0.0, value: $0.1) }))],
                                         dialect: .obs)
        let receipt = try await client.uploadPart(bucket: bucket, key: key, uploadID: UploadID("U"), partNumber: .first, body: body,
                                                  integrity: .md5(Hash.md5(bytes)))
        #expect(receipt.verdict == .acceptedByService)
        let stored = try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: UploadID("U"), receipts: [receipt])
        #expect(stored.etag == ETag("ffff-1"))
        #expect(stored.verdict == .unchecked)
        #expect(transport.requests.count == 2)
    }

    @Test func completeChecksTheCompositeETagOfMD5Parts() async throws {
        let md5 = Hash.md5(bytes)
        let part = PartReceipt(number: .first, etag: ETag(md5: md5), size: Int64(bytes.count), verdict: .etagMatchesMD5)
        let composite = ETag.composite(partMD5s: [md5])
        let (good, _) = client([Reply.status(200, completeResult(composite.quoted))], dialect: .obs)
        #expect(try await good.completeMultipartUpload(bucket: bucket, key: key, uploadID: UploadID("U"), receipts: [part]).verdict == .etagMatchesMD5)
        let (bad, _) = client([Reply.status(200, completeResult("\"0123456789abcdef0123456789abcdef-1\""))], dialect: .obs)
        await #expect(throws: OBSClientError.self) {
            _ = try await bad.completeMultipartUpload(bucket: bucket, key: key, uploadID: UploadID("U"), receipts: [part])
        }
    }

    @Test func completeSendsTheObjectChecksumCombinedFromTheParts() async throws {
        let whole = pattern(300_000)
        let sizes = [100_000, 150_000, 50_000]
        var offset = 0
        let receipts = sizes.enumerated().map { index, size in
            defer { offset += size }
            let checksum = whole[offset..<(offset + size)].withUnsafeBytes { Checksum(.crc64ecma, of: $0) }
            return PartReceipt(number: PartNumber(index + 1)!, etag: ETag("e\(index)"), size: Int64(size), checksum: checksum, verdict: .checksumEchoed)
        }
        let object = whole.withUnsafeBytes { Checksum(.crc64ecma, of: $0) }
        let (client, transport) = client([Reply.status(200, completeResult("\"x-3\""), headers: ["x-obs-checksum-crc64ecma": object.headerValue])], dialect: .obs)
        let stored = try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: UploadID("U"), receipts: receipts)
        #expect(stored.checksum == object)
        #expect(stored.verdict == .checksumEchoed)
        #expect(transport.requests.first?.headers["x-obs-checksum-crc64ecma"] == object.headerValue)

        let (mismatch, _) = self.client([Reply.status(200, completeResult("\"x-3\""), headers: ["x-obs-checksum-crc64ecma": "1"])], dialect: .obs)
        await #expect(throws: OBSClientError.self) {
            _ = try await mismatch.completeMultipartUpload(bucket: bucket, key: key, uploadID: UploadID("U"), receipts: receipts)
        }
    }

    /// S3: CRC-32C is declared on initiation (full-object type) and listed per part on completion.
    @Test func s3DeclaresCRC32COnInitiationAndListsPartChecksums() async throws {
        let initiated = "<InitiateMultipartUploadResult><Bucket>bkt</Bucket><Key>k</Key><UploadId>U</UploadId></InitiateMultipartUploadResult>"
        let (client, transport) = client([Reply.status(200, initiated), Reply.status(200, completeResult("\"x-1\""))], dialect: .v4)
        _ = try await client.initiateMultipartUpload(bucket: bucket, key: key, checksum: .crc32c)
        let receipt = PartReceipt(number: .first, etag: ETag("e1"), size: Int64(bytes.count), checksum: crc32c, verdict: .checksumEchoed)
        _ = try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: UploadID("U"), receipts: [receipt])
        let requests = transport.requests
        #expect(requests[0].headers["x-amz-checksum-algorithm"] == "CRC32C")
        #expect(requests[0].headers["x-amz-checksum-type"] == "FULL_OBJECT")
        #expect(requests[1].headers["x-amz-checksum-crc32c"] == crc32c.headerValue)
        guard case .bytes(let xml) = requests[1].body else { Issue.record("complete without an XML body"); return }
        #expect(String(decoding: xml, as: UTF8.self).contains("<ChecksumCRC32C>\(crc32c.headerValue)</ChecksumCRC32C>"))
    }

    func pattern(_ count: Int) -> [UInt8] {
        var state: UInt32 = 12345
        return (0..<count).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return UInt8(truncatingIfNeeded: state >> 24)
        }
    }
}
