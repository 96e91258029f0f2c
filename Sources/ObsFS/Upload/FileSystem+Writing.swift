// Creating, opening and writing files: each file opened for writing is one upload session
// (UploadSession.swift), registered by inode from the initiate request until release.
// The new object's POSIX metadata (mode, owner, times) is part of its initiation.
import OBSProtocol

#if canImport(Glibc)
import Glibc
#endif

extension ObsFileSystem {
    /// POSIX metadata for a new `kind` object created by `caller` with `mode` in `parent`. In a
    /// set-group-ID directory it gets the directory's group, and a new directory the
    /// set-group-ID bit too, as on a local filesystem (the kernel leaves this to filesystems).
    func newPosixMetadata(mode: UInt32, caller: Caller, in parent: InodeNumber, kind: FileKind) -> PosixMetadata {
        var posix = PosixMetadata()
        var permissions = mode & 0o7777 & ~caller.umask
        posix.uid = caller.uid
        posix.gid = caller.gid
        if let directory = table.inode(parent).map({ attributes(of: $0) }), directory.mode & UInt32(S_ISGID) != 0 {
            posix.gid = directory.gid
            if kind == .directory { permissions |= UInt32(S_ISGID) }
        }
        posix.permissions = permissions
        let now = FileTime.now()
        posix.modified = now
        posix.accessed = now
        posix.changed = now
        return posix
    }

    /// Creates `name` in `parent` and opens it for writing: initiates the multipart upload and
    /// returns once the upload ID is known. Counts as one kernel lookup. `flags` are the open's:
    /// when the name exists already (another process created it since the kernel found it
    /// missing), O_EXCL answers EEXIST and otherwise the file is opened as it is, as a local
    /// filesystem opens it (joining a writer, truncated with O_TRUNC).
    public func create(parent: InodeNumber, name: String, mode: UInt32, flags: Int32 = O_WRONLY | O_CREAT | O_TRUNC,
                       caller: Caller) async throws -> (FileAttributes, FileHandleID) {
        listings.noteChange()
        defer { listings.noteChange() }
        try checkWritable()
        await awaitDirectoryRenames(above: parent)
        let (_, path) = try resolveChild(parent, name, creating: true)
        if let existing = table.child(parent, name) {
            if existing.kind == .directory { throw FileSystemError(.isDirectory, "\(path) is a directory") }
            if flags & O_EXCL != 0 || existing.kind != .regular { throw FileSystemError(.exists, "\(path) exists") }
            return try await openCreated(existing, parent: parent, name: name, flags: flags, caller: caller)
        }
        if flags & O_EXCL != 0 { try await checkStillMissing(parent, name, path) }
        let posix = newPosixMetadata(mode: mode, caller: caller, in: parent, kind: .regular)
        let facts = InodeFacts(size: 0, etag: nil, lastModified: .now(), posix: posix, posixLoaded: true, expiry: freshExpiry())
        // A new inode: whatever was known under this name is replaced by what is being written.
        guard let (inode, _) = table.entry(parent: parent, name: name, kind: .regular, facts: facts, isCurrent: { _ in false }) else {
            throw FileSystemError(.noEntry, "the parent of \(path) is gone")
        }
        madeName(name, in: parent, kind: .regular)
        do {
            let handle = try await startUpload(inode, path, posix: posix, opener: caller.process)
            return (attributes(of: inode), handle)
        } catch is AnotherWriterFirst {
            // Another create of the name found this inode and started its upload first.
            return try await openCounted(inode, flags: flags, caller: caller)
        } catch {
            table.unlink(parent, name)
            table.forget(inode.number, count: 1)
            // Its directory's rename began after `awaitDirectoryRenames`: the key is stale.
            if error is OpenRacedARename { throw FileSystemError(.busy, "\(path): its directory was renamed while it was being created") }
            throw error
        }
    }

