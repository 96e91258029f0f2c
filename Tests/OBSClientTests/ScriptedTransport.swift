// A fake transport that answers from a script and records what it was asked.
import CurlTransport
import OBSClient
import OBSProtocol
import Synchronization

final class ScriptedTransport: HTTPTransport {
    typealias Answer = @Sendable (HTTPRequest) -> Result<HTTPResponse, TransportError>

    /// The answers still to give, in order, and the requests received; guarded because the
    /// client may call from several tasks.
    private let state: Mutex<(answers: [Answer], requests: [HTTPRequest])>

    init(_ answers: [Answer]) { state = Mutex((answers, [])) }

    var requests: [HTTPRequest] { state.withLock { $0.requests } }

    func perform(_ request: HTTPRequest) async throws(TransportError) -> HTTPResponse {
        let answer = state.withLock { state in
            state.requests.append(request)
            return state.answers.isEmpty ? nil : state.answers.removeFirst()
        }
        guard let answer else { throw TransportError(kind: .unavailable, message: "script exhausted", url: request.url) }
        return try answer(request).get()
    }
}

/// Canned answers.
enum Reply {
    static func status(_ status: Int, _ body: String = "", headers: HeaderFields = HeaderFields()) -> ScriptedTransport.Answer {
        { _ in .success(HTTPResponse(status: status, headers: headers, body: Array(body.utf8))) }
    }

    static func error(_ status: Int, _ code: String, requestID: String = "REQ1") -> ScriptedTransport.Answer {
        var headers = HeaderFields()
        headers["x-amz-request-id"] = requestID
        headers["x-obs-request-id"] = requestID
        return Reply.status(status, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>\(code)</Code><Message>\(code) message</Message><Resource>/b/k</Resource><HostId>H</HostId></Error>", headers: headers)
    }

    static func headers(_ status: Int, _ fields: [(String, String)]) -> ScriptedTransport.Answer {
        Self.status(status, headers: HeaderFields(fields.map { (name: $0.0, value: $0.1) }))
    }

    static func transportFailure(code: Int, _ message: String = "failure") -> ScriptedTransport.Answer {
        { request in .failure(TransportError(kind: .curl(code: code), message: message, url: request.url)) }
    }

    static let timeout = transportFailure(code: 28, "Operation timed out")
}

extension OBSClientConfiguration {
    /// A configuration for scripted tests: path-style on a local endpoint, quick retries.
    static func scripted(dialect: Dialect = .v4, addressing: Addressing = .pathStyle, maxAttempts: Int = 4,
                         endpoint: String = "http://127.0.0.1:9000", token: String? = nil) -> OBSClientConfiguration {
        OBSClientConfiguration(endpoint: Endpoint(endpoint)!, addressing: addressing, region: "cn-north-4", dialect: dialect,
                               credentials: Credentials(accessKey: "AKTEST", secretKey: "SKTEST", securityToken: token),
                               retry: RetryPolicy(maxAttempts: maxAttempts, baseDelay: .milliseconds(1), maxDelay: .milliseconds(4)))
    }
}
