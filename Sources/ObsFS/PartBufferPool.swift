// The one pool of part buffers for the whole mount, bounded by the memory budget.
//
// Writers are bounded at their first write, not in the middle of one: a file being written holds
// a reservation of one part buffer (`reserveWriter`) from its first write of bytes until its
// upload ends, and reservations never exceed the budget; a first write that would exceed it fails
// (ENOMEM, UploadSession.admit). Files opened and not written hold nothing. Why that is enough: a
// buffer is taken only to start filling a part, and only by a file holding a reservation, so
// every waiting task belongs to a file that holds no filling buffer; the buffers that exist are
// the filling ones of other files (together at most the budget minus the waiters' reservations)
// and those of parts being uploaded, which come back without any writer's help. So the first
// waiter is always served once uploads settle, and no writer can starve another by holding a
// half-filled part (the round-robin writer over more files than the budget holds parts used to
// block for ever). The reservation is one part of the initial size: parts that have grown (after
// the flat parts of PartSizeSchedule) are not covered, which needs files beyond 83 MiB (100K
// parts) or 6.8 GiB (8M parts) written side by side.
import OBSProtocol
import Synchronization

/// Page-aligned part buffers for every upload of a mount. The bytes of all buffers — handed out
/// or kept for reuse — never exceed `capacity`. A request that does not fit suspends its task
/// (FIFO) until buffers come back: this is the write path's backpressure.
///
/// Peak memory depends on the settings, not on timing: the pool first grows to
/// `warmBuffersPerSize` buffers of a size (one file's window, `parallel + 1`) and only then reuses
/// idle ones, oldest first. A long write therefore touches the same buffers whether the store
/// answers fast (one or two in use) or slowly (the whole window), so writing 512 MiB and 4 GiB
/// peak at the same resident size.
public final class PartBufferPool: Sendable {
    private struct State {
        /// Bytes of all buffers that exist: handed out plus idle.
        var allocatedBytes: Int64 = 0
        /// Returned buffers kept for reuse, by size.
        var idle: [Int64: [AlignedMemory]] = [:]
        var idleBytes: Int64 = 0
        /// Buffers that exist (handed out plus idle), by size.
        var countBySize: [Int64: Int] = [:]
        var waiters: [Waiter] = []
        var lastWaiterID: UInt64 = 0
        /// Bytes reserved by files being written, and how many such files.
        var reservedBytes: Int64 = 0
        var writers = 0
    }

    /// A task suspended in `take`: resumed with its buffer, or with nil when it stopped waiting.
    private struct Waiter {
        let id: UInt64
        let size: Int64
        let continuation: CheckedContinuation<AlignedMemory?, Never>
    }

    public let capacity: Int64
    /// How many buffers of one size the pool allocates before it reuses idle ones.
    public let warmBuffersPerSize: Int
    /// Guards the byte accounting, the idle buffers and the FIFO of waiting tasks.
    private let state = Mutex(State())

    public init(capacity: Int64, warmBuffersPerSize: Int = 1) {
        self.capacity = capacity
        self.warmBuffersPerSize = max(1, warmBuffersPerSize)
    }

    /// Bytes currently allocated (in use or idle); never above `capacity`.
    public var allocatedBytes: Int64 { state.withLock { $0.allocatedBytes } }

    /// Reserves one part buffer of `size` bytes for a file being written; nil when the
    /// reservations of the files already being written leave no room in the budget.
    public func reserveWriter(partSize size: Int64) -> WriterReservation? {
        let granted = state.withLock { state -> Bool in
            guard state.reservedBytes + size <= capacity else { return false }
            state.reservedBytes += size
            state.writers += 1
            return true
        }
        return granted ? WriterReservation(pool: self, bytes: size) : nil
    }

    /// Files holding a reservation, and the bytes they reserve.
    public var reservations: (writers: Int, bytes: Int64) { state.withLock { ($0.writers, $0.reservedBytes) } }

    fileprivate func endReservation(_ bytes: Int64) {
        state.withLock { state in
            state.reservedBytes -= bytes
            state.writers -= 1
        }
    }

    /// A buffer of exactly `size` bytes if one can be had without waiting.
    public func tryTake(size: Int64) -> AlignedMemory? {
        let (buffer, evicted) = state.withLock { state -> (AlignedMemory?, [AlignedMemory]) in
            guard state.waiters.isEmpty else { return (nil, []) }
            return grant(size, &state)
        }
        _ = evicted  // freed here, outside the lock
        return buffer
    }

    /// A buffer of exactly `size` bytes, waiting as long as the budget is used up.
    public func take(size: Int64) async -> AlignedMemory {
        await wait(size: size, cancellable: false)!
    }

    /// Like `take`, but a cancelled task stops waiting (nil): its place in the queue is gone at
    /// once, it never takes a buffer later, and the waiters behind it are served if it was
    /// holding them up (an interrupted write, UploadSession.swift).
    public func takeUnlessCancelled(size: Int64) async -> AlignedMemory? {
        await wait(size: size, cancellable: true)
    }

