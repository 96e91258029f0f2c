// Pages of the store's directory listings, reused by a later readdir of the same directory while
// they are younger than `attr_timeout=` and nothing was changed through this mount since they
// were fetched. A repeated `ls -l` (or `find`) of an unchanged tree then sends no LIST.
//
// Consistency: any call of this mount that may change what a listing shows (create, mkdir,
// symlink, mknod, unlink, rmdir, rename, an open for writing, flush, fsync, release, setattr,
// xattrs, fallocate, and a read that completes an upload) advances one generation, and a page
// fetched before the latest change is not reused, so this mount's own changes show at once.
// `write` does not (it is the hot path): a file written is listed from the open until its
// release (LocalNames), and its size and ETag in a listing count only when the ETag is the one
// the mount knows (FileSystem+Directories.swift, `refresh`). Other
// clients' changes show after at most `attr_timeout=`, as their names and attributes do
// (mount-options/semantics.md, "Caching and other clients"). `attr_timeout=0` keeps nothing.
import Synchronization

final class ListingCache: Sendable {
    struct PageKey: Hashable, Sendable {
        var prefix: String
        var marker: String?
        var maxKeys: Int
    }

    private struct Page {
        var listing: ObjectListing
        var generation: UInt64
        var fetched: ContinuousClock.Instant
    }

    /// At most this many pages are kept (the least recently fetched go first).
    static let capacity = 32

    private let lifetime: Duration
    /// Advanced by every change made through this mount.
    private let generation = Atomic<UInt64>(0)
    /// The pages kept, and their fetch order; never held across an await.
    private let pages = Mutex<(byKey: [PageKey: Page], order: [PageKey])>(([:], []))

    init(lifetime: Duration) { self.lifetime = lifetime }

    /// A change was (or is being) made through this mount: no page fetched before is reused.
    func noteChange() { generation.add(1, ordering: .sequentiallyConsistent) }

    /// The generation to give `keep` for a page about to be fetched (taken before the LIST).
    var currentGeneration: UInt64 { generation.load(ordering: .sequentiallyConsistent) }

    /// The page for `key` when it is still fresh.
    func page(_ key: PageKey) -> ObjectListing? {
        guard lifetime > .zero else { return nil }
        let now = ContinuousClock.now
        let current = currentGeneration
        return pages.withLock { pages in
            guard let page = pages.byKey[key], page.generation == current, now - page.fetched < lifetime else { return nil }
            return page.listing
        }
    }

    /// Keeps a page fetched from the store; `generation` is `currentGeneration` from before the LIST.
    func keep(_ listing: ObjectListing, for key: PageKey, generation: UInt64, fetched: ContinuousClock.Instant) {
        guard lifetime > .zero, generation == currentGeneration else { return }
        pages.withLock { pages in
            if pages.byKey.updateValue(Page(listing: listing, generation: generation, fetched: fetched), forKey: key) != nil {
                pages.order.removeAll { $0 == key }
            }
            pages.order.append(key)
            while pages.order.count > Self.capacity { pages.byKey[pages.order.removeFirst()] = nil }
        }
    }
}
