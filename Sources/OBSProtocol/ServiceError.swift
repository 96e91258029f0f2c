// The error a service returns (`<Error>` document plus status and request-ID headers).

/// An error answered by the object store. Carries everything a log line needs.
public struct ServiceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var code: ObsErrorCode
    public var message: String
    public var requestID: String?
    public var hostID: String?
    public var resource: String?

    public init(status: Int, code: ObsErrorCode, message: String, requestID: String? = nil, hostID: String? = nil, resource: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.requestID = requestID
        self.hostID = hostID
        self.resource = resource
    }

    /// `HTTP 404 NoSuchUpload: The specified upload does not exist. (request-id R, resource /b/k)`
    public var description: String {
        var text = "HTTP \(status) \(code): \(message)"
        var details: [String] = []
        if let requestID { details.append("request-id \(requestID)") }
        if let hostID { details.append("host-id \(hostID)") }
        if let resource { details.append("resource \(resource)") }
        if !details.isEmpty { text += " (" + details.joined(separator: ", ") + ")" }
        return text
    }

    /// 5xx, `SlowDown`, 408 and 429 are worth retrying; other 4xx never are.
    public var isRetryable: Bool { status >= 500 || status == 408 || status == 429 || code == .slowDown }
}
