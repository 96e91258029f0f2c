// The client against an in-process obs-local: every dialect (OBS-native included, which no
// S3 server speaks), the OBS-only operations (append, PUT ?metadata, SSE-C), and retries under
// the server's fault injection, all over the real libcurl transport.
import CurlTransport
import Foundation
import OBSClient
import OBSHashing
import OBSLocalServer
import OBSProtocol
import Testing

/// An in-memory obs-local on a free port with one bucket; stopped by `stop()`.
final class LocalServer {
    static let credentials = Credentials(accessKey: "client-test-ak", secretKey: "client-test-sk")
    let server: OBSLocalServer
    let bucket = BucketName("bkt")

    init() throws {
        server = try OBSLocalServer.start(ServerConfiguration(storage: .memory, buckets: [bucket], credentials: [Self.credentials]))
    }

    func stop() { try? server.stop() }

    func client(_ dialect: Dialect, retry: RetryPolicy = RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(5)),
                operationTimeout: Duration? = nil) throws -> OBSClient {
        try OBSClient(configuration: OBSClientConfiguration(endpoint: Endpoint(server.endpoint)!, dialect: dialect, credentials: Self.credentials,
                                                            retry: retry, operationTimeout: operationTimeout))
    }

    /// A client addressing `bucket.localhost:PORT` (curl resolves `*.localhost` to loopback itself).
    func virtualHostClient(_ dialect: Dialect) throws -> OBSClient {
        try OBSClient(configuration: OBSClientConfiguration(endpoint: Endpoint("http://localhost:\(server.port)")!, addressing: .virtualHost,
                                                            dialect: dialect, credentials: Self.credentials))
    }

    /// Adds fault rules (JSON, see obs-local's FaultInjector) through the admin API.
    func inject(_ rulesJSON: String) async throws {
        let response = try await CurlTransport().perform(HTTPRequest(method: "POST", url: server.endpoint + "/_obs-local/faults",
                                                                     body: .bytes(Array(rulesJSON.utf8))))
        #expect(response.status == 200)
    }

    /// The `matched` and `fired` counters of every rule, in the order added.
    func ruleCounters() async throws -> [(matched: Int, fired: Int)] {
        let response = try await CurlTransport().perform(HTTPRequest(method: "GET", url: server.endpoint + "/_obs-local/faults"))
        let rules = try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]] ?? []
        return rules.map { ($0["matched"] as? Int ?? 0, $0["fired"] as? Int ?? 0) }
    }
}

@Suite("OBSClient against obs-local")
struct LocalServerTests {
    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    @Test("multipart with options, metadata, ACL, append, SSE-C, listing, copy", arguments: Dialect.allCases)
    func operations(dialect: Dialect) async throws {
        let local = try LocalServer()
        defer { local.stop() }
        let client = try local.client(dialect)
        let bucket = local.bucket
        let key = ObjectKey("dir/a b+é.bin")

        var options = ObjectOptions()
        options.metadata = ["color": "blue é"]
        options.storageClass = .warm
        options.contentType = "application/x-test"
        options.acl = .publicRead
        let data = Self.randomBytes(450_000)
        let memory = AlignedMemory(copying: data)
        let ranges = [0 ..< 200_000, 200_000 ..< 400_000, 400_000 ..< 450_000]
        let uploadID = try await client.initiateMultipartUpload(bucket: bucket, key: key, options: options)
        let etags = try await withThrowingTaskGroup(of: (Int, ETag).self) { group in
            for (index, range) in ranges.enumerated() {
                group.addTask {
                    let region = MemoryRegion(owner: memory, range: range)
                    return (index, try await client.uploadPart(bucket: bucket, key: key, uploadID: uploadID, partNumber: PartNumber(index + 1)!,
                                                               body: region, integrity: .md5(Hash.md5(region.bytes))).etag)
                }
            }
            return try await group.reduce(into: [Int: ETag]()) { $0[$1.0] = $1.1 }
        }
        let pages = try await client.allParts(bucket: bucket, key: key, uploadID: uploadID, pageSize: 1).collect()
        #expect(pages.count == 3)
        #expect(pages.flatMap(\.parts).map(\.size) == ranges.map { Int64($0.count) })
        let completed = try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: uploadID,
                                                                 parts: (0..<3).map { (PartNumber($0 + 1)!, etags[$0]!) })
        #expect(completed.etag == ETag.composite(partMD5s: ranges.map { Hash.md5(data[$0]) }))

