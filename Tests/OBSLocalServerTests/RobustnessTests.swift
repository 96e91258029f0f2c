// Fault injection, hostile input and signature checks.
import Foundation
import OBSHashing
import OBSProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension TestClient {
    func admin(_ method: String, _ json: String = "") throws -> TestResponse {
        let body = Array(json.utf8)
        let head = "\(method) /_obs-local/faults HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        return try exchange(Array(head.utf8) + body)
    }
}

@Suite struct FaultInjectionTests {
    @Test func nthMatchingRequestFailsKTimesThenRulesClear() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        let added = try client.admin("POST", #"{"operation":"PutObject","key":"f/*.bin","nth":2,"times":2,"action":"error","status":503,"code":"SlowDown"}"#)
        #expect(added.status == 200 && added.text.contains("ids"))
        let statuses = try (1...4).map { try client.send("PUT", "/bkt/f/\($0).bin", body: [1]).status }
        #expect(statuses == [200, 503, 503, 200])
        #expect(try client.send("PUT", "/bkt/other.txt", body: [1]).status == 200)
        let failing = try client.admin("POST", #"{"operation":"GetObject","action":"error","code":"InternalError","times":0}"#)
        #expect(failing.status == 200)
        let error = try client.send("GET", "/bkt/other.txt")
        #expect(error.status == 500 && error.errorCode == "InternalError" && error.element("RequestId") != nil)
        let listed = try client.admin("GET")
        #expect(listed.text.contains("\"fired\":2"))
        #expect(try client.admin("DELETE").status == 204)
        #expect(try client.send("GET", "/bkt/other.txt").status == 200)
    }

    @Test func delayCutAndRefuse() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        _ = try client.admin("POST", #"{"operation":"HeadBucket","action":"delay","delayMs":400}"#)
        let started = Date()
        #expect(try client.send("HEAD", "/bkt").status == 200)
        #expect(Date().timeIntervalSince(started) >= 0.4)

        _ = try client.admin("POST", #"{"operation":"UploadPart","action":"cut","afterBytes":65536}"#)
        let id = try client.initiate("cut")
        #expect(throws: (any Error).self) { _ = try client.uploadPart("cut", id, 1, randomBytes(1 << 20)) }
        // The next attempt succeeds and the cut body left no part behind.
        #expect(try client.send("GET", "/bkt/cut", query: "uploadId=\(id)").elements("PartNumber").isEmpty)
        #expect(try client.uploadPart("cut", id, 1, randomBytes(1 << 20)).status == 200)

        _ = try client.admin("POST", #"{"action":"refuse","seconds":1}"#)
        #expect(throws: (any Error).self) { _ = try client.send("HEAD", "/bkt") }
        Thread.sleep(forTimeInterval: 1.2)
        #expect(try client.send("HEAD", "/bkt").status == 200)
    }
}

@Suite struct HostileInputTests {
    @Test func traversalKeysStayInsideTheDataDirectory() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = server.client()
        let key = "../../../../../../tmp/obs-local-escape-\(getpid())"
        let put = try client.send("PUT", "/bkt/" + PercentEncoding.encodePath(key), body: Array("x".utf8))
        #expect(put.status == 200)
        #expect(access("/tmp/obs-local-escape-\(getpid())", F_OK) != 0)
        #expect(try client.send("GET", "/bkt/" + PercentEncoding.encodePath(key)).text == "x")
        let badBucket = try client.send("PUT", "/..", body: [])
        #expect(badBucket.status == 400 && badBucket.errorCode == "InvalidBucketName")
    }

    @Test func brokenRequestsGetErrorsAndTheServerLivesOn() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = server.client()
        // Oversized headers.
        let huge = "GET /bkt/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: \(String(repeating: "a", count: 200_000))\r\n\r\n"
        let oversized = try? client.exchange(Array(huge.utf8))
        #expect(oversized.map { $0.status >= 400 } ?? true)
        // Garbage request line.
        let garbage = try? client.exchange(Array("\u{1}\u{2} nonsense\r\n\r\n".utf8))
        #expect(garbage.map { $0.status == 400 } ?? true)
        // A body shorter than its Content-Length, then the client goes away.
        let fd = try client.connect()
        var wire = WireRequest(method: "PUT", path: "/bkt/short", headers: ["Host": "127.0.0.1:\(server.port)", "Content-Length": "100000"])
        RequestSigner(dialect: .obs, credentials: testCredentials, region: "r").sign(&wire, at: Timestamp.now())
        var head = "PUT /bkt/short HTTP/1.1\r\n"
        for field in wire.headers { head += "\(field.name): \(field.value)\r\n" }
        try client.writeAll(fd, Array((head + "\r\n").utf8) + randomBytes(1000))
        close(fd)
        Thread.sleep(forTimeInterval: 0.2)
        #expect(try client.send("GET", "/bkt/short").errorCode == "NoSuchKey")
        // Malformed percent-escapes, unknown upload, query garbage.
        #expect(try client.exchange(Array("GET /bkt/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)).status == 400)
        #expect(try client.send("GET", "/bkt/k", query: "uploadId=..%2F..%2Fetc").errorCode == "NoSuchUpload")
        #expect(try client.send("GET", "/bkt/k", query: "uploadId=U&max-parts=abc").status == 400)
        // Still serving.
        #expect(try client.send("PUT", "/bkt/alive", body: [1]).status == 200)
    }

    @Test func missingContentLengthIsRefused() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        var wire = WireRequest(method: "PUT", path: "/bkt/chunked", headers: ["Host": "127.0.0.1:\(server.port)", "Transfer-Encoding": "chunked"])
        RequestSigner(dialect: .obs, credentials: testCredentials, region: "r").sign(&wire, at: Timestamp.now())
        var head = "PUT /bkt/chunked HTTP/1.1\r\n"
        for field in wire.headers { head += "\(field.name): \(field.value)\r\n" }
        let reply = try client.exchange(Array((head + "Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n").utf8))
        #expect(reply.status == 411 && reply.errorCode == "MissingContentLength")
    }
}

