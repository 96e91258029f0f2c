import Foundation
import OBSHashing
import OBSProtocol
import Testing

/// One captured request of `../shared/vectors/*.jsonl`.
struct SignatureVector: Decodable, CustomTestStringConvertible {
    let label: String
    let method: String
    let path: String
    let headers: [String: String]
    let string_to_sign: String
    let authorization: String
    var testDescription: String { label }

    /// Locates `shared/vectors` beside the package root.
    static func load(_ file: String) throws -> [SignatureVector] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let url = root.deletingLastPathComponent().appendingPathComponent("shared/vectors/\(file)")
        let text = try String(contentsOf: url, encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(SignatureVector.self, from: Data($0.utf8)) }
    }

    /// Headers in the order the JSON object lists them do not matter for signing; the request is
    /// rebuilt without the Authorization header the SDK sent.
    var unsignedRequest: WireRequest {
        var fields = HeaderFields()
        for (name, value) in headers where name != "Authorization" { fields.add(name: name, value: value) }
        return WireRequest(method: method, target: path, headers: fields)!
    }

    var signedRequest: WireRequest {
        var request = unsignedRequest
        request.headers["Authorization"] = authorization
        return request
    }

    var date: Timestamp { Timestamp(rfc1123: headers["Date"]!)! }
}

let vectorCredentials = Credentials(accessKey: "testak", secretKey: "testsk")

@Suite("Signature vectors from the official SDK")
struct SignatureVectorTests {
    @Test("OBS string to sign and Authorization", arguments: try SignatureVector.load("obs-signature.jsonl"))
    func obsVector(_ vector: SignatureVector) throws {
        let text = Canonical.stringToSign(for: vector.unsignedRequest, dialect: .obs, virtualHostBucket: nil)
        #expect(text == vector.string_to_sign)
        var request = vector.unsignedRequest
        RequestSigner(dialect: .obs, credentials: vectorCredentials, region: "r").sign(&request, at: vector.date)
        #expect(request.headers["Authorization"] == vector.authorization)
        #expect(request.headers["Date"] == vector.headers["Date"])
    }

    @Test("V2 string to sign and Authorization", arguments: try SignatureVector.load("v2-signature.jsonl"))
    func v2Vector(_ vector: SignatureVector) throws {
        let text = Canonical.stringToSign(for: vector.unsignedRequest, dialect: .v2, virtualHostBucket: nil)
        #expect(text == vector.string_to_sign)
        var request = vector.unsignedRequest
        RequestSigner(dialect: .v2, credentials: vectorCredentials, region: "r").sign(&request, at: vector.date)
        #expect(request.headers["Authorization"] == vector.authorization)
    }

    @Test("the verifier accepts every vector at its Date",
          arguments: try SignatureVector.load("obs-signature.jsonl") + SignatureVector.load("v2-signature.jsonl"))
    func verifierAccepts(_ vector: SignatureVector) throws {
        let verifier = SignatureVerifier(secrets: ["testak": SecretBytes("testsk")])
        let identity = try verifier.verify(vector.signedRequest, virtualHostBucket: nil, now: vector.date.adding(seconds: 60))
        #expect(identity.accessKey == "testak")
        #expect(identity.dialect == (vector.authorization.hasPrefix("OBS ") ? .obs : .v2))
    }

    @Test("the verifier refuses a changed header, an unknown key and a skewed clock")
    func verifierRefuses() throws {
        let vector = try SignatureVector.load("obs-signature.jsonl")[0]
        let verifier = SignatureVerifier(secrets: ["testak": SecretBytes("testsk")])
        var tampered = vector.signedRequest
        tampered.headers["x-obs-acl"] = "public-read"
        #expect(throws: SignatureFailure.self) { try verifier.verify(tampered, virtualHostBucket: nil, now: vector.date) }
        do throws(SignatureFailure) {
            _ = try verifier.verify(tampered, virtualHostBucket: nil, now: vector.date)
        } catch {
            #expect(error.code == .signatureDoesNotMatch)
        }
        do throws(SignatureFailure) {
            _ = try SignatureVerifier(secrets: [:]).verify(vector.signedRequest, virtualHostBucket: nil, now: vector.date)
            Issue.record("unknown key accepted")
        } catch {
            #expect(error.code == .invalidAccessKeyId)
        }
        do throws(SignatureFailure) {
            _ = try verifier.verify(vector.signedRequest, virtualHostBucket: nil, now: vector.date.adding(seconds: 16 * 60))
            Issue.record("skewed clock accepted")
        } catch {
            #expect(error.code == .requestTimeTooSkewed)
        }
    }
}
