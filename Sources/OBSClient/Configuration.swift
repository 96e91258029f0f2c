// What an OBSClient talks to and how: endpoint, addressing, dialect, credentials, retries.
import CurlTransport
import Logging
import OBSProtocol

/// An `http://` or `https://` endpoint: scheme, host and port, no path.
public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
    /// `http` or `https`.
    public enum Scheme: String, Sendable { case http, https }

    /// `http` or `https` (TLS, verified unless the transport configuration says otherwise).
    public let scheme: Scheme
    /// Host name or IP literal (IPv6 in brackets).
    public let host: String
    /// The port, when the URL names one.
    public let port: Int?

    /// Parses `https://obs.cn-north-4.myhuaweicloud.com` or `http://127.0.0.1:9000/`; nil for
    /// another scheme, a path, credentials in the URL or a bad port.
    public init?(_ url: String) {
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let scheme = Scheme(rawValue: String(parts[0]).lowercasedASCII) else { return nil }
        var authority = parts[1]
        if authority.hasSuffix("/") { authority = authority.dropLast() }
        guard !authority.isEmpty, !authority.contains("/"), !authority.contains("@"), !authority.contains("?") else { return nil }
        var host = String(authority)
        var port: Int?
        if let colon = authority.lastIndex(of: ":"), !authority[colon...].contains("]") {
            guard let number = Int(authority[authority.index(after: colon)...]), (1...65535).contains(number) else { return nil }
            host = String(authority[..<colon])
            port = number
        }
        guard !host.isEmpty else { return nil }
        self.scheme = scheme
        self.host = host.lowercasedASCII
        self.port = port
    }

    /// `host` or `host:port` when the port is not the scheme's default: the `Host` header.
    public var authority: String {
        guard let port, port != (scheme == .https ? 443 : 80) else { return host }
        return "\(host):\(port)"
    }

    /// The endpoint as a URL.
    public var description: String { "\(scheme.rawValue)://\(authority)" }
}

/// Where the bucket goes in a URL.
public enum Addressing: String, Sendable {
    /// `https://endpoint/bucket/key`.
    case pathStyle = "path"
    /// `https://bucket.endpoint/key`.
    case virtualHost = "virtual-host"
}