    /// The existing file a create found: opened with the create's flags, with the kernel's
    /// lookup counted as a create counts it.
    private func openCreated(_ existing: Inode, parent: InodeNumber, name: String, flags: Int32,
                             caller: Caller) async throws -> (FileAttributes, FileHandleID) {
        guard let (inode, _) = table.entry(parent: parent, name: name, kind: .regular, facts: existing.facts, isCurrent: { $0 === existing }) else {
            throw FileSystemError(.noEntry, "the parent of \(name) is gone")
        }
        return try await openCounted(inode, flags: flags, caller: caller)
    }

    /// Opens `inode`, whose lookup the caller counted for the kernel, with a create's flags; the
    /// lookup is given back when the open fails.
    private func openCounted(_ inode: Inode, flags: Int32, caller: Caller) async throws -> (FileAttributes, FileHandleID) {
        do {
            let opened = try await open(inode.number, flags: flags & ~O_CREAT, opener: caller.process, by: caller)
            return (attributes(of: inode), opened.handle)
        } catch {
            table.forget(inode.number, count: 1)
            throw error
        }
    }

    /// Opens an existing file. Reading reads the version seen now (Read/FileSystem+Reading.swift).
    /// Writing joins the upload or the changes other descriptors of the file hold; else it
    /// starts a new upload that replaces the object when it completes (O_TRUNC, or an empty
    /// object), or changes the object in place (Compose/). With `caller` (the FUSE adapter gives
    /// it), O_TRUNC drops the set-ID bits Linux drops (SetIDBits.swift). An open for writing
    /// that meets a rename of its file (or of a directory above it) waits for the rename's end
    /// and opens the file under its new name, as the writes of descriptors already open do.
    public func open(_ number: InodeNumber, flags: Int32, opener: ProcessID = .unknown, by caller: Caller? = nil) async throws -> OpenedFile {
        while true {
            if flags & O_ACCMODE != O_RDONLY { await awaitDirectoryRenames(above: number) }
            do {
                return try await openNow(number, flags: flags, opener: opener, by: caller)
            } catch let racing as OpenRacedARename {
                await racing.ended?.value
            }
        }
    }

    /// `open`, with the file's path as it is now.
    private func openNow(_ number: InodeNumber, flags: Int32, opener: ProcessID, by caller: Caller?) async throws -> OpenedFile {
        if table.linkedInode(number) == nil, table.inode(number)?.state.withLock({ $0.replaced }) == true {
            throw FileSystemError(.stale, "\(number) was replaced by another client; opening the new version")
        }
        let (inode, path) = try resolve(number)
        guard inode.kind != .directory else { throw FileSystemError(.isDirectory, "\(path) is a directory") }
        guard flags & O_ACCMODE != O_RDONLY else {
            // O_RDONLY|O_TRUNC: POSIX leaves it undefined; Linux truncates (the kernel checked
            // write permission before sending the open), and so does this.
            if flags & O_TRUNC != 0 { _ = try await setattr(number, AttributeChanges(size: 0), by: caller) }
            return try await openForReading(inode, path)
        }
        listings.noteChange()
        defer { listings.noteChange() }
        try checkWritable()
        while true {
            // Another open's initiation under way (a create, an O_TRUNC open): its upload is joined below.
            while let initiation = openFiles.withLock({ $0.initiating[inode.number] }) { await initiation.value }
            if let session = upload(of: inode.number), session.isUploading {
                // Another descriptor is streaming the file: it is completed as it stands, and both go
                // on with one set of changes (two writers of one file, as on a local disk). Also
                // when nothing was written yet and a flush stored the empty object (another
                // process's close of an inherited descriptor: `exec 3>f; /bin/true; echo a >> f;
                // echo b >&3`): changes of that object beside the stream lost the stream's bytes.
                logger.info("\(session.key): opened for writing again while being written; completing the upload and continuing by composition")
                _ = try await continueWritersByComposition(session, of: inode)
                return try await joinChanges(inode, path, flags: flags, opener: opener, by: caller)
            }
            if openFiles.withLock({ $0.shareableChanges(of: inode.number) }) != nil {
                // Another descriptor is changing the file (even an empty one): one set of changes.
                return try await joinChanges(inode, path, flags: flags, opener: opener, by: caller)
            }
            guard flags & O_TRUNC != 0 else {
                // Appends and in-place changes, also to an empty file (`: > log; tail -f log &
                // echo x >> log`: its readers read the changes, where a new upload answered
                // them EBUSY): composed on the server (Compose/).
                return try await openForChanges(inode, path, opener: opener)
            }
            do {
                return try await openForNewUpload(inode, path, flags: flags, opener: opener, by: caller)
            } catch is AnotherWriterFirst {
                continue  // an open racing this one started its upload first: join it
            }
        }
    }