        var info = try await client.headObject(bucket: bucket, key: key)
        #expect(info.contentLength == 450_000)
        #expect(info.metadata == ["color": "blue é"])
        #expect(info.storageClass == .warm)
        #expect(info.contentType == "application/x-test")
        let target = AlignedMemory(byteCount: 1000)
        let read = try await client.getObject(bucket: bucket, key: key, range: 199_500 ... 200_499, into: MemoryRegion(owner: target))
        #expect(read.byteCount == 1000)
        #expect(Array(target.rawBytes) == Array(data[199_500 ..< 200_500]))

        // PUT ?metadata changes metadata in place and keeps the data.
        var change = ObjectOptions()
        change.metadata = ["size": "large"]
        try await client.modifyMetadata(bucket: bucket, key: key, directive: .replaceNew, options: change)
        info = try await client.headObject(bucket: bucket, key: key)
        #expect(info.metadata == ["color": "blue é", "size": "large"])
        #expect(info.contentLength == 450_000)

        // ACL: public-read from the initiate, then private.
        #expect(try await client.objectACL(bucket: bucket, key: key).grants.contains { $0.grantee == .everyone && $0.permission == .read })
        try await client.setObjectACL(bucket: bucket, key: key, canned: .private)
        let privatePolicy = try await client.objectACL(bucket: bucket, key: key)
        #expect(privatePolicy.grants.allSatisfy { $0.grantee != .everyone })
        // Explicit grants: the owner keeps full control, another account may read the ACL.
        let granted = AccessControlPolicy(owner: privatePolicy.owner, grants: [
            .init(grantee: .user(id: privatePolicy.owner.id), permission: .fullControl),
            .init(grantee: .user(id: "0123456789abcdef0123456789abcdef"), permission: .readACP),
        ])
        try await client.setObjectACL(bucket: bucket, key: key, policy: granted)
        let readBack = try await client.objectACL(bucket: bucket, key: key)
        #expect(readBack.grants.map(\.grantee) == granted.grants.map(\.grantee))
        #expect(readBack.grants.map(\.permission) == [.fullControl, .readACP])

        // Append: positions must follow the object's length.
        let appendKey = ObjectKey("dir/log.txt")
        let first = MemoryRegion(owner: AlignedMemory(copying: Array("first line\n".utf8)))
        let second = MemoryRegion(owner: AlignedMemory(copying: Array("second line\n".utf8)))
        #expect(try await client.appendObject(bucket: bucket, key: appendKey, position: 0, body: first).nextPosition == 11)
        #expect(try await client.appendObject(bucket: bucket, key: appendKey, position: 11, body: second).nextPosition == 23)
        do {
            _ = try await client.appendObject(bucket: bucket, key: appendKey, position: 5, body: second)
            Issue.record("append at a wrong position must fail")
        } catch {
            #expect(error.serviceCode == .positionNotEqualToLength)
        }
        #expect(try await client.getObjectBytes(bucket: bucket, key: appendKey).bytes == Array("first line\nsecond line\n".utf8))

        // SSE-C: readable with the key only.
        let customerKey = CustomerKey(key: SecretBytes(Self.randomBytes(32)))
        var encrypted = ObjectOptions()
        encrypted.encryption = .customer(customerKey)
        let secretKey = ObjectKey("dir/secret.bin")
        _ = try await client.putObject(bucket: bucket, key: secretKey, bytes: Array("classified".utf8), options: encrypted)
        #expect(try await client.getObjectBytes(bucket: bucket, key: secretKey, customerKey: customerKey).bytes == Array("classified".utf8))
        await #expect(throws: OBSClientError.self) { _ = try await client.getObjectBytes(bucket: bucket, key: secretKey) }

        // Listing with a delimiter, copy, delete.
        let top = try await client.listObjects(bucket: bucket, delimiter: "/")
        #expect(top.commonPrefixes == ["dir/"])
        _ = try await client.copyObject(from: bucket, key, to: bucket, ObjectKey("copy"))
        let all = try await client.allObjects(bucket: bucket, pageSize: 2).collect()
        #expect(all.flatMap(\.contents).map(\.key) == [ObjectKey("copy"), key, appendKey, secretKey])
        for stored in [key, appendKey, secretKey, ObjectKey("copy")] { try await client.deleteObject(bucket: bucket, key: stored) }
        #expect(try await client.listObjects(bucket: bucket).contents.isEmpty)

