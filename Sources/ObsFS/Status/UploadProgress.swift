// Live counters of one upload session, for `obsmount status`, STATUS= and the metrics endpoint.
//
// Design note: the session updates these with relaxed atomics from the places where parts start
// and end (a handful of lines in UploadSession.swift, marked "status:"); readers take a snapshot
// at any time without touching the session's lock, except for the written size, which the
// session already exposes. A snapshot is therefore a near-instant view, not a consistent cut.
import OBSProtocol
import Synchronization

/// Counters of one open upload. Created with its session; the session reports into it.
public final class UploadProgress: Sendable {
    /// Registers the upload with the mount's statistics until `finished`.
    let statistics: MountStatistics
    /// When the file was opened (monotonic), for the rate.
    let opened = ContinuousClock.now
    /// Bytes of parts the store has acknowledged.
    let durableBytes = Atomic<Int64>(0)
    let partsInFlight = Atomic<Int>(0)
    let partsUploaded = Atomic<Int>(0)
    /// Part requests the client sent again after a retryable failure.
    let partRetries = Atomic<Int>(0)
    /// The written size at the previous snapshot, for the current rate.
    private let lastSample: Mutex<(at: ContinuousClock.Instant, written: Int64, bytesPerSecond: Double)>

    init(statistics: MountStatistics) {
        self.statistics = statistics
        lastSample = Mutex((opened, 0, 0))
    }

    /// A part upload starts.
    func partStarted() {
        partsInFlight.wrappingAdd(1, ordering: .relaxed)
    }

    /// A part upload ended: `bytes` acknowledged, or nil when it failed.
    func partEnded(bytes: Int?) {
        partsInFlight.wrappingSubtract(1, ordering: .relaxed)
        guard let bytes else { return }
        durableBytes.wrappingAdd(Int64(bytes), ordering: .relaxed)
        partsUploaded.wrappingAdd(1, ordering: .relaxed)
        statistics.partUploaded(bytes: bytes)
    }

    /// Bytes per second written over the time since the previous snapshot (at least one second),
    /// or since the file was opened.
    func rate(written: Int64, now: ContinuousClock.Instant) -> Double {
        lastSample.withLock { sample in
            let elapsed = (now - sample.at).seconds
            if elapsed >= 1 {
                sample.bytesPerSecond = Double(written - sample.written) / elapsed
                sample = (now, written, sample.bytesPerSecond)
            } else if sample.written == 0, sample.at == opened {
                let sinceOpen = (now - opened).seconds
                return sinceOpen > 0 ? Double(written) / sinceOpen : 0
            }
            return sample.bytesPerSecond
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
