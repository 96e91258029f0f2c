// Asynchronous waiting without blocking a thread: a counting budget with FIFO waiters, and a
// one-shot value that tasks can await.
import Synchronization

/// A counted resource (bytes, buffers) that callers take and give back. `acquire` suspends the
/// calling task until enough is free; waiters are served in arrival order.
final class AsyncBudget: Sendable {
    private struct State {
        var available: Int64
        var waiters: [(units: Int64, continuation: CheckedContinuation<Void, Never>)] = []
    }

    /// Guards the free count and the FIFO of suspended acquirers.
    private let state: Mutex<State>

    init(units: Int64) { state = Mutex(State(available: units)) }

    /// Takes `units` if they are free now and nobody is queued ahead.
    func tryAcquire(_ units: Int64) -> Bool {
        state.withLock { state in
            guard state.waiters.isEmpty, state.available >= units else { return false }
            state.available -= units
            return true
        }
    }

    func acquire(_ units: Int64) async {
        if tryAcquire(units) { return }
        await withCheckedContinuation { continuation in
            let granted = state.withLock { state -> Bool in
                if state.waiters.isEmpty, state.available >= units {
                    state.available -= units
                    return true
                }
                state.waiters.append((units, continuation))
                return false
            }
            if granted { continuation.resume() }
        }
    }

    func release(_ units: Int64) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.available += units
            var woken: [CheckedContinuation<Void, Never>] = []
            while let first = state.waiters.first, first.units <= state.available {
                state.available -= first.units
                woken.append(first.continuation)
                state.waiters.removeFirst()
            }
            return woken
        }
        for continuation in woken { continuation.resume() }
    }
}

/// A value produced once and awaited by any number of tasks.
final class OneShot<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [CheckedContinuation<Value, Never>] = []
    }

    /// Guards the value and the tasks waiting for it.
    private let state = Mutex(State())

    init() {}

    /// Sets the value and wakes every waiter. Later calls are ignored; returns whether this one won.
    @discardableResult
    func fulfill(_ value: Value) -> Bool {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, Never>]? in
            guard state.value == nil else { return nil }
            state.value = value
            defer { state.waiters = [] }
            return state.waiters
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume(returning: value) }
        return true
    }

    var current: Value? { state.withLock { $0.value } }

    var value: Value {
        get async {
            if let value = current { return value }
            return await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Value? in
                    if let value = state.value { return value }
                    state.waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}