    /// An open for writing that replaces the file's content (O_TRUNC): a new upload, its set-ID
    /// bits dropped as Linux drops them.
    private func openForNewUpload(_ inode: Inode, _ path: String, flags: Int32, opener: ProcessID, by caller: Caller?) async throws -> OpenedFile {
        var posix = inode.facts.posix
        let now = FileTime.now()
        posix.modified = now
        posix.changed = now
        let keptPermissions = flags & O_TRUNC == 0 ? nil : caller.flatMap { permissionsAfterDroppingSetID(inode, .content, by: $0) }
        if let keptPermissions { posix.permissions = keptPermissions }
        let handle = try await startUpload(inode, path, posix: posix, opener: opener)
        inode.state.withLock { state in
            state.facts.size = 0
            state.facts.etag = nil
            if let keptPermissions { state.facts.posix.permissions = keptPermissions }
        }
        return OpenedFile(handle: handle, keepCache: false, directIO: !configuration.writebackCache, changedAttributes: keptPermissions != nil)
    }

    /// Opens the file for changes, joining those another descriptor holds; O_TRUNC cuts them
    /// (and the file) to 0 for every descriptor, as on a local disk.
    private func joinChanges(_ inode: Inode, _ path: String, flags: Int32, opener: ProcessID, by caller: Caller?) async throws -> OpenedFile {
        let opened = try await openForChanges(inode, path, opener: opener)
        guard flags & O_TRUNC != 0 else { return opened }
        do {
            _ = try await setattr(inode.number, AttributeChanges(size: 0), by: caller)
        } catch {
            await release(opened.handle)
            throw error
        }
        return opened
    }

    func register(_ file: OpenFile) -> FileHandleID {
        openFiles.withLock { $0.add(file) }
    }

    /// Thrown by `startUpload` when another open of the inode started its upload first (open
    /// then joins that upload).
    private struct AnotherWriterFirst: Error {}

    /// Thrown when an open for writing met a rename of its file: `open` waits for `ended` (nil:
    /// the rename ended already, the path the open resolved is stale) and opens it again.
    struct OpenRacedARename: Error {
        let ended: OneShot<Void>?
    }

    /// The upload and the handle that writes it are registered together, before the end of the
    /// initiation is announced: a directory rename that waited for it (`awaitInitiations`) then
    /// finds the handle and moves it with the file (it found the upload without its handle,
    /// completed it empty under the old key, and the handle's writes went there).
    private func startUpload(_ inode: Inode, _ path: String, posix: PosixMetadata, opener: ProcessID) async throws -> FileHandleID {
        let key = objectKey(path)
        let initiated = OneShot<Void>()
        let ancestry = table.ancestry(of: inode.number)  // the tree's lock, never with openFiles'
        try openFiles.withLock { files in
            guard !files.shuttingDown else { throw FileSystemError(.io, "unmounting") }
            if files.uploads[inode.number]?.excludesOtherWriters == true || files.initiating[inode.number] != nil { throw AnotherWriterFirst() }
            try files.refuseChanges(to: ancestry, key: key)
            files.initiating[inode.number] = initiated
        }
        defer {
            _ = openFiles.withLock { $0.initiating.removeValue(forKey: inode.number) }
            initiated.fulfill(())
        }
        // Renamed between the caller's resolve and the registration above: the key is stale.
        guard table.path(of: inode.number) == path else { throw OpenRacedARename(ended: nil) }
        var options: ObjectOptions
        let uploadID: UploadID
        do {
            options = try await optionsForNewFile(path)
            posix.write(into: &options.metadata, kind: .regular)
            uploadID = try await store.initiateUpload(key, options: options)
        } catch {
            throw storeFailure("initiating the upload of \(key)", error)
        }
        let session = UploadSession(key: key, uploadID: uploadID, options: options, store: store,
                                    settings: configuration.upload, logger: logger, opener: opener,
                                    afterCompletion: { [weak self] session, etag throws(FileSystemError) in
                                        guard let self else { return }
                                        try await self.applyRecordedChanges(of: session)
                                        if !self.isDiscarded(inode) { self.recordWritten(inode, session, etag: etag) }
                                    })
        let handle = openFiles.withLock { files in
            files.uploads[inode.number] = session
            // Unlinked while being initiated: nothing may complete it (see `beginUnlink`).
            if files.discarded[inode.number] != nil { _ = session.barCompletion() }
            return files.add(OpenFile(inode: inode, session: session))
        }
        logger.info("\(key): upload \(uploadID) initiated")
        return handle
    }

