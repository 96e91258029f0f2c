// Names found missing, remembered for `negative_timeout=` so that repeated misses (a shell's
// PATH search, `git`'s probes, a build's include search) cost no request. This mount's own
// creates, mkdirs, symlinks and renames remove their names at once; a name created by another
// client is seen when its entry expires.
import Synchronization

final class NegativeCache: Sendable {
    private struct Key: Hashable {
        let parent: InodeNumber
        let name: String
    }

    /// At most this many names; expired ones are dropped first, then the oldest.
    static let capacity = 65_536

    private let timeout: Duration
    /// Missing names and when they stop being trusted.
    private let entries = Mutex<[Key: ContinuousClock.Instant]>([:])

    init(timeout: Duration) { self.timeout = timeout }

    func contains(_ parent: InodeNumber, _ name: String) -> Bool {
        let now = ContinuousClock.now
        return entries.withLock { entries in
            guard let expiry = entries[Key(parent: parent, name: name)] else { return false }
            if expiry > now { return true }
            entries[Key(parent: parent, name: name)] = nil
            return false
        }
    }

    func insert(_ parent: InodeNumber, _ name: String) {
        guard timeout > .zero else { return }
        let now = ContinuousClock.now
        entries.withLock { entries in
            if entries.count >= NegativeCache.capacity {
                entries = entries.filter { $0.value > now }
                if entries.count >= NegativeCache.capacity, let oldest = entries.min(by: { $0.value < $1.value })?.key { entries[oldest] = nil }
            }
            entries[Key(parent: parent, name: name)] = now + timeout
        }
    }

    func remove(_ parent: InodeNumber, _ name: String) {
        _ = entries.withLock { $0.removeValue(forKey: Key(parent: parent, name: name)) }
    }
}
