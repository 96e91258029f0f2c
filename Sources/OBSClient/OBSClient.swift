// The OBS client core: every operation goes through `send`, which signs each attempt afresh,
// performs it on the transport, turns error replies into `ServiceError`, and retries what is
// worth retrying with exponential back-off and full jitter. The operations live in the
// `OBSClient+*.swift` files.
import CurlTransport
import Logging
import OBSProtocol
import Synchronization

/// A client of one OBS (or S3-compatible) endpoint with one set of credentials. Knows buckets
/// and objects, never files. Safe to share between tasks; requests run concurrently on one
/// transport (one event thread, one pool of kept-alive connections).
public final class OBSClient: Sendable {
    /// The settings the client was created with.
    public let configuration: OBSClientConfiguration
    let builder: RequestBuilder
    let transport: any HTTPTransport
    let clock: OBSProtocol.Clock
    /// Whether the endpoint is known not to answer (`EndpointReachability`); shared with
    /// `retrying` copies.
    let reachability: EndpointReachability
    /// The credentials requests are signed with now; shared with `retrying` copies.
    let signing: CurrentSigner

    /// A client over a libcurl transport built from `configuration.transport`.
    public convenience init(configuration: OBSClientConfiguration) throws(OBSClientError) {
        let transport: CurlTransport
        do {
            transport = try CurlTransport(configuration: configuration.transport)
        } catch {
            throw .transport(error)
        }
        self.init(configuration: configuration, transport: transport)
    }

    /// A client over any transport (tests inject fakes); `clock` dates the signatures.
    public convenience init(configuration: OBSClientConfiguration, transport: any HTTPTransport, clock: @escaping OBSProtocol.Clock = { Timestamp.now() }) {
        self.init(configuration: configuration, transport: transport, clock: clock, reachability: EndpointReachability(),
                  signing: CurrentSigner(RequestSigner(dialect: configuration.dialect, credentials: configuration.credentials,
                                                       region: configuration.region)))
    }

    private init(configuration: OBSClientConfiguration, transport: any HTTPTransport, clock: @escaping OBSProtocol.Clock,
                 reachability: EndpointReachability, signing: CurrentSigner) {
        self.configuration = configuration
        self.transport = transport
        self.clock = clock
        self.reachability = reachability
        self.signing = signing
        builder = RequestBuilder(endpoint: configuration.endpoint, addressing: configuration.addressing, dialect: configuration.dialect)
    }

    /// This client on the same transport (and kept-alive connections) with another retry
    /// policy: e.g. a quick answer where the mount's long `retry_timeout=` does not fit.
    public func retrying(_ policy: RetryPolicy) -> OBSClient {
        var configuration = configuration
        configuration.retry = policy
        return OBSClient(configuration: configuration, transport: transport, clock: clock, reachability: reachability, signing: signing)
    }

    /// The dialect requests are written and signed in.
    public var dialect: Dialect { configuration.dialect }
    var logger: Logger { configuration.logger }

    /// What happened to the attempts of one call, for the callers that must know (complete).
    struct AttemptHistory {
        var attempts = 0
        /// An earlier attempt failed without a complete response (timeout, connection error):
        /// the service may have acted on it.
        var earlierAttemptLostInTransport = false
    }

    /// Sends a call with retries; returns the 2xx response or throws the last failure.
    func send(_ call: OperationRequest) async throws(OBSClientError) -> HTTPResponse {
        var history = AttemptHistory()
        return try await send(call, history: &history)
    }

