// Lookup, getattr, forget: names resolved against the store (KeyNaming.swift has the rules),
// remembered in the inode table until `attr_timeout=`, misses in the negative cache until
// `negative_timeout=`. In a directory this mount made (mkdir) less than `negative_timeout=` ago
// the table holds every name there is, so a name it does not hold is missing without a request
// (a program filling a new directory sends no lookup per file); the kernel forgetting one of
// its children, or a listing showing a name it does not hold (another client's), ends that.
// When it runs out, one LIST of the directory renews it (EveryChildRenewal.swift).
//
// A lookup the caches cannot answer sends HEAD `key`, a one-key LIST of `key/` and HEAD
// `key_$folder$` (s3fs's oldest directory format, which counts only when the other two find
// nothing) at once: one round trip, also for a missing name. A name a listing showed as a file
// within `attr_timeout=` with no directory of that name (`ls -l` after `readdir`) costs the
// first HEAD alone, usually sent ahead by an earlier lookup (ListedPrefetch.swift); a directory
// with its own marker (`key/`, the first key that LIST returns)
// one more HEAD for its POSIX metadata. A file being written by this mount is answered from
// memory.
import OBSProtocol

extension ObsFileSystem {
    /// What the store holds under one name.
    enum RemoteEntry: Sendable, Equatable {
        case file(ObjectAttributes)
        /// A directory; `marker` is its own object (`d/`, `d` of Content-Type
        /// application/x-directory, or `d_$folder$`) when it has one.
        case directory(marker: ObjectAttributes?, markerKey: ObjectKey?)
    }

    /// Finds `name` in `parent`. Counts as one kernel lookup.
    public func lookup(parent: InodeNumber, name: String) async throws -> FileAttributes {
        if let known = try cachedLookup(parent: parent, name: name) { return known }
        let (_, path) = try resolveChild(parent, name)
        if table.holdOfEveryChildLapsed(parent) {
            await renewEveryChild(of: parent)
            if table.knowsMissing(parent, name) {
                throw missing(name, "\(objectKey(path)): missing (its directory was listed)")
            }
        }
        let generation = negativeCache.generation
        let remote: RemoteEntry?
        do {
            if listedFiles.contains(parent, name), let file = try await listedFile(name, in: parent, path) {
                remote = file
            } else {
                remote = try await remoteEntry(path)
            }
        } catch {
            throw storeFailure("looking up \(objectKey(path))", error)
        }
        guard let remote else {
            // A create, mkdir or rename here may have made the name while the requests were out.
            if let made = table.child(parent, name), isChangingHere(made.number) || made.facts.expiry > .now,
               let (inode, _) = table.entry(parent: parent, name: name, kind: made.kind, facts: made.facts, isCurrent: { $0 === made }) {
                return attributes(of: inode)
            }
            negativeCache.insert(parent, name, seenAt: generation)
            throw missing(name, "no object \(objectKey(path)) and no keys under \(objectKey(path))/")
        }
        return try remember(remote, parent: parent, name: name)
    }

    /// The error for a name that does not exist: `ENOENT`, or `ENAMETOOLONG` for a name this
    /// mount could not have made (longer than NAME_MAX), as a local filesystem answers. Longer
    /// names that exist, stored by other tools, are found.
    private func missing(_ name: String, _ message: String) -> FileSystemError {
        name.utf8.count > KeyNaming.maximumNewNameLength
            ? FileSystemError(.nameTooLong, message + " (a name longer than \(KeyNaming.maximumNewNameLength) bytes)")
            : FileSystemError(.noEntry, message)
    }

    /// What `lookup` answers from the table and the caches alone, without a request: the entry
    /// (counted as one kernel lookup), `ENOENT` for a name known to be missing, or nil when the
    /// store must be asked. The FUSE adapter answers these on libfuse's thread, without a task.
    public func cachedLookup(parent: InodeNumber, name: String) throws -> FileAttributes? {
        let (_, path) = try resolveChild(parent, name)
        if let known = table.child(parent, name), known.facts.expiry > .now || isChangingHere(known.number) {
            if let (inode, _) = table.entry(parent: parent, name: name, kind: known.kind, facts: known.facts, isCurrent: { $0 === known }) {
                return attributes(of: inode)
            }
        }
        if isKnownMissing(parent, name) { throw missing(name, "\(objectKey(path)): missing (cached)") }
        return nil
    }

