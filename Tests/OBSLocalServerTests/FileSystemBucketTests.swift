// Parallel file system buckets: the bucket kind (created by header or configuration, answered by
// HEAD bucket, kept across a restart), rename of files and directories, modify and truncate, each
// checked by reading the object back, and the refusal of all three on an ordinary bucket.
import Foundation
import OBSHashing
import OBSProtocol
import Testing

@Suite struct FileSystemBucketTests {
    /// `bkt` is a parallel file system, `plain` an ordinary bucket.
    static func makeServer(memory: Bool = false, directory: String? = nil) throws -> TestServer {
        try TestServer(memory: memory, directory: directory, buckets: ["plain"], fileSystemBuckets: ["bkt"])
    }

    /// An object of three parts (100 KiB, 100 KiB, 7 bytes), so changes cross blob boundaries.
    static func putMultipart(_ client: TestClient, _ key: String) throws -> [UInt8] {
        let parts = [randomBytes(100 * 1024), randomBytes(100 * 1024), randomBytes(7)]
        let id = try client.initiate(key)
        let etags = try parts.enumerated().map { try client.uploadPart(key, id, $0.offset + 1, $0.element).headers["ETag"]! }
        let done = try client.send("POST", "/bkt/\(key)", query: "uploadId=\(id)", body: completeBody(etags.enumerated().map { ($0.offset + 1, $0.element) }))
        #expect(done.status == 200, "\(done.text)")
        return parts.flatMap { $0 }
    }

    static func rename(_ client: TestClient, _ key: String, to name: String, bucket: String = "bkt") throws -> TestResponse {
        try client.send("POST", "/\(bucket)/\(PercentEncoding.encodePath(key))", query: "name=\(PercentEncoding.encode(name, keepSlash: false))&rename")
    }

    static func keys(_ client: TestClient) throws -> [String] {
        try client.send("GET", "/bkt").elements("Key")
    }

