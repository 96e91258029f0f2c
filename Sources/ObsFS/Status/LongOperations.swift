// Long operations that are not uploads (a directory rename, a composition of changed ranges),
// for `obsmount status`: what runs, how far it is, for how long.
import Synchronization

/// One running operation; `advance` as its units are done.
public final class LongOperation: Sendable {
    let description: String
    /// Units of work (keys, bytes) in all; `unit` names them.
    let total: Int64
    let unit: String
    let done = Atomic<Int64>(0)
    let started = ContinuousClock.now

    init(description: String, total: Int64, unit: String) {
        self.description = description
        self.total = total
        self.unit = unit
    }

    func advance(by units: Int64 = 1) { done.wrappingAdd(units, ordering: .relaxed) }
}

/// The operations running now.
final class LongOperations: Sendable {
    /// Running operations by identity; taken only to add, remove or list.
    private let running = Mutex<[ObjectIdentifier: LongOperation]>([:])

    /// Registers an operation; `finished` must follow.
    func begin(_ description: String, total: Int64, unit: String) -> LongOperation {
        let operation = LongOperation(description: description, total: total, unit: unit)
        running.withLock { $0[ObjectIdentifier(operation)] = operation }
        return operation
    }

    func finished(_ operation: LongOperation) {
        _ = running.withLock { $0.removeValue(forKey: ObjectIdentifier(operation)) }
    }

    func snapshot(now: ContinuousClock.Instant) -> [StatusSnapshot.Operation] {
        running.withLock { Array($0.values) }.map { operation in
            StatusSnapshot.Operation(description: operation.description, done: operation.done.load(ordering: .relaxed),
                                     total: operation.total, unit: operation.unit, seconds: (now - operation.started).seconds)
        }.sorted { $0.seconds > $1.seconds }
    }
}
