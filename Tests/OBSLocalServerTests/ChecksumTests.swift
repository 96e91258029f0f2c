// obs-local's CRC checksums (StoredChecksums.swift): the request's checksum headers are verified
// (BadDigest, InvalidDigest), echoed, combined from the parts on completion (checked against the
// object's value the request sends) and returned on HEAD/GET; per dialect.
import OBSHashing
import OBSProtocol
import Testing

@Suite struct ChecksumTests {
    func checksum(_ algorithm: ChecksumAlgorithm, _ bytes: [UInt8]) -> Checksum { bytes.withUnsafeBytes { Checksum(algorithm, of: $0) } }

    @Test(arguments: [(Dialect.obs, ChecksumAlgorithm.crc64ecma), (.v2, .crc64ecma), (.v4, .crc32c), (.v4, .crc64ecma)])
    func partsAndObjectAreVerifiedStoredAndReturned(dialect: Dialect, algorithm: ChecksumAlgorithm) throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client(dialect: dialect)
        let name = algorithm.header(for: dialect)
        let parts = [randomBytes(150 * 1024), randomBytes(1234)]
        let id = try client.initiate("c")
        var etags: [String] = []
        for (index, part) in parts.enumerated() {
            let sent = checksum(algorithm, part)
            let reply = try client.uploadPart("c", id, index + 1, part, headers: [(name, sent.headerValue)])
            #expect(reply.status == 200, "\(reply.text)")
            #expect(reply.headers[name] == sent.headerValue)
            etags.append(try #require(reply.headers["ETag"]))
        }
        let object = checksum(algorithm, parts.flatMap { $0 })
        // A wrong object value is refused, and the upload stays.
        let wrong = try client.send("POST", "/bkt/c", query: "uploadId=\(id)", headers: [(name, checksum(algorithm, [1]).headerValue)],
                                    body: completeBody(etags.enumerated().map { ($0.offset + 1, $0.element) }))
        #expect(wrong.status == 400 && wrong.errorCode == "BadDigest")
        let complete = try client.send("POST", "/bkt/c", query: "uploadId=\(id)", headers: [(name, object.headerValue)],
                                       body: completeBody(etags.enumerated().map { ($0.offset + 1, $0.element) }))
        #expect(complete.status == 200, "\(complete.text)")
        #expect(complete.headers[name] == object.headerValue)
        for method in ["HEAD", "GET"] {
            #expect(try client.send(method, "/bkt/c").headers[name] == object.headerValue)
        }
        // A range is not the object: no checksum.
        #expect(try client.send("GET", "/bkt/c", headers: [("Range", "bytes=0-9")]).headers[name] == nil)
    }

    @Test(arguments: [Dialect.obs, .v4])
    func aWrongPartChecksumIsBadDigestAndAMalformedOneInvalidDigest(dialect: Dialect) throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client(dialect: dialect)
        let name = ChecksumAlgorithm.crc64ecma.header(for: dialect)
        let part = randomBytes(4096)
        let id = try client.initiate("c")
        var corrupted = part
        corrupted[100] ^= 1
        let bad = try client.uploadPart("c", id, 1, corrupted, headers: [(name, checksum(.crc64ecma, part).headerValue)])
        #expect(bad.status == 400 && bad.errorCode == "BadDigest")
        let malformed = try client.uploadPart("c", id, 1, part, headers: [(name, "not-a-number")])
        #expect(malformed.status == 400 && malformed.errorCode == "InvalidDigest")
        let put = try client.send("PUT", "/bkt/p", headers: [(name, checksum(.crc64ecma, part).headerValue)], body: corrupted)
        #expect(put.status == 400 && put.errorCode == "BadDigest")
        let good = try client.send("PUT", "/bkt/p", headers: [(name, checksum(.crc64ecma, part).headerValue)], body: part)
        #expect(good.status == 200)
        #expect(good.headers[name] == checksum(.crc64ecma, part).headerValue)
    }

    @Test func appendsKeepTheObjectChecksum() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client(dialect: .obs)
        let first = randomBytes(3000), second = randomBytes(5000)
        #expect(try client.send("POST", "/bkt/a", query: "append&position=0", body: first).status == 200)
        #expect(try client.send("POST", "/bkt/a", query: "append&position=3000", body: second).status == 200)
        #expect(try client.send("HEAD", "/bkt/a").headers["x-obs-checksum-crc64ecma"] == checksum(.crc64ecma, first + second).headerValue)
    }
}
