// Wiring of ModifySession: opens of existing objects for writing without O_TRUNC, writes after
// an earlier close() completed the file, and truncate of a closed object all change the object
// by server-side composition (ModifySession.swift). The close rule is the upload's: the flush
// from the opener composes; other flushes pass; fsync and release compose too.
import OBSProtocol

extension ObsFileSystem {
    /// The bytes a file's changes may hold in memory before they are composed early.
    var changeBudget: Int { Int(configuration.upload.pool.capacity / 4) }

    /// `written` with the metadata and Content-Type `head` shows the store holding.
    static func options(_ written: ObjectOptions?, holding head: ObjectAttributes) -> ObjectOptions {
        var options = written ?? ObjectOptions()
        options.metadata = head.metadata
        options.contentType = head.contentType
        return options
    }

    func makeModifySession(key: ObjectKey, etag: ETag?, size: Int64, written: ObjectOptions?) throws -> ModifySession {
        guard let composer = store as? any ObjectComposer else { throw FileSystemError(.notSupported, "this store cannot compose objects") }
        let executor = CompositionExecutor(store: composer, pool: configuration.upload.pool, parallel: configuration.upload.parallel,
                                           integrity: configuration.upload.integrity, logger: logger)
        let options = written ?? ObjectOptions()
        var customerKey: CustomerKey?
        if case .customer(let key)? = options.encryption { customerKey = key }
        let limits = CompositionLimits(dialect: configuration.dialect, maximumUploadPartSize: configuration.upload.pool.capacity / 4, objectSize: size)
        return try ModifySession(key: key, baseETag: etag, baseSize: size, options: options, customerKey: customerKey,
                                 store: store, executor: executor, limits: limits, readPool: readPool, readSettings: configuration.read.settings,
                                 changeBudget: changeBudget, logger: logger)
    }

    /// The options a composed object keeps: what this mount wrote it with (what the store does
    /// not report back: expiry, persistent headers, SSE details), with the metadata and
    /// Content-Type the store holds now, which another client may have changed since (its
    /// chmod, its setfattr: an append through this mount reverted them); and the HEAD it read
    /// them from (nil: no object).
    private func optionsOfExisting(_ inode: Inode, _ path: String) async throws -> (head: ObjectAttributes?, options: ObjectOptions) {
        let written = inode.state.withLock { $0.writtenOptions }
        do {
            guard let head = try await store.headObject(objectKey(path)) else { return (nil, written ?? ObjectOptions()) }
            return (head, Self.options(written, holding: head))
        } catch {
            throw storeFailure("reading the metadata of \(objectKey(path))", error)
        }
    }

    /// The version new changes of an existing object start from, and the options its
    /// composition keeps. The HEAD that reads the options also shows whether another client
    /// replaced the object since the mount learnt of it: its new version is then the one
    /// changed (close-to-open, as for reads: `echo x >> f` appends to what the other client
    /// stored, where the composition on the old version failed at close with EIO; a `truncate`
    /// likewise).
    private func versionToChange(_ inode: Inode, _ path: String) async throws -> (etag: ETag?, size: Int64, options: ObjectOptions) {
        let (head, options) = try await optionsOfExisting(inode, path)
        if let head, head.etag != inode.facts.etag, !isChangingHere(inode.number) { try await revalidate(inode, at: path) }
        let facts = inode.facts
        return (facts.etag, facts.size, options)
    }

    /// Opens an existing object for changes (no O_TRUNC): joins the changes another descriptor
    /// of the file holds, or starts them over the version stored now.
    func openForChanges(_ inode: Inode, _ path: String, opener: ProcessID) async throws -> OpenedFile {
        var started: ModifySession?
        if openFiles.withLock({ $0.shareableChanges(of: inode.number) }) == nil {
            if inode.facts.expiry <= .now { _ = try await getattr(inode.number) }
            let version = try await versionToChange(inode, path)
            started = try makeModifySession(key: objectKey(path), etag: version.etag, size: version.size, written: version.options)
        }
        inode.state.withLock { $0.cachedETag = nil }
        let opened: (handle: FileHandleID, joined: Bool)?
        let ancestry = table.ancestry(of: inode.number)  // the tree's lock, never with openFiles'
        do {
            opened = try openFiles.withLock { files throws -> (handle: FileHandleID, joined: Bool)? in
                try files.refuseChanges(to: ancestry, key: objectKey(path))
                guard let modify = files.shareableChanges(of: inode.number) ?? started else { return nil }
                return (files.add(OpenFile(inode: inode, session: nil, modify: modify, opener: opener)), modify !== started)
            }
        } catch {
            started?.close()
            throw error
        }
        // The changes it would have joined ended meanwhile (their last descriptor was released).
        guard let opened else { return try await openForChanges(inode, path, opener: opener) }
        if opened.joined { started?.close() }
        return OpenedFile(handle: opened.handle, keepCache: false, directIO: !configuration.writebackCache)
    }

    /// Whether `key` is the hidden object of `inode`, unlinked while open and not made again.
    private func ownsHiddenObject(_ inode: Inode, _ key: ObjectKey) -> Bool {
        openFiles.withLock { files in files.unlinkedWhileOpen[inode.number]?.contains { $0.key == key && !$0.madeAgain } ?? false }
    }

    /// Gives `handle` the changes another handle of its file holds, or else `candidate`;
    /// returns the ones it has (nil when the handle was released).
    func attachChanges(_ candidate: ModifySession, to handle: FileHandleID) -> ModifySession? {
        let attached = openFiles.withLock { files -> ModifySession? in
            guard var file = files.files[handle] else { return nil }
            if let existing = file.modify { return existing }
            file.modify = files.shareableChanges(of: file.inode.number) ?? candidate
            files.files[handle] = file
            return file.modify
        }
        if attached !== candidate { candidate.close() }
        return attached
    }

