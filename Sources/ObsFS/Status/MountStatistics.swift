// Mount-wide upload counters and the registry of open uploads: what `obsmount status`, the
// systemd STATUS= line and the metrics endpoint show.
//
// Design note: totals are relaxed atomics bumped by the upload sessions (UploadProgress) and by
// the client's request observer (retries, latencies); the registry of open sessions sits behind
// a mutex taken only to add, remove or list. `snapshot` turns both into plain values
// (StatusSnapshot), which the CLI encodes as JSON or draws as a table.
import OBSClient
import OBSProtocol
import Synchronization

public final class MountStatistics: RequestObserver {
    /// Bytes of parts the store acknowledged, over all uploads.
    let bytesUploaded = Atomic<Int64>(0)
    let partsUploaded = Atomic<Int>(0)
    let objectsCompleted = Atomic<Int>(0)
    /// Uploads whose outcome was a failure (aborted or not).
    let uploadsFailed = Atomic<Int>(0)
    /// Uploads aborted on the server.
    let uploadsAborted = Atomic<Int>(0)
    /// Requests sent again after a retryable failure, over all operations.
    let retries = Atomic<Int>(0)
    /// The sessions still deciding their outcome, by identity.
    private let open = Mutex<[ObjectIdentifier: UploadSession]>([:])
    /// The same events for the metrics endpoint (no-ops without a metrics backend).
    private let metrics = MountMetrics()
    /// Directory renames and compositions running now.
    let operations = LongOperations()

    public init() {}

    func opened(_ session: UploadSession) {
        open.withLock { $0[ObjectIdentifier(session)] = session }
        metrics.openUploads.increment()
    }

    /// A part's bytes are acknowledged by the store.
    func partUploaded(bytes: Int) {
        bytesUploaded.wrappingAdd(Int64(bytes), ordering: .relaxed)
        partsUploaded.wrappingAdd(1, ordering: .relaxed)
        metrics.bytesUploaded.increment(by: bytes)
        metrics.partsUploaded.increment()
    }

    /// The session's outcome is decided.
    func finished(_ session: UploadSession, succeeded: Bool) {
        open.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(session)) }
        metrics.openUploads.decrement()
        if succeeded {
            objectsCompleted.wrappingAdd(1, ordering: .relaxed)
            metrics.objectsCompleted.increment()
        } else {
            uploadsFailed.wrappingAdd(1, ordering: .relaxed)
            metrics.uploadsFailed.increment()
        }
    }

    func aborted() {
        uploadsAborted.wrappingAdd(1, ordering: .relaxed)
        metrics.uploadsAborted.increment()
    }

    /// Records the attempt's latency and counts retries; a part upload's retry counts for its
    /// upload too.
    public func attemptEnded(_ attempt: RequestAttempt) {
        metrics.record(attempt)
        guard attempt.willRetry else { return }
        retries.wrappingAdd(1, ordering: .relaxed)
        guard attempt.operation == "UploadPart", let uploadID = attempt.uploadID else { return }
        let session = open.withLock { sessions in sessions.values.first { $0.uploadID == uploadID } }
        session?.progress.partRetries.wrappingAdd(1, ordering: .relaxed)
    }

    /// Every open upload and the totals, with the part-buffer pool's use.
    public func snapshot(pool: PartBufferPool, prefix: String) -> StatusSnapshot {
        let now = ContinuousClock.now
        let sessions = open.withLock { Array($0.values) }
        let uploads = sessions.map { session in
            let written = session.size
            let progress = session.progress
            let path = session.key.rawValue.hasUTF8Prefix(prefix) ? session.key.rawValue.droppingUTF8(first: prefix.utf8.count) : session.key.rawValue
            return StatusSnapshot.Upload(path: "/" + path, uploadID: session.uploadID.rawValue, bytesWritten: written,
                                         bytesDurable: progress.durableBytes.load(ordering: .relaxed),
                                         partsInFlight: progress.partsInFlight.load(ordering: .relaxed),
                                         partsUploaded: progress.partsUploaded.load(ordering: .relaxed),
                                         partsRetried: progress.partRetries.load(ordering: .relaxed),
                                         bytesPerSecond: progress.rate(written: written, now: now),
                                         seconds: (now - progress.opened).seconds)
        }.sorted { $0.path < $1.path }
        return StatusSnapshot(uploads: uploads, operations: operations.snapshot(now: now), totals: StatusSnapshot.Totals(
            bytesUploaded: bytesUploaded.load(ordering: .relaxed), partsUploaded: partsUploaded.load(ordering: .relaxed),
            objectsCompleted: objectsCompleted.load(ordering: .relaxed), uploadsFailed: uploadsFailed.load(ordering: .relaxed),
            uploadsAborted: uploadsAborted.load(ordering: .relaxed), retries: retries.load(ordering: .relaxed),
            openUploads: uploads.count, memoryInUse: pool.allocatedBytes, memoryBudget: pool.capacity))
    }
}

/// What `obsmount status` shows, as plain values (encoded as JSON on the control socket).
public struct StatusSnapshot: Sendable, Codable, Equatable {
    public struct Upload: Sendable, Codable, Equatable {
        /// The file's path in the mount.
        public var path: String
        public var uploadID: String
        public var bytesWritten: Int64
        /// Bytes of parts the store acknowledged.
        public var bytesDurable: Int64
        public var partsInFlight: Int
        public var partsUploaded: Int
        public var partsRetried: Int
        /// Bytes written per second, recently.
        public var bytesPerSecond: Double
        /// Seconds since the file was opened.
        public var seconds: Double
    }

    public struct Totals: Sendable, Codable, Equatable {
        public var bytesUploaded: Int64
        public var partsUploaded: Int
        public var objectsCompleted: Int
        public var uploadsFailed: Int
        public var uploadsAborted: Int
        public var retries: Int
        public var openUploads: Int
        /// Bytes of part buffers allocated, of `memoryBudget`.
        public var memoryInUse: Int64
        public var memoryBudget: Int64
    }

    /// A long operation that is not an upload.
    public struct Operation: Sendable, Codable, Equatable {
        public var description: String
        public var done: Int64
        public var total: Int64
        /// What `done` and `total` count: `keys`, `bytes`.
        public var unit: String
        public var seconds: Double
    }

    public var uploads: [Upload]
    public var operations: [Operation]
    public var totals: Totals
}
