// The one pool of part buffers for the whole mount, bounded by the memory budget.
import OBSProtocol
import Synchronization

/// Page-aligned part buffers for every upload of a mount. The bytes of all buffers — handed out
/// or kept for reuse — never exceed `capacity`. A request that does not fit suspends its task
/// (FIFO) until buffers come back: this is the write path's backpressure.
public final class PartBufferPool: Sendable {
    private struct State {
        /// Bytes of all buffers that exist: handed out plus idle.
        var allocatedBytes: Int64 = 0
        /// Returned buffers kept for reuse, by size.
        var idle: [Int64: [AlignedMemory]] = [:]
        var idleBytes: Int64 = 0
        var waiters: [(size: Int64, continuation: CheckedContinuation<AlignedMemory, Never>)] = []
    }

    public let capacity: Int64
    /// Guards the byte accounting, the idle buffers and the FIFO of waiting tasks.
    private let state = Mutex(State())

    public init(capacity: Int64) { self.capacity = capacity }

    /// Bytes currently allocated (in use or idle); never above `capacity`.
    public var allocatedBytes: Int64 { state.withLock { $0.allocatedBytes } }

    /// A buffer of exactly `size` bytes if one can be had without waiting.
    public func tryTake(size: Int64) -> AlignedMemory? {
        let (buffer, evicted) = state.withLock { state -> (AlignedMemory?, [AlignedMemory]) in
            guard state.waiters.isEmpty else { return (nil, []) }
            return PartBufferPool.grant(size, &state, capacity: capacity)
        }
        _ = evicted  // freed here, outside the lock
        return buffer
    }

    /// A buffer of exactly `size` bytes, waiting as long as the budget is used up.
    public func take(size: Int64) async -> AlignedMemory {
        precondition(size <= capacity, "part larger than the memory budget")
        if let buffer = tryTake(size: size) { return buffer }
        return await withCheckedContinuation { continuation in
            let (granted, evicted) = state.withLock { state -> (AlignedMemory?, [AlignedMemory]) in
                if state.waiters.isEmpty {
                    let result = PartBufferPool.grant(size, &state, capacity: capacity)
                    if result.0 != nil { return result }
                }
                state.waiters.append((size, continuation))
                return (nil, [])
            }
            _ = evicted
            if let granted { continuation.resume(returning: granted) }
        }
    }

    /// Returns a buffer taken from this pool; wakes the waiters it can now serve.
    public func giveBack(_ buffer: AlignedMemory) {
        let (served, evicted) = state.withLock { state -> ([(CheckedContinuation<AlignedMemory, Never>, AlignedMemory)], [AlignedMemory]) in
            let size = Int64(buffer.rawBytes.count)
            state.idle[size, default: []].append(buffer)
            state.idleBytes += size
            var served: [(CheckedContinuation<AlignedMemory, Never>, AlignedMemory)] = []
            var evicted: [AlignedMemory] = []
            while let first = state.waiters.first {
                let (grant, freed) = PartBufferPool.grant(first.size, &state, capacity: capacity)
                evicted += freed
                guard let grant else { break }
                served.append((first.continuation, grant))
                state.waiters.removeFirst()
            }
            return (served, evicted)
        }
        _ = evicted
        for (continuation, buffer) in served { continuation.resume(returning: buffer) }
    }

    /// Reuses an idle buffer of the right size, or allocates one within the budget, dropping idle
    /// buffers of other sizes when that makes room. The dropped buffers are returned so they are
    /// freed after the lock is released.
    private static func grant(_ size: Int64, _ state: inout State, capacity: Int64) -> (AlignedMemory?, [AlignedMemory]) {
        if var same = state.idle[size], let buffer = same.popLast() {
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
        }
        guard state.allocatedBytes + size <= capacity else { return (nil, evicted) }
        state.allocatedBytes += size
        return (AlignedMemory(byteCount: Int(size)), evicted)
    }
}