    func send(_ call: OperationRequest, history: inout AttemptHistory) async throws(OBSClientError) -> HTTPResponse {
        var generator = SystemRandomNumberGenerator()
        let policy = configuration.retry
        let started = ContinuousClock.now
        var credentialsRenewed = false
        while true {
            history.attempts += 1
            let signer = signing.current
            var request = builder.signedRequest(for: call, at: clock(), by: signer.signer)
            if request.timeout == nil, call.movesNoBulkData { request.timeout = configuration.operationTimeout }
            let failure: OBSClientError
            let attemptStart = ContinuousClock.now
            do {
                let response = try await transport.perform(request)
                reachability.answered()
                if response.isSuccess {
                    observe(call, since: attemptStart, failure: nil, status: response.status, willRetry: false)
                    logger.trace("request done", metadata: metadata(for: call, status: response.status, requestID: requestID(of: response)))
                    return response
                }
                failure = .service(serviceError(from: response, call: call))
            } catch {
                failure = .transport(error)
            }
            // Refused with the credentials it was signed with, which have changed since, or
            // change now (passwd_file= rewritten): sent again at once with the new ones.
            if !credentialsRenewed, case .service(let error) = failure, error.status == 403, renewCredentials(after: signer.generation) {
                credentialsRenewed = true
                observe(call, since: attemptStart, failure: failure, status: nil, willRetry: true)
                continue
            }
            let retryable = policy.isRetryable(failure) && !Task.isCancelled
            var lostInTransport = false
            if case .transport = failure { lostInTransport = true }
            let elapsed = ContinuousClock.now - started
            let knownUnreachable = lostInTransport && history.attempts == 1 && reachability.isUnreachable(within: policy.timeLimit ?? .seconds(60))
            let delay = retryable && !knownUnreachable
                ? policy.nextDelay(afterAttempt: history.attempts, elapsed: elapsed, using: &generator) : nil
            observe(call, since: attemptStart, failure: failure, status: nil, willRetry: delay != nil)
            guard let delay else {
                // Retried on the transport for the whole retry time (or count), in vain; or not
                // retried, the endpoint being known not to answer: it still does not.
                if retryable, lostInTransport, knownUnreachable || (history.attempts > 1 && policy.timeLimit.map({ elapsed >= $0 }) ?? true) {
                    reachability.gaveUp()
                }
                var details = metadata(for: call, failure: failure, attempt: history.attempts)
                details["elapsed"] = "\(ContinuousClock.now - started)"
                logger.debug("request failed", metadata: details)
                throw failure
            }
            if lostInTransport { history.earlierAttemptLostInTransport = true }
            var details = metadata(for: call, failure: failure, attempt: history.attempts)
            details["delay"] = "\(delay)"
            logger.warning("retrying request", metadata: details)
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw .transport(TransportError(kind: .cancelled, message: "cancelled during back-off", url: request.url))
            }
        }
    }

    /// Whether requests are now signed with other credentials than those of `generation`:
    /// another request renewed them since, or `configuration.renewedCredentials` has new ones.
    private func renewCredentials(after generation: Int) -> Bool {
        guard let renewedCredentials = configuration.renewedCredentials else { return false }
        var accessKey: String?
        let renewed = signing.renew(after: generation) {
            guard let credentials = renewedCredentials() else { return nil }
            accessKey = credentials.accessKey
            return RequestSigner(dialect: configuration.dialect, credentials: credentials, region: configuration.region)
        }
        if let accessKey { logger.notice("signing requests with renewed credentials (access key \(accessKey))") }
        return renewed
    }

    /// Tells the configured observer how an attempt ended.
    private func observe(_ call: OperationRequest, since start: ContinuousClock.Instant, failure: OBSClientError?, status: Int?, willRetry: Bool) {
        guard let observer = configuration.observer else { return }
        var attempt = RequestAttempt(operation: call.operation, uploadID: call.query.first { $0.name == "uploadId" }?.value.map(UploadID.init),
                                     duration: ContinuousClock.now - start, status: status, errorCode: nil, willRetry: willRetry)
        switch failure {
        case .service(let error)?:
            attempt.status = error.status
            attempt.errorCode = error.code.rawValue
        case .transport(let error)?:
            switch error.kind {
            case .curl(let code): attempt.errorCode = "curl-\(code)"
            case .cancelled: attempt.errorCode = "cancelled"
            case .responseTooLarge: attempt.errorCode = "response-too-large"
            case .unavailable: attempt.errorCode = "unavailable"
            }
        default: break
        }
        observer.attemptEnded(attempt)
    }

    /// The dialect's request-ID header of a response.
    func requestID(of response: HTTPResponse) -> String? { response.headers[dialect.requestIDHeader] }

    /// The error a non-2xx response stands for. HEAD replies have no body: their status names it.
    func serviceError(from response: HTTPResponse, call: OperationRequest) -> ServiceError {
        var error = ServiceError(status: response.status, body: response.body, requestIDHeader: requestID(of: response))
        if response.body.isEmpty {
            let named: ObsErrorCode? = switch response.status {
            case 404: call.key == nil ? .noSuchBucket : .noSuchKey
            case 403: .accessDenied
            case 412: .preconditionFailed
            case 416: .invalidRange
            case 503: .serviceUnavailable
            case 500: .internalError
            default: nil
            }
            if let named {
                error.code = named
                error.message = "\(call.operation) answered HTTP \(response.status) without a body"
            }
        }
        if error.hostID == nil { error.hostID = response.headers[dialect.header("id-2")] }
        return error
    }

    /// A 2xx reply whose body is an `<Error>` document (complete and copy can answer so after
    /// the status line went out, behind whitespace sent to keep the connection alive): the
    /// error, with the status its code stands for.
    func embeddedError(in response: HTTPResponse) -> ServiceError? {
        let document = response.body.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }
        guard document.count < 4096, String(decoding: document.prefix(256), as: UTF8.self).contains("<Error>") else { return nil }
        var error = ServiceError(status: response.status, body: response.body, requestIDHeader: requestID(of: response))
        error.status = error.code.httpStatus
        return error
    }

    func malformed(_ call: OperationRequest, _ response: HTTPResponse, _ detail: String) -> OBSClientError {
        let error = OBSClientError.malformedResponse(operation: call.operation, detail: detail, requestID: requestID(of: response))
        logger.error("malformed response", metadata: metadata(for: call, failure: error, attempt: 0))
        return error
    }

    /// `encoding-type` for listings, as configured.
    var keyEncodingQuery: [QueryItem] { keyEncodingQuery(configuration.keyEncoding) }

    /// `encoding-type=ENCODING`, or nothing for nil.
    func keyEncodingQuery(_ encoding: KeyEncoding?) -> [QueryItem] {
        encoding.map { [QueryItem("encoding-type", $0.rawValue)] } ?? []
    }

    /// Parses a 2xx XML reply into a document, or throws `malformedResponse`.
    func decode<Document: XMLWireDocument>(_ type: Document.Type, _ response: HTTPResponse, _ call: OperationRequest) throws(OBSClientError) -> Document {
        do {
            return try Document(parsing: response.body)
        } catch {
            throw malformed(call, response, "\(error)")
        }
    }

    private func metadata(for call: OperationRequest, status: Int? = nil, requestID: String? = nil) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["operation": "\(call.operation)"]
        if let bucket = call.bucket { metadata["bucket"] = "\(bucket)" }
        if let key = call.key { metadata["key"] = "\(key)" }
        if let status { metadata["status"] = "\(status)" }
        if let requestID { metadata["request-id"] = "\(requestID)" }
        return metadata
    }

    private func metadata(for call: OperationRequest, failure: OBSClientError, attempt: Int) -> Logger.Metadata {
        var metadata = metadata(for: call)
        metadata["attempt"] = "\(attempt)"
        switch failure {
        case .service(let error):
            metadata["status"] = "\(error.status)"
            metadata["code"] = "\(error.code)"
            metadata["message"] = "\(error.message)"
            if let id = error.requestID { metadata["request-id"] = "\(id)" }
        case .transport(let error):
            metadata["error"] = "\(error)"
        default:
            metadata["error"] = "\(failure)"
            if let id = failure.requestID { metadata["request-id"] = "\(id)" }
        }
        return metadata
    }
}

