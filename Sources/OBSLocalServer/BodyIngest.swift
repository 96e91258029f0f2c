// Request bodies on their way to disk. The event loop hands each received buffer to a
// `BodyIngest`, which queues it and lets one thread-pool task at a time write the queued buffers
// (and feed the digests) through a `BlobWriter`; no body is ever held whole in memory. While more
// than `highWaterBytes` wait for the disk, the connection handler stops reading from the socket
// (backpressure); it resumes when the queue drains.
//
// `AWSChunkedDecoder` strips the aws-chunked framing (`STREAMING-…` payloads of V4 clients) on
// the event loop, passing slices of the received buffers on without copying.
import NIOCore
import NIOPosix

/// Streams one body into a blob. Event-loop bound: every method runs on `eventLoop`.
final class BodyIngest {
    /// Bytes queued or being written above which reading from the socket pauses.
    static let highWaterBytes = 4 << 20

    private let eventLoop: any EventLoop
    private let threadPool: NIOThreadPool
    private let writer: any BlobWriter
    private var queued: [ByteBuffer] = []
    private var queuedBytes = 0
    private var writingBytes = 0
    private var writing = false
    private var failure: (any Error)?
    private var finishPromise: EventLoopPromise<WrittenBlob>?
    private var finished = false
    /// Called when the backlog drops below the high-water mark again.
    var onDrain: (() -> Void)?

    init(eventLoop: any EventLoop, threadPool: NIOThreadPool, writer: any BlobWriter) {
        self.eventLoop = eventLoop
        self.threadPool = threadPool
        self.writer = writer
    }

    /// True while reading should pause.
    var isBackedUp: Bool { queuedBytes + writingBytes > BodyIngest.highWaterBytes }

    func append(_ buffer: ByteBuffer) {
        guard failure == nil, !finished, buffer.readableBytes > 0 else { return }
        queued.append(buffer)
        queuedBytes += buffer.readableBytes
        pump()
    }

    /// Completes when every byte is written and the blob is closed.
    func finish() -> EventLoopFuture<WrittenBlob> {
        let promise = eventLoop.makePromise(of: WrittenBlob.self)
        if let failure {
            promise.fail(failure)
        } else {
            finishPromise = promise
            pump()
        }
        return promise.futureResult
    }

    /// Discards the partial blob (client gone, request refused).
    func abort() {
        guard !finished else { return }
        finished = true
        queued = []
        let writer = self.writer
        if writing {
            // The running task still uses the writer; abort after it.
            failure = CancellationError()
        } else {
            _ = threadPool.runIfActive(eventLoop: eventLoop) { writer.abort() }
        }
    }

    private func pump() {
        guard !writing else { return }
        let writer = self.writer
        if finished {
            // Aborted while a write ran: clean up now that it is over.
            if failure is CancellationError { _ = threadPool.runIfActive(eventLoop: eventLoop) { writer.abort() } }
            return
        }
        if queued.isEmpty {
            guard let promise = finishPromise else { return }
            finished = true
            writing = true
            threadPool.runIfActive(eventLoop: eventLoop) { try writer.finish() }.cascade(to: promise)
            return
        }
        let batch = queued
        queued = []
        writingBytes = queuedBytes
        queuedBytes = 0
        writing = true
        let wasBackedUp = isBackedUp
        threadPool.runIfActive(eventLoop: eventLoop) { try writer.append(batch) }.assumeIsolated().whenComplete { result in
            self.writing = false
            self.writingBytes = 0
            if case .failure(let error) = result, !self.finished {
                self.failure = error
                self.finished = true
                _ = self.threadPool.runIfActive(eventLoop: self.eventLoop) { writer.abort() }
                self.finishPromise?.fail(error)
                return
            }
            self.pump()
            if wasBackedUp && !self.isBackedUp { self.onDrain?() }
        }
    }
}

/// Decodes `Content-Encoding: aws-chunked` framing: `hex-size[;extensions]\r\n data \r\n` … a
/// zero-size chunk, then optional trailer lines and an empty line. Chunk signatures are not
/// checked (the seed request signature is).
struct AWSChunkedDecoder {
    enum Failure: Error { case malformed }

    private enum State {
        case header
        case data(remaining: Int)
        case dataEnd(remaining: Int)
        case trailer
        case done
    }

    private var state = State.header
    private var line: [UInt8] = []
    static let maximumLine = 8192

    var isComplete: Bool { if case .done = state { true } else { false } }

    /// Feeds received bytes; calls `emit` with payload slices.
    mutating func feed(_ input: ByteBuffer, emit: (ByteBuffer) -> Void) throws(Failure) {
        var buffer = input
        while buffer.readableBytes > 0 {
            switch state {
            case .header, .trailer:
                guard let byte = buffer.readInteger(as: UInt8.self) else { return }
                if byte != UInt8(ascii: "\n") {
                    line.append(byte)
                    guard line.count <= Self.maximumLine else { throw .malformed }
                    continue
                }
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                let text = line
                line = []
                if case .trailer = state {
                    if text.isEmpty { state = .done }
                    continue
                }
                let sizeText = text.prefix { $0 != UInt8(ascii: ";") }
                guard !sizeText.isEmpty, sizeText.count <= 16,
                      let size = Int(String(decoding: sizeText, as: UTF8.self), radix: 16) else { throw .malformed }
                state = size == 0 ? .trailer : .data(remaining: size)
            case .data(let remaining):
                let count = Swift.min(remaining, buffer.readableBytes)
                emit(buffer.readSlice(length: count)!)
                state = remaining == count ? .dataEnd(remaining: 2) : .data(remaining: remaining - count)
            case .dataEnd(let remaining):
                let byte = buffer.readInteger(as: UInt8.self)!
                guard byte == (remaining == 2 ? UInt8(ascii: "\r") : UInt8(ascii: "\n")) else { throw .malformed }
                state = remaining == 2 ? .dataEnd(remaining: 1) : .header
            case .done:
                throw .malformed
            }
        }
    }
}