    /// Whether `name` is known to be missing from `parent` without asking the store: found
    /// missing within `negative_timeout=`, or not among the children of a directory this mount
    /// made within `negative_timeout=` (callers have checked the table's child first).
    func isKnownMissing(_ parent: InodeNumber, _ name: String) -> Bool {
        negativeCache.contains(parent, name) || table.knowsMissing(parent, name) || isUnlinkedWhileOpen(parent, name)
    }

    /// How long an exclusive create (`O_EXCL`, mkdir, symlink, mknod) trusts a miss the negative
    /// cache remembers: the kernel's lookup just before the create made it; an older one is
    /// asked of the store again, since another client may have made the name meanwhile.
    static let exclusiveCreateTrust = Duration.milliseconds(100)

    /// Whether an exclusive create of `name` needs no request to know it is missing: found missing
    /// less than `exclusiveCreateTrust` ago, or not among the children of a directory this mount
    /// made (callers have checked the table's child first).
    func isSurelyMissing(_ parent: InodeNumber, _ name: String) -> Bool {
        if let found = negativeCache.rememberedAt(parent, name), found.duration(to: .now) < Self.exclusiveCreateTrust { return true }
        return table.knowsMissing(parent, name) || isUnlinkedWhileOpen(parent, name)
    }

    /// EEXIST when `name` exists in the store although this mount took it for missing (another
    /// client made it within `negative_timeout=`); an exclusive create calls it first.
    func checkStillMissing(_ parent: InodeNumber, _ name: String, _ path: String) async throws {
        if table.holdOfEveryChildLapsed(parent) { await renewEveryChild(of: parent) }
        guard !isSurelyMissing(parent, name) else { return }
        let generation = negativeCache.generation
        guard try await existingEntry(path) != nil else {
            negativeCache.insert(parent, name, seenAt: generation)
            return
        }
        negativeCache.remove(parent, name)
        throw FileSystemError(.exists, "\(path) exists")
    }

    /// Enters what the store holds under `name` into the table (one kernel lookup).
    func remember(_ remote: RemoteEntry, parent: InodeNumber, name: String) throws -> FileAttributes {
        let (kind, facts, hasMarker) = facts(of: remote)
        let entry = table.entry(parent: parent, name: name, kind: kind, facts: facts) { existing in
            // Another client replaced the object: a new inode, unless this mount is writing it.
            kind == .directory || existing.facts.etag == nil || existing.facts.etag == facts.etag || self.isChangingHere(existing.number)
        }
        guard let (inode, isNew) = entry else { throw FileSystemError(.noEntry, "the parent of \(name) is gone") }
        if !isNew && !isChangingHere(inode.number) {
            inode.state.withLock { state in
                state.facts = facts
                state.hasMarker = hasMarker
            }
        } else if isNew {
            inode.state.withLock { $0.hasMarker = hasMarker }
        }
        return attributes(of: inode)
    }

    func facts(of remote: RemoteEntry) -> (FileKind, InodeFacts, hasMarker: Bool) {
        let expiry = freshExpiry()
        switch remote {
        case .file(let object):
            let posix = PosixMetadata(metadata: object.metadata)
            // An object is a file, a link or a special file; only a marker or prefix is a directory.
            let kind = posix.kind.flatMap { $0 == .directory ? nil : $0 } ?? .regular
            return (kind, InodeFacts(size: object.size, etag: object.etag, lastModified: FileTime(object.lastModified ?? .now()),
                                     posix: posix, posixLoaded: true, expiry: expiry), false)
        case .directory(let marker, _):
            var facts = InodeFacts.unknown(expiry: expiry)
            if let marker {
                facts.posix = PosixMetadata(metadata: marker.metadata)
                facts.lastModified = FileTime(marker.lastModified ?? .now())
                facts.etag = marker.etag
            }
            facts.posixLoaded = true
            return (.directory, facts, marker != nil)
        }
    }

