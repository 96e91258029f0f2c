// Credentials renewed after a refusal (OBSClientConfiguration.renewedCredentials): the mount's
// passwd_file= rewritten after a key rotation, or with fresh temporary credentials.
import CurlTransport
import OBSClient
import OBSProtocol
import Synchronization
import Testing

@Suite("Renewed credentials")
struct RenewedCredentialsTests {
    let bucket = BucketName("bkt")
    let key = ObjectKey("k")

    /// A client whose renewal hands out `renewals` in turn (then nil), counting the questions.
    func client(_ answers: [ScriptedTransport.Answer], renewals: [Credentials], dialect: Dialect = .v4)
        -> (OBSClient, ScriptedTransport, asked: @Sendable () -> Int) {
        let transport = ScriptedTransport(answers)
        let pending = Mutex((renewals, 0))
        var configuration = OBSClientConfiguration.scripted(dialect: dialect)
        configuration.renewedCredentials = {
            pending.withLock { state in
                state.1 += 1
                return state.0.isEmpty ? nil : state.0.removeFirst()
            }
        }
        return (OBSClient(configuration: configuration, transport: transport), transport, { pending.withLock { $0.1 } })
    }

    func accessKey(of request: HTTPRequest) -> String? {
        let authorization = request.headers["Authorization"] ?? ""
        for candidate in ["AKTEST", "AKNEW", "AKNEWER"] where authorization.contains("Credential=\(candidate)/") || authorization.contains(" \(candidate):") {
            return candidate
        }
        return nil
    }

    @Test(arguments: [Dialect.v4, .obs])
    func aRefusedRequestIsSentAgainWithRenewedCredentialsWhichStay(dialect: Dialect) async throws {
        let renewed = Credentials(accessKey: "AKNEW", secretKey: "SKNEW", securityToken: "TOKEN2")
        let (client, transport, asked) = client([Reply.error(403, "InvalidAccessKeyId"), Reply.status(204), Reply.status(204)],
                                                renewals: [renewed], dialect: dialect)
        try await client.deleteObject(bucket: bucket, key: key)
        try await client.deleteObject(bucket: bucket, key: key)
        #expect(transport.requests.map(accessKey) == ["AKTEST", "AKNEW", "AKNEW"])
        #expect(transport.requests[1].headers[dialect.securityTokenHeader] == "TOKEN2")
        #expect(asked() == 1)
    }

    @Test func aRefusalWithoutNewCredentialsIsTheAnswer() async throws {
        let (client, transport, asked) = client([Reply.error(403, "AccessDenied")], renewals: [])
        await #expect(throws: OBSClientError.self) { try await client.deleteObject(bucket: bucket, key: key) }
        #expect(transport.requests.count == 1)
        #expect(asked() == 1)
    }

    @Test func credentialsAreRenewedOncePerRequest() async throws {
        let (client, transport, asked) = client([Reply.error(403, "SignatureDoesNotMatch"), Reply.error(403, "SignatureDoesNotMatch")],
                                                renewals: [Credentials(accessKey: "AKNEW", secretKey: "S1"), Credentials(accessKey: "AKNEWER", secretKey: "S2")])
        await #expect(throws: OBSClientError.self) { try await client.deleteObject(bucket: bucket, key: key) }
        #expect(transport.requests.map(accessKey) == ["AKTEST", "AKNEW"])
        #expect(asked() == 1)
    }

    @Test func otherFailuresDoNotAskForCredentials() async throws {
        let (client, _, asked) = client([Reply.error(404, "NoSuchKey")], renewals: [Credentials(accessKey: "AKNEW", secretKey: "S1")])
        await #expect(throws: OBSClientError.self) { _ = try await client.headObject(bucket: bucket, key: key) }
        #expect(asked() == 0)
    }
}
