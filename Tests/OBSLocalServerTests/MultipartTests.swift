// Multipart uploads against an in-process obs-local: the happy path and every error code.
import OBSHashing
import OBSProtocol
import Testing

@Suite struct MultipartTests {
    @Test(arguments: [Dialect.obs, .v2, .v4])
    func happyPathAssemblesPartsAndReportsCompositeETag(dialect: Dialect) throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = server.client(dialect: dialect)
        let parts = [randomBytes(200 * 1024), randomBytes(150 * 1024), randomBytes(777)]
        let id = try client.initiate("dir/obj.bin", headers: [("Content-Type", "application/x-test")])
        var etags: [String] = []
        for (index, part) in parts.enumerated() {
            let reply = try client.uploadPart("dir/obj.bin", id, index + 1, part)
            #expect(reply.status == 200)
            let etag = try #require(reply.headers["ETag"])
            #expect(etag == ETag(md5: Hash.md5(part)).quoted)
            etags.append(etag)
        }
        let complete = try client.send("POST", "/bkt/dir/obj.bin", query: "uploadId=\(id)",
                                       body: completeBody(etags.enumerated().map { ($0.offset + 1, $0.element) }))
        #expect(complete.status == 200, "\(complete.text)")
        let expected = ETag.composite(partMD5s: parts.map { Hash.md5($0) })
        #expect(complete.element("ETag").map { ETag($0) } == expected)
        let get = try client.send("GET", "/bkt/dir/obj.bin")
        #expect(get.status == 200)
        #expect(get.body == parts.flatMap { $0 })
        #expect(get.headers["ETag"] == expected.quoted)
        #expect(get.headers["Content-Type"] == "application/x-test")
        // The upload is gone once completed.
        let again = try client.send("POST", "/bkt/dir/obj.bin", query: "uploadId=\(id)", body: completeBody([(1, etags[0])]))
        #expect(again.status == 404 && again.errorCode == "NoSuchUpload")
    }

    @Test func nonLastPartUnder100KBIsEntityTooSmall() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        let id = try client.initiate("small")
        let first = try client.uploadPart("small", id, 1, randomBytes(100 * 1024 - 1)).headers["ETag"]!
        let second = try client.uploadPart("small", id, 2, randomBytes(10)).headers["ETag"]!
        let reply = try client.send("POST", "/bkt/small", query: "uploadId=\(id)", body: completeBody([(1, first), (2, second)]))
        #expect(reply.status == 400)
        #expect(reply.errorCode == "EntityTooSmall")
        // A lone small part is a valid (last) part.
        let alone = try client.send("POST", "/bkt/small", query: "uploadId=\(id)", body: completeBody([(2, second)]))
        #expect(alone.status == 200)
    }

    /// S3 refuses parts under 5 MiB: V2/V4-signed completes get that limit by default, OBS-signed
    /// ones keep OBS's 100 KiB on the same server.
    @Test(arguments: [Dialect.obs, .v2, .v4])
    func minimumPartSizeFollowsTheDialect(dialect: Dialect) throws {
        let server = try TestServer(memory: true, s3MinimumPartSize: ProtocolLimits.s3MinimumPartSize)
        defer { server.stop() }
        let client = server.client(dialect: dialect)
        let minimum = dialect == .obs ? 100 * 1024 : 5 * 1024 * 1024
        for (size, accepted) in [(minimum - 1, false), (minimum, true)] {
            let key = "parts-\(size)"
            let id = try client.initiate(key)
            let first = try client.uploadPart(key, id, 1, randomBytes(size)).headers["ETag"]!
            let second = try client.uploadPart(key, id, 2, randomBytes(10)).headers["ETag"]!
            let reply = try client.send("POST", "/bkt/\(key)", query: "uploadId=\(id)", body: completeBody([(1, first), (2, second)]))
            if accepted {
                #expect(reply.status == 200, "\(reply.text)")
            } else {
                #expect(reply.status == 400 && reply.errorCode == "EntityTooSmall", "\(dialect) \(size): \(reply.text)")
            }
        }
    }

    @Test func wrongOrMissingPartIsInvalidPartAndDescendingIsInvalidPartOrder() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        let id = try client.initiate("k")
        let one = try client.uploadPart("k", id, 1, randomBytes(100 * 1024)).headers["ETag"]!
        let two = try client.uploadPart("k", id, 2, randomBytes(100 * 1024)).headers["ETag"]!
        let wrongTag = try client.send("POST", "/bkt/k", query: "uploadId=\(id)", body: completeBody([(1, "\"00000000000000000000000000000000\""), (2, two)]))
        #expect(wrongTag.status == 400 && wrongTag.errorCode == "InvalidPart")
        let missing = try client.send("POST", "/bkt/k", query: "uploadId=\(id)", body: completeBody([(1, one), (3, two)]))
        #expect(missing.status == 400 && missing.errorCode == "InvalidPart")
        let descending = try client.send("POST", "/bkt/k", query: "uploadId=\(id)", body: completeBody([(2, two), (1, one)]))
        #expect(descending.status == 400 && descending.errorCode == "InvalidPartOrder")
        let malformed = try client.send("POST", "/bkt/k", query: "uploadId=\(id)", body: Array("<CompleteMultipartUpload><Part>".utf8))
        #expect(malformed.status == 400 && malformed.errorCode == "MalformedXML")
        let empty = try client.send("POST", "/bkt/k", query: "uploadId=\(id)", body: completeBody([]))
        #expect(empty.status == 400 && empty.errorCode == "MalformedXML")
    }

    @Test func reuploadedPartReplacesTheEarlierOne() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = server.client()
        let id = try client.initiate("over")
        _ = try client.uploadPart("over", id, 1, randomBytes(300 * 1024))
        let replacement = randomBytes(120 * 1024)
        let etag = try client.uploadPart("over", id, 1, replacement).headers["ETag"]!
        let list = try client.send("GET", "/bkt/over", query: "uploadId=\(id)")
        #expect(list.elements("PartNumber") == ["1"])
        #expect(list.element("Size") == String(replacement.count))
        #expect(try client.send("POST", "/bkt/over", query: "uploadId=\(id)", body: completeBody([(1, etag)])).status == 200)
        #expect(try client.send("GET", "/bkt/over").body == replacement)
    }

    @Test func badDigestPartNumberRangeAndUnknownUpload() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        let id = try client.initiate("d")
        let body = randomBytes(1000)
        let wrongMD5 = Base64.encode(Hash.md5(body + [0]))
        let bad = try client.uploadPart("d", id, 1, body, headers: [("Content-MD5", wrongMD5)])
        #expect(bad.status == 400 && bad.errorCode == "BadDigest")
        let good = try client.uploadPart("d", id, 1, body, headers: [("Content-MD5", Base64.encode(Hash.md5(body)))])
        #expect(good.status == 200)
        for number in [0, 10_001] {
            let reply = try client.uploadPart("d", id, number, body)
            #expect(reply.status == 400 && reply.errorCode == "InvalidArgument")
        }
        let unknown = try client.uploadPart("d", "NOSUCHUPLOAD", 1, body)
        #expect(unknown.status == 404 && unknown.errorCode == "NoSuchUpload")
        #expect(try client.send("DELETE", "/bkt/d", query: "uploadId=\(id)").status == 204)
        let afterAbort = try client.uploadPart("d", id, 2, body)
        #expect(afterAbort.status == 404 && afterAbort.errorCode == "NoSuchUpload")
        let noBucket = try client.send("POST", "/nobucket/d", query: "uploads")
        #expect(noBucket.status == 404 && noBucket.errorCode == "NoSuchBucket")
    }

    @Test func listPartsAndListUploadsPage() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        let id = try client.initiate("paged")
        for number in 1...5 { _ = try client.uploadPart("paged", id, number, randomBytes(10)) }
        let first = try client.send("GET", "/bkt/paged", query: "uploadId=\(id)&max-parts=2")
        #expect(first.elements("PartNumber") == ["1", "2"])
        #expect(first.element("IsTruncated") == "true")
        #expect(first.element("NextPartNumberMarker") == "2")
        let rest = try client.send("GET", "/bkt/paged", query: "uploadId=\(id)&part-number-marker=2")
        #expect(rest.elements("PartNumber") == ["3", "4", "5"])
        #expect(rest.element("IsTruncated") == "false")

        for key in ["a/1", "a/2", "b"] { _ = try client.initiate(key) }
        let uploads = try client.send("GET", "/bkt", query: "uploads&max-uploads=2")
        #expect(uploads.elements("Key") == ["a/1", "a/2"])
        #expect(uploads.element("IsTruncated") == "true")
        let marker = try #require(uploads.element("NextKeyMarker"))
        let uploadMarker = try #require(uploads.element("NextUploadIdMarker"))
        let next = try client.send("GET", "/bkt", query: "uploads&key-marker=\(marker)&upload-id-marker=\(uploadMarker)")
        #expect(next.elements("Key") == ["b", "paged"])
        let grouped = try client.send("GET", "/bkt", query: "uploads&delimiter=/")
        #expect(grouped.elements("Prefix").contains("a/"))
    }
}