    /// This mount changes, or changed, `inode`'s object: HEADs sent ahead in its directory and
    /// the answers saved there may be stale.
    func forgetFetchedAhead(around inode: Inode) {
        if let parent = table.location(of: inode.number)?.parent { forgetAnswers(in: parent) }
    }

    /// A name a listing just showed as a file and nothing else: HEAD alone (nil when it is
    /// gone or is no plain file any more: the full lookup decides).
    private func listedFile(_ name: String, in parent: InodeNumber, _ path: String) async throws -> RemoteEntry? {
        let fetched = listedPrefetch.take(name, in: parent)
        if let parentPath = table.path(of: parent) {
            // The names listed after this one are likely looked up next (`ls -l`).
            listedPrefetch.fetchAhead(after: name, in: parent) { [self] next in
                try await headFile(objectKey(childPath(parentPath, next)))
            }
        }
        let object: ObjectAttributes?
        if let fetched, case .success(let answer) = await fetched.value {
            object = answer
        } else {
            object = try await headFile(objectKey(path))
        }
        guard let object, object.contentType != KeyNaming.directoryContentType else { return nil }
        return .file(object)
    }

    /// HEAD and LIST at once; the directory wins over a file of the same name.
    func remoteEntry(_ path: String) async throws -> RemoteEntry? {
        let key = objectKey(path)
        // No object, and no key below, can be longer than the stores take; they refuse a request
        // for one (HTTP 400), which would answer EIO for a name that is simply missing.
        guard KeyNaming.fits(key) else { return nil }
        let folderKey = ObjectKey(key.rawValue + KeyNaming.folderSuffix)
        // Sent with the other two, so that a missing name costs one round trip, not two; its
        // answer is only awaited when neither of them found anything.
        let folder = Task { [store] in KeyNaming.fits(folderKey) ? try await store.headObject(folderKey) : nil }
        async let head = headFile(key)
        async let below = store.listObjects(prefix: key.rawValue + "/", delimiter: "/", marker: nil, maxKeys: 1)
        let (object, listing) = try await (head, below)
        if !listing.objects.isEmpty || !listing.commonPrefixes.isEmpty {
            let markerKey = ObjectKey(key.rawValue + "/")
            if listing.objects.first?.key == markerKey { return .directory(marker: try await store.headObject(markerKey), markerKey: markerKey) }
            // s3fs's older marker beside the keys below: an object `d` of type application/x-directory.
            if let object, object.contentType == KeyNaming.directoryContentType { return .directory(marker: object, markerKey: key) }
            if object != nil { logger.warning("\(key): a file and a directory share this name; the directory is shown") }
            return .directory(marker: nil, markerKey: nil)
        }
        if let object {
            if object.contentType == KeyNaming.directoryContentType { return .directory(marker: object, markerKey: key) }
            return .file(object)
        }
        if let folder = try await folder.value { return .directory(marker: folder, markerKey: folderKey) }
        return nil
    }

    /// What `path`, known as `inode`, is in the store now: for a file, its object alone (one
    /// HEAD, where a lookup sends three); a file gone or stored as a directory marker, and a
    /// directory, are looked up again. A name that gained keys below it meanwhile (another
    /// client) stays a file until the kernel looks it up again.
    private func currentEntry(of inode: Inode, at path: String) async throws -> RemoteEntry? {
        let key = objectKey(path)
        if inode.kind != .directory, KeyNaming.fits(key), let object = try await headFile(key),
           object.contentType != KeyNaming.directoryContentType {
            return .file(object)
        }
        return try await remoteEntry(path)
    }

    /// The kernel dropped `count` lookups of `inode`.
    public func forget(_ inode: InodeNumber, count: UInt64) {
        table.forget(inode, count: count)
    }

