// The transport's value types: the request handed to a transport, the response it returns,
// its configuration and its error. Nothing here touches libcurl; `CurlEventLoop.swift` does.
import OBSProtocol

/// Where a request body comes from.
public enum RequestBody: Sendable {
    /// No body (GET, HEAD, DELETE, or a PUT/POST sent with `Content-Length: 0`).
    case none
    /// A small body owned by the request (XML documents).
    case bytes([UInt8])
    /// Caller-owned memory, read by the transfer in place; the owner stays alive until the
    /// transfer is done and must not change the bytes meanwhile.
    case memory(MemoryRegion)

    /// Length of the body in bytes.
    public var count: Int {
        switch self {
        case .none: 0
        case .bytes(let bytes): bytes.count
        case .memory(let region): region.count
        }
    }
}

/// Where a successful (2xx) response body goes. Error responses (non-2xx) are always collected
/// into `HTTPResponse.body` so their XML can be parsed.
public enum ResponseDestination: Sendable {
    /// Collected into `HTTPResponse.body`, failing with `.responseTooLarge` past `limit` bytes.
    case collect(limit: Int)
    /// Written straight into caller memory, failing with `.responseTooLarge` if the body does
    /// not fit; `HTTPResponse.bytesWritten` tells how much was written.
    case memory(MemoryRegion)

    /// Collects at most 16 MiB: enough for any XML document of the protocol.
    public static let smallDocument = ResponseDestination.collect(limit: 16 << 20)
}

/// One HTTP request for a transport.
public struct HTTPRequest: Sendable {
    /// `GET`, `HEAD`, `PUT`, `POST`, `DELETE`.
    public var method: String
    /// Absolute `http://` or `https://` URL, path and query already percent-encoded.
    public var url: String
    /// Header fields sent as given (signed already); `Expect:` is always suppressed.
    public var headers: HeaderFields
    /// The body, sent with an exact Content-Length.
    public var body: RequestBody
    /// Where a 2xx response body goes.
    public var destination: ResponseDestination
    /// Upper bound on the whole transfer, nil for none (the low-speed limit still applies).
    public var timeout: Duration?
    /// The server works before it answers (a server-side copy of gigabytes, the completion of
    /// thousands of parts), so no byte moves for a while: the low-speed limit allows
    /// `TransportConfiguration.serverWorkTime` instead of `lowSpeedTime`.
    public var awaitsServerWork = false

    /// Bulk data (a body from or into caller memory: part uploads, ranged reads) or control (HEAD,
    /// LIST, initiate, complete, abort: small or no bodies), which never waits behind data.
    public var lane: TransferLane {
        if case .memory = body { return .data }
        if case .memory = destination { return .data }
        return .control
    }

    /// A request; small XML responses are collected by default.
    public init(method: String, url: String, headers: HeaderFields = HeaderFields(), body: RequestBody = .none,
                destination: ResponseDestination = .smallDocument, timeout: Duration? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.destination = destination
        self.timeout = timeout
    }
}

/// A complete HTTP response.
public struct HTTPResponse: Sendable {
    /// Status code of the final response (never a 100 Continue).
    public var status: Int
    /// Header fields of the final response, in order.
    public var headers: HeaderFields
    /// The collected body: the whole body for `.collect`, and the body of a non-2xx response
    /// for `.memory` destinations.
    public var body: [UInt8]
    /// Bytes written into the `.memory` destination (0 for `.collect`).
    public var bytesWritten: Int

    /// A response (transports build them; tests fake them).
    public init(status: Int, headers: HeaderFields, body: [UInt8] = [], bytesWritten: Int = 0) {
        self.status = status
        self.headers = headers
        self.body = body
        self.bytesWritten = bytesWritten
    }

    /// A 2xx status.
    public var isSuccess: Bool { (200..<300).contains(status) }
}

