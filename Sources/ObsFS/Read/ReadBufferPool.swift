// The one pool of read buffers for the whole mount, bounded by `read_memory_budget=`.
//
// Two kinds of use share the budget. Retained memory — prefetched windows and the small cache of
// recent random reads — stays allocated between reads and is only ever taken without waiting,
// up to `capacity − demandReserve`. Demand memory — the buffer of a read the kernel is waiting
// for, released when that read has copied its bytes out — may wait (FIFO, cancellable) for any
// free byte. Retained memory can never take the reserve, and demand buffers always come back, so
// a waiting read always gets memory eventually, however many files sit idle with full windows.
//
// Freed buffers are kept for reuse (`spare`, at most `capacity / 8` bytes, and never more than
// the budget leaves beside the live buffers): a sequential reader frees a chunk and takes one of
// the same size for the next prefetch, and a fresh allocation of megabytes costs the kernel a
// mapping, a page fault and a page zeroed per 4 KiB (measured: about a sixth of the CPU of a
// 1 GiB read).
import OBSProtocol
import Synchronization

/// Page-aligned read buffers. The bytes of all live buffers never exceed `capacity`; a buffer's
/// bytes return to the pool when its last reference goes (a GET still writing into it keeps it).
public final class ReadBufferPool: Sendable {
    private struct State {
        /// Bytes of all live buffers.
        var allocatedBytes = 0
        /// Bytes of live buffers kept between reads (prefetched, cached).
        var retainedBytes = 0
        /// The most `allocatedBytes` has been.
        var peakBytes = 0
        /// Demand reads waiting for memory, served in order.
        var waiters = WaitQueue<ReadBuffer>()
        /// Memory of freed buffers, by size, for the next buffers of that size.
        var spare: [Int: [SpareMemory]] = [:]
        /// Bytes in `spare`.
        var spareBytes = 0

        /// Live and spare bytes together stay within this (the pool's capacity).
        let capacity: Int

        mutating func account(_ size: Int) {
            allocatedBytes += size
            peakBytes = max(peakBytes, allocatedBytes)
            trimSpare()
        }

        /// Frees spare memory while live and spare bytes together exceed the budget.
        mutating func trimSpare() {
            while allocatedBytes + spareBytes > capacity, let size = spare.first(where: { !$0.value.isEmpty })?.key,
                  let memory = spare[size]?.popLast() {
                memory.bytes.deallocate()
                spareBytes -= size
            }
        }
    }

    public let capacity: Int
    /// The most bytes of freed buffers kept for reuse.
    let spareLimit: Int
    /// Bytes that only demand reads may use.
    public let demandReserve: Int
    /// Guards the byte accounting, the queue of waiting reads and the spare memory (freed under
    /// it only when live buffers need the room back).
    private let state: Mutex<State>

    /// - Parameters:
    ///   - capacity: bytes of read buffers for the whole mount.
    ///   - demandReserve: bytes retained memory may not use (default a quarter of `capacity`);
    ///     a demand buffer is at most this large.
    public init(capacity: Int, demandReserve: Int? = nil) {
        let reserve = demandReserve ?? capacity / 4
        precondition(capacity > 0 && reserve > 0 && reserve <= capacity, "read pool needs a positive capacity and reserve")
        self.capacity = capacity
        self.demandReserve = reserve
        spareLimit = capacity / 8
        state = Mutex(State(capacity: capacity))
    }

    /// Bytes of live buffers now; never above `capacity`.
    public var allocatedBytes: Int { state.withLock { $0.allocatedBytes } }
    /// The most bytes that were ever live at once.
    public var peakBytes: Int { state.withLock { $0.peakBytes } }
    /// Demand reads waiting for memory.
    public var waitingReads: Int { state.withLock { $0.waiters.entries.count } }
    /// Bytes of freed buffers kept for reuse.
    public var spareBytes: Int { state.withLock { $0.spareBytes } }

    /// A buffer to keep between reads (a prefetch), if the retained share has room now and no
    /// demand read is waiting.
    public func tryTakeRetained(size: Int) -> ReadBuffer? {
        let granted = state.withLock { state -> Bool in
            guard state.waiters.isEmpty, state.retainedBytes + size <= capacity - demandReserve,
                  state.allocatedBytes + size <= capacity else { return false }
            state.retainedBytes += size
            state.account(size)
            return true
        }
        return granted ? ReadBuffer(byteCount: size, pool: self, retained: true) : nil
    }

