// HEADs sent ahead for the names a listing showed as files, so that `ls -l` right after a
// listing finds most attributes already fetched. The kernel asks for attributes in few of its
// readdir requests (READDIRPLUS_AUTO) and then looks the other names up one after the other,
// one HEAD each; s3fs answers those lookups from the stat cache its readdir fills with parallel
// HEADs.
//
// A lookup of a name the listing showed as a file (FileSystem+Lookup.swift) starts HEADs for
// the next `window` such names of that listing, `parallel` at a time, and takes the HEAD already
// sent for its own name instead of sending another. A fetched answer is used once, within
// `attr_timeout=` (the trust given to any fetched attributes; 0 turns this off); any change this
// mount makes in the directory drops the directory's answers, so this mount's own changes are
// seen at once.
import OBSProtocol
import Synchronization

final class ListedPrefetch: Sendable {
    /// One HEAD sent ahead: the object's attributes, nil when there is no such object.
    typealias Fetch = OneShot<Result<ObjectAttributes?, any Error>>

    private struct Key: Hashable {
        let directory: InodeNumber
        let name: ExactName
        init(directory: InodeNumber, name: String) {
            self.directory = directory
            self.name = ExactName(name)
        }
    }

    /// The names of one directory's listing that it showed as files, in listing order.
    private struct Listing {
        var names: [String] = []
        var positions: [ExactName: Int] = [:]
    }

    private struct State {
        var listings: [InodeNumber: Listing] = [:]
        var fetches: [Key: (fetch: Fetch, started: ContinuousClock.Instant)] = [:]
    }

    /// Names fetched ahead of a lookup, and HEADs in flight at once.
    static let window = 64
    static let parallel = 16
    /// Listed names kept per directory, and directories kept (the oldest go first).
    static let namesPerDirectory = 10_000
    static let directoryCount = 64

    /// The listings and the fetches started or done; held for dictionary work only.
    private let state = Mutex(State())
    /// How long a fetched answer may be used (`attr_timeout=`).
    private let lifetime: Duration

    init(lifetime: Duration) { self.lifetime = lifetime }

    /// Names a readdir reply showed as files in `directory`, in order (added to those before).
    func listed(_ names: [String], in directory: InodeNumber) {
        guard !names.isEmpty, lifetime > .zero else { return }
        state.withLock { state in
            if state.listings[directory] == nil, state.listings.count >= ListedPrefetch.directoryCount {
                state.listings = [:]
            }
            var listing = state.listings[directory] ?? Listing()
            for name in names where listing.positions[ExactName(name)] == nil && listing.names.count < ListedPrefetch.namesPerDirectory {
                listing.positions[ExactName(name)] = listing.names.count
                listing.names.append(name)
            }
            state.listings[directory] = listing
        }
    }

    /// An answer for `name` known without a HEAD (one an earlier mount saved, SavedHeadAnswers),
    /// taken by its lookup as a HEAD sent ahead would be.
    func hold(_ answer: ObjectAttributes, for name: String, in directory: InodeNumber) {
        guard lifetime > .zero else { return }
        let fetch = Fetch()
        fetch.fulfill(.success(answer))
        state.withLock { $0.fetches[Key(directory: directory, name: name)] = (fetch, .now) }
    }

    /// The HEAD sent ahead for `name`, if it is fresh; it is used once.
    func take(_ name: String, in directory: InodeNumber) -> Fetch? {
        state.withLock { state in
            guard let fetched = state.fetches.removeValue(forKey: Key(directory: directory, name: name)),
                  fetched.started + lifetime > .now else { return nil }
            return fetched.fetch
        }
    }

    /// Starts HEADs (`head`) for the `window` listed names after `name` that have none fresh.
    func fetchAhead(after name: String, in directory: InodeNumber, head: @escaping @Sendable (String) async throws -> ObjectAttributes?) {
        let now = ContinuousClock.now
        let work = state.withLock { state -> [(String, Fetch)] in
            guard let listing = state.listings[directory], let position = listing.positions[ExactName(name)] else { return [] }
            state.fetches = state.fetches.filter { $0.value.started + lifetime > now }
            var work: [(String, Fetch)] = []
            for next in listing.names[(position + 1)...].prefix(ListedPrefetch.window) {
                let key = Key(directory: directory, name: next)
                guard state.fetches[key] == nil else { continue }
                let fetch = Fetch()
                state.fetches[key] = (fetch, now)
                work.append((next, fetch))
            }
            return work
        }
        guard !work.isEmpty else { return }
        Task {
            await withTaskGroup(of: Void.self) { group in
                var pending = work.makeIterator()
                func startNext() {
                    guard let (next, fetch) = pending.next() else { return }
                    group.addTask {
                        do {
                            fetch.fulfill(.success(try await head(next)))
                        } catch {
                            fetch.fulfill(.failure(error))
                        }
                    }
                }
                for _ in 0..<ListedPrefetch.parallel { startNext() }
                while await group.next() != nil { startNext() }
            }
        }
    }

    /// This mount changed something in `directory`: what was fetched there may be stale.
    func forget(_ directory: InodeNumber) {
        state.withLock { state in
            state.fetches = state.fetches.filter { $0.key.directory != directory }
        }
    }
}