/// A transfer that failed below HTTP: no complete response was received. Carries curl's code
/// and text and the URL, never header fields (they hold the Authorization).
public struct TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// libcurl failed with this `CURLcode`.
        case curl(code: Int)
        /// The calling task was cancelled; the transfer was aborted.
        case cancelled
        /// The response body was larger than the destination allowed.
        case responseTooLarge(limit: Int)
        /// The transport could not be set up or was shut down.
        case unavailable
    }

    /// What went wrong.
    public var kind: Kind
    /// curl's description of the failure (its error buffer, else `curl_easy_strerror`).
    public var message: String
    /// The request's URL (no header fields, so never credentials).
    public var url: String

    /// An error of `kind` for `url`.
    public init(kind: Kind, message: String, url: String) {
        self.kind = kind
        self.message = message
        self.url = url
    }

    /// `curl error 28: Operation timed out … (URL)`.
    public var description: String {
        switch kind {
        case .curl(let code): "curl error \(code): \(message) (\(url))"
        case .cancelled: "cancelled: \(url)"
        case .responseTooLarge(let limit): "response larger than \(limit) bytes: \(url)"
        case .unavailable: "transport unavailable: \(message) (\(url))"
        }
    }

    // CURLcode values (curl/curl.h), fixed by libcurl's ABI.
    static let couldNotResolveHost = 6, couldNotConnect = 7, partialFile = 18, operationTimedOut = 28,
               gotNothing = 52, sendError = 55, receiveError = 56, sendFailRewind = 65, http2 = 16, http2Stream = 92

    /// The operation timed out (connect timeout, low-speed limit or overall timeout).
    public var isTimeout: Bool { kind == .curl(code: Self.operationTimedOut) }

    /// A failure a retry may cure: connection refused/reset, nothing or part of a response
    /// received, timeouts. Cancellation and oversize bodies are final.
    public var isRetryable: Bool {
        guard case .curl(let code) = kind else { return false }
        return [Self.couldNotResolveHost, Self.couldNotConnect, Self.partialFile, Self.operationTimedOut,
                Self.gotNothing, Self.sendError, Self.receiveError, Self.sendFailRewind, Self.http2, Self.http2Stream].contains(code)
    }
}

/// The two lanes of a transport, each with its own event thread, connections and slots
/// (`TransportConfiguration`): control transfers never wait behind data.
public enum TransferLane: Sendable, Equatable {
    case data, control
}

/// Settings of one transport (an event thread and a connection pool per lane).
public struct TransportConfiguration: Sendable {
    /// Transfers of each lane in flight at once (data: less the reserved ones); further requests
    /// wait in a queue. Also the size of each lane's connection cache, so every in-flight transfer
    /// can keep its connection alive.
    public var maxConcurrentTransfers: Int
    /// Longest wait for a TCP (and TLS) connection.
    public var connectTimeout: Duration
    /// A transfer slower than `lowSpeedLimit` bytes/s for `lowSpeedTime` is aborted (this also
    /// catches a server that accepts and never answers).
    public var lowSpeedLimit: Int
    /// How long a transfer may stay under `lowSpeedLimit` (whole seconds).
    public var lowSpeedTime: Duration
    /// How long a request that awaits server work (`HTTPRequest.awaitsServerWork`) may stay
    /// under `lowSpeedLimit`.
    public var serverWorkTime: Duration = .seconds(120)
    /// Verify the server's TLS certificate and host name (on by default).
    public var verifyTLS: Bool
    /// PEM file of CA certificates to trust instead of the system's.
    public var caFile: String?
    /// The `User-Agent` header.
    public var userAgent: String
    /// Size of curl's upload buffer: larger means fewer read callbacks for part bodies.
    public var uploadBufferSize: Int
    /// Of `maxConcurrentTransfers`, slots data transfers never take (at least one stays for
    /// data). Control transfers (HEAD, LIST, complete) run on their own thread and connections,
    /// up to `maxConcurrentTransfers` of them, however many part uploads run or wait.
    public var reservedControlTransfers: Int

    /// Settings with defaults for an upload client: 16 transfers, 10 s connect, < 1 KiB/s for 30 s aborts.
    public init(maxConcurrentTransfers: Int = 16, connectTimeout: Duration = .seconds(10), lowSpeedLimit: Int = 1024,
                lowSpeedTime: Duration = .seconds(30), verifyTLS: Bool = true, caFile: String? = nil,
                userAgent: String = "obsmount/0.1", uploadBufferSize: Int = 512 * 1024, reservedControlTransfers: Int = 4) {
        self.maxConcurrentTransfers = maxConcurrentTransfers
        self.connectTimeout = connectTimeout
        self.lowSpeedLimit = lowSpeedLimit
        self.lowSpeedTime = lowSpeedTime
        self.verifyTLS = verifyTLS
        self.caFile = caFile
        self.userAgent = userAgent
        self.uploadBufferSize = uploadBufferSize
        self.reservedControlTransfers = reservedControlTransfers
    }

    /// Transfers in flight at once, at least 1.
    var transferSlots: Int { max(1, maxConcurrentTransfers) }
    /// Slots data transfers may take: all but the reserved ones, at least 1.
    var dataSlots: Int { max(1, transferSlots - max(0, reservedControlTransfers)) }
    /// Slots of control transfers, on their own thread and connections: all of them (a listing's
    /// HEADs go out many at once).
    var controlSlots: Int { transferSlots }
}

/// Something that performs HTTP requests: `CurlTransport`, or a fake in tests.
public protocol HTTPTransport: Sendable {
    func perform(_ request: HTTPRequest) async throws(TransportError) -> HTTPResponse
}

extension Duration {
    /// Whole milliseconds, rounded down, for C APIs.
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}
