// The one error type of the client: the service's answer, a transport failure, or a reply the
// client could not make sense of.
import CurlTransport
import OBSProtocol

/// Why an `OBSClient` operation failed.
public enum OBSClientError: Error, Sendable, CustomStringConvertible {
    /// The service answered with an error (status, code, message, request ID, host ID, resource).
    case service(ServiceError)
    /// No complete HTTP response: connection refused/reset, timeout, cancellation (curl code and text).
    case transport(TransportError)
    /// A 2xx reply whose body or headers are not what the operation returns (truncated or
    /// malformed XML, a missing ETag…).
    case malformedResponse(operation: String, detail: String, requestID: String?)
    /// A part or object arrived with an ETag other than the MD5 the client sent.
    case etagMismatch(expected: ETag, received: ETag, requestID: String?)
    /// The service answered a checksum other than the one the client sent.
    case checksumMismatch(sent: Checksum, received: String, requestID: String?)
    /// The call's arguments cannot be sent (no request was made).
    case invalidArgument(String)

    /// One line for logs and error messages, with the request ID when there is one.
    public var description: String {
        switch self {
        case .service(let error): error.description
        case .transport(let error): error.description
        case .malformedResponse(let operation, let detail, let requestID):
            "malformed \(operation) response: \(detail)" + (requestID.map { " (request-id \($0))" } ?? "")
        case .etagMismatch(let expected, let received, let requestID):
            "ETag mismatch: sent MD5 \(expected), server answered \(received)" + (requestID.map { " (request-id \($0))" } ?? "")
        case .checksumMismatch(let sent, let received, let requestID):
            "checksum mismatch: sent \(sent), server answered \(received)" + (requestID.map { " (request-id \($0))" } ?? "")
        case .invalidArgument(let detail): "invalid argument: \(detail)"
        }
    }

    /// The service error code, when the service answered with one.
    public var serviceCode: ObsErrorCode? {
        if case .service(let error) = self { return error.code }
        return nil
    }

    /// The request ID of the failed exchange, when there was one.
    public var requestID: String? {
        switch self {
        case .service(let error): error.requestID
        case .malformedResponse(_, _, let id), .etagMismatch(_, _, let id), .checksumMismatch(_, _, let id): id
        case .transport, .invalidArgument: nil
        }
    }
}
