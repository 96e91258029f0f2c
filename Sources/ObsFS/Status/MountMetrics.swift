// The mount's counters through swift-metrics, for the opt-in metrics endpoint (`metrics=`).
//
// Design note: MountStatistics records every event here as well as in its own atomics (which
// `obsmount status` reads); without a metrics backend (the executable bootstraps the Prometheus
// one only with `metrics=`) these are swift-metrics' no-op handlers. Request latencies and retries
// come from the client's RequestObserver: one histogram per operation, one counter per operation
// and error code. Names follow the Prometheus conventions (`_total`, `_bytes`, `_seconds`).
import CoreMetrics
import OBSClient
import Synchronization

struct MountMetrics: Sendable {
    let bytesUploaded = Counter(label: "obsmount_uploaded_bytes_total")
    let partsUploaded = Counter(label: "obsmount_uploaded_parts_total")
    let objectsCompleted = Counter(label: "obsmount_objects_completed_total")
    let uploadsFailed = Counter(label: "obsmount_uploads_failed_total")
    let uploadsAborted = Counter(label: "obsmount_uploads_aborted_total")
    let openUploads = Meter(label: "obsmount_open_uploads")
    /// The latency histogram of each operation, made once (making one looks it up in the registry).
    private let latencies = LatencyTimers()

    /// An attempt's latency, and a retry counted by operation and error code.
    func record(_ attempt: RequestAttempt) {
        latencies.timer(for: attempt.operation)
            .recordNanoseconds(attempt.duration.components.seconds * 1_000_000_000 + attempt.duration.components.attoseconds / 1_000_000_000)
        guard attempt.willRetry else { return }
        let code = attempt.errorCode ?? attempt.status.map { "HTTP\($0)" } ?? "unknown"
        Counter(label: "obsmount_request_retries_total", dimensions: [("operation", attempt.operation), ("code", code)]).increment()
    }
}

/// Request latency timers by operation.
private final class LatencyTimers: Sendable {
    /// The timers made so far, by operation.
    private let timers = Mutex<[String: Timer]>([:])

    func timer(for operation: String) -> Timer {
        timers.withLock { timers in
            if let timer = timers[operation] { return timer }
            let timer = Timer(label: "obsmount_request_duration_seconds", dimensions: [("operation", operation)])
            timers[operation] = timer
            return timer
        }
    }
}
