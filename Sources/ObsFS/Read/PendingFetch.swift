// A GET of a read stream, in flight or done, that any number of reads await.
import Synchronization

/// The outcome of one GET into a pool buffer: the buffer, or why it failed.
final class PendingFetch: Sendable {
    private struct State {
        var outcome: Result<ReadBuffer, any Error>?
        var waiters = WaitQueue<ReadBuffer>()
    }

    /// Guards the outcome and the reads waiting for it.
    private let state = Mutex(State())

    init() {}

    /// A fetch that is already done (a cached demand read).
    init(done buffer: ReadBuffer) { state.withLock { $0.outcome = .success(buffer) } }

    /// Sets the outcome (once) and wakes every waiting read.
    func finish(_ outcome: Result<ReadBuffer, any Error>) {
        let waiters = state.withLock { state -> [WaitQueue<ReadBuffer>.Entry] in
            guard state.outcome == nil else { return [] }
            state.outcome = outcome
            return state.waiters.removeAll()
        }
        for waiter in waiters { waiter.continuation.resume(with: outcome) }
    }

    /// Whether the GET ended in failure (a later read then fetches afresh).
    var failed: Bool {
        state.withLock { state in
            if case .failure? = state.outcome { return true }
            return false
        }
    }

    /// The buffer once the GET is done; throws its failure, or `CancellationError` when the
    /// waiting task is cancelled first.
    func buffer() async throws -> ReadBuffer {
        try await WaitQueue<ReadBuffer>.suspend(enqueue: { id, continuation in
            state.withLock { state in
                if let outcome = state.outcome { return outcome }
                if Task.isCancelled { return .failure(CancellationError()) }
                state.waiters.append(id: id, continuation)
                return nil
            }
        }, withdraw: { [self] id in
            state.withLock { $0.waiters.remove(id: id) }
        })
    }
}
