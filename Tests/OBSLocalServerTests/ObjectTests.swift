// Single-object operations: ranges (also across part boundaries), persistence across a restart,
// copy, metadata, ACL, tagging, append and listings.
import Foundation
import OBSHashing
import OBSProtocol
import Testing

@Suite struct ObjectTests {
    @Test func rangeEdgesOnAMultipartObject() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = server.client()
        let parts = [randomBytes(100 * 1024), randomBytes(100 * 1024), randomBytes(5)]
        let id = try client.initiate("r")
        let etags = try parts.enumerated().map { try client.uploadPart("r", id, $0.offset + 1, $0.element).headers["ETag"]! }
        #expect(try client.send("POST", "/bkt/r", query: "uploadId=\(id)", body: completeBody(etags.enumerated().map { ($0.offset + 1, $0.element) })).status == 200)
        let whole = parts.flatMap { $0 }
        let size = whole.count
        let cases: [(String, Range<Int>)] = [
            ("bytes=0-0", 0..<1),
            ("bytes=\(size - 1)-", (size - 1)..<size),
            ("bytes=-7", (size - 7)..<size),
            ("bytes=\(100 * 1024 - 3)-\(200 * 1024 + 2)", (100 * 1024 - 3)..<(200 * 1024 + 3)),
            ("bytes=10-\(size + 100)", 10..<size),
        ]
        for (header, range) in cases {
            let reply = try client.send("GET", "/bkt/r", headers: [("Range", header)])
            #expect(reply.status == 206, "\(header)")
            #expect(reply.body == Array(whole[range]), "\(header)")
            #expect(reply.headers["Content-Range"] == "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)")
        }
        let beyond = try client.send("GET", "/bkt/r", headers: [("Range", "bytes=\(size)-")])
        #expect(beyond.status == 416 && beyond.errorCode == "InvalidRange")
        let head = try client.send("HEAD", "/bkt/r", headers: [("Range", "bytes=0-9")])
        #expect(head.status == 206 && head.headers["Content-Length"] == "10")
    }

    /// A body far above the ingest high-water mark: reading pauses and resumes until it is in.
    @Test(arguments: [false, true])
    func largeBodyStreamsThroughBackpressure(memory: Bool) throws {
        let server = try TestServer(memory: memory)
        defer { server.stop() }
        let client = server.client()
        let body = randomBytes(48 << 20)
        let put = try client.send("PUT", "/bkt/large", body: body)
        #expect(put.status == 200 && put.headers["ETag"] == ETag(md5: Hash.md5(body)).quoted)
        #expect(try client.send("GET", "/bkt/large").body == body)
    }

    @Test func objectsAndUploadsSurviveARestart() throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let body = randomBytes(64 * 1024)
        let part = randomBytes(128 * 1024)
        let uploadID: String
        do {
            let server = try TestServer(directory: directory)
            let client = server.client()
            #expect(try client.send("PUT", "/bkt/kept", headers: [("x-obs-meta-color", "blue")], body: body).status == 200)
            uploadID = try client.initiate("pending")
            #expect(try client.uploadPart("pending", uploadID, 1, part).status == 200)
            server.stop()
        }
        let server = try TestServer(directory: directory)
        defer { server.stop() }
        let client = server.client()
        let get = try client.send("GET", "/bkt/kept")
        #expect(get.body == body)
        #expect(get.headers["x-obs-meta-color"] == "blue")
        let parts = try client.send("GET", "/bkt/pending", query: "uploadId=\(uploadID)")
        #expect(parts.elements("PartNumber") == ["1"])
        let complete = try client.send("POST", "/bkt/pending", query: "uploadId=\(uploadID)",
                                       body: completeBody([(1, ETag(md5: Hash.md5(part)).quoted)]))
        #expect(complete.status == 200)
        #expect(try client.send("GET", "/bkt/pending").body == part)
    }

    /// A crash after a completed object is written but before its upload is removed (the log's
    /// last line, cut off here): at restart the object wins, and the stale upload (whose abort
    /// would delete the object's parts) is gone.
    @Test func restartAfterACrashInsideCompleteKeepsTheObject() throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let part = randomBytes(50_000)
        let log = directory + "/meta/journal.jsonl"
        do {
            let server = try TestServer(directory: directory)
            let client = server.client()
            let id = try client.initiate("crash")
            let etag = try client.uploadPart("crash", id, 1, part).headers["ETag"]!
            #expect(try client.send("POST", "/bkt/crash", query: "uploadId=\(id)", body: completeBody([(1, etag)])).status == 200)
            server.stop()
        }
        var lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.last?.hasPrefix("{\"removeUpload\"") == true)
        lines.removeLast()
        try (lines.joined(separator: "\n") + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        let server = try TestServer(directory: directory)
        defer { server.stop() }
        let client = server.client()
        #expect(try client.send("GET", "/bkt", query: "uploads").elements("UploadId").isEmpty)
        #expect(try client.send("GET", "/bkt/crash").body == part)
    }

    @Test func aCopySourceWhoseKeyStartsWithACombiningMarkIsFound() throws {
        // "bkt/\u{301}src": the `/` and U+0301 are one Character, so a split at Characters
        // found no key in it (InvalidArgument).
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        let body = randomBytes(300)
        #expect(try client.send("PUT", "/bkt/%CC%81src", body: body).status == 200)
        #expect(try client.send("PUT", "/bkt/dst", headers: [("x-obs-copy-source", "/bkt/%CC%81src")]).status == 200)
        #expect(try client.send("GET", "/bkt/dst").body == body)
        #expect(try client.send("PUT", "/bkt/dst", headers: [("x-obs-copy-source", "/bkt/")]).errorCode == "InvalidArgument")
    }

    @Test func copyMetadataACLTaggingAndAppend() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        let body = randomBytes(5000)
        #expect(try client.send("PUT", "/bkt/src", headers: [("Content-Type", "text/x-a"), ("x-obs-meta-a", "1")], body: body).status == 200)
        let copy = try client.send("PUT", "/bkt/dst", headers: [("x-obs-copy-source", "/bkt/src")])
        #expect(copy.status == 200 && copy.element("ETag") != nil)
        let copied = try client.send("GET", "/bkt/dst")
        #expect(copied.body == body && copied.headers["x-obs-meta-a"] == "1" && copied.headers["Content-Type"] == "text/x-a")

        // A copy onto itself edits metadata without moving bytes; without a change it is refused.
        let selfCopy = try client.send("PUT", "/bkt/dst", headers: [("x-obs-copy-source", "/bkt/dst"), ("x-obs-metadata-directive", "REPLACE"),
                                                                    ("x-obs-meta-a", "9")])
        #expect(selfCopy.status == 200)
        let edited = try client.send("GET", "/bkt/dst")
        #expect(edited.body == body && edited.headers["x-obs-meta-a"] == "9")
        let pointless = try client.send("PUT", "/bkt/dst", headers: [("x-obs-copy-source", "/bkt/dst")])
        #expect(pointless.status == 400 && pointless.errorCode == "InvalidRequest")
        _ = try client.send("PUT", "/bkt/dst", headers: [("x-obs-copy-source", "/bkt/src")])

        let replaceNew = try client.send("PUT", "/bkt/dst", query: "metadata",
                                         headers: [("x-obs-metadata-directive", "REPLACE_NEW"), ("x-obs-meta-b", "2")])
        #expect(replaceNew.status == 200)
        var head = try client.send("HEAD", "/bkt/dst")
        #expect(head.headers["x-obs-meta-a"] == "1" && head.headers["x-obs-meta-b"] == "2")
        _ = try client.send("PUT", "/bkt/dst", query: "metadata", headers: [("x-obs-metadata-directive", "REPLACE"), ("x-obs-meta-c", "3")])
        head = try client.send("HEAD", "/bkt/dst")
        #expect(head.headers["x-obs-meta-a"] == nil && head.headers["x-obs-meta-c"] == "3" && head.headers["Content-Type"] == "binary/octet-stream")

        #expect(try client.send("PUT", "/bkt/dst", query: "acl", headers: [("x-obs-acl", "public-read")]).status == 200)
        let acl = try client.send("GET", "/bkt/dst", query: "acl")
        #expect(acl.text.contains("Everyone") && acl.elements("Permission") == ["FULL_CONTROL", "READ"])

        let tagging = Array("<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>".utf8)
        #expect(try client.send("PUT", "/bkt/dst", query: "tagging", body: tagging).status == 200)
        #expect(try client.send("GET", "/bkt/dst", query: "tagging").elements("Key") == ["k"])

        let first = try client.send("POST", "/bkt/log", query: "append&position=0", body: Array("abc".utf8))
        #expect(first.status == 200 && first.headers["x-obs-next-append-position"] == "3")
        let wrong = try client.send("POST", "/bkt/log", query: "append&position=1", body: Array("x".utf8))
        #expect(wrong.status == 409 && wrong.errorCode == "PositionNotEqualToLength")
        #expect(try client.send("POST", "/bkt/log", query: "append&position=3", body: Array("def".utf8)).status == 200)
        #expect(try client.send("GET", "/bkt/log").text == "abcdef")
        let notAppendable = try client.send("POST", "/bkt/src", query: "append&position=5000", body: [1])
        #expect(notAppendable.status == 409 && notAppendable.errorCode == "ObjectNotAppendable")
    }

    @Test func listingWithDelimiterPagingAndURLEncoding() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        for key in ["a/1", "a/2", "b", "c d", "e+f"] {
            #expect(try client.send("PUT", "/bkt/" + PercentEncoding.encodePath(key), body: [1]).status == 200)
        }
        let grouped = try client.send("GET", "/bkt", query: "delimiter=/")
        #expect(grouped.elements("Key") == ["b", "c d", "e+f"])
        #expect(grouped.elements("Prefix").contains("a/"))
        let page = try client.send("GET", "/bkt", query: "max-keys=2")
        #expect(page.elements("Key") == ["a/1", "a/2"] && page.element("IsTruncated") == "true")
        let next = try client.send("GET", "/bkt", query: "marker=\(page.element("NextMarker")!)")
        #expect(next.elements("Key") == ["b", "c d", "e+f"])
        let encoded = try client.send("GET", "/bkt", query: "prefix=c&encoding-type=url")
        #expect(encoded.elements("Key") == ["c%20d"])
        // Keys differing only in Unicode normalisation are different objects, as in S3.
        #expect(try client.send("PUT", "/bkt/n%C3%A9", body: [1]).status == 200)
        #expect(try client.send("PUT", "/bkt/ne%CC%81", body: [2, 2]).status == 200)
        #expect(try client.send("GET", "/bkt/n%C3%A9").body == [1])
        #expect(try client.send("GET", "/bkt/ne%CC%81").body == [2, 2])
        #expect(try client.send("GET", "/bkt", query: "prefix=n&encoding-type=url").elements("Key") == ["ne%CC%81", "n%C3%A9"])
        let delete = try client.send("DELETE", "/bkt/b")
        #expect(delete.status == 204)
        #expect(try client.send("GET", "/bkt/b").errorCode == "NoSuchKey")
    }

    @Test func initiateHeadersAreReturnedOnHeadAndSSECIsEnforced() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        let key: [UInt8] = Array("0123456789abcdef0123456789abcdef".utf8)
        let sse = [("x-obs-server-side-encryption-customer-algorithm", "AES256"),
                   ("x-obs-server-side-encryption-customer-key", Base64.encode(key)),
                   ("x-obs-server-side-encryption-customer-key-MD5", Base64.encode(Hash.md5(key)))]
        let headers = [("x-obs-storage-class", "WARM"), ("x-obs-meta-m", "v"), ("x-obs-website-redirect-location", "/x"),
                       ("x-obs-expires", "2"), ("x-obs-tagging", "A=1&B"), ("Content-Encoding", "gzip"),
                       ("x-obs-persistent-headers", "p1:" + Base64.encode(Array("hello".utf8)))] + sse
        let id = try client.initiate("enc", headers: headers)
        let noKey = try client.uploadPart("enc", id, 1, [1, 2, 3])
        #expect(noKey.status == 400)
        let etag = try client.uploadPart("enc", id, 1, [1, 2, 3], headers: sse).headers["ETag"]!
        #expect(try client.send("POST", "/bkt/enc", query: "uploadId=\(id)", body: completeBody([(1, etag)])).status == 200)
        let refused = try client.send("HEAD", "/bkt/enc")
        #expect(refused.status == 400)
        let otherKey = Array("fedcba9876543210fedcba9876543210".utf8)
        let wrong = try client.send("GET", "/bkt/enc", headers: [sse[0], ("x-obs-server-side-encryption-customer-key", Base64.encode(otherKey)),
                                                                 ("x-obs-server-side-encryption-customer-key-MD5", Base64.encode(Hash.md5(otherKey)))])
        #expect(wrong.status == 403)
        let head = try client.send("HEAD", "/bkt/enc", headers: sse)
        #expect(head.status == 200)
        #expect(head.headers["x-obs-storage-class"] == "WARM")
        #expect(head.headers["x-obs-meta-m"] == "v")
        #expect(head.headers["x-obs-website-redirect-location"] == "/x")
        #expect(head.headers["x-obs-expiration"]?.hasPrefix("expiry-date=") == true)
        #expect(head.headers["x-obs-tagging-count"] == "2")
        #expect(head.headers["Content-Encoding"] == "gzip")
        #expect(head.headers["p1"] == "hello")
        #expect(head.headers["x-obs-server-side-encryption-customer-key-MD5"] == Base64.encode(Hash.md5(key)))
        let invalid = try client.send("POST", "/bkt/bad", query: "uploads", headers: [("x-obs-storage-class", "FROZEN")])
        #expect(invalid.status == 400 && invalid.errorCode == "InvalidStorageClass")
        let badRedirect = try client.send("PUT", "/bkt/bad", headers: [("x-obs-website-redirect-location", "ftp://x")], body: [1])
        #expect(badRedirect.status == 400 && badRedirect.errorCode == "InvalidArgument")
        let bigMetadata = try client.send("PUT", "/bkt/bad", headers: [("x-obs-meta-big", String(repeating: "m", count: 9000))], body: [1])
        #expect(bigMetadata.status == 400 && bigMetadata.errorCode == "MetadataTooLarge")
    }
}