        // Buckets.
        let other = BucketName("other-\(dialect)")
        try await client.createBucket(other)
        #expect(try await client.bucketExists(other))
        try await client.deleteBucket(other)
        #expect(try await client.bucketExists(other) == false)
    }

    @Test func slowDownAndCutConnectionsAreRetriedAccessDeniedIsNot() async throws {
        let local = try LocalServer()
        defer { local.stop() }
        let client = try local.client(.obs, retry: RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(5)))
        try await local.inject("""
            [{"operation": "UploadPart", "nth": 1, "times": 2, "action": "error", "code": "SlowDown"},
             {"operation": "UploadPart", "nth": 3, "times": 1, "action": "cut", "afterBytes": 65536},
             {"operation": "DeleteObject", "action": "error", "code": "AccessDenied"}]
            """)
        let key = ObjectKey("faulty.bin")
        let body = MemoryRegion(owner: AlignedMemory(copying: Self.randomBytes(300_000)))
        let uploadID = try await client.initiateMultipartUpload(bucket: local.bucket, key: key)
        let etag = try await client.uploadPart(bucket: local.bucket, key: key, uploadID: uploadID, partNumber: .first,
                                               body: body, integrity: .md5(Hash.md5(body.bytes))).etag
        #expect(etag == ETag(md5: Hash.md5(body.bytes)))
        _ = try await client.completeMultipartUpload(bucket: local.bucket, key: key, uploadID: uploadID, parts: [(.first, etag)])
        do {
            try await client.deleteObject(bucket: local.bucket, key: key)
            Issue.record("the injected AccessDenied must reach the caller")
        } catch {
            #expect(error.serviceCode == .accessDenied)
            #expect(error.requestID != nil)
        }
        // Two SlowDowns and one cut connection retried; AccessDenied answered once, not retried.
        #expect(try await local.ruleCounters().map(\.fired) == [2, 1, 1])
        #expect(try await client.headObject(bucket: local.bucket, key: key).contentLength == 300_000)
    }

    @Test func aSlowReplyTimesOutAndIsRetried() async throws {
        let local = try LocalServer()
        defer { local.stop() }
        try await local.inject("""
            [{"operation": "HeadBucket", "nth": 1, "times": 1, "action": "delay", "delayMs": 1500}]
            """)
        let patient = try local.client(.v4, operationTimeout: .milliseconds(400))
        #expect(try await patient.bucketExists(local.bucket))
        // Two HEADs reached the server: the delayed one was given up and sent again.
        let counters = try await local.ruleCounters()
        #expect(counters.map(\.matched) == [2])
        #expect(counters.map(\.fired) == [1])

        try await local.inject("""
            [{"operation": "HeadBucket", "nth": 1, "times": 1, "action": "delay", "delayMs": 1500}]
            """)
        let impatient = try local.client(.v4, retry: .none, operationTimeout: .milliseconds(400))
        do {
            _ = try await impatient.bucketExists(local.bucket)
            Issue.record("a reply slower than the operation timeout must fail without retries")
        } catch {
            guard case .transport(let transport) = error else { Issue.record("unexpected \(error)"); return }
            #expect(transport.isTimeout)
        }
    }

    @Test("virtual-host addressing", arguments: Dialect.allCases)
    func virtualHostAddressing(dialect: Dialect) async throws {
        let local = try LocalServer()
        defer { local.stop() }
        let client = try local.virtualHostClient(dialect)
        let bucket = local.bucket
        let key = ObjectKey("vh/a b+é.bin")
        let data = Self.randomBytes(150_000)
        let body = MemoryRegion(owner: AlignedMemory(copying: data))
        let uploadID = try await client.initiateMultipartUpload(bucket: bucket, key: key)
        #expect(try await client.allMultipartUploads(bucket: bucket).collect().flatMap(\.uploads).map(\.uploadID) == [uploadID])
        let etag = try await client.uploadPart(bucket: bucket, key: key, uploadID: uploadID, partNumber: .first, body: body, integrity: .md5(Hash.md5(data))).etag
        _ = try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: uploadID, parts: [(.first, etag)])
        #expect(try await client.listObjects(bucket: bucket, prefix: "vh/").contents.map(\.key) == [key])
        #expect(try await client.getObjectBytes(bucket: bucket, key: key, range: 1000 ... 1999).bytes == Array(data[1000 ... 1999]))
        try await client.deleteObject(bucket: bucket, key: key)
        #expect(try await client.bucketExists(bucket))
        #expect(try await client.listObjects(bucket: bucket).contents.isEmpty)
    }
}