    /// `stat`: from the table while fresh; else the store is asked again (a file being written
    /// is always fresh). A name that disappeared from the store answers ENOENT.
    public func getattr(_ number: InodeNumber) async throws -> FileAttributes {
        if let known = try cachedAttributes(number) { return known }
        guard let inode = table.inode(number) else { throw FileSystemError(.noEntry, "unknown \(number)") }
        if number == .root {
            await loadRootMetadata(inode)
        } else if let path = table.path(of: number) {
            try await refresh(inode, at: path)
        }
        return attributes(of: inode)
    }

    /// What `getattr` answers without a request (fresh attributes, a file this mount is
    /// changing, the root once its metadata is loaded, an unlinked open file's last known
    /// ones), or nil when the store must be asked. The FUSE adapter answers these on libfuse's
    /// thread, without a task.
    public func cachedAttributes(_ number: InodeNumber) throws -> FileAttributes? {
        guard let inode = table.inode(number) else { throw FileSystemError(.noEntry, "unknown \(number)") }
        if number == .root { return inode.facts.posixLoaded ? attributes(of: inode) : nil }
        if inode.facts.expiry > .now || isChangingHere(number) { return attributes(of: inode) }
        return table.path(of: number) == nil ? attributes(of: inode) : nil  // unlinked but open: last known
    }

    /// The mount root's mode, owner, times and xattrs from its marker, read once per mount (the
    /// root is never looked up); the mount's defaults when it has none or the store fails.
    private func loadRootMetadata(_ root: Inode) async {
        let key = markerKey(ofDirectory: "")
        var posix = PosixMetadata()
        do {
            if let marker = try await store.headObject(key) { posix = PosixMetadata(metadata: marker.metadata) }
        } catch {
            logger.warning("reading the mount root's metadata from \(key): \(error); the mount's defaults stand")
        }
        root.state.withLock { state in
            guard !state.facts.posixLoaded else { return }  // a change made meanwhile wins
            state.facts.posix = posix
            state.facts.posixLoaded = true
        }
    }

    /// Asks the store what `path` holds now and makes it `inode`'s facts; for an open
    /// (`opening`), a replaced object is always a new inode (below).
    func refresh(_ inode: Inode, at path: String, opening: Bool = false) async throws {
        let remote: RemoteEntry?
        do {
            remote = try await currentEntry(of: inode, at: path)
        } catch {
            throw storeFailure("reading the attributes of \(objectKey(path))", error)
        }
        guard let remote else { throw FileSystemError(.noEntry, "\(objectKey(path)) is gone from the store") }
        let (kind, facts, hasMarker) = facts(of: remote)
        guard kind == inode.kind else { throw FileSystemError(.noEntry, "\(objectKey(path)) changed kind on the store") }
        if let replaced = facts.etag, let opened = inode.facts.etag, replaced != opened, opening || isOpen(inode) || configuration.writebackCache,
           let (parent, name) = table.location(of: inode.number) {
            // Another client replaced the object: the name gets the new object's inode at its
            // next lookup (which asks the store: in a directory this mount made, the name is not
            // taken for missing), as a lookup gives it (`remember`), when descriptors read the
            // version they opened (they keep this inode, as a file replaced by a rename does on a
            // local disk: its size stays, so a read past the new object's end fails with EIO
            // instead of ending early), for an open, and with writeback_cache; an open of this
            // inode then answers ESTALE. Refreshed in place, the kernel kept the size it had (with
            // writeback_cache whatever getattr answers, else until a getattr it had no reason to
            // send before the open), and read the new object cut to, or padded with zeros to, an
            // older version's size. (A stat without writeback_cache refreshes in place: the
            // kernel takes the size it answers.)
            let open = isOpen(inode)
            table.unlink(parent, name)
            nameMayExist(name, in: parent)
            inode.state.withLock { state in
                state.replaced = true
                if !open { state.facts = facts }
            }
            logger.notice("\(objectKey(path)): replaced by another client\(open ? " while open for reading; its descriptors keep the version they opened" : "; the name gets a new inode")")
            return
        }
        inode.state.withLock { state in
            state.facts = facts
            state.hasMarker = hasMarker
        }
    }
}