/// When and how often failed requests are tried again: bounded by a count of attempts and,
/// optionally, by time (a mount retries through a short outage for `retry_timeout=`, however
/// many attempts that takes).
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included (1 = never retry).
    public var maxAttempts: Int
    /// Upper bound of the first back-off; doubles with every retry up to `maxDelay`.
    public var baseDelay: Duration
    /// Upper bound of every back-off.
    public var maxDelay: Duration
    /// No retry starts later than this after the first attempt started (a back-off that would
    /// end beyond it is shortened to end there); nil: only `maxAttempts` bounds the retries. A
    /// call therefore fails at most `timeLimit` plus one attempt's duration after it began.
    public var timeLimit: Duration?

    /// A policy; `maxAttempts` below 1 counts as 1.
    public init(maxAttempts: Int = 4, baseDelay: Duration = .milliseconds(200), maxDelay: Duration = .seconds(10), timeLimit: Duration? = nil) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.timeLimit = timeLimit
    }

    /// Retries for `timeLimit` whatever the count (back-off from 200 ms doubling to `maxDelay`).
    public static func timeBounded(_ timeLimit: Duration, maxDelay: Duration = .seconds(5)) -> RetryPolicy {
        RetryPolicy(maxAttempts: timeLimit > .zero ? .max : 1, maxDelay: maxDelay, timeLimit: timeLimit)
    }

    /// The back-off before retry number `retry` when `elapsed` has passed since the first attempt
    /// started, or nil when the count or the time is used up.
    public func nextDelay(afterAttempt attempt: Int, elapsed: Duration, using generator: inout some RandomNumberGenerator) -> Duration? {
        guard attempt < maxAttempts else { return nil }
        let delay = self.delay(beforeRetry: attempt, using: &generator)
        guard let timeLimit else { return delay }
        guard elapsed < timeLimit else { return nil }
        return min(delay, timeLimit - elapsed)
    }

    /// Never retries.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// Whether a request that failed with `error` is worth sending again: 5xx, `SlowDown`, 408,
    /// 429, connection failures and timeouts. Never other 4xx, never a cancellation.
    public func isRetryable(_ error: OBSClientError) -> Bool {
        switch error {
        case .service(let service): service.isRetryable
        case .transport(let transport): transport.isRetryable
        case .malformedResponse, .etagMismatch, .checksumMismatch, .invalidArgument: false
        }
    }

    /// The back-off before retry number `retry` (1 for the first retry): "full jitter", a
    /// uniformly random delay between zero and `min(maxDelay, baseDelay · 2^(retry-1))`.
    public func delay(beforeRetry retry: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let cap = ceiling(forRetry: retry)
        let nanoseconds = cap.nanoseconds
        guard nanoseconds > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0...nanoseconds, using: &generator))
    }

    /// `min(maxDelay, baseDelay · 2^(retry-1))`.
    public func ceiling(forRetry retry: Int) -> Duration {
        let doublings = min(max(0, retry - 1), 30)
        let grown = baseDelay * (1 << doublings)
        return grown < maxDelay ? grown : maxDelay
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// Everything an `OBSClient` needs.
public struct OBSClientConfiguration: Sendable {
    /// The service's URL.
    public var endpoint: Endpoint
    /// Path-style or virtual-host.
    public var addressing: Addressing
    /// Signing region (V4 scope); OBS regions look like `cn-north-4`.
    public var region: String
    /// How requests are written and signed (`obs`, `v2`, `v4`).
    public var dialect: Dialect
    /// Access key, secret key and optional security token.
    public var credentials: Credentials
    /// Connection pool size, timeouts, TLS verification and CA file.
    public var transport: TransportConfiguration
    /// When failed requests are sent again.
    public var retry: RetryPolicy
    /// Upper bound on one attempt of a request that moves no bulk data (everything but part,
    /// object and append bodies and reads into caller memory); nil: only the transport's
    /// connect and low-speed limits apply. A complete of many parts can take the service a while.
    public var operationTimeout: Duration?
    /// The `encoding-type` asked for on initiations and listings (`url`: keys come back
    /// URL-encoded, so any key survives XML, and are decoded); nil leaves the parameter out, for
    /// S3-compatible stores that refuse it.
    public var keyEncoding: KeyEncoding?
    /// Where requests, retries and failures are logged (never with credentials).
    public var logger: Logger
    /// Told about every attempt of every request (status and metrics); nil: nobody.
    public var observer: (any RequestObserver)?
    /// Asked when the service refuses a request with HTTP 403: credentials other than the ones
    /// it was signed with (the mount's `passwd_file=` rewritten after a key rotation, or with
    /// fresh temporary credentials), with which the request is sent again at once; nil: none.
    public var renewedCredentials: (@Sendable () -> Credentials?)?

    /// A configuration; OBS dialect, path style and region `us-east-1` unless told otherwise.
    public init(endpoint: Endpoint, addressing: Addressing = .pathStyle, region: String = "us-east-1", dialect: Dialect = .obs,
                credentials: Credentials, transport: TransportConfiguration = TransportConfiguration(),
                retry: RetryPolicy = RetryPolicy(), operationTimeout: Duration? = nil, keyEncoding: KeyEncoding? = .url,
                logger: Logger = Logger(label: "obsmount.client")) {
        self.endpoint = endpoint
        self.addressing = addressing
        self.region = region
        self.dialect = dialect
        self.credentials = credentials
        self.transport = transport
        self.retry = retry
        self.operationTimeout = operationTimeout
        self.keyEncoding = keyEncoding
        self.logger = logger
    }
}

/// Receives one call per request attempt, on the request's task: it must return at once.
public protocol RequestObserver: Sendable {
    func attemptEnded(_ attempt: RequestAttempt)
}

/// One attempt of a request, as the observer sees it.
public struct RequestAttempt: Sendable {
    /// The operation (`UploadPart`, `CompleteMultipartUpload` …).
    public var operation: String
    /// The `uploadId` query parameter, for the multipart operations.
    public var uploadID: UploadID?
    public var duration: Duration
    /// The HTTP status, nil when no response came.
    public var status: Int?
    /// The service's error code, or the transport failure's kind (`curl-7`, `cancelled` …).
    public var errorCode: String?
    /// The request is sent again after this attempt.
    public var willRetry: Bool
}
