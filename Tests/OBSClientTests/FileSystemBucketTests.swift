// The parallel file system calls: the requests as written (scripted transport, signatures the
// server accepts), the rename retry rule, and the calls against an in-process obs-local with a
// parallel file system bucket and an ordinary one, in every dialect.
import CurlTransport
import OBSClient
import OBSHashing
import OBSLocalServer
import OBSProtocol
import Testing

extension RequestBuildingTests {
    @Test(arguments: Dialect.allCases)
    func fileSystemBucketRequests(dialect: Dialect) async throws {
        let (client, transport) = client(.scripted(dialect: dialect), [
            Reply.status(204), Reply.headers(200, [("ETag", "\"0123\"")]), Reply.status(204),
            Reply.headers(200, [("x-obs-fs-file-interface", "Enabled")]), Reply.status(200),
        ])
        try await client.renameObject(bucket: bucket, key: key, to: ObjectKey("new dir/b+é"))
        let body = MemoryRegion(owner: AlignedMemory(copying: [1, 2, 3] as [UInt8]))
        let etag = try await client.modifyObject(bucket: bucket, key: key, position: 5, body: body, md5: Hash.md5([1, 2, 3]))
        try await client.truncateObject(bucket: bucket, key: key, length: 9)
        #expect(try await client.isFileSystemBucket(bucket))
        #expect(try await !client.isFileSystemBucket(bucket))
        #expect(etag == ETag("0123"))

        let requests = transport.requests
        let path = "http://127.0.0.1:9000/bkt/dir/a%20b%2B~%C3%A9%25.txt"
        #expect(requests.map(\.method) == ["POST", "PUT", "PUT", "HEAD", "HEAD"])
        #expect(requests[0].url == path + "?name=%2Fnew%20dir%2Fb%2B%C3%A9&rename")
        #expect(requests[1].url == path + "?modify&position=5")
        #expect(requests[1].headers["Content-MD5"] == Base64.encode(Hash.md5([1, 2, 3])))
        if case .memory(let sent) = requests[1].body { #expect(sent.bytes.baseAddress == body.bytes.baseAddress) } else { Issue.record("body not sent from memory") }
        #expect(requests[2].url == path + "?truncate&length=9")
        #expect(requests[3].url == "http://127.0.0.1:9000/bkt")
        for request in requests.prefix(3) {
            #expect(try verify(request, virtualHostBucket: nil).dialect == dialect)
        }
    }

    @Test func invalidFileSystemArgumentsSendNothing() async throws {
        let (client, transport) = client(.scripted(), [])
        let body = MemoryRegion(owner: AlignedMemory(copying: [1] as [UInt8]))
        await #expect(throws: OBSClientError.self) { _ = try await client.modifyObject(bucket: bucket, key: key, position: -1, body: body) }
        await #expect(throws: OBSClientError.self) { try await client.truncateObject(bucket: bucket, key: key, length: -1) }
        #expect(transport.requests.isEmpty)
    }

    /// A rename lost in transport may have happened: the retry's NoSuchKey is success when the new
    /// name exists, and stays an error when it does not.
    @Test(arguments: [true, false])
    func renameRetriedAfterALostAttempt(newNameExists: Bool) async throws {
        var answers = [Reply.timeout, Reply.error(404, "NoSuchKey")]
        answers += newNameExists ? [Reply.status(200)] : [Reply.error(404, "NoSuchKey"), Reply.status(200, "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>")]
        let (client, transport) = client(.scripted(), answers)
        if newNameExists {
            try await client.renameObject(bucket: bucket, key: key, to: ObjectKey("b"))
        } else {
            let error = await #expect(throws: OBSClientError.self) { try await client.renameObject(bucket: bucket, key: key, to: ObjectKey("b")) }
            #expect(error?.serviceCode == .noSuchKey)
        }
        #expect(transport.requests.map(\.method) == (newNameExists ? ["POST", "POST", "HEAD"] : ["POST", "POST", "HEAD", "GET"]))
    }
}

@Suite("Parallel file system bucket against obs-local")
struct FileSystemBucketLiveTests {
    static let credentials = Credentials(accessKey: "pfs-test-ak", secretKey: "pfs-test-sk")