/// Whether an endpoint is known not to answer: set when a call used up its retries on transport
/// failures (no answer for the whole retry time), cleared by the next answer of any call. While
/// it is set, a call whose first attempt fails on the transport is not retried (and sets it
/// again), so that a program's next call (the kernel looks a name up again after a failed
/// revalidation; `ls` asks for the next name) fails at once instead of waiting the retry time
/// again. It lapses after the retry time without such a failure: a call after a quiet spell gets
/// its retries. A call that started before keeps its own retries.
final class EndpointReachability: Sendable {
    /// When a call last found the endpoint not answering; nil: it answers, as far as known.
    private let lastGaveUp = Mutex<ContinuousClock.Instant?>(nil)

    func isUnreachable(within window: Duration) -> Bool {
        lastGaveUp.withLock { $0.map { ContinuousClock.now - $0 < window } ?? false }
    }

    func gaveUp() { lastGaveUp.withLock { $0 = .now } }

    func answered() { lastGaveUp.withLock { $0 = nil } }
}

/// The signer requests are signed with, replaced when the credentials are renewed. Each signer
/// has a generation, so that the requests refused with one renew it once.
final class CurrentSigner: Sendable {
    /// Guards the signer and its generation; held to read or swap them, and while a renewal is
    /// asked for (a small file read, after a refusal only).
    private let state: Mutex<(signer: RequestSigner, generation: Int)>

    init(_ signer: RequestSigner) { state = Mutex((signer, 0)) }

    var current: (signer: RequestSigner, generation: Int) { state.withLock { $0 } }

    /// Whether the signer is another than the one of `generation` now: another request renewed
    /// it since, or `renewal` gives a new one. Asked under the lock: concurrent refusals ask once
    /// and all see its answer (asked outside it, a second refusal found the file already read
    /// while the first had not yet put its signer in place, and failed with the old keys).
    func renew(after generation: Int, _ renewal: () -> RequestSigner?) -> Bool {
        state.withLock { state in
            guard state.generation == generation else { return true }
            guard let signer = renewal() else { return false }
            state = (signer, generation + 1)
            return true
        }
    }
}
