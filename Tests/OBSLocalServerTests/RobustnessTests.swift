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
        let huge = "GET /bkt/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: \(String(repeating: "a", count: 90_000))\r\n\r\n"
        let oversized = try client.exchange(Array(huge.utf8))
        #expect(oversized.status == 400 && oversized.errorCode == "RequestHeaderSectionTooLarge" && oversized.element("RequestId") != nil)
        // Garbage request line.
        let garbage = try client.exchange(Array("\u{1}\u{2} nonsense\r\n\r\n".utf8))
        #expect(garbage.status == 400 && garbage.errorCode == "InvalidRequest")
        // A body shorter than its Content-Length, then the client goes away.
        let fd = try client.connect()
        var wire = WireRequest(method: "PUT", path: "/bkt/short", headers: ["Content-Length": "100000"])
        try client.writeAll(fd, client.signedHead(&wire, closing: false) + randomBytes(1000))
        close(fd)
        Thread.sleep(forTimeInterval: 0.2)
        #expect(try client.send("GET", "/bkt/short").errorCode == "NoSuchKey")
        // Malformed percent-escapes, unknown upload, query garbage.
        #expect(try client.exchange(Array("GET /bkt/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)).status == 400)
        #expect(try client.send("GET", "/bkt/k", query: "uploadId=..%2F..%2Fetc").errorCode == "NoSuchUpload")
        #expect(try client.send("GET", "/bkt/k", query: "uploadId=U&max-parts=abc").status == 400)
        // Absurd dates (Int64 overflow in calendar arithmetic) and a hostile fault rule.
        for date in ["Sat, 21 Nov 99999999999999 10:21:04 GMT", "Sat, 99 Nov 2026 10:21:04 GMT"] {
            let head = "GET /bkt/x HTTP/1.1\r\nHost: x\r\nDate: \(date)\r\nAuthorization: OBS test-ak:c2ln\r\nConnection: close\r\n\r\n"
            #expect(try client.exchange(Array(head.utf8)).status == 403)
        }
        let v4Date = "GET /bkt/x HTTP/1.1\r\nHost: x\r\nx-amz-date: 99999999T999999Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test-ak/99999999/r/s3/aws4_request,SignedHeaders=host,Signature=00\r\nConnection: close\r\n\r\n"
        #expect(try client.exchange(Array(v4Date.utf8)).status == 403)
        #expect(try client.admin("POST", #"{"action":"refuse","seconds":1e300}"#).status == 200)
        #expect(try client.admin("DELETE").status == 204)
        #expect(try client.admin("POST", #"{"operation":"HeadBucket","action":"delay","delayMs":9223372036854775807,"nth":-5,"times":-1}"#).status == 200)
        #expect(try client.admin("POST", "{not json").status == 400)
        #expect(try client.admin("DELETE").status == 204)
        // Still serving.
        #expect(try client.send("PUT", "/bkt/alive", body: [1]).status == 200)
    }

    @Test func missingContentLengthIsRefused() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        var wire = WireRequest(method: "PUT", path: "/bkt/chunked", headers: ["Transfer-Encoding": "chunked"])
        let reply = try client.exchange(client.signedHead(&wire) + Array("3\r\nabc\r\n0\r\n\r\n".utf8))
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
        var wire = WireRequest(method: "PUT", path: "/bkt/forged", headers: ["Content-Length": "3"])
        let forged = try client.exchange(client.signedHead(&wire, payloadHash: Hash.sha256(Array("abc".utf8)).hexString) + Array("xyz".utf8))
        #expect(forged.status == 400 && forged.errorCode == "XAmzContentSHA256Mismatch")
        for dialect in [Dialect.obs, .v4] {
            let virtual = try server.client(dialect: dialect).send("GET", "/signed", host: "bkt.localhost:\(server.port)")
            #expect(virtual.status == 200 && virtual.body.count == 1000)
        }
        let probe = try client.exchange(Array("HEAD /?apiversion HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8), isHead: true)
        #expect(probe.status == 200 && probe.headers["x-obs-api"] == "3.0")
    }
}

@Suite struct RequestLogTests {
    @Test func everyRequestIsAJSONLineWithoutSecrets() throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/requests.jsonl"
        let server = try TestServer(memory: true, requestLog: path)
        defer { server.stop() }
        let client = server.client()
        #expect(try client.send("PUT", "/bkt/logged%20key", body: randomBytes(1234)).status == 200)
        let id = try client.initiate("mp")
        #expect(try client.uploadPart("mp", id, 7, [1, 2, 3]).status == 200)
        #expect(try client.send("GET", "/bkt/missing").status == 404)
        #expect(try client.send("POST", "/bkt/mp", query: "uploads&encoding-type=url").status == 200)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(lines.count == 5)
        #expect(lines[0]["operation"] as? String == "PutObject" && lines[0]["key"] as? String == "logged key")
        #expect(lines[0]["bytesIn"] as? Int == 1234 && lines[0]["status"] as? Int == 200 && lines[0]["durationMs"] is Double)
        #expect(lines[2]["operation"] as? String == "UploadPart" && lines[2]["uploadId"] as? String == id && lines[2]["partNumber"] as? Int == 7)
        #expect(lines[3]["status"] as? Int == 404 && lines[3]["code"] as? String == "NoSuchKey" && (lines[3]["bytesOut"] as? Int ?? 0) > 0)
        #expect(lines[1]["encodingType"] == nil && lines[4]["encodingType"] as? String == "url")
        #expect(!text.contains(testCredentials.accessKey) && !text.contains("Authorization"))
    }
}