@Suite struct SignatureTests {
    @Test func badSignatureUnknownKeyAndSkewedClock() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        var wrongSecret = server.client()
        wrongSecret.credentials = Credentials(accessKey: testCredentials.accessKey, secretKey: "wrong")
        let bad = try wrongSecret.send("GET", "/bkt")
        #expect(bad.status == 403 && bad.errorCode == "SignatureDoesNotMatch")
        var unknown = server.client(dialect: .v4)
        unknown.credentials = Credentials(accessKey: "nobody", secretKey: "x")
        let unknownReply = try unknown.send("GET", "/bkt")
        #expect(unknownReply.status == 403 && unknownReply.errorCode == "InvalidAccessKeyId")
        #expect(unknownReply.headers["x-amz-request-id"] != nil)
        let skewed = try server.client(dialect: .v2).send("GET", "/bkt", date: Timestamp.now().adding(seconds: -3600))
        #expect(skewed.status == 403 && skewed.errorCode == "RequestTimeTooSkewed")
    }

    @Test func v4SignedPayloadIsCheckedAndVirtualHostAddressingWorks() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client(dialect: .v4)
        #expect(try client.send("PUT", "/bkt/signed", body: randomBytes(1000), signedPayload: true).status == 200)
        // A payload whose hash does not match the signed one.
        var wire = WireRequest(method: "PUT", path: "/bkt/forged", headers: ["Host": "127.0.0.1:\(server.port)", "Content-Length": "3"])
        RequestSigner(dialect: .v4, credentials: testCredentials, region: "r").sign(&wire, at: Timestamp.now(), payloadHash: Hash.sha256(Array("abc".utf8)).hexString)
        var head = "PUT /bkt/forged HTTP/1.1\r\n"
        for field in wire.headers { head += "\(field.name): \(field.value)\r\n" }
        let forged = try client.exchange(Array((head + "Connection: close\r\n\r\nxyz").utf8))
        #expect(forged.status == 400 && forged.errorCode == "XAmzContentSHA256Mismatch")
        for dialect in [Dialect.obs, .v4] {
            let virtual = try server.client(dialect: dialect).send("GET", "/signed", host: "bkt.localhost:\(server.port)")
            #expect(virtual.status == 200 && virtual.body.count == 1000)
        }
        let probe = try client.exchange(Array("HEAD /?apiversion HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8), isHead: true)
        #expect(probe.status == 200 && probe.headers["x-obs-api"] == "3.0")
    }
}