    /// Gives the open file `value` as its `field` unless it has one already; the one it keeps
    /// (nil: the handle was released meanwhile).
    func attach<Value: AnyObject & Sendable>(_ value: Value, to handle: FileHandleID, as field: WritableKeyPath<OpenFile, Value?>) -> Value? {
        openFiles.withLock { files in
            guard var open = files.files[handle] else { return nil }
            if let existing = open[keyPath: field] { return existing }
            open[keyPath: field] = value
            files.files[handle] = open
            return value
        }
    }

    func openFile(_ handle: FileHandleID) throws -> OpenFile {
        try openFiles.withLock { files in
            guard let file = files.files[handle] else { throw FileSystemError(.badFileHandle, "unknown \(handle)") }
            return file
        }
    }

    /// A write the kernel delivered; see `UploadSession.admit`. Synchronous, never blocks.
    /// `appending` (a descriptor with `O_APPEND`): the bytes go to the end of the file as this
    /// mount knows it, wherever the kernel put them (without `writeback_cache`, the kernel's size
    /// may be stale: another process's `O_TRUNC` open cut the file), as a local filesystem appends.
    public func write(_ handle: FileHandleID, at offset: Int64, bytes: UnsafeRawBufferPointer, writer: WriterIdentity,
                      process: ProcessID = .unknown, appending: Bool = false) -> WriteAdmission {
        let appends = appending && !configuration.writebackCache
        do {
            let file = try openFile(handle)
            if let modify = file.modify { return write(modify, file.inode, handle: handle, at: offset, appending: appends, bytes: bytes) }
            if let session = file.session, let continued = continueAfterCompletion(handle, file, session) {
                return write(continued, file.inode, handle: handle, at: offset, appending: appends, bytes: bytes)
            }
            guard let session = file.session else {
                return .refused(FileSystemError(.badFileHandle, "\(handle) is not open for writing"))
            }
            let at = appends ? max(session.size, pendingSize(of: file.inode.number) ?? 0) : offset
            switch session.admit(at: at, bytes: bytes, writer: writer, process: process) {
            case .admitted(let admission): return admission
            case .continuesByComposition: return writeBehindTheUpload(handle, file, session, at: at, appending: appends, bytes: bytes)
            }
        } catch {
            return .refused(FileSystemError(doing: "write", error))
        }
    }

    /// A write after an earlier close() completed the file (`exec 3>f; echo a >&3; echo b >&3`):
    /// the handle goes on as changes to the completed object, which the inode records first
    /// (the completion may not have come from a flush: a read back, a truncate).
    func continueAfterCompletion(_ handle: FileHandleID, _ file: OpenFile, _ session: UploadSession) -> ModifySession? {
        guard !session.isUploading, let etag = session.etag, !isDiscarded(file.inode),
              let modify = try? makeModifySession(key: session.key, etag: etag, size: session.size, written: session.intendedOptions) else { return nil }
        let continued = attachChanges(modify, to: handle)
        if continued === modify {
            // A length set ahead of the bytes while it was streamed (`ftruncate`, `fallocate`)
            // holds for the changes too: an append through another descriptor goes after it.
            if let size = openFiles.withLock({ $0.pendingSizes.removeValue(forKey: file.inode.number) }), size > modify.size {
                do {
                    try modify.truncate(to: size)
                } catch {
                    logger.error("\(session.key): the length \(size) set while it was written is lost: \(error)")
                }
            }
            recordWritten(file.inode, session, etag: etag)
            logger.info("\(session.key): written again after its upload completed; continuing by composition")
        }
        return continued
    }