    /// A buffer for a read in progress, waiting (in arrival order) while the budget is used up.
    /// Throws `CancellationError` when the task is cancelled before memory is granted.
    public func take(size: Int) async throws -> ReadBuffer {
        precondition(size > 0 && size <= demandReserve, "demand read larger than the pool's reserve")
        return try await WaitQueue<ReadBuffer>.suspend(enqueue: { id, continuation in
            let granted = state.withLock { state -> Bool? in
                if Task.isCancelled { return nil }
                if state.waiters.isEmpty, state.allocatedBytes + size <= capacity {
                    state.account(size)
                    return true
                }
                state.waiters.append(id: id, units: size, continuation)
                return false
            }
            switch granted {
            case nil: return .failure(CancellationError())
            case true?: return .success(ReadBuffer(byteCount: size, pool: self, retained: false))
            case false?: return nil
            }
        }, withdraw: { [self] id in
            // A withdrawn head may have been blocking smaller requests behind it.
            let (continuation, served) = state.withLock { state in (state.waiters.remove(id: id), serveWaiters(&state)) }
            resume(served)
            return continuation
        })
    }

    /// Moves a demand buffer into the retained share (to cache it), if that share has room.
    /// Returns false, changing nothing, when it has not.
    func retain(_ buffer: ReadBuffer) -> Bool {
        state.withLock { state in
            if buffer.isRetained.load(ordering: .relaxed) { return true }
            guard state.retainedBytes + buffer.byteCount <= capacity - demandReserve else { return false }
            state.retainedBytes += buffer.byteCount
            buffer.isRetained.store(true, ordering: .relaxed)
            return true
        }
    }

    /// Memory for a new buffer of `size` bytes (already granted): a spare one of that size, or
    /// new memory.
    fileprivate func memory(_ size: Int) -> UnsafeMutableRawBufferPointer {
        let reused = state.withLock { state -> SpareMemory? in
            guard let memory = state.spare[size]?.popLast() else { return nil }
            state.spareBytes -= size
            return memory
        }
        return reused?.bytes ?? UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
    }

    /// Called by a buffer's deinit: its bytes are free (kept as spare memory when there is room);
    /// wakes the waiters that now fit.
    fileprivate func release(_ buffer: ReadBuffer, memory: UnsafeMutableRawBufferPointer) {
        let (served, kept) = state.withLock { state in
            state.allocatedBytes -= buffer.byteCount
            if buffer.isRetained.load(ordering: .relaxed) { state.retainedBytes -= buffer.byteCount }
            let kept = state.spareBytes + memory.count <= min(spareLimit, capacity - state.allocatedBytes)
            if kept {
                state.spare[memory.count, default: []].append(SpareMemory(bytes: memory))
                state.spareBytes += memory.count
            }
            return (serveWaiters(&state), kept)
        }
        if !kept { memory.deallocate() }
        resume(served)
    }

    deinit {
        state.withLock { state in
            for memory in state.spare.values.joined() { memory.bytes.deallocate() }
        }
    }

    /// Grants memory to the waiters at the head of the queue that fit, in order.
    private func serveWaiters(_ state: inout State) -> [WaitQueue<ReadBuffer>.Entry] {
        var served: [WaitQueue<ReadBuffer>.Entry] = []
        while let first = state.waiters.first, state.allocatedBytes + first.units <= capacity {
            state.account(first.units)
            served.append(state.waiters.removeFirst())
        }
        return served
    }

    /// Allocates and hands over the buffers granted to `served`, outside the lock.
    private func resume(_ served: [WaitQueue<ReadBuffer>.Entry]) {
        for entry in served {
            entry.continuation.resume(returning: ReadBuffer(byteCount: entry.units, pool: self, retained: false))
        }
    }
}

/// One read buffer of a `ReadBufferPool`; GETs write into it in place. Its bytes are given back
/// to the pool when the last reference goes.
public final class ReadBuffer: RawMemoryOwner, @unchecked Sendable {
    // @unchecked: the pointer never changes after init; one GET writes the bytes, and readers
    // only read them after that GET has finished.
    public let rawBytes: UnsafeMutableRawBufferPointer
    private let pool: ReadBufferPool
    /// Counted in the pool's retained share; changed only under the pool's lock.
    fileprivate let isRetained: Atomic<Bool>

    fileprivate init(byteCount: Int, pool: ReadBufferPool, retained: Bool) {
        rawBytes = pool.memory(byteCount)
        self.pool = pool
        isRetained = Atomic(retained)
    }

    public var byteCount: Int { rawBytes.count }

    deinit {
        pool.release(self, memory: rawBytes)
    }
}

/// The memory of a freed buffer, kept by the pool (under its lock) until reused or freed.
private struct SpareMemory: @unchecked Sendable {
    // @unchecked: owned by the pool's state alone; no buffer refers to it any more.
    let bytes: UnsafeMutableRawBufferPointer
}
