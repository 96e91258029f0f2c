// One HTTP/1.1 connection: request head → route, signature check, fault rules and the quick
// checks that can refuse a request before its body is read; the body streamed to a blob,
// collected (XML) or dropped; the operation run on the operation pool (never behind body I/O,
// which has a pool of its own); the response written, object
// bodies straight from the blob files with sendfile (FileRegion) or from memory buffers.
//
// Backpressure: `read` is withheld while the body's disk writes are behind (BodyIngest), and
// object bodies are written one slice at a time, the next after the previous is flushed.
//
// Idle connections: a connection must deliver a complete request head within the idle timeout
// of being accepted or of its previous response ending (`ServerConfiguration.idleTimeout`), or it
// is closed. That bounds both a kept-alive connection nobody uses and a client that sends its
// head slowly or never finishes it, so no client holds a connection for ever.
import NIOCore
import NIOHTTP1
import NIOPosix
import OBSHashing
import OBSProtocol
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// A response before the common headers are added.
struct ServerResponse: Sendable {
    enum Body: Sendable {
        case empty
        case bytes([UInt8])
        /// Object bytes from blobs (GET), pinned until they are sent.
        case blobs([BlobSlice], length: Int64, pin: BlobPin)
        /// HEAD of an object: the length is announced, nothing is sent.
        case lengthOnly(Int64)
    }

    var status: Int
    var headers: [(String, String)]
    var body: Body
    /// Set for error replies; the handler writes the `<Error>` document (it knows the request ID).
    var error: OBSLocalError?

    init(status: Int = 200, headers: [(String, String)] = [], body: Body = .empty) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    static func failure(_ error: OBSLocalError) -> ServerResponse {
        var response = ServerResponse(status: error.status)
        response.error = error
        return response
    }

    /// An XML document reply.
    static func xml(_ bytes: [UInt8], status: Int = 200, headers: [(String, String)] = []) -> ServerResponse {
        ServerResponse(status: status, headers: headers + [("Content-Type", "application/xml")], body: .bytes(bytes))
    }
}

/// What a request's body becomes.
private enum BodyTarget {
    case ignore
    case collect([UInt8], limit: Int)
    case stream(BodyIngest, chunked: AWSChunkedDecoder?)
    /// Fault injection: close the connection once this many body bytes have arrived.
    case cut(afterBytes: Int)
}

/// The request being received or answered.
private final class Exchange {
    let requestID: String
    let started: UInt64
    let head: HTTPRequestHead
    var routed: RoutedRequest?
    var identity: SignatureVerifier.Identity?
    var dialect: Dialect
    var rejection: OBSLocalError?
    var admin = false
    var target: BodyTarget = .ignore
    var bytesIn: Int64 = 0
    var delayMilliseconds = 0
    var responded = false

    init(requestID: String, head: HTTPRequestHead, dialect: Dialect) {
        self.requestID = requestID
        self.started = FaultInjector.monotonicNow()
        self.head = head
        self.dialect = dialect
    }
}