    /// A write before the part being filled (zip patching its header, `pwrite` backwards, or a
    /// write that a later one overtook on another FUSE thread), or one racing the flush that
    /// completes the upload: the upload is completed as it stands, and the handle goes on as
    /// changes to that object, so the write becomes one more server-side composition at close.
    /// The write's reply waits for that.
    private func writeBehindTheUpload(_ handle: FileHandleID, _ file: OpenFile, _ session: UploadSession, at offset: Int64,
                                      appending: Bool, bytes: UnsafeRawBufferPointer) -> WriteAdmission {
        logger.info("\(session.key): write at \(offset) cannot go into the upload (before the part being filled, or completing); completing it and continuing by composition")
        return writeChangesLater(bytes, doing: "continuing \(session.key) by composition") {
            try await self.completeToContinue(session, of: file.inode)
            guard let modify = self.continueAfterCompletion(handle, file, session) else {
                throw FileSystemError(.io, "\(session.key): the upload could not be continued")
            }
            return modify
        } write: { modify, copy in
            // An append goes to the end as it is once the upload was continued (an O_TRUNC open
            // may have cut the file meanwhile).
            self.write(modify, file.inode, handle: handle, at: offset, appending: appending, bytes: copy)
        }
    }

    private func isDiscarded(_ inode: Inode) -> Bool { openFiles.withLock { $0.discarded[inode.number] != nil } }

    /// Completes a file being streamed as it stands; its writing descriptors go on as one set of
    /// changes to that object, which it returns (nil when they were all released meanwhile).
    func continueWritersByComposition(_ session: UploadSession, of inode: Inode) async throws -> ModifySession? {
        try await completeToContinue(session, of: inode)
        // The joining open starts from this object, whatever became of the writers' handles.
        if let etag = session.etag { recordWritten(inode, session, etag: etag) }
        let writers = openFiles.withLock { files in files.files.filter { $0.value.session === session } }
        for (handle, file) in writers { _ = continueAfterCompletion(handle, file, session) }
        return changes(of: inode.number)
    }

    /// Completes a file being streamed so that its descriptor goes on as changes to the object
    /// (read back through it, written behind the part being filled, cut by a truncate). A file
    /// unlinked while open (a temporary file: open, unlink, write, read back) is completed too,
    /// under its old name, once the unlink's DELETE is done; hidden from this mount and deleted
    /// at its last release, as its other changes are; unless this mount made that name again
    /// meanwhile (it is another file's): EBUSY.
    func completeToContinue(_ session: UploadSession, of inode: Inode) async throws {
        enum Step { case wait(OneShot<Void>), complete, busy }
        while true {
            let step = openFiles.withLock { files -> Step in
                if let unlink = files.unlinking[inode.number] { return .wait(unlink) }
                guard let unlinked = files.discarded[inode.number] else { return .complete }
                guard !unlinked.madeAgain else { return .busy }
                files.discarded[inode.number] = nil
                files.unlinkedWhileOpen[inode.number, default: []].append(unlinked)
                session.liftCompletionBar()
                return .complete
            }
            switch step {
            case .wait(let unlink):
                await unlink.value
                continue
            case .busy:
                throw FileSystemError(.busy, "\(session.key): unlinked while being written and its name made again since; it can no longer be read back or changed")
            case .complete:
                try await session.flush(writer: .unknown, process: session.opener).get()
                // An empty file's flush left it open; nil: an unlink came in between.
                guard let completed = await session.completeAsItStands() else { continue }
                _ = try completed.get()
                return
            }
        }
    }

