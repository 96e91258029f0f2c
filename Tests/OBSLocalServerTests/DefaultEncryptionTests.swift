// A bucket encrypted with SSE-KMS by default (`--kms-bucket`): new objects that ask for no
// encryption get it, say so in the replies, and their ETags are not MD5s (as on OBS), while
// completing from the part ETags the server answered still works.
import OBSHashing
import OBSProtocol
import Testing

@Suite struct DefaultEncryptionTests {
    @Test(arguments: [Dialect.obs, .v4])
    func kmsBucketAnswersNonMD5ETagsAndCompletes(dialect: Dialect) throws {
        let server = try TestServer(memory: true, buckets: ["bkt", "plain"], kmsBuckets: ["bkt"])
        defer { server.stop() }
        let client = server.client(dialect: dialect)
        let sse = dialect.header("server-side-encryption")

        let body = randomBytes(1000)
        let put = try client.send("PUT", "/bkt/single", body: body)
        #expect(put.status == 200)
        #expect(put.headers["ETag"] != nil && put.headers["ETag"] != ETag(md5: Hash.md5(body)).quoted)
        #expect(put.headers[sse] == (dialect == .obs ? "kms" : "aws:kms"))

        let parts = [randomBytes(100 * 1024), randomBytes(10)]
        let id = try client.initiate("multi")
        var etags: [String] = []
        for (index, part) in parts.enumerated() {
            let reply = try client.uploadPart("multi", id, index + 1, part)
            #expect(reply.status == 200)
            #expect(reply.headers[sse] != nil)
            let etag = try #require(reply.headers["ETag"])
            #expect(etag != ETag(md5: Hash.md5(part)).quoted)
            etags.append(etag)
        }
        let complete = try client.send("POST", "/bkt/multi", query: "uploadId=\(id)", body: completeBody([(1, etags[0]), (2, etags[1])]))
        #expect(complete.status == 200, "\(complete.text)")
        #expect(try client.send("GET", "/bkt/multi").body == parts.flatMap { $0 })

        // Another bucket of the same server keeps MD5 ETags and no encryption.
        let plain = try client.send("PUT", "/plain/single", body: body)
        #expect(plain.headers["ETag"] == ETag(md5: Hash.md5(body)).quoted)
        #expect(plain.headers[sse] == nil)
    }
}