final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let core: ServerCore
    private var exchange: Exchange?
    /// A `read` held back while the body's disk writes catch up.
    private var readHeldBack = false
    private var active = true
    /// A response head is written and its end is not (a protocol error can no longer be answered).
    private var responseStarted = false
    /// Closes the connection unless a request head arrives first (see the file comment).
    private var idleTimer: Scheduled<Void>?

    init(core: ServerCore) { self.core = core }

    /// Largest body of a refused request that is read and dropped before the error is sent.
    static let drainedBodyLimit: Int64 = 1 << 20

    // MARK: Backpressure

    func read(context: ChannelHandlerContext) {
        if let exchange, case .stream(let ingest, _) = exchange.target, ingest.isBackedUp {
            readHeldBack = true
            return
        }
        context.read()
    }

    private func resumeReading(context: ChannelHandlerContext) {
        guard readHeldBack else { return }
        readHeldBack = false
        context.read()
    }

    // MARK: Idle timeout

    func channelActive(context: ChannelHandlerContext) {
        armIdleTimer(context: context)
        context.fireChannelActive()
    }

    private func armIdleTimer(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        guard let timeout = core.idleTimeout else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            guard handler.exchange == nil, handler.active else { return }
            context.close(promise: nil)
        }
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): receiveHead(head, context: context)
        case .body(let buffer): receiveBody(buffer, context: context)
        case .end: receiveEnd(context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        active = false
        idleTimer?.cancel()
        if let exchange, case .stream(let ingest, _) = exchange.target { ingest.abort() }
        exchange = nil
        context.fireChannelInactive()
    }

    /// Protocol errors (unparsable request, oversized headers) are answered with an OBS error
    /// document when no response has started, then the connection is closed; anything else just
    /// closes it.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let exchange, case .stream(let ingest, _) = exchange.target { ingest.abort() }
        if let parserError = error as? HTTPParserError, !responseStarted {
            let requestID = core.nextRequestID()
            let failure: OBSLocalError = switch parserError {
            case .headerOverflow: OBSLocalError("RequestHeaderSectionTooLarge", "Your request header section exceeds the maximum allowed size.", status: 400)
            case .invalidURL: OBSLocalError("InvalidURI", "Couldn't parse the specified URI.", status: 400)
            default: OBSLocalError(.invalidRequest, "The request is not valid HTTP/1.1 (\(parserError)).", status: 400)
            }
            let body = core.errorDocument(failure, requestID: requestID, resource: exchange?.head.uri ?? "/")
            let dialect = exchange?.dialect ?? .obs
            let headers = HTTPHeaders([("Connection", "close"), ("Content-Type", "application/xml"), ("Content-Length", String(body.count)),
                                       (dialect.requestIDHeader, requestID), (dialect.header("id-2"), core.hostID(for: requestID))])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            core.log(exchange: (requestID, exchange?.routed, exchange?.started ?? FaultInjector.monotonicNow(), exchange?.bytesIn ?? 0),
                     status: 400, code: failure.code, bytesOut: Int64(body.count))
            exchange = nil
            return
        }
        context.close(promise: nil)
    }

    private func receiveHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        let headers = HeaderFields(head.headers.map { (name: $0.name, value: $0.value) })
        let exchange = Exchange(requestID: core.nextRequestID(), head: head, dialect: Dialect.guess(from: headers))
        self.exchange = exchange
        guard let wire = WireRequest(method: head.method.rawValue, target: head.uri, headers: headers) else {
            exchange.rejection = OBSLocalError("InvalidURI", "Couldn't parse the specified URI.", status: 400)
            return
        }
        if wire.path.hasPrefix(AdminAPI.pathPrefix) {
            exchange.admin = true
            exchange.target = .collect([], limit: 1 << 20)
            if !core.isLoopback(context.channel.remoteAddress) {
                exchange.rejection = OBSLocalError(.accessDenied, "The admin interface answers loopback clients only.")
            }
            return
        }
        if core.faults.refusingConnections {
            return resetConnection(context: context)
        }
        if head.method == .HEAD, wire.path == "/", wire.queryValue("apiversion") != nil {
            exchange.routed = RoutedRequest(wire: wire, operation: .headBucket, bucket: nil, key: nil, virtualHostBucket: nil)
            return
        }
        do throws(OBSLocalError) {
            let routed = try Router.route(wire)
            exchange.routed = routed
            let identity: SignatureVerifier.Identity
            do {
                identity = try core.verifier.verify(wire, virtualHostBucket: routed.virtualHostBucket, now: core.clock())
            } catch {
                throw OBSLocalError(error.code, error.message)
            }
            exchange.identity = identity
            exchange.dialect = identity.dialect
            if let decision = core.faults.decide(operation: routed.operation.rawValue, bucket: routed.bucket, key: routed.key) {
                if decision.kill { kill(getpid(), SIGKILL) }
                exchange.delayMilliseconds = decision.delayMilliseconds
                if let error = decision.error { throw error }
                if let cut = decision.cutAfterBytes {
                    exchange.target = .cut(afterBytes: cut)
                    if cut == 0 { resetConnection(context: context) }
                    return
                }
            }
            try core.operations.precheck(routed, dialect: identity.dialect)
            exchange.target = try bodyTarget(for: routed, identity: identity, context: context)
        } catch {
            exchange.rejection = error
            exchange.target = .ignore
        }
        let expectsContinue = head.headers["expect"].contains { $0.lowercasedASCII == "100-continue" }
        if exchange.rejection != nil {
            // A small refused body is read and dropped so the client reads the error calmly; for a
            // body the client holds back (100-continue) or a large one, answer now and close.
            let declared = head.headers["content-length"].first.flatMap { Int64($0) } ?? 0
            if expectsContinue || declared > ConnectionHandler.drainedBodyLimit {
                respond(exchange: exchange, context: context, closeAfter: true)
            }
        } else if expectsContinue {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
    }

    private func bodyTarget(for routed: RoutedRequest, identity: SignatureVerifier.Identity, context: ChannelHandlerContext) throws(OBSLocalError) -> BodyTarget {
        switch routed.operation.bodyUse {
        case .ignore: return .ignore
        case .collect(let limit): return .collect([], limit: limit)
        case .stream:
            let payloadHash = routed.headers["x-amz-content-sha256"]
            let chunked = payloadHash?.hasPrefix("STREAMING-") == true || routed.headers["Content-Encoding"]?.contains("aws-chunked") == true
            let writer: any BlobWriter
            do {
                writer = try core.store.blobs.makeWriter(computeSHA256: payloadHash.map(PayloadHash.isHexDigest) ?? false)
            } catch {
                throw OBSLocalError(.internalError, "Cannot store the body: \(error)")
            }
            let ingest = BodyIngest(eventLoop: context.eventLoop, threadPool: core.bodyPool, writer: writer)
            let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            ingest.onDrain = { [weak self] in self?.resumeReading(context: loopBoundContext.value) }
            guard chunked else { return .stream(ingest, chunked: nil) }
            var chain: ChunkSignatureChain?
            if payloadHash?.hasPrefix("STREAMING-AWS4-HMAC-SHA256-PAYLOAD") == true {
                let time = routed.headers["x-amz-date"].flatMap { Timestamp(iso8601Basic: $0) } ?? routed.headers["Date"].flatMap { Timestamp(rfc1123: $0) }
                guard let time, let secret = core.secrets[identity.accessKey],
                      let seeded = ChunkSignatureChain(authorization: routed.headers["Authorization"] ?? "", requestTime: time, secret: secret) else {
                    ingest.abort()
                    throw OBSLocalError(.signatureDoesNotMatch, "The streaming payload cannot be verified.")
                }
                chain = seeded
            }
            return .stream(ingest, chunked: AWSChunkedDecoder(chain: chain))
        }
    }

    private func receiveBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        guard let exchange else { return }
        exchange.bytesIn += Int64(buffer.readableBytes)
        switch exchange.target {
        case .ignore:
            break
        case .collect(var bytes, let limit):
            exchange.target = .ignore
            if bytes.count + buffer.readableBytes > limit {
                exchange.rejection = exchange.rejection ?? OBSLocalError(.entityTooLarge, "The request body exceeds \(limit) bytes.")
            } else {
                bytes.append(contentsOf: buffer.readableBytesView)
                exchange.target = .collect(bytes, limit: limit)
            }
        case .stream(let ingest, var decoder):
            if decoder == nil {
                ingest.append(buffer)
            } else {
                do {
                    try decoder!.feed(buffer) { ingest.append($0) }
                    exchange.target = .stream(ingest, chunked: decoder)
                } catch {
                    ingest.abort()
                    exchange.target = .ignore
                    exchange.rejection = switch error {
                    case .malformed: OBSLocalError("InvalidChunkEncoding", "The aws-chunked body is malformed.", status: 400)
                    case .signatureMismatch: OBSLocalError(.signatureDoesNotMatch, "A chunk signature of the streaming payload does not match.")
                    }
                }
            }
        case .cut(let afterBytes):
            if exchange.bytesIn >= Int64(afterBytes) { resetConnection(context: context) }
        }
    }

    private func receiveEnd(context: ChannelHandlerContext) {
        guard let exchange, !exchange.responded else { return }
        if case .cut = exchange.target {
            resetConnection(context: context)
            return
        }
        let delay = exchange.delayMilliseconds
        guard delay > 0 else { return dispatch(exchange, context: context) }
        let loopBound = NIOLoopBound((self, context, exchange), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: .milliseconds(Int64(delay))) {
            let (handler, context, exchange) = loopBound.value
            guard handler.active else { return }
            handler.dispatch(exchange, context: context)
        }
    }

    /// Runs the request's operation and answers.
    private func dispatch(_ exchange: Exchange, context: ChannelHandlerContext) {
        if exchange.rejection != nil {
            if case .stream(let ingest, _) = exchange.target { ingest.abort() }
            return respond(exchange: exchange, context: context)
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let future: EventLoopFuture<ServerResponse>
        let core = self.core
        if exchange.admin {
            guard case .collect(let body, _) = exchange.target else { return }
            let method = exchange.head.method.rawValue
            let path = exchange.head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? exchange.head.uri
            future = context.eventLoop.makeSucceededFuture(AdminAPI.handle(method: method, path: path, body: body, faults: core.faults,
                                                                                  store: core.store))
        } else if let routed = exchange.routed, let identity = exchange.identity {
            let input: EventLoopFuture<OperationInput>
            switch exchange.target {
            case .ignore, .cut:
                input = context.eventLoop.makeSucceededFuture(.none)
            case .collect(let bytes, _):
                input = context.eventLoop.makeSucceededFuture(.document(bytes))
            case .stream(let ingest, let decoder):
                if let decoder, !decoder.isComplete {
                    ingest.abort()
                    exchange.rejection = OBSLocalError(.incompleteBody, "The aws-chunked body ended before its last chunk.")
                    return respond(exchange: exchange, context: context)
                }
                input = ingest.finish().map { OperationInput.blob($0) }
            }
            future = input.flatMap { input in
                core.operationPool.runIfActive(eventLoop: loopBound.value.1.eventLoop) {
                    do throws(OBSLocalError) {
                        return try core.operations.perform(routed, identity: identity, input: input)
                    } catch {
                        if case .blob(let blob) = input { core.store.blobs.delete([blob.id]) }
                        return ServerResponse.failure(error)
                    }
                }
            }
        } else {
            // HEAD /?apiversion: the unauthenticated probe of the official SDK.
            future = context.eventLoop.makeSucceededFuture(ServerResponse(headers: [("x-obs-api", "3.0")]))
        }
        future.assumeIsolated().whenComplete { result in
            let (handler, context) = loopBound.value
            guard handler.active else { return }
            switch result {
            case .success(let response):
                handler.respond(exchange: exchange, response: response, context: context)
            case .failure(let error):
                exchange.rejection = OBSLocalError(.internalError, "We encountered an internal error: \(error)")
                handler.respond(exchange: exchange, context: context)
            }
        }
    }

    // MARK: Outbound

    private func respond(exchange: Exchange, context: ChannelHandlerContext, closeAfter: Bool = false) {
        respond(exchange: exchange, response: .failure(exchange.rejection ?? OBSLocalError(.internalError, "No response.")),
                context: context, closeAfter: closeAfter)
    }

    private func respond(exchange: Exchange, response: ServerResponse, context: ChannelHandlerContext, closeAfter: Bool = false) {
        guard !exchange.responded else { return }
        exchange.responded = true
        var response = response
        if let error = response.error, exchange.head.method != .HEAD {
            response.headers.append(("Content-Type", "application/xml"))
            response.body = .bytes(core.errorDocument(error, requestID: exchange.requestID, resource: exchange.head.uri))
        }
        let keepAlive = exchange.head.isKeepAlive && !closeAfter
        var headers = HTTPHeaders()
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        let dialect = exchange.dialect
        headers.add(name: dialect.requestIDHeader, value: exchange.requestID)
        headers.add(name: dialect.header("id-2"), value: core.hostID(for: exchange.requestID))
        headers.add(name: "Date", value: Timestamp.now().rfc1123)
        headers.add(name: "Server", value: "obs-local")
        let length: Int64
        switch response.body {
        case .empty: length = 0
        case .bytes(let bytes): length = Int64(bytes.count)
        case .blobs(_, let total, _), .lengthOnly(let total): length = total
        }
        headers.replaceOrAdd(name: "Content-Length", value: String(length))
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: exchange.head.version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        responseStarted = true
        let loopBound = NIOLoopBound((self, context, exchange), eventLoop: context.eventLoop)
        let status = response.status, code = response.error?.code
        let finish: @Sendable (Int64, Bool) -> Void = { bytesOut, intact in
            let (handler, context, exchange) = loopBound.value
            handler.finishResponse(exchange: exchange, status: status, code: code,
                                   bytesOut: bytesOut, keepAlive: keepAlive && intact, context: context)
        }
        switch response.body {
        case .empty, .lengthOnly:
            finish(0, true)
        case .bytes(let bytes):
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: bytes)))), promise: nil)
            finish(Int64(bytes.count), true)
        case .blobs(let slices, let total, let pin):
            sendSlices(slices[...], context: context) { intact in
                withExtendedLifetime(pin) { finish(intact ? total : 0, intact) }
            }
        }
    }

    /// Writes object slices in order; each file slice with sendfile, opened on the thread pool.
    private func sendSlices(_ slices: ArraySlice<BlobSlice>, context: ChannelHandlerContext, done: @escaping @Sendable (Bool) -> Void) {
        guard let slice = slices.first else { return done(true) }
        let rest = slices.dropFirst()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let next: @Sendable (Result<Void, any Error>) -> Void = { result in
            let (handler, context) = loopBound.value
            guard case .success = result, handler.active else { return done(false) }
            handler.sendSlices(rest, context: context, done: done)
        }
        switch core.store.blobs.location(of: slice.blob) {
        case .memory(let buffers):
            let pieces = buffers.slices(offset: slice.offset, length: slice.length)
            guard pieces.reduce(0, { $0 + $1.readableBytes }) == Int(slice.length) else { return next(.failure(StorageIOError(operation: "read", path: "memory", errno: EIO))) }
            for piece in pieces.dropLast() { context.write(wrapOutboundOut(.body(.byteBuffer(piece))), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(pieces.last ?? ByteBuffer())))).whenComplete(next)
        case .file(let path):
            core.bodyPool.runIfActive(eventLoop: context.eventLoop) { () throws -> NIOFileHandle in
                NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: try FileSystem.open(path, O_RDONLY))
            }.assumeIsolated().whenComplete { result in
                let (handler, context) = loopBound.value
                guard case .success(let file) = result else { return next(.failure(StorageIOError(operation: "open", path: path, errno: ENOENT))) }
                guard handler.active else {
                    try? file.close()
                    return done(false)
                }
                let region = FileRegion(fileHandle: file, readerIndex: Int(slice.offset), endIndex: Int(slice.offset + slice.length))
                context.writeAndFlush(handler.wrapOutboundOut(.body(.fileRegion(region)))).whenComplete { result in
                    try? file.close()
                    next(result)
                }
            }
        }
    }

    private func finishResponse(exchange: Exchange, status: Int, code: ObsErrorCode?, bytesOut: Int64, keepAlive: Bool, context: ChannelHandlerContext) {
        core.log(exchange: (exchange.requestID, exchange.routed, exchange.started, exchange.bytesIn), status: status, code: code, bytesOut: bytesOut)
        if self.exchange === exchange { self.exchange = nil }
        responseStarted = false
        guard active else { return }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            armIdleTimer(context: context)
            resumeReading(context: context)
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Closes the connection with a TCP reset (SO_LINGER 0): the fault "cut mid-body".
    private func resetConnection(context: ChannelHandlerContext) {
        if let exchange {
            exchange.responded = true
            if case .stream(let ingest, _) = exchange.target { ingest.abort() }
            exchange.target = .ignore
            core.log(exchange: (exchange.requestID, exchange.routed, exchange.started, exchange.bytesIn), status: 0, code: "ConnectionCut", bytesOut: 0)
        }
        ServerCore.reset(context.channel)
    }
}

extension Dialect {
    /// The dialect to answer an unauthenticated or refused request in.
    static func guess(from headers: HeaderFields) -> Dialect {
        guard let authorization = headers["Authorization"] else {
            return headers.contains { $0.name.lowercasedASCII.hasPrefix("x-amz-") } ? .v2 : .obs
        }
        if authorization.hasPrefix("OBS ") { return .obs }
        return authorization.hasPrefix("AWS4-") ? .v4 : .v2
    }
}

/// V4 payload hashes.
enum PayloadHash {
    /// True when the value is a hex SHA-256 (a signed payload) rather than a keyword.
    static func isHexDigest(_ value: String) -> Bool {
        value.utf8.count == 64 && value.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) }
    }
}