    /// Records what the upload wrote as the inode's facts.
    func recordWritten(_ inode: Inode, _ session: UploadSession, etag: ETag) {
        let size = session.size
        let written = session.intendedOptions
        forgetFetchedAhead(around: inode)
        inode.state.withLock { state in
            state.facts.etag = etag
            state.storedHere = etag
            state.facts.size = size
            state.facts.lastModified = .now()
            state.facts.posix = PosixMetadata(metadata: written.metadata)
            state.facts.posixLoaded = true
            state.facts.expiry = freshExpiry()
            state.writtenOptions = written
        }
    }

    /// One `close()` of a descriptor of the file (see mount-options/write-semantics.md). A file
    /// unlinked while open is not completed: its upload is aborted at release. When the closing
    /// process still holds the file open for writing through another descriptor
    /// (`stillHeldWritable`: a `dup`, as a shell redirection makes), nothing happens: the close
    /// of that descriptor completes it. Once the opener closed the file, the flush of another
    /// process stores it when `heldByOthers` (asked only then) says no process holds it open for
    /// writing any more: the last one's close, not the release after it.
    public func flush(_ handle: FileHandleID, writer: WriterIdentity, process: ProcessID = .unknown, stillHeldWritable: Bool = false,
                      heldByOthers: @escaping @Sendable () -> Bool = { true }) async throws {
        guard !stillHeldWritable, !isReadOnly(handle) else { return }
        listings.noteChange()
        defer { listings.noteChange() }
        try await fillToPendingSize(handle)
        let file = try openFile(handle)
        if let modify = file.modify {
            var holders = heldByOthers
            if !(file.closingProcess == .unknown || process == .unknown || process == file.closingProcess) {
                // Another process's close: it stores the changes only when the opener closed the
                // file already and no other process holds it, so that nothing waits for release.
                guard file.openerClosed || file.session?.openerHasFlushed == true, !heldByOthers() else { return }
                holders = { false }  // just asked: /proc is scanned once per flush
            }
            try await afterFailureAskingAgain(file.inode) {
                try await file.session?.flush(writer: writer, process: process, heldByOthers: holders).get()
                try await commit(modify, file.inode)
            }
            // close() returns: a rename need not wait for the release.
            openFiles.withLock { $0.files[handle]?.openerClosed = true }
            return
        }
        guard let session = file.session, !isDiscarded(file.inode) else { return }
        // An unlink that came first bars the completion (the flush passes); one that comes
        // while it completes waits for it (`beginUnlink`).
        try await afterFailureAskingAgain(file.inode) {
            try await session.flush(writer: writer, process: process, heldByOthers: heldByOthers).get()
        }
        if let etag = session.etag { recordWritten(file.inode, session, etag: etag) }
    }

    /// Runs `storing`; when it fails, the store holds what it held before (nothing, for a new
    /// file), not what the attributes of `inode` say since the open: they are asked for again at
    /// the next getattr or lookup (a `stat` showed a failed new file as an empty one, a failed
    /// rewrite as its new size, for `attr_timeout=`).
    private func afterFailureAskingAgain(_ inode: Inode, _ storing: () async throws -> Void) async throws {
        do {
            try await storing()
        } catch {
            askAgainAfterFailure(inode)
            throw error
        }
    }

    private func askAgainAfterFailure(_ inode: Inode) {
        inode.state.withLock { $0.facts.expiry = .now }
    }

    /// Whether `handle` was opened read-only: its close has nothing to store, changes nothing
    /// (listings stay cached) and is answered on libfuse's thread.
    public func isReadOnly(_ handle: FileHandleID) -> Bool {
        guard let file = try? openFile(handle) else { return false }
        return file.session == nil && file.modify == nil
    }