    static func withServer(_ dialect: Dialect, _ body: (OBSClient) async throws -> Void) async throws {
        let server = try OBSLocalServer.start(ServerConfiguration(storage: .memory, buckets: [BucketName("plain")],
                                                                  fileSystemBuckets: [BucketName("pfs")], credentials: [credentials]))
        defer { try? server.stop() }
        let client = try OBSClient(configuration: OBSClientConfiguration(endpoint: Endpoint(server.endpoint)!, dialect: dialect,
                                                                         credentials: credentials))
        try await body(client)
    }

    static func region(_ bytes: [UInt8]) -> MemoryRegion { MemoryRegion(owner: AlignedMemory(copying: bytes)) }

    @Test(arguments: Dialect.allCases)
    func renameModifyTruncate(dialect: Dialect) async throws {
        try await Self.withServer(dialect) { client in
            let pfs = BucketName("pfs")
            #expect(try await client.isFileSystemBucket(pfs))
            #expect(try await !client.isFileSystemBucket(BucketName("plain")))
            try await client.createFileSystemBucket(BucketName("made"))
            #expect(try await client.isFileSystemBucket(BucketName("made")))

            var expected = Array("hello, parallel file system".utf8)
            _ = try await client.putObject(bucket: pfs, key: ObjectKey("d/f"), bytes: expected)
            let patch = Array("PARALLEL FILE SYSTEM!!".utf8)
            let etag = try await client.modifyObject(bucket: pfs, key: ObjectKey("d/f"), position: 7, body: Self.region(patch), md5: Hash.md5(patch))
            expected = Array(expected[..<7]) + patch
            var read = try await client.getObjectBytes(bucket: pfs, key: ObjectKey("d/f"))
            #expect(read.bytes == expected && read.info.etag == etag && etag != nil)

            try await client.truncateObject(bucket: pfs, key: ObjectKey("d/f"), length: 5)
            try await client.truncateObject(bucket: pfs, key: ObjectKey("d/f"), length: 8)
            read = try await client.getObjectBytes(bucket: pfs, key: ObjectKey("d/f"))
            #expect(read.bytes == Array("hello".utf8) + [0, 0, 0])

            try await client.renameObject(bucket: pfs, key: ObjectKey("d/f"), to: ObjectKey("e/g h"))
            try await client.renameObject(bucket: pfs, key: ObjectKey("e"), to: ObjectKey("moved"))
            let listing = try await client.listObjects(bucket: pfs)
            #expect(listing.contents.map(\.key) == [ObjectKey("moved/g h")])
            #expect(try await client.getObjectBytes(bucket: pfs, key: ObjectKey("moved/g h")).bytes == Array("hello".utf8) + [0, 0, 0])

            let missing = await #expect(throws: OBSClientError.self) { try await client.renameObject(bucket: pfs, key: ObjectKey("d/f"), to: ObjectKey("x")) }
            #expect(missing?.serviceCode == .noSuchKey)
        }
    }

    @Test(arguments: Dialect.allCases)
    func anOrdinaryBucketAnswersMethodNotAllowed(dialect: Dialect) async throws {
        try await Self.withServer(dialect) { client in
            let plain = BucketName("plain"), key = ObjectKey("k")
            _ = try await client.putObject(bucket: plain, key: key, bytes: [1, 2, 3])
            let errors = [
                await #expect(throws: OBSClientError.self) { try await client.renameObject(bucket: plain, key: key, to: ObjectKey("j")) },
                await #expect(throws: OBSClientError.self) { _ = try await client.modifyObject(bucket: plain, key: key, position: 0, body: Self.region([9])) },
                await #expect(throws: OBSClientError.self) { try await client.truncateObject(bucket: plain, key: key, length: 1) },
            ]
            #expect(errors.map { $0?.serviceCode } == Array(repeating: .methodNotAllowed, count: 3))
            #expect(try await client.getObjectBytes(bucket: plain, key: key).bytes == [1, 2, 3])
        }
    }
}
