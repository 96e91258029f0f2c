import Foundation
import OBSHashing
import OBSProtocol
import Testing

/// One request signed by botocore (`scripts/gen-v4-vectors.py`).
struct BotocoreVector: Decodable, CustomTestStringConvertible {
    let label: String
    let method: String
    let path: String
    let query: String
    let headers: [String: String]
    let body: String
    let body_sha256: String
    let token: String?
    let date_only: Bool
    let canonical_request: String
    let authorization: String
    var testDescription: String { label }

    static let accessKey = "AKIDEXAMPLE"
    static let secretKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    static let region = "cn-north-4"
    static let date = Timestamp(iso8601: "2026-11-21T10:21:04Z")!

    /// `Fixtures/v4-botocore.jsonl` beside this file.
    static func load() throws -> [BotocoreVector] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/v4-botocore.jsonl")
        let text = try String(contentsOf: url, encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(BotocoreVector.self, from: Data($0.utf8)) }
    }

    static let all = (try? load()) ?? []

    /// The request as sent, Authorization included.
    var sentRequest: WireRequest {
        var fields = HeaderFields()
        for (name, value) in headers { fields.add(name: name, value: value) }
        fields.add(name: "Authorization", value: authorization)
        return WireRequest(method: method, target: query.isEmpty ? path : path + "?" + query, headers: fields)!
    }

    /// The request before signing: without the headers the signer adds.
    var unsignedRequest: WireRequest {
        var request = sentRequest
        for name in ["Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "X-Amz-Security-Token"] { request.headers[name] = nil }
        return request
    }

    var payloadHash: String { headers["X-Amz-Content-SHA256"]! }

    var credentials: Credentials { Credentials(accessKey: Self.accessKey, secretKey: Self.secretKey, securityToken: token) }

    /// `SignedHeaders=` of botocore's Authorization.
    var signedHeaders: [String] {
        let field = authorization.split(separator: " ").first { $0.hasPrefix("SignedHeaders=") }!
        return field.dropFirst("SignedHeaders=".count).trimmingCharacters(in: [","]).split(separator: ";").map(String.init)
    }

    var signature: String { String(authorization.split(separator: "Signature=").last!) }
}

@Suite("V4 signatures against botocore")
struct V4BotocoreTests {
    @Test("the fixture holds the requests it should")
    func fixtureShape() {
        #expect(BotocoreVector.all.count >= 15)
        #expect(BotocoreVector.all.filter(\.date_only).count >= 3)
        #expect(BotocoreVector.all.contains { $0.token != nil && !$0.date_only })
        #expect(BotocoreVector.all.contains { $0.payloadHash == RequestSigner.unsignedPayload && !$0.date_only })
    }

    @Test("RequestSigner produces botocore's Authorization and canonical request",
          arguments: BotocoreVector.all.filter { !$0.date_only })
    func signerMatches(_ vector: BotocoreVector) throws {
        #expect(Hash.sha256(Array(vector.body.utf8)).hexString == vector.body_sha256)
        var request = vector.unsignedRequest
        let hash = vector.payloadHash == RequestSigner.unsignedPayload ? nil : vector.body_sha256
        RequestSigner(dialect: .v4, credentials: vector.credentials, region: BotocoreVector.region)
            .sign(&request, at: BotocoreVector.date, payloadHash: hash)
        #expect(request.headers["Authorization"] == vector.authorization)
        #expect(request.headers["x-amz-date"] == vector.headers["X-Amz-Date"])
        #expect(request.headers["x-amz-content-sha256"] == vector.payloadHash)
        #expect(request.headers["x-amz-security-token"] == vector.token)
        request.headers["Authorization"] = nil
        #expect(Canonical.v4CanonicalRequest(for: request, signedHeaders: vector.signedHeaders, payloadHash: vector.payloadHash) == vector.canonical_request)
    }

    @Test("Date-only V4 (as the OBS SDK signs): canonical request and signature match botocore",
          arguments: BotocoreVector.all.filter(\.date_only))
    func dateOnlyMatches(_ vector: BotocoreVector) throws {
        #expect(vector.headers["X-Amz-Date"] == nil && vector.headers["Date"] != nil)
        var request = vector.sentRequest
        request.headers["Authorization"] = nil
        let canonical = Canonical.v4CanonicalRequest(for: request, signedHeaders: vector.signedHeaders, payloadHash: vector.payloadHash)
        #expect(canonical == vector.canonical_request)
        let scope = Canonical.v4Scope(date: BotocoreVector.date, region: BotocoreVector.region)
        let text = Canonical.v4StringToSign(canonicalRequest: canonical, date: BotocoreVector.date, scope: scope)
        let signature = Canonical.v4Signature(secret: SecretBytes(BotocoreVector.secretKey), dateStamp: BotocoreVector.date.yyyymmdd,
                                              region: BotocoreVector.region, stringToSign: text)
        #expect(signature == vector.signature)
    }

    @Test("A V4 signer used across days signs each day as a new signer would (its cached signing key follows the day)")
    func signingKeyFollowsTheDay() {
        let credentials = Credentials(accessKey: BotocoreVector.accessKey, secretKey: BotocoreVector.secretKey)
        let signer = RequestSigner(dialect: .v4, credentials: credentials, region: BotocoreVector.region)
        var signatures: [String] = []
        for day in [0, 0, 1, 0, 2] {
            let date = BotocoreVector.date.adding(seconds: Int64(day) * 86_400)
            var reused = WireRequest(method: "GET", path: "/bucket/key", headers: ["Host": "example.com"])
            var fresh = reused
            signer.sign(&reused, at: date)
            RequestSigner(dialect: .v4, credentials: credentials, region: BotocoreVector.region).sign(&fresh, at: date)
            #expect(reused.headers["Authorization"] == fresh.headers["Authorization"], "day \(day)")
            signatures.append(reused.headers["Authorization"] ?? "")
        }
        #expect(Set(signatures).count == 3)
    }

    @Test("SignatureVerifier accepts every botocore request", arguments: BotocoreVector.all)
    func verifierAccepts(_ vector: BotocoreVector) throws {
        let verifier = SignatureVerifier(secrets: [BotocoreVector.accessKey: SecretBytes(BotocoreVector.secretKey)])
        let identity = try verifier.verify(vector.sentRequest, virtualHostBucket: nil, now: BotocoreVector.date.adding(seconds: 300))
        #expect(identity.accessKey == BotocoreVector.accessKey)
        #expect(identity.dialect == .v4)
    }

    @Test("SignatureVerifier refuses a botocore request with a changed signed header, query or token",
          arguments: BotocoreVector.all.filter { $0.label == "date only get" || $0.label == "security token" || $0.label == "list objects unicode marker" })
    func verifierRefusesTampering(_ vector: BotocoreVector) throws {
        let verifier = SignatureVerifier(secrets: [BotocoreVector.accessKey: SecretBytes(BotocoreVector.secretKey)])
        var tampered = [vector.sentRequest, vector.sentRequest, vector.sentRequest]
        tampered[0].headers["Host"] = "127.0.0.1:9001"
        tampered[1].query.append(QueryItem("extra", "1"))
        tampered[2].path += "x"
        for request in tampered {
            do throws(SignatureFailure) {
                _ = try verifier.verify(request, virtualHostBucket: nil, now: BotocoreVector.date)
                Issue.record("tampered request accepted")
            } catch {
                #expect(error.code == .signatureDoesNotMatch)
            }
        }
    }
}
