// Request bodies on their way to disk. The event loop hands each received buffer to a
// `BodyIngest`, which queues it and hands batches of up to 1 MiB to the thread pool: one task
// writes a batch through a `BlobWriter` while another feeds it to the digests, one batch at a
// time; no body is ever held whole in memory. While more
// than `highWaterBytes` wait for the disk, the connection handler stops reading from the socket
// (backpressure); it resumes when the queue drains.
import NIOCore
import NIOPosix

/// Streams one body into a blob. Event-loop bound: every method runs on `eventLoop`.
final class BodyIngest {
    /// Bytes queued (not counting the batch being written) above which reading pauses, so the
    /// socket keeps being read while a batch is written.
    static let highWaterBytes = 4 << 20
    /// Largest batch handed to one thread-pool task.
    static let batchBytes = 1 << 20

    private let eventLoop: any EventLoop
    private let threadPool: NIOThreadPool
    private let writer: any BlobWriter
    private var queued = CircularBuffer<ByteBuffer>()
    private var queuedBytes = 0
    private var writing = false
    private var failure: (any Error)?
    private var finishPromise: EventLoopPromise<WrittenBlob>?
    private var finished = false
    /// Called after each write when the backlog is below the high-water mark.
    var onDrain: (() -> Void)?

    init(eventLoop: any EventLoop, threadPool: NIOThreadPool, writer: any BlobWriter) {
        self.eventLoop = eventLoop
        self.threadPool = threadPool
        self.writer = writer
    }

    /// True while reading should pause.
    var isBackedUp: Bool { queuedBytes > BodyIngest.highWaterBytes }

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

    /// Discards the partial blob (client gone, request refused, server stopping) and fails a
    /// pending `finish()`.
    func abort() {
        guard !finished else { return }
        finished = true
        queued.removeAll()
        // Once `finished` is set nothing else completes it: a promise left pending would leak.
        finishPromise?.fail(CancellationError())
        finishPromise = nil
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
            finishPromise = nil
            threadPool.runIfActive(eventLoop: eventLoop) { try writer.finish() }.cascade(to: promise)
            return
        }
        var batch: [ByteBuffer] = []
        var batchBytes = 0
        while batchBytes < BodyIngest.batchBytes, !queued.isEmpty {
            let buffer = queued.removeFirst()
            batchBytes += buffer.readableBytes
            batch.append(buffer)
        }
        queuedBytes -= batchBytes
        writing = true
        let buffers = batch
        // Two stages on two pool threads: the disk write and the digests of the same buffers.
        let written = threadPool.runIfActive(eventLoop: eventLoop) { try writer.write(buffers) }
        let digested = threadPool.runIfActive(eventLoop: eventLoop) { writer.digest(buffers) }
        written.and(digested).assumeIsolated().whenComplete { result in
            self.writing = false
            if case .failure(let error) = result, !self.finished {
                self.failure = error
                self.finished = true
                _ = self.threadPool.runIfActive(eventLoop: self.eventLoop) { writer.abort() }
                self.finishPromise?.fail(error)
                self.finishPromise = nil
                return
            }
            self.pump()
            // Reading may have been held back while this batch or the queue was large.
            if !self.isBackedUp { self.onDrain?() }
        }
    }
}