    /// Zeros up to the size a truncate gave the file while it was streamed (`pendingSizes`). With
    /// `writeback_cache` every page written before a flush has arrived by then (the kernel writes
    /// them back first), so what is missing up to that size is a hole.
    /// Only a handle that writes applies it: a read-only descriptor's release leaves it to the
    /// writer's flush (it dropped the size, and the object was stored without the zeros).
    func fillToPendingSize(_ handle: FileHandleID) async throws {
        let file = try openFile(handle)
        guard file.session != nil || file.modify != nil, !isDiscarded(file.inode), let size = openFiles.withLock({ $0.pendingSizes.removeValue(forKey: file.inode.number) }) else { return }
        var offset = file.modify?.size ?? file.session?.size ?? size
        while offset < size {
            let zeros = [UInt8](repeating: 0, count: Int(min(size - offset, 1 << 20)))
            let admission = zeros.withUnsafeBytes { write(handle, at: offset, bytes: $0, writer: .unknown) }
            offset += Int64(try await admission.outcome.get())
        }
    }

    public func fsync(_ handle: FileHandleID) async throws {
        listings.noteChange()
        defer { listings.noteChange() }
        let file = try openFile(handle)
        if let modify = file.modify { return try await commit(modify, file.inode) }
        guard let session = file.session else { return }
        try await session.fsync().get()
    }

    /// The last reference to the open file is gone. Errors can only be logged (the kernel does not
    /// wait for release).
    public func release(_ handle: FileHandleID) async {
        let changing = !isReadOnly(handle)
        if changing { listings.noteChange() }
        defer { if changing { listings.noteChange() } }
        do {
            try await fillToPendingSize(handle)  // no flush applied it
        } catch {
            logger.error("\(handle): the size a truncate set could not be written: \(error)")
        }
        guard let file = openFiles.withLock({ $0.beginRelease(handle) }) else { return }
        await finishReleasing(file)
        let (unheld, unlinkedNames) = openFiles.withLock { files in
            (files.endRelease(file), files.takeUnlinkedNames(afterReleaseOf: file.inode.number))
        }
        unheld?.close()
        for unlinked in unlinkedNames { await deleteUnlinkedObject(unlinked, of: file.inode.number) }
    }

    /// What the release of `file` (no longer among the open handles) completes or aborts.
    private func finishReleasing(_ file: OpenFile) async {
        file.reads?.close()
        if let modify = file.modify {
            if let session = file.session {
                _ = await session.release()
                openFiles.withLock { files in
                    if files.uploads[file.inode.number] === session { files.uploads[file.inode.number] = nil }
                }
            }
            guard modify.failure == nil else {
                askAgainAfterFailure(file.inode)
                logger.info("\(modify.key): released after a failed composition (reported then); nothing more is stored")
                return
            }
            guard table.linkedInode(file.inode.number) != nil || !isUnheld(modify) else {
                await modify.drop()  // before the hidden object's DELETE (release, below)
                logger.info("\(modify.key): unlinked while open; its changes go with it")
                return
            }
            do {
                try await commit(modify, file.inode)
            } catch {
                askAgainAfterFailure(file.inode)
                logger.error("\(modify.key): the changes of a file closed without a successful flush are lost: \(error)")
            }
            return
        }
        guard let session = file.session else { return }
        var discarded = isDiscarded(file.inode)
        if discarded, await storeHiddenForOtherDescriptors(session, of: file.inode) { discarded = false }
        let result = discarded ? await session.discard() : await session.release()
        openFiles.withLock { files in
            if files.uploads[file.inode.number] === session { files.uploads[file.inode.number] = nil }
            if discarded {
                files.discarded[file.inode.number] = nil
                files.pendingSizes[file.inode.number] = nil
            }
        }
        switch result {
        case .success(let etag) where !discarded: recordWritten(file.inode, session, etag: etag)
        case .failure: askAgainAfterFailure(file.inode)
        case .success: break
        }
    }

    /// A file unlinked while streamed that other descriptors still have open (a reader opened
    /// during the stream) is completed as it stands, hidden, for them to read to the end, as a
    /// read back does (`completeToContinue`), and deleted at the last release. False when no
    /// other descriptor has it open, or its name was made again (its upload is aborted).
    private func storeHiddenForOtherDescriptors(_ session: UploadSession, of inode: Inode) async -> Bool {
        guard isOpen(inode) else { return false }
        do {
            try await completeToContinue(session, of: inode)
            return true
        } catch {
            logger.info("\(session.key): unlinked while written, and not kept for its other descriptors: \(error)")
            return false
        }
    }
}
