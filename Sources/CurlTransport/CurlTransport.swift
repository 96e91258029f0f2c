// The public face of the libcurl transport: an async `perform` over the event loop in
// `CurlEventLoop.swift`.
import OBSProtocol

/// HTTP/1.1 over libcurl's multi interface: one event thread for all transfers of this
/// transport, kept-alive connections, bodies sent from and received into caller memory.
/// Cancelling the calling task aborts its transfer.
public final class CurlTransport: HTTPTransport {
    private let loop: CurlEventLoop
    /// The settings this transport was created with.
    public let configuration: TransportConfiguration

    /// Starts the event thread. Throws `.unavailable` when libcurl or the thread cannot start.
    public init(configuration: TransportConfiguration = TransportConfiguration()) throws(TransportError) {
        self.configuration = configuration
        loop = try CurlEventLoop(configuration: configuration)
        try loop.start()
    }

    /// Stops the event thread once the last reference goes (no transfer can be in flight then:
    /// every `perform` holds a reference).
    deinit { loop.shutDown() }

    /// Performs one request. Throws `TransportError` when no complete HTTP response arrived;
    /// any HTTP status, including 4xx/5xx, is a response.
    public func perform(_ request: HTTPRequest) async throws(TransportError) -> HTTPResponse {
        let transfer = CurlTransfer(request: request)
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                loop.submit(transfer, continuation)
            }
        } onCancel: {
            loop.cancel(transfer)
        }
        return try result.get()
    }
}