    /// Whether no open handle holds `modify` any more (its last release closes it).
    func isUnheld(_ modify: ModifySession) -> Bool {
        openFiles.withLock { !$0.holds(modify) }
    }

    /// Composes what `modify` holds and records the new object in the inode. A file unlinked
    /// while open for changes composes into its hidden object (deleted at its last release), so
    /// its descriptors read back what they wrote however much it is; once this mount made its
    /// name again, or a rename replaced it, the key is another file's: its changes are dropped,
    /// as a local filesystem drops them at the last close.
    func commit(_ modify: ModifySession, _ inode: Inode) async throws {
        // An unlink under way decides first: composing while its DELETE is in flight would fail.
        if let unlink = openFiles.withLock({ $0.unlinking[inode.number] }) { await unlink.value }
        guard table.linkedInode(inode.number) != nil || ownsHiddenObject(inode, modify.key) else {
            logger.info("\(modify.key): unlinked while open for changes, and the name is another file's now; they are not stored")
            return
        }
        let operations = configuration.upload.statistics.operations
        let progress = operations.begin("composing \(modify.key)", total: modify.size, unit: "bytes")
        defer { operations.finished(progress) }
        do {
            let started = FileTime.now()
            try await modify.commit { etag, size, times in
                inode.state.withLock { state in
                    state.facts.etag = etag
                    state.storedHere = etag
                    state.facts.size = size
                    state.facts.lastModified = started
                    state.facts.posix.modified = times.modified
                    state.facts.posix.changed = times.changed
                    state.facts.expiry = freshExpiry()
                }
            }
            forgetFetchedAhead(around: inode)
        } catch {
            // The object may not be the base any more (another client's change; on a parallel
            // file system bucket, the native calls before the one that failed changed it in place):
            // the next open asks the store what it is.
            inode.state.withLock { $0.facts.expiry = .now }
            if let error = error as? ObjectChangedError {
                let failure = FileSystemError(.io, "\(modify.key): \(error.description); the changes were not stored")
                logger.error("\(failure.reason)")
                throw failure
            }
            throw storeFailure("composing \(modify.key)", error)
        }
    }

    /// A write through `handle` to a changing file (`appending`: at its end); beyond the memory
    /// budget the changes held are composed first and the write waits for that. While a rename
    /// of the file is under way the write waits for its end, then goes through the session the
    /// handle has then (the file's under its new name); once only: EBUSY when that one is
    /// retired too.
    func write(_ modify: ModifySession, _ inode: Inode, handle: FileHandleID, at offset: Int64, appending: Bool,
               bytes: UnsafeRawBufferPointer, afterRename: Bool = false) -> WriteAdmission {
        if modify.failure != nil { return .refused(FileSystemError(.io, "\(modify.key): an earlier composition failed; this file takes no more writes")) }
        let at = appending ? modify.size : offset
        switch modify.write(bytes, at: at) {
        case .taken: return .accepted(bytes.count)
        case .retired(let renamed):
            guard !afterRename else { return .refused(modify.renameUnderWay) }
            return writeChangesLater(bytes, doing: "writing \(modify.key) after a rename") {
                await renamed.value
                guard let current = self.openFiles.withLock({ $0.files[handle]?.modify }) else {
                    throw FileSystemError(.badFileHandle, "\(handle) was released during the rename")
                }
                return current
            } write: { current, copy in
                self.write(current, inode, handle: handle, at: offset, appending: appending, bytes: copy, afterRename: true)
            }
        case .overBudget:
            // What is held is composed, then the write is tried again, and again while other
            // writes fill the budget first (the kernel's writeback sends many at once); once
            // nothing is held any write is taken, whatever its size.
            return writeChangesLater(bytes, doing: "composing before a write") {
                try await self.commit(modify, inode)
                return modify
            } write: { modify, copy in
                self.write(modify, inode, handle: handle, at: offset, appending: appending, bytes: copy, afterRename: afterRename)
            }
        }
    }

    /// A write answered once `ready` has given the session to write through (a composition, a
    /// rename, an upload's completion): its bytes are copied (the caller's buffer is gone by
    /// then) and `write` admits them; a failure of `ready` is the write's, as `doing` says.
    func writeChangesLater(_ bytes: UnsafeRawBufferPointer, doing action: String,
                           ready: @escaping @Sendable () async throws -> ModifySession,
                           write: @escaping @Sendable (ModifySession, UnsafeRawBufferPointer) -> WriteAdmission) -> WriteAdmission {
        let pending = PendingWrite()
        let copy = Array(bytes)
        Task {
            do {
                let session = try await ready()
                let admission = copy.withUnsafeBytes { write(session, $0) }
                _ = pending.result.fulfill(await admission.outcome)
            } catch {
                _ = pending.result.fulfill(.failure(FileSystemError(doing: action, error)))
            }
        }
        return .waiting(pending)
    }

    /// Truncate of a closed object: its length changed by one composition (or natively).
    /// Its version is the one the store holds, as for an open for changes (`versionToChange`).
    func truncateExisting(_ inode: Inode, _ path: String, to size: Int64) async throws {
        let version = try await versionToChange(inode, path)
        let modify = try makeModifySession(key: objectKey(path), etag: version.etag, size: version.size, written: version.options)
        defer { modify.close() }
        try modify.truncate(to: size)
        try await commit(modify, inode)
        logger.info("\(objectKey(path)): length changed from \(version.size) to \(size) bytes")
    }
}
