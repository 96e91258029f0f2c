// The one pool of read buffers for the whole mount, bounded by `read_memory_budget=`.
//
// Two kinds of use share the budget. Retained memory — prefetched windows and the small cache of
// recent random reads — stays allocated between reads and is only ever taken without waiting,
// up to `capacity − demandReserve`. Demand memory — the buffer of a read the kernel is waiting
// for, released when that read has copied its bytes out — may wait (FIFO, cancellable) for any
// free byte. Retained memory can never take the reserve, and demand buffers always come back, so
// a waiting read always gets memory eventually, however many files sit idle with full windows.
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

        mutating func account(_ size: Int) {
            allocatedBytes += size
            peakBytes = max(peakBytes, allocatedBytes)
        }
    }

    public let capacity: Int
    /// Bytes that only demand reads may use.
    public let demandReserve: Int
    /// Guards the byte accounting and the queue of waiting reads.
    private let state = Mutex(State())

    /// - Parameters:
    ///   - capacity: bytes of read buffers for the whole mount.
    ///   - demandReserve: bytes retained memory may not use (default a quarter of `capacity`);
    ///     a demand buffer is at most this large.
    public init(capacity: Int, demandReserve: Int? = nil) {
        let reserve = demandReserve ?? capacity / 4
        precondition(capacity > 0 && reserve > 0 && reserve <= capacity, "read pool needs a positive capacity and reserve")
        self.capacity = capacity
        self.demandReserve = reserve
    }

    /// Bytes of live buffers now; never above `capacity`.
    public var allocatedBytes: Int { state.withLock { $0.allocatedBytes } }
    /// The most bytes that were ever live at once.
    public var peakBytes: Int { state.withLock { $0.peakBytes } }
    /// Demand reads waiting for memory.
    public var waitingReads: Int { state.withLock { $0.waiters.entries.count } }

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

    /// Called by a buffer's deinit: its bytes are free; wakes the waiters that now fit.
    fileprivate func release(_ buffer: ReadBuffer) {
        let served = state.withLock { state in
            state.allocatedBytes -= buffer.byteCount
            if buffer.isRetained.load(ordering: .relaxed) { state.retainedBytes -= buffer.byteCount }
            return serveWaiters(&state)
        }
        resume(served)
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
        rawBytes = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: 4096)
        self.pool = pool
        isRetained = Atomic(retained)
    }

    public var byteCount: Int { rawBytes.count }

    deinit {
        rawBytes.deallocate()
        pool.release(self)
    }
}
