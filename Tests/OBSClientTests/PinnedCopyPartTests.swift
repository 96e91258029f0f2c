// UploadPartCopy as composition sends it: the source range, the source pinned to its ETag, and
// the SSE-C key twice (copy-source headers to open the source, the part's own headers).
import CurlTransport
import OBSClient
import OBSHashing
import OBSProtocol
import Testing

@Suite("Pinned part copy")
struct PinnedCopyPartTests {
    @Test(arguments: [Dialect.obs, .v4])
    func copyPartPinsTheSourceAndCarriesBothCustomerKeyHeaderSets(dialect: Dialect) async throws {
        let transport = ScriptedTransport([Reply.status(200, """
            <CopyPartResult><LastModified>2026-11-21T10:54:20.000Z</LastModified><ETag>"0123456789abcdef0123456789abcdef"</ETag></CopyPartResult>
            """)])
        let client = OBSClient(configuration: .scripted(dialect: dialect), transport: transport)
        let key = CustomerKey(key: SecretBytes([UInt8](repeating: 9, count: 32)))
        _ = try await client.copyPart(bucket: BucketName("bkt"), key: ObjectKey("f"), uploadID: UploadID("U"), partNumber: PartNumber(2)!,
                                      sourceBucket: BucketName("bkt"), sourceKey: ObjectKey("f"), sourceRange: 0...102_399,
                                      sourceIfMatch: ETag("abc"), sourceCustomerKey: key, customerKey: key)
        let headers = transport.requests[0].headers
        let prefix = dialect == .obs ? "x-obs-" : "x-amz-"
        #expect(headers[prefix + "copy-source-if-match"] == "\"abc\"")
        #expect(headers[prefix + "copy-source-range"] == "bytes=0-102399")
        for stem in ["copy-source-server-side-encryption-customer-", "server-side-encryption-customer-"] {
            #expect(headers[prefix + stem + "algorithm"] == "AES256")
            #expect(headers[prefix + stem + "key"] == Base64.encode([UInt8](repeating: 9, count: 32)))
            #expect(headers[prefix + stem + "key-MD5"] == Base64.encode(Hash.md5([UInt8](repeating: 9, count: 32))))
        }
    }
}