    private func wait(size: Int64, cancellable: Bool) async -> AlignedMemory? {
        precondition(size <= capacity, "part larger than the memory budget")
        if let buffer = tryTake(size: size) { return buffer }
        let id = state.withLock { state in
            state.lastWaiterID += 1
            return state.lastWaiterID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let (granted, evicted) = state.withLock { state -> (AlignedMemory??, [AlignedMemory]) in
                    // Checked under the lock: a cancellation after this finds the waiter queued.
                    if cancellable && Task.isCancelled { return (.some(nil), []) }
                    if state.waiters.isEmpty {
                        let (buffer, evicted) = grant(size, &state)
                        if let buffer { return (buffer, evicted) }
                    }
                    state.waiters.append(Waiter(id: id, size: size, continuation: continuation))
                    return (nil, [])
                }
                _ = evicted
                if let granted { continuation.resume(returning: granted) }
            }
        } onCancel: {
            if cancellable { withdraw(id) }
        }
    }

    /// Removes the waiter `id` (it gets nil) and serves the waiters behind it that now fit.
    private func withdraw(_ id: UInt64) {
        let (withdrawn, served, evicted) = state.withLock { state -> (CheckedContinuation<AlignedMemory?, Never>?, [(CheckedContinuation<AlignedMemory?, Never>, AlignedMemory)], [AlignedMemory]) in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return (nil, [], []) }
            let withdrawn = state.waiters.remove(at: index).continuation
            let (served, evicted) = serve(&state)
            return (withdrawn, served, evicted)
        }
        _ = evicted
        withdrawn?.resume(returning: nil)
        for (continuation, buffer) in served { continuation.resume(returning: buffer) }
    }

    /// Returns a buffer taken from this pool; wakes the waiters it can now serve.
    public func giveBack(_ buffer: AlignedMemory) {
        let (served, evicted) = state.withLock { state in
            let size = Int64(buffer.rawBytes.count)
            state.idle[size, default: []].append(buffer)
            state.idleBytes += size
            return serve(&state)
        }
        _ = evicted
        for (continuation, buffer) in served { continuation.resume(returning: buffer) }
    }

    /// Grants buffers to the waiters at the head of the queue, in order, while they fit.
    private func serve(_ state: inout State) -> ([(CheckedContinuation<AlignedMemory?, Never>, AlignedMemory)], [AlignedMemory]) {
        var served: [(CheckedContinuation<AlignedMemory?, Never>, AlignedMemory)] = []
        var evicted: [AlignedMemory] = []
        while let first = state.waiters.first {
            let (grant, freed) = self.grant(first.size, &state)
            evicted += freed
            guard let grant else { break }
            served.append((first.continuation, grant))
            state.waiters.removeFirst()
        }
        return (served, evicted)
    }

    /// Allocates while fewer than `warmBuffersPerSize` buffers of this size exist and the budget
    /// allows, else reuses the oldest idle buffer of the right size, else allocates within the
    /// budget, dropping idle buffers of other sizes when that makes room. The dropped buffers are
    /// returned so they are freed after the lock is released.
    private func grant(_ size: Int64, _ state: inout State) -> (AlignedMemory?, [AlignedMemory]) {
        let warming = state.countBySize[size, default: 0] < warmBuffersPerSize && state.allocatedBytes + size <= capacity
        if !warming, var same = state.idle[size], !same.isEmpty {
            let buffer = same.removeFirst()
            state.idle[size] = same.isEmpty ? nil : same
            state.idleBytes -= size
            return (buffer, [])
        }
        guard state.allocatedBytes - state.idleBytes + size <= capacity else { return (nil, []) }
        var evicted: [AlignedMemory] = []
        while state.allocatedBytes + size > capacity, let (idleSize, buffers) = state.idle.first {
            var rest = buffers
            evicted.append(rest.removeLast())
            state.idle[idleSize] = rest.isEmpty ? nil : rest
            state.idleBytes -= idleSize
            state.allocatedBytes -= idleSize
            state.countBySize[idleSize, default: 1] -= 1
        }
        guard state.allocatedBytes + size <= capacity else { return (nil, evicted) }
        state.allocatedBytes += size
        state.countBySize[size, default: 0] += 1
        return (AlignedMemory(byteCount: Int(size)), evicted)
    }
}

/// One file's claim on a part buffer of the pool (see `PartBufferPool.reserveWriter`).
public final class WriterReservation: Sendable {
    public let bytes: Int64
    private let pool: PartBufferPool
    private let released = Atomic<Bool>(false)

    fileprivate init(pool: PartBufferPool, bytes: Int64) {
        self.pool = pool
        self.bytes = bytes
    }

    /// Gives the reservation back (once; later calls do nothing).
    public func release() {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        pool.endReservation(bytes)
    }
}