    @Test func theBucketKindIsAnsweredByHeadBucketAndSurvivesARestart() throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let server = try Self.makeServer(directory: directory)
            defer { server.stop() }
            let client = server.client()
            #expect(try client.send("PUT", "/made-pfs", headers: [("x-obs-fs-file-interface", "Enabled")]).status == 200)
            #expect(try client.send("PUT", "/made-plain").status == 200)
        }
        let server = try TestServer(directory: directory, buckets: [])
        defer { server.stop() }
        for dialect in [Dialect.obs, .v2] {
            let client = server.client(dialect: dialect)
            for (bucket, isFileSystem) in [("bkt", true), ("made-pfs", true), ("plain", false), ("made-plain", false)] {
                let head = try client.send("HEAD", "/\(bucket)")
                #expect(head.status == 200)
                #expect(head.headers["x-obs-fs-file-interface"] == (isFileSystem ? "Enabled" : nil), "\(bucket) \(dialect)")
            }
        }
    }

    @Test func anOrdinaryBucketRefusesRenameModifyAndTruncate() throws {
        let server = try Self.makeServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        let body = randomBytes(1000)
        #expect(try client.send("PUT", "/plain/a", body: body).status == 200)
        let refused = [
            try Self.rename(client, "a", to: "/b", bucket: "plain"),
            try client.send("PUT", "/plain/a", query: "modify&position=0", body: [1, 2, 3]),
            try client.send("PUT", "/plain/a", query: "truncate&length=10"),
        ]
        for reply in refused {
            #expect(reply.status == 405 && reply.errorCode == "MethodNotAllowed", "\(reply.text)")
        }
        #expect(try client.send("GET", "/plain/a").body == body)
        #expect(try client.send("GET", "/plain/b").status == 404)
    }

    @Test(arguments: [false, true])
    func modifyWritesInPlaceAndGrowsTheObject(memory: Bool) throws {
        let server = try Self.makeServer(memory: memory)
        defer { server.stop() }
        let client = server.client()
        var expected = try Self.putMultipart(client, "m")
        let head = try client.send("HEAD", "/bkt/m")
        #expect(head.headers["x-obs-checksum-crc64ecma"] != nil)
        var etags: Set<String> = [try #require(head.headers["ETag"])]
        // Across the first part boundary, inside the last part, and from the end (growing).
        for (position, count) in [(100 * 1024 - 10, 30), (200 * 1024 + 2, 3), (expected.count, 5000), (expected.count - 4, 100)] {
            let patch = randomBytes(count)
            let reply = try client.send("PUT", "/bkt/m", query: "modify&position=\(position)",
                                        headers: [("Content-MD5", Base64.encode(Hash.md5(patch)))], body: patch)
            #expect(reply.status == 200, "\(reply.text)")
            let etag = try #require(reply.headers["ETag"])
            #expect(etags.insert(etag).inserted, "every change answers a new ETag")
            let end = position + count
            if end > expected.count { expected += [UInt8](repeating: 0, count: end - expected.count) }
            expected.replaceSubrange(position..<end, with: patch)
            let read = try client.send("GET", "/bkt/m")
            #expect(read.body == expected && read.headers["ETag"] == etag)
            #expect(read.headers["x-obs-checksum-crc64ecma"] == nil, "the CRCs of the content before are not answered")
        }
        let range = try client.send("GET", "/bkt/m", headers: [("Range", "bytes=102390-102420")])
        #expect(range.body == Array(expected[102390...102420]))
    }

    @Test func modifyIsRefusedBeyondTheEndOfMissingObjectsAndWithABadDigest() throws {
        let server = try Self.makeServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        let body = randomBytes(100)
        #expect(try client.send("PUT", "/bkt/m", body: body).status == 200)
        let beyond = try client.send("PUT", "/bkt/m", query: "modify&position=101", body: [1])
        #expect(beyond.status == 400 && beyond.errorCode == "InvalidArgument")
        let missing = try client.send("PUT", "/bkt/none", query: "modify&position=0", body: [1])
        #expect(missing.status == 404 && missing.errorCode == "NoSuchKey")
        let bad = try client.send("PUT", "/bkt/m", query: "modify&position=0", headers: [("Content-MD5", Base64.encode(Hash.md5([9])))], body: [1])
        #expect(bad.status == 400 && bad.errorCode == "BadDigest")
        #expect(try client.send("GET", "/bkt/m").body == body)
        #expect(try client.send("GET", "/bkt/none").status == 404)
    }

    @Test(arguments: [false, true])
    func truncateShrinksAndGrowsWithZeros(memory: Bool) throws {
        let server = try Self.makeServer(memory: memory)
        defer { server.stop() }
        let client = server.client()
        let original = try Self.putMultipart(client, "t")
        let before = try client.send("HEAD", "/bkt/t").headers["ETag"]
        let shrink = try client.send("PUT", "/bkt/t", query: "truncate&length=150000")
        #expect(shrink.status == 204)
        #expect(try client.send("GET", "/bkt/t").body == Array(original[..<150_000]))
        let grow = try client.send("PUT", "/bkt/t", query: "truncate&length=3000000")
        #expect(grow.status == 204)
        let grown = try client.send("GET", "/bkt/t")
        #expect(grown.body == Array(original[..<150_000]) + [UInt8](repeating: 0, count: 3_000_000 - 150_000))
        #expect(grown.headers["ETag"] != before)
        #expect(try client.send("PUT", "/bkt/t", query: "truncate&length=0").status == 204)
        #expect(try client.send("HEAD", "/bkt/t").headers["Content-Length"] == "0")
        let negative = try client.send("PUT", "/bkt/t", query: "truncate&length=-1")
        #expect(negative.status == 400 && negative.errorCode == "InvalidArgument")
        let missing = try client.send("PUT", "/bkt/none", query: "truncate&length=5")
        #expect(missing.status == 404 && missing.errorCode == "NoSuchKey")
    }

    @Test func modifiedAndTruncatedObjectsSurviveARestart() throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var expected: [UInt8]
        do {
            let server = try Self.makeServer(directory: directory)
            defer { server.stop() }
            let client = server.client()
            expected = try Self.putMultipart(client, "p")
            let patch = randomBytes(64)
            #expect(try client.send("PUT", "/bkt/p", query: "modify&position=1000", body: patch).status == 200)
            expected.replaceSubrange(1000..<1064, with: patch)
            #expect(try client.send("PUT", "/bkt/p", query: "truncate&length=150000").status == 204)
            expected = Array(expected[..<150_000])
            #expect(try client.send("PUT", "/bkt/p", query: "truncate&length=150010").status == 204)
            expected += [UInt8](repeating: 0, count: 10)
        }
        let server = try Self.makeServer(directory: directory)
        defer { server.stop() }
        #expect(try server.client().send("GET", "/bkt/p").body == expected)
    }

    @Test func renameMovesAFileAndReplacesTheTarget() throws {
        let server = try Self.makeServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        let body = randomBytes(5000)
        #expect(try client.send("PUT", "/bkt/dir/a", headers: [("x-obs-meta-color", "blue")], body: body).status == 200)
        #expect(try client.send("PUT", "/bkt/" + PercentEncoding.encodePath("other/b é+x"), body: randomBytes(10)).status == 200)
        let renamed = try Self.rename(client, "dir/a", to: "/other/b é+x")
        #expect(renamed.status == 204, "\(renamed.text)")
        #expect(try client.send("GET", "/bkt/dir/a").status == 404)
        let moved = try client.send("GET", "/bkt/" + PercentEncoding.encodePath("other/b é+x"))
        #expect(moved.body == body && moved.headers["x-obs-meta-color"] == "blue")
        // The SDKs send the key without the leading slash.
        #expect(try Self.rename(client, "other/b é+x", to: "c").status == 204)
        #expect(try Self.keys(client) == ["c"])
        let missing = try Self.rename(client, "nothing", to: "/d")
        #expect(missing.status == 404 && missing.errorCode == "NoSuchKey")
        let unnamed = try client.send("POST", "/bkt/c", query: "rename")
        #expect(unnamed.status == 400 && unnamed.errorCode == "InvalidArgument")
        #expect(try client.send("GET", "/bkt/c").body == body)
    }

    @Test func renameMovesADirectoryWithEverythingUnderIt() throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let inside = randomBytes(300)
        do {
            let server = try Self.makeServer(directory: directory)
            defer { server.stop() }
            let client = server.client()
            for key in ["d/", "d/x", "d2", "dx", "e/"] { #expect(try client.send("PUT", "/bkt/\(key)").status == 200) }
            #expect(try client.send("PUT", "/bkt/d/sub/y", body: inside).status == 200)
            #expect(try client.send("PUT", "/bkt/full/z").status == 200)

            let into = try Self.rename(client, "d", to: "/d/sub/d")
            #expect(into.status == 400 && into.errorCode == "InvalidArgument")
            let occupied = try Self.rename(client, "d/", to: "/full/")
            #expect(occupied.status == 409 && occupied.errorCode == "DirectoryNotEmpty")
            // `e/` holds only its marker: it is replaced.
            #expect(try Self.rename(client, "d", to: "/e").status == 204)
            #expect(try Self.keys(client) == ["d2", "dx", "e/", "e/sub/y", "e/x", "full/z"])
        }
        let server = try Self.makeServer(directory: directory)
        defer { server.stop() }
        let client = server.client()
        #expect(try Self.keys(client) == ["d2", "dx", "e/", "e/sub/y", "e/x", "full/z"])
        #expect(try client.send("GET", "/bkt/e/sub/y").body == inside)
    }
}
