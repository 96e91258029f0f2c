// The public face of the libcurl transport: an async `perform` over the event loop in
// `CurlEventLoop.swift`.
import OBSProtocol

/// HTTP/1.1 over libcurl's multi interface: two event threads (control and data lanes), kept-alive
/// connections, bodies sent from and received into caller memory.
/// Cancelling the calling task aborts its transfer.
public final class CurlTransport: HTTPTransport {
    /// Part bodies and ranged reads.
    private let dataLoop: CurlEventLoop
    /// HEAD, LIST, initiate, complete, abort: a thread and connections of their own, so that a
    /// data thread busy feeding part bodies never delays them.
    private let controlLoop: CurlEventLoop
    /// The settings this transport was created with.
    public let configuration: TransportConfiguration

    /// Starts the event threads. Throws `.unavailable` when libcurl or a thread cannot start.
    public init(configuration: TransportConfiguration = TransportConfiguration()) throws(TransportError) {
        self.configuration = configuration
        dataLoop = try CurlEventLoop(configuration: configuration, slots: configuration.dataSlots)
        controlLoop = try CurlEventLoop(configuration: configuration, slots: configuration.controlSlots)
        try dataLoop.start()
        try controlLoop.start()
    }

    /// Stops the event threads once the last reference goes (no transfer can be in flight then:
    /// every `perform` holds a reference).
    deinit {
        dataLoop.shutDown()
        controlLoop.shutDown()
    }

    /// Performs one request. Throws `TransportError` when no complete HTTP response arrived;
    /// any HTTP status, including 4xx/5xx, is a response.
    public func perform(_ request: HTTPRequest) async throws(TransportError) -> HTTPResponse {
        let transfer = CurlTransfer(request: request)
        let loop = request.lane == .control ? controlLoop : dataLoop
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
