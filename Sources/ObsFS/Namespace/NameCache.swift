// Names remembered for a while, in two uses (FileSystem.swift):
// - the negative cache: names found missing, for `negative_timeout=`, so that repeated misses (a
//   shell's PATH search, `git`'s probes, a build's include search) cost no request. This mount's
//   own creates, mkdirs, symlinks and renames remove their names at once; a name created by
//   another client is seen when its entry expires;
// - listed files: names a listing showed as files with no directory of the same name, for
//   `attr_timeout=`, so that looking one up (`ls -l`) sends a HEAD without the one-key LIST.
import Synchronization

final class NameCache: Sendable {
    private struct Key: Hashable {
        let parent: InodeNumber
        let name: ExactName
    }

    /// At most this many names; expired ones are dropped first, then the oldest.
    static let capacity = 65_536

    private let timeout: Duration
    private struct Entries {
        var expiries: [Key: ContinuousClock.Instant] = [:]
        /// Counts this mount's creates: a miss seen by a lookup that started before one of them
        /// may be stale and is not remembered.
        var generation: UInt64 = 0
    }

    /// The names, when they stop being trusted, and the create generation.
    private let entries = Mutex(Entries())

    /// Taken before a lookup asks the store; `insert` compares it.
    var generation: UInt64 { entries.withLock { $0.generation } }

    init(timeout: Duration) { self.timeout = timeout }

    func contains(_ parent: InodeNumber, _ name: String) -> Bool { rememberedAt(parent, name) != nil }

    /// When `name` was remembered, while it is trusted.
    func rememberedAt(_ parent: InodeNumber, _ name: String) -> ContinuousClock.Instant? {
        let now = ContinuousClock.now
        return entries.withLock { entries in
            guard let expiry = entries.expiries[Key(parent: parent, name: ExactName(name))] else { return nil }
            if expiry > now { return expiry - timeout }
            entries.expiries[Key(parent: parent, name: ExactName(name))] = nil
            return nil
        }
    }

    /// Remembers a name, unless this mount created something since `generation` (nil: always).
    func insert(_ parent: InodeNumber, _ name: String, seenAt generation: UInt64? = nil) {
        guard timeout > .zero else { return }
        let now = ContinuousClock.now
        entries.withLock { entries in
            if let generation, generation != entries.generation { return }
            if entries.expiries.count >= NameCache.capacity {
                entries.expiries = entries.expiries.filter { $0.value > now }
                if entries.expiries.count >= NameCache.capacity, let oldest = entries.expiries.min(by: { $0.value < $1.value })?.key {
                    entries.expiries[oldest] = nil
                }
            }
            entries.expiries[Key(parent: parent, name: ExactName(name))] = now + timeout
        }
    }

    /// This mount made `name`: forget what was remembered of it.
    func remove(_ parent: InodeNumber, _ name: String) {
        entries.withLock { entries in
            entries.expiries[Key(parent: parent, name: ExactName(name))] = nil
            entries.generation &+= 1
        }
    }
}
