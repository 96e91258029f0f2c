// Directories and removal: mkdir writes a zero-byte marker `d/` (Content-Type
// application/x-directory, POSIX metadata as s3fs writes it); rmdir removes the marker (and
// s3fs's older `d_$folder$` / `d` forms) once nothing is beneath; unlink deletes the object.
// readdir lists a page at a time (DirectoryReader.swift). readdirplus entries carry the
// attributes the table holds, so `ls -l` of a directory looked at within `attr_timeout=`
// sends no request at all; for names it does not hold, readdirplus sends their HEADs in
// parallel (`listingHeads` at a time, the next `listingPrefetch` entries of each reply) instead
// of the kernel's one lookup (HEAD and LIST) after another. Names listed unchanged since an
// earlier mount fetched their HEAD take that answer instead (SavedHeadAnswers.swift).
import OBSProtocol

extension ObsFileSystem {
    public func mkdir(parent: InodeNumber, name: String, mode: UInt32, caller: Caller) async throws -> FileAttributes {
        listings.noteChange()
        defer { listings.noteChange() }
        try checkWritable()
        await awaitDirectoryRenames(above: parent)
        let (_, path) = try resolveChild(parent, name, creating: true, makingDirectory: true)
        if table.child(parent, name) != nil { throw FileSystemError(.exists, "\(path) exists") }
        try await checkStillMissing(parent, name, path)
        let posix = newPosixMetadata(mode: mode, caller: caller, in: parent, kind: .directory)
        var options = ObjectOptions()
        options.contentType = KeyNaming.directoryContentType
        posix.write(into: &options.metadata, kind: .directory)
        let markerKey = markerKey(ofDirectory: path)
        let etag: ETag
        do {
            etag = try await store.putObject(markerKey, bytes: [], options: options)
        } catch {
            throw storeFailure("creating directory \(markerKey)", error)
        }
        madeName(name, in: parent, kind: .directory)
        listedFiles.remove(parent, name)
        _ = await learnWhetherMarkersKeepMetadata(markerKey, wrote: posix)
        let facts = InodeFacts(size: 0, etag: etag, lastModified: .now(), posix: posix, posixLoaded: true, expiry: freshExpiry())
        guard let (inode, _) = table.entry(parent: parent, name: name, kind: .directory, facts: facts, isCurrent: { _ in false }) else {
            throw FileSystemError(.noEntry, "the parent of \(path) is gone")
        }
        inode.state.withLock { $0.hasMarker = true }
        // Nothing is beneath a directory made just now: names looked up in it are missing
        // unless this mount makes them, for negative_timeout=.
        table.holdEveryChild(of: inode.number, for: configuration.negativeTimeout)
        logger.info("\(markerKey): directory created")
        return attributes(of: inode)
    }

    /// What the store holds under `path` (nil: nothing); errors become errno.
    func existingEntry(_ path: String) async throws -> RemoteEntry? {
        do {
            return try await remoteEntry(path)
        } catch {
            throw storeFailure("looking up \(objectKey(path))", error)
        }
    }

