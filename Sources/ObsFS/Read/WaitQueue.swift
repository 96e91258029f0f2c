// Suspending a task on a queue it can leave: the reads' waits (for pool memory, for a GET in
// flight) end with CancellationError when the waiting task is cancelled (an interrupted read),
// instead of holding the task until memory or bytes arrive.
import Synchronization

/// Hands out the identities of waiters, so a cancellation handler knows which entry to withdraw.
private let waiterIdentities = Atomic<UInt64>(0)

/// Suspended tasks in arrival order, each with the units it waits for. Lives inside the owner's
/// lock; the owner resumes the continuations after releasing it.
struct WaitQueue<Value: Sendable> {
    typealias Continuation = CheckedContinuation<Value, any Error>

    struct Entry {
        let id: UInt64
        /// What the waiter asks for (bytes, for the pool).
        let units: Int
        let continuation: Continuation
    }

    private(set) var entries: [Entry] = []

    var isEmpty: Bool { entries.isEmpty }
    var first: Entry? { entries.first }

    mutating func append(id: UInt64, units: Int = 0, _ continuation: Continuation) {
        entries.append(Entry(id: id, units: units, continuation: continuation))
    }

    mutating func removeFirst() -> Entry { entries.removeFirst() }

    mutating func removeAll() -> [Entry] {
        defer { entries = [] }
        return entries
    }

    /// Withdraws a waiter (its task was cancelled); nil when it was already served.
    mutating func remove(id: UInt64) -> Continuation? {
        guard let index = entries.firstIndex(where: { $0.id == id }) else { return nil }
        return entries.remove(at: index).continuation
    }

    /// Suspends the calling task. `enqueue` runs once, before suspension: under the owner's lock
    /// it either answers at once (a value, or `CancellationError` when `Task.isCancelled` — it
    /// must check that under the lock) or appends the continuation with the given id and answers
    /// nil. When the task is cancelled later, `withdraw` removes that entry under the lock and the
    /// wait ends with `CancellationError`; an entry already served keeps its value.
    static func suspend(enqueue: (UInt64, Continuation) -> Result<Value, any Error>?,
                        withdraw: @escaping @Sendable (UInt64) -> Continuation?) async throws -> Value {
        let id = waiterIdentities.add(1, ordering: .relaxed).newValue
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Continuation) in
                if let immediate = enqueue(id, continuation) { continuation.resume(with: immediate) }
            }
        } onCancel: {
            withdraw(id)?.resume(throwing: CancellationError())
        }
    }
}
