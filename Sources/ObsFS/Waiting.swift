// Asynchronous waiting without blocking a thread: a counting budget with FIFO waiters, and a
// one-shot value that tasks can await.
import Synchronization

/// A counted resource (bytes, buffers) that callers take and give back. `acquire` suspends the
/// calling task until enough is free; waiters are served in arrival order. A waiter of
/// `acquireUnlessCancelled` whose task is cancelled leaves the queue at once (and the waiters
/// behind it are served if it was holding them up).
final class AsyncBudget: Sendable {
    private struct Waiter {
        let id: UInt64
        let units: Int64
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var available: Int64
        var waiters: [Waiter] = []
        var lastWaiterID: UInt64 = 0
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
        _ = await wait(units, cancellable: false)
    }

    /// Like `acquire`, but a cancelled task stops waiting: false, and nothing was taken.
    func acquireUnlessCancelled(_ units: Int64) async -> Bool {
        await wait(units, cancellable: true)
    }

    private func wait(_ units: Int64, cancellable: Bool) async -> Bool {
        if tryAcquire(units) { return true }
        let id = state.withLock { state in
            state.lastWaiterID += 1
            return state.lastWaiterID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let granted = state.withLock { state -> Bool? in
                    if cancellable && Task.isCancelled { return false }
                    if state.waiters.isEmpty, state.available >= units {
                        state.available -= units
                        return true
                    }
                    state.waiters.append(Waiter(id: id, units: units, continuation: continuation))
                    return nil
                }
                if let granted { continuation.resume(returning: granted) }
            }
        } onCancel: {
            if cancellable { withdraw(id) }
        }
    }

    /// Removes a waiter whose task was cancelled (it gets false) and serves those behind it.
    private func withdraw(_ id: UInt64) {
        let (withdrawn, woken) = state.withLock { state -> (CheckedContinuation<Bool, Never>?, [CheckedContinuation<Bool, Never>]) in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return (nil, []) }
            let withdrawn = state.waiters.remove(at: index).continuation
            return (withdrawn, serve(&state))
        }
        withdrawn?.resume(returning: false)
        for continuation in woken { continuation.resume(returning: true) }
    }

    func release(_ units: Int64) {
        let woken = state.withLock { state in
            state.available += units
            return serve(&state)
        }
        for continuation in woken { continuation.resume(returning: true) }
    }

    /// Grants the waiters at the head of the queue that now fit.
    private func serve(_ state: inout State) -> [CheckedContinuation<Bool, Never>] {
        var woken: [CheckedContinuation<Bool, Never>] = []
        while let first = state.waiters.first, first.units <= state.available {
            state.available -= first.units
            woken.append(first.continuation)
            state.waiters.removeFirst()
        }
        return woken
    }
}

/// A value produced once and awaited by any number of tasks (also the FUSE adapter's race between
/// an answer and an interrupt).
public final class OneShot<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [CheckedContinuation<Value, Never>] = []
    }

    /// Guards the value and the tasks waiting for it.
    private let state = Mutex(State())

    public init() {}

    /// Sets the value and wakes every waiter. Later calls are ignored; returns whether this one won.
    @discardableResult
    public func fulfill(_ value: Value) -> Bool {
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

    public var current: Value? { state.withLock { $0.value } }

    public var value: Value {
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
