// A test double of ObjectReader: objects in memory, every GET recorded, GETs optionally slowed
// down or held, If-Match enforced as the store does.
import OBSProtocol
import Synchronization
@testable import ObsFS

final class InMemoryObjectReader: ObjectReader {
    struct State {
        var objects: [ObjectKey: (bytes: [UInt8], etag: ETag)] = [:]
        var versions = 0
        /// Every GET's range, in the order they started.
        var gets: [Range<Int64>] = []
        var inFlight = 0
        var maxInFlight = 0
        var holding = false
        var held: [CheckedContinuation<Void, Never>] = []
    }

    /// Objects, recorded GETs and held requests.
    let state = Mutex(State())
    /// How long each GET takes, so prefetch GETs overlap.
    let latency: Duration?

    init(latency: Duration? = nil) { self.latency = latency }

    /// Stores (or replaces) an object; returns its new ETag.
    @discardableResult
    func put(_ key: String, _ bytes: [UInt8]) -> ETag {
        state.withLock { state in
            state.versions += 1
            let etag = ETag("version-\(state.versions)")
            state.objects[ObjectKey(key)] = (bytes, etag)
            return etag
        }
    }

    /// GETs wait until `release`.
    func hold() { state.withLock { $0.holding = true } }

    func release() {
        let held = state.withLock { state in
            state.holding = false
            defer { state.held = [] }
            return state.held
        }
        for continuation in held { continuation.resume() }
    }

    var gets: [Range<Int64>] { state.withLock { $0.gets } }
    var heldCount: Int { state.withLock { $0.held.count } }
    var maxInFlight: Int { state.withLock { $0.maxInFlight } }

    func readRange(_ key: ObjectKey, range: Range<Int64>, ifMatch: ETag?, customerKey: CustomerKey?,
                   into destination: MemoryRegion) async throws -> Int {
        state.withLock { state in
            state.gets.append(range)
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
        }
        defer { state.withLock { $0.inFlight -= 1 } }
        if let latency { try await Task.sleep(for: latency) }
        await withCheckedContinuation { continuation in
            let hold = state.withLock { state -> Bool in
                guard state.holding else { return false }
                state.held.append(continuation)
                return true
            }
            if !hold { continuation.resume() }
        }
        let object = state.withLock { $0.objects[key] }
        guard let object else { throw ServiceError(status: 404, code: .noSuchKey, message: "no \(key)") }
        if let ifMatch, ifMatch != object.etag {
            throw ObjectChangedError(key: key, expected: ifMatch, detail: "PreconditionFailed (412) from the test double")
        }
        precondition(range.lowerBound >= 0 && range.upperBound <= Int64(object.bytes.count), "GET beyond the object: \(range)")
        let slice = object.bytes[Int(range.lowerBound)..<Int(range.upperBound)]
        slice.withUnsafeBytes { destination.mutableBytes.copyMemory(from: $0) }
        return slice.count
    }
}