    public func rmdir(parent: InodeNumber, name: String) async throws {
        listings.noteChange()
        defer { listings.noteChange() }
        try checkWritable()
        await awaitDirectoryRenames(above: parent)
        let (_, path) = try resolveChild(parent, name)
        guard let remote = try await existingEntry(path) else {
            if let local = table.child(parent, name), local.kind == .directory {
                table.unlink(parent, name)
                removedName(name, from: parent)
                return
            }
            throw FileSystemError(.noEntry, "no directory \(path)")
        }
        guard case .directory(_, let markerKey) = remote else { throw FileSystemError(.notDirectory, "\(path) is not a directory") }
        let prefix = listPrefix(ofDirectory: path)
        // Files unlinked in it while open have no name any more: they do not keep it from going.
        let directory = table.child(parent, name)?.number
        let hidden = Set((directory.map { number in openFiles.withLock { $0.hiddenNames(in: number) } } ?? []).map { prefix + $0 })
        do {
            // The directory's own keys (marker, attributes, a rename's record), and one more if any.
            let own = [prefix, prefix + DirectoryAttributes.objectName, prefix + KeyNaming.renameRecordName]
            let below = try await store.listObjects(prefix: prefix, delimiter: nil, marker: nil, maxKeys: own.count + 1 + hidden.count)
            let others = below.objects.filter { !own.contains($0.key.rawValue) && !hidden.contains($0.key.rawValue) }
            if !others.isEmpty || !below.commonPrefixes.isEmpty { throw FileSystemError(.notEmpty, "\(path) is not empty") }
            let writing = inodesBeingWritten()
            if writing.contains(where: { table.path(of: $0)?.isPath(beneath: path) == true }) {
                throw FileSystemError(.notEmpty, "\(path) has files being written")
            }
            let unlinked = if let directory { await dropHiddenFiles { name, _ in name.parent == directory } } else { [UnlinkedName]() }
            if !unlinked.isEmpty {
                logger.info("\(prefix): removed with \(unlinked.count) file(s) unlinked while open; their descriptors can read them no longer")
            }
            // Every form the directory may have (its marker, its attributes, s3fs's older
            // markers) and the hidden files, deleted at once: one round trip, not one per key.
            let keys = Set(own.map(ObjectKey.init) + [ObjectKey(objectKey(path).rawValue + KeyNaming.folderSuffix)]
                           + (markerKey.map { [$0] } ?? []) + unlinked.map(\.key)).filter(KeyNaming.fits)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for key in keys { group.addTask { try await self.store.deleteObject(key) } }
                try await group.waitForAll()
            }
        } catch let error as FileSystemError {
            throw error
        } catch {
            throw storeFailure("removing directory \(prefix)", error)
        }
        table.unlink(parent, name)
        removedName(name, from: parent)
        logger.info("\(prefix): directory removed")
    }

    /// Deletes a file or symlink. A file open for writing disappears at once; its upload is
    /// aborted when its last descriptor closes. `heldElsewhere`: whether a process still holds
    /// the file open for writing (the FUSE adapter reads /proc), asked only for a new file whose
    /// opener's close stored it while its descriptor is not released yet (a forked child shares
    /// it): that descriptor goes on with the object, kept hidden, as other descriptors do.
    public func unlink(parent: InodeNumber, name: String, heldElsewhere: @escaping @Sendable (InodeNumber) -> Bool = { _ in false }) async throws {
        listings.noteChange()
        defer { listings.noteChange() }
        try checkWritable()
        await awaitDirectoryRenames(above: parent)
        let (_, path) = try resolveChild(parent, name)
        let key = objectKey(path)
        let known = table.child(parent, name)
        if known?.kind == .directory { throw FileSystemError(.isDirectory, "\(path) is a directory") }
        let unlinked = UnlinkedName(key: key, parent: parent, name: name, etag: known?.state.withLock { $0.facts.etag })
        let ended = OneShot<Void>()
        let openAs = if let known { await beginUnlink(known, unlinked, ended: ended, heldElsewhere: heldElsewhere) } else { OpenUse.closed }
        defer {
            if let known { openFiles.withLock { if $0.unlinking[known.number] === ended { $0.unlinking[known.number] = nil } } }
            ended.fulfill(())  // whoever waited for the unlink now sees its outcome
        }
        if openAs != .otherwise {
            do {
                try await store.deleteObject(key)
            } catch {
                if let known {
                    openFiles.withLock { files in
                        guard files.discarded.removeValue(forKey: known.number) != nil else { return }
                        files.uploads[known.number]?.liftCompletionBar()
                    }
                }
                throw storeFailure("deleting \(key)", error)
            }
        }
        table.unlink(parent, name)
        removedName(name, from: parent)
        switch openAs {
        case .writing: logger.info("\(key): unlinked while open for writing; its upload is aborted when the file is closed (read back or changed meanwhile, it is stored hidden and deleted then)")
        case .otherwise: logger.info("\(key): unlinked while open; its descriptors still read it, and the object is deleted when the last is closed")
        case .closed: break
        }
    }

    private enum OpenUse { case closed, writing, otherwise }

    /// Decides what an unlink of `inode` does with its open descriptors, and marks the unlink as
    /// under way (`ended` fulfilled when it is over). An upload still being written is discarded:
    /// its completion barred, it is aborted at release. One completing (a flush, a second writer
    /// joining) is waited for first: it would otherwise store the object after the DELETE; the
    /// file is then a stored object, kept for descriptors that read or change it. An open for
    /// writing racing the unlink (the kernel resolved the name before it) starts no upload until
    /// the name is gone (`unlinking`).
    private func beginUnlink(_ inode: Inode, _ unlinked: UnlinkedName, ended: OneShot<Void>, heldElsewhere: @Sendable (InodeNumber) -> Bool) async -> OpenUse {
        enum Step { case use(OpenUse), waitFor(UploadSession), askHolders }
        var storedStreamHeld: Bool?
        while true {
            let step = openFiles.withLock { files -> Step in
                if let session = files.uploads[inode.number], session.isUploading {
                    guard session.barCompletion() else { return .waitFor(session) }
                    files.discarded[inode.number] = unlinked
                    files.unlinking[inode.number] = ended
                    return .use(.writing)
                }
                files.unlinking[inode.number] = ended
                if files.initiating[inode.number] != nil {
                    files.discarded[inode.number] = unlinked
                    return .use(.writing)
                }
                if storedStreamHeld == nil, files.holdsStoredStream(inode) { return .askHolders }
                return .use(files.keepForReaders(of: inode, unlinked, storedStreamHeld: storedStreamHeld ?? false) ? .otherwise : .closed)
            }
            switch step {
            case .use(let openAs): return openAs
            case .waitFor(let session): _ = await session.finished()
            case .askHolders: storedStreamHeld = heldElsewhere(inode.number)  // /proc reads: outside the lock
            }
        }
    }

    /// Whether `name` in `parent` was unlinked while its file was open and is still open (its
    /// object is still stored, and hidden).
    func isUnlinkedWhileOpen(_ parent: InodeNumber, _ name: String) -> Bool {
        openFiles.withLock { $0.hiddenNames(in: parent).contains(name) }
    }

    /// This mount made `name` in `parent`: create, mkdir, symlink, mknod, the target of a rename.
    /// A file made there takes over the object of a file unlinked there while open; a directory
    /// (its marker `name/`, its keys below) does not, so that object is deleted at its last close.
    func madeName(_ name: String, in parent: InodeNumber, kind: FileKind) {
        negativeCache.remove(parent, name)
        table.noteNamesChanged(parent)
        forgetAnswers(in: parent)
        if kind != .directory { openFiles.withLock { $0.nameMadeAgain(parent, name) } }
    }

    /// `name` in `parent` may exist now although this mount took it for missing (a directory
    /// rename by copies that failed half-way made part of it): asked of the store next time.
    func nameMayExist(_ name: String, in parent: InodeNumber) {
        negativeCache.remove(parent, name)
        table.forgetEveryChild(of: parent)
        forgetAnswers(in: parent)
    }

    /// This mount removed `name` from `parent`: unlink, rmdir, the source of a rename.
    func removedName(_ name: String, from parent: InodeNumber) {
        negativeCache.insert(parent, name)
        table.noteNamesChanged(parent)
        forgetAnswers(in: parent)
    }

    /// This mount changes, or changed, something in `directory`: the HEADs sent ahead there and
    /// the answers saved for later mounts may be stale.
    func forgetAnswers(in directory: InodeNumber) {
        listedPrefetch.forget(directory)
        if let savedHeads, let path = table.path(of: directory) {
            savedHeads.forget(directoryPrefix: listPrefix(ofDirectory: path))
        }
    }

    /// HEAD of the object of a file, its answer saved for later mounts.
    func headFile(_ key: ObjectKey) async throws -> ObjectAttributes? {
        guard let savedHeads else { return try await store.headObject(key) }
        let generation = savedHeads.generation(of: key)
        let object = try await store.headObject(key)
        if let object, object.contentType != KeyNaming.directoryContentType {
            savedHeads.save(object, for: key, generation: generation)
        }
        return object
    }

    /// The answers earlier mounts saved for the names of `entries` that the listing shows as
    /// files only, unchanged (same ETag, size and date), and the table does not know: set as the
    /// entries' fetched answers and held for their lookups, so that neither sends a HEAD.
    private func useSavedAnswers(_ entries: inout [DirectoryEntry], in directory: InodeNumber, reader: DirectoryReader) async {
        guard let savedHeads, let path = table.path(of: directory) else { return }
        var found: [Int64: RemoteEntry] = [:]
        for index in entries.indices where entries[index].inode == nil && entries[index].fetched == nil && entries[index].isOnlyAFile {
            guard let listed = entries[index].listed,
                  let saved = savedHeads.answer(for: objectKey(childPath(path, entries[index].name)), listed: listed) else { continue }
            entries[index].fetched = .file(saved)
            found[entries[index].cookie] = .file(saved)
            listedPrefetch.hold(saved, for: entries[index].name, in: directory)
        }
        if !found.isEmpty { await reader.attach(found) }
    }

    /// Deletes the object a name had when its file (`inode`) was unlinked while open, unless
    /// this mount made the name again since, or another client stored a new object under it (a
    /// version neither kept nor stored here since: the HEAD first; the other mount's new file
    /// was deleted by this mount's last close).
    func deleteUnlinkedObject(_ unlinked: UnlinkedName, of inode: InodeNumber) async {
        defer { openFiles.withLock { $0.endHiding(unlinked) } }
        // Asked again right before the DELETE: a create of the name here after the last close
        // (its object completes later than the DELETE is sent) made it the new file's.
        let madeAgain = { unlinked.madeAgain || self.openFiles.withLock { $0.madeAgainBeforeDeleted(unlinked) } }
        let known = Set([unlinked.etag, table.inode(inode)?.state.withLock { $0.facts.etag }].compactMap { $0 })
        if !madeAgain(), !known.isEmpty, let found = try? await store.headObject(unlinked.key)?.etag, !known.contains(found) {
            logger.notice("\(unlinked.key): unlinked while open; another client stored a new object under the name since (ETag \(found)): it stays")
            return
        }
        if madeAgain() {
            logger.info("\(unlinked.key): unlinked while open, and made again since: the object is the new file's and stays")
            return
        }
        // Listings hid the name while the object was kept; a page fetched before the delete
        // would show it again once it is no longer hidden.
        listings.noteChange()
        defer { listings.noteChange() }
        do {
            try await store.deleteObject(unlinked.key)
            logger.info("\(unlinked.key): deleted (unlinked while open, now closed)")
        } catch {
            logger.error("\(storeFailure("deleting \(unlinked.key), unlinked while open", error).reason)")
        }
    }

    // MARK: Listing

    /// Opens a directory for reading. One removed while a process still has it (`rmdir` of a
    /// shell's working directory, then `ls`) opens and lists nothing, as on Linux.
    public func openDirectory(_ number: InodeNumber) throws -> DirectoryHandleID {
        let reader: DirectoryReader
        if table.linkedInode(number) == nil, let removed = table.inode(number), removed.kind == .directory {
            reader = DirectoryReader(store: store, listings: listings, listPrefix: "", pageSize: configuration.listPageSize, selfInode: number,
                                     parentInode: number, logger: logger, removed: true, localNames: { LocalNames() })
        } else {
            let (inode, path) = try resolve(number)
            guard inode.kind == .directory else { throw FileSystemError(.notDirectory, "\(path) is not a directory") }
            let parent = table.location(of: number)?.parent ?? .root
            reader = DirectoryReader(store: store, listings: listings, listPrefix: listPrefix(ofDirectory: path), pageSize: configuration.listPageSize,
                                     selfInode: number, parentInode: parent, logger: logger,
                                     localNames: { [weak self] in self?.localNames(in: number) ?? LocalNames() })
        }
        return openFiles.withLock { files in
            let handle = DirectoryHandleID(files.nextHandle)
            files.nextHandle += 1
            files.directories[handle] = reader
            return handle
        }
    }

    /// Files this mount is writing directly in `directory` (they may not be listed by the store
    /// yet), and files unlinked there while open that no name has replaced (still stored).
    private func localNames(in directory: InodeNumber) -> LocalNames {
        let (writing, unlinked) = openFiles.withLock { files in
            (Set(files.uploads.keys).union(files.initiating.keys), files.hiddenNames(in: directory))
        }
        let known = table.knownChildren(directory)
        var names = LocalNames()
        for (name, inode) in known where writing.contains(inode.number) { names.writing[name] = inode.kind }
        names.unlinked = Set(unlinked.map(ExactName.init).filter { known[$0] == nil })
        return names
    }

    /// Entries after `offset` (0, or the cookie of the last entry the caller consumed): at
    /// least one page when there are more, empty at the end. Names the table knows carry their
    /// inode number and kind; the listing's sizes and dates refresh their facts.
    /// Entries of one readdirplus reply whose attributes are fetched ahead, and HEADs in flight.
    static let listingPrefetch = 64
    static let listingHeads = 16

    public func readDirectory(_ handle: DirectoryHandleID, directory: InodeNumber, from offset: Int64, plus: Bool = false) async throws -> [DirectoryEntry] {
        guard let reader = openFiles.withLock({ $0.directories[handle] }) else { throw FileSystemError(.badFileHandle, "unknown \(handle)") }
        var entries: [DirectoryEntry]
        do {
            entries = try await reader.entries(from: offset)
        } catch {
            throw storeFailure("listing \(directory)", error)
        }
        let known = table.knownChildren(directory)
        var listedUnknown = false
        var listedOnlyAsFiles: [String] = []
        for index in entries.indices where entries[index].inode == nil {
            guard let inode = known[ExactName(entries[index].name)] else {
                if entries[index].isOnlyAFile {
                    listedFiles.insert(directory, entries[index].name)
                    listedOnlyAsFiles.append(entries[index].name)
                }
                listedUnknown = true
                continue
            }
            entries[index].inode = inode.number
            entries[index].kind = inode.kind
            if let listed = entries[index].listed { refresh(inode, from: listed) }
        }
        // Another client put names there: the table no longer holds every name (mkdir).
        if listedUnknown { table.forgetEveryChild(of: directory) }
        listedPrefetch.listed(listedOnlyAsFiles, in: directory)
        await useSavedAnswers(&entries, in: directory, reader: reader)
        if plus { try await fetchAttributes(of: &entries, in: directory, reader: reader) }
        if let path = table.path(of: directory) {
            for index in entries.indices where entries[index].inode == nil && entries[index].name != "." && entries[index].name != ".." {
                entries[index].expectedInode = table.expectedNumber(of: entries[index].name, below: path)
            }
        }
        return entries
    }

    /// HEADs the first `listingPrefetch` entries the table does not know, in parallel: a file's
    /// object, a directory's marker.
    private func fetchAttributes(of entries: inout [DirectoryEntry], in directory: InodeNumber, reader: DirectoryReader) async throws {
        guard let directoryPath = table.path(of: directory) else { return }
        let wanted = entries.prefix(ObsFileSystem.listingPrefetch).filter { $0.inode == nil && $0.fetched == nil && $0.name != "." && $0.name != ".." }
        guard !wanted.isEmpty else { return }
        let fetched = try await withThrowingTaskGroup(of: (Int64, RemoteEntry?).self) { group in
            var next = wanted.startIndex
            func addNext() {
                guard next < wanted.endIndex else { return }
                let entry = wanted[next]
                next += 1
                let key = objectKey(childPath(directoryPath, entry.name))
                group.addTask {
                    switch entry.kind {
                    case .directory:
                        let markerKey = ObjectKey(key.rawValue + "/")
                        let marker = try await self.store.headObject(markerKey)
                        return (entry.cookie, .directory(marker: marker, markerKey: marker == nil ? nil : markerKey))
                    case .regular, .symlink, .fifo, .socket, .characterDevice, .blockDevice:
                        guard let object = try await self.headFile(key) else { return (entry.cookie, nil) }
                        if object.contentType == KeyNaming.directoryContentType { return (entry.cookie, .directory(marker: object, markerKey: key)) }
                        return (entry.cookie, .file(object))
                    }
                }
            }
            for _ in 0..<ObsFileSystem.listingHeads { addNext() }
            var found: [Int64: RemoteEntry] = [:]
            while let (cookie, remote) = try await group.next() {
                if let remote { found[cookie] = remote }
                addNext()
            }
            return found
        }
        await reader.attach(fetched)
        for index in entries.indices {
            guard let remote = fetched[entries[index].cookie] else { continue }
            entries[index].fetched = remote
            entries[index].kind = facts(of: remote).0
        }
    }

    /// Feeds a listing's size and date into a known file of the same ETag. Another ETag, or an
    /// ETag unknown here (a rename or a metadata change of this mount since), makes its facts
    /// stale, so it is looked up again: the listing may predate this mount's own change (a page
    /// is kept between `readdir` calls), and its size must not overwrite what the mount knows.
    private func refresh(_ inode: Inode, from listed: ObjectAttributes) {
        guard inode.kind == .regular, !isChangingHere(inode.number) else { return }
        inode.state.withLock { state in
            guard let etag = listed.etag, let known = state.facts.etag, etag == known else {
                state.facts.expiry = .now
                return
            }
            state.facts.size = listed.size
            if let modified = listed.lastModified { state.facts.lastModified = FileTime(modified) }
        }
    }

    /// A readdirplus entry: the attributes of a listed name whose metadata the table holds
    /// fresh or a HEAD just fetched, counted as one kernel lookup; nil when the kernel should
    /// look it up itself. The adapter calls `forget(_:count: 1)` for an entry it could not fit
    /// into the reply.
    public func entryAttributes(_ entry: DirectoryEntry, in directory: InodeNumber) -> FileAttributes? {
        guard entry.name != ".", entry.name != ".." else { return nil }
        if let fetched = entry.fetched, table.child(directory, entry.name) == nil {
            return try? remember(fetched, parent: directory, name: entry.name)
        }
        guard let known = table.child(directory, entry.name),
              known.facts.posixLoaded, known.facts.expiry > .now || upload(of: known.number) != nil,
              let (inode, _) = table.entry(parent: directory, name: entry.name, kind: known.kind, facts: known.facts, isCurrent: { $0 === known })
        else { return nil }
        return attributes(of: inode)
    }

    public func releaseDirectory(_ handle: DirectoryHandleID) {
        _ = openFiles.withLock { $0.directories.removeValue(forKey: handle) }
    }
}
