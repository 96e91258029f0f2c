// One open directory: its entries, fetched a page (one LIST) at a time as readdir asks.
//
// Entry i (counting `.` and `..`) has cookie i + 1. The reader keeps only the current page:
// a readdir that continues where the last one stopped costs nothing extra; one that goes back
// (seekdir/rewinddir) lists again from the start. Names follow KeyNaming's rules (the
// directory wins over a file of the same name within a page; unusable keys skipped with one
// log line; a file and a directory of the same name on two different pages are both listed,
// and lookup resolves the name to the directory). Files this mount is writing that the store
// does not list yet come after the last page; files unlinked while open, whose objects stay
// until their last descriptor closes, are not listed.
import Logging
import OBSProtocol

/// One name in a directory listing, with what the listing says of it.
public struct DirectoryEntry: Sendable, Equatable {
    public var name: String
    public var kind: FileKind
    /// The offset to resume after this entry.
    public var cookie: Int64
    /// The inode number when the table knows the name; nil otherwise.
    public var inode: InodeNumber?
    /// For a name the table does not know: the number its lookup is to give it (its path's own,
    /// InodeTable.stableNumber), shown as the entry's `d_ino`.
    public var expectedInode: InodeNumber?
    /// Size, ETag and date from the listing (files only).
    var listed: ObjectAttributes?
    /// What a HEAD found for readdirplus (Namespace/FileSystem+Directories.swift).
    var fetched: ObsFileSystem.RemoteEntry?
    /// A file, and its page proves no directory of the same name exists (the page reaches
    /// past where `name/` would be listed).
    var isOnlyAFile = false
}

/// What this mount knows of a directory that the store's listing may not show yet.
struct LocalNames: Sendable {
    /// Files being written (created here, not yet stored), with their kind: listed at the end.
    var writing: [ExactName: FileKind] = [:]
    /// Files unlinked while open: still stored until their last descriptor closes, not listed.
    var unlinked: Set<ExactName> = []
}

actor DirectoryReader {
    private enum Phase {
        /// Listing the store, after `marker`.
        case store(marker: String?)
        /// The store's listing is done: the names only this mount knows come last.
        case localNames
        case done
    }

    private let store: any ObjectStore
    /// Pages fetched by earlier readers, reused while fresh.
    private let listings: ListingCache
    private let listPrefix: String
    private let pageSize: Int
    private let logger: Logger
    private let dotEntries: [DirectoryEntry]
    /// What this mount knows of the directory that the store may not list yet.
    private let localNames: @Sendable () -> LocalNames
    /// The directory was removed while a process still has it (its working directory): it lists
    /// nothing, not even "." and "..", as on Linux.
    private let removed: Bool
    private var phase: Phase = .store(marker: nil)
    private var page: [DirectoryEntry] = []
    /// Cookie of the entry before `page`'s first.
    private var pageBase: Int64 = 2
    private var started = false
    /// Local names the store's listing contained (they are not added again at the end).
    private var localNamesListed: Set<ExactName> = []
    private var pendingLocal: [ExactName: FileKind] = [:]
    /// Files unlinked while open: still stored, not listed.
    private var unlinked: Set<ExactName> = []

    init(store: any ObjectStore, listings: ListingCache, listPrefix: String, pageSize: Int, selfInode: InodeNumber, parentInode: InodeNumber,
         logger: Logger, removed: Bool = false, localNames: @escaping @Sendable () -> LocalNames) {
        self.store = store
        self.removed = removed
        self.listings = listings
        self.listPrefix = listPrefix
        self.pageSize = pageSize
        self.logger = logger
        self.localNames = localNames
        dotEntries = [
            DirectoryEntry(name: ".", kind: .directory, cookie: 1, inode: selfInode),
            DirectoryEntry(name: "..", kind: .directory, cookie: 2, inode: parentInode),
        ]
    }

    /// Entries after cookie `offset`: the rest of the current page (or the next one); empty at the end.
    func entries(from offset: Int64) async throws -> [DirectoryEntry] {
        if removed { return [] }
        if offset < 2 { return Array(dotEntries[Int(max(offset, 0))...]) }
        if offset < pageBase || !started { restart() }
        while offset >= pageBase + Int64(page.count) {
            if case .done = phase { return [] }
            try await nextPage()
        }
        return Array(page[Int(offset - pageBase)...])
    }

    /// Keeps what HEADs found for entries of the current page (by cookie), so the next
    /// readdirplus of the same page does not ask again.
    func attach(_ fetched: [Int64: ObsFileSystem.RemoteEntry]) {
        for index in page.indices {
            if let remote = fetched[page[index].cookie] { page[index].fetched = remote }
        }
    }

    private func restart() {
        started = true
        phase = .store(marker: nil)
        page = []
        pageBase = 2
        let local = localNames()
        pendingLocal = local.writing
        unlinked = local.unlinked
        localNamesListed = []
    }

    private func nextPage() async throws {
        let nextBase = pageBase + Int64(page.count)
        var names: [(String, FileKind, ObjectAttributes?)] = []
        var listedUpTo: String?  // the last key this page covers; nil: the listing's end
        switch phase {
        case .store(let marker):
            let listing = try await listPage(after: marker)
            names = entries(of: listing)
            listedUpTo = listing.nextMarker
            phase = listing.nextMarker.map { .store(marker: $0) } ?? .localNames
        case .localNames:
            names = pendingLocal.filter { !localNamesListed.contains($0.key) }.sorted { $0.key < $1.key }.map { ($0.key.text, $0.value, nil) }
            phase = .done
        case .done:
            break
        }
        page = names.enumerated().map { index, entry in
            var listed = DirectoryEntry(name: entry.0, kind: entry.1, cookie: nextBase + Int64(index) + 1, listed: entry.2)
            listed.isOnlyAFile = entry.2 != nil && listedUpTo.map { $0 >= listPrefix + entry.0 + "/" } ?? true
            return listed
        }
        pageBase = nextBase
    }

    /// The store's page after `marker`: a fresh one from the cache, or a LIST.
    private func listPage(after marker: String?) async throws -> ObjectListing {
        let key = ListingCache.PageKey(prefix: listPrefix, marker: marker, maxKeys: pageSize)
        if let cached = listings.page(key) { return cached }
        let generation = listings.currentGeneration
        let fetched = ContinuousClock.now
        let listing = try await store.listObjects(prefix: listPrefix, delimiter: "/", marker: marker, maxKeys: pageSize)
        listings.keep(listing, for: key, generation: generation, fetched: fetched)
        return listing
    }

    /// One page's names, sorted; a directory replaces a file of the same name.
    private func entries(of listing: ObjectListing) -> [(String, FileKind, ObjectAttributes?)] {
        var byName: [ExactName: (FileKind, ObjectAttributes?)] = [:]
        for object in listing.objects {
            switch KeyNaming.classify(objectKey: object.key.rawValue, under: listPrefix) {
            case .file(let name):
                let name = ExactName(name)
                if byName[name] == nil && !unlinked.contains(name) { byName[name] = (.regular, object.attributes) }
            case .directory(let name): byName[ExactName(name)] = (.directory, nil)
            case .hidden: break
            case .unusable(let key, let reason): logger.warning("listing \(listPrefix): key '\(key)' skipped: \(reason)")
            }
        }
        for prefix in listing.commonPrefixes {
            switch KeyNaming.classify(commonPrefix: prefix, under: listPrefix) {
            case .directory(let name): byName[ExactName(name)] = (.directory, nil)
            case .unusable(let key, let reason): logger.warning("listing \(listPrefix): prefix '\(key)' skipped: \(reason)")
            case .file, .hidden: break
            }
        }
        for name in byName.keys where pendingLocal[name] != nil { localNamesListed.insert(name) }
        return byName.sorted { $0.key < $1.key }.map { ($0.key.text, $0.value.0, $0.value.1) }
    }
}
