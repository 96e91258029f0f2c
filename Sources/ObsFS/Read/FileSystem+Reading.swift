// Opening and reading files: every open of an object gets an ObjectReadStream pinned to the
// ETag the open saw (Read/ObjectReadStream.swift has the prefetch design). While other
// descriptors of this mount change the file, a read-only descriptor reads what they hold (as on
// a local disk); once this mount stored a new version (another descriptor's close), it reads
// that version from its next read on; a version from another client fails the read (EIO). An
// open asks the store for the version again when what the mount knows is older than
// `open_revalidate=` (close-to-open): another client's replacement is read by the opens after
// it (with ESTALE, for the kernel to look the name up again, while descriptors here read the
// old version). The kernel's page cache is kept between opens while the ETag is unchanged. A
// file being streamed is readable through the descriptor that writes it (a database creating
// its file) and through any other (`tail -f` of a log being written): the first read of what
// was written completes the upload as it stands and the writing descriptors go on as changes
// to that object (Compose/), which every descriptor reads (mount-options/write-semantics.md). With
// `writeback_cache` the kernel's page cache is shared by the writers and the readers: a reader
// gets from here only pages the cache lacks, which the kernel sent before it dropped them.
import OBSProtocol

#if canImport(Glibc)
import Glibc
#endif

/// How an open file's handle was opened, for the kernel.
public struct OpenedFile: Sendable {
    public let handle: FileHandleID
    /// The kernel may keep its cached pages of the file (same version as at the last open).
    public let keepCache: Bool
    /// Bypass the page cache (files being written, unless `writeback_cache`).
    public let directIO: Bool
    /// The open changed attributes the kernel holds (an O_TRUNC open dropped set-ID bits).
    public var changedAttributes = false
}

extension ObsFileSystem {
    /// Opens a file for reading: the version is the one `getattr` sees now (asked again when
    /// the cached facts are older than `open_revalidate=`). A file another descriptor is
    /// streaming has no version yet: the handle's reads read the changes the writers go on with
    /// (`read`), or, once they closed the file, the object it became.
    func openForReading(_ inode: Inode, _ path: String) async throws -> OpenedFile {
        guard store is any ObjectReader else { throw FileSystemError(.notSupported, "this store cannot read objects") }
        // With writeback_cache the writers' bytes are in the kernel's page cache until it sends
        // them: a reader of a file written here shares that cache (the pages it lacks are read
        // here, and were sent before they left the cache), and must not drop it at open.
        let sharesWritersCache = configuration.writebackCache && isChangingHere(inode.number)
        if inodesBeingWritten().contains(inode.number) {
            return OpenedFile(handle: register(OpenFile(inode: inode, session: nil)), keepCache: sharesWritersCache,
                              directIO: !sharesWritersCache)
        }
        let (stream, keepCache, resized) = try await readStream(inode, path)
        let handle = register(OpenFile(inode: inode, session: nil, reads: stream))
        // The kernel ends reads through its page cache at the size it was last told: a version
        // of another size, learnt just now, is read past it with direct I/O.
        return OpenedFile(handle: handle, keepCache: keepCache || sharesWritersCache, directIO: resized && !sharesWritersCache)
    }

    /// A stream of the version of `inode` the store holds now, whether the kernel may keep its
    /// cached pages (the same version as at the last open), and whether that version's size
    /// differs from the size known before this open.
    private func readStream(_ inode: Inode, _ path: String) async throws -> (ObjectReadStream, keepCache: Bool, resized: Bool) {
        let sizeBefore = inode.facts.size
        // A version is pinned by its ETag. Facts without one (a file just renamed by copying, a
        // chmod's copy onto itself, an upload whose completion is being recorded) are asked for
        // again, so that the size and the ETag read come from the same version; and so are facts
        // older than `open_revalidate=` (close-to-open: another client's replacement is read).
        let fetched = inode.facts.expiry - configuration.attributeTimeout
        let revalidates = fetched + min(configuration.read.openRevalidation, configuration.attributeTimeout) <= .now
        if revalidates || inode.facts.etag == nil, !isChangingHere(inode.number) {
            try await revalidate(inode, at: path)
        }
        let (facts, written, previous) = inode.state.withLock { ($0.facts, $0.writtenOptions, $0.cachedETag) }
        let stream = try makeReadStream(objectKey(path), etag: facts.etag, size: facts.size, written: written)
        inode.state.withLock { $0.cachedETag = facts.etag }
        return (stream, facts.etag != nil && facts.etag == previous, facts.size != sizeBefore)
    }

    /// Asks the store for the version of `inode` again, for an open. Replaced: the name was given
    /// up (`refresh`); answered ESTALE, the kernel looks the name up again and opens the new
    /// object's inode.
    func revalidate(_ inode: Inode, at path: String) async throws {
        try await refresh(inode, at: path, opening: true)
        if table.linkedInode(inode.number) == nil {
            throw FileSystemError(.stale, "\(objectKey(path)) was replaced by another client; opening the new version")
        }
    }

    /// A stream of one version of `key` (with the SSE-C key this mount wrote it with, if any).
    private func makeReadStream(_ key: ObjectKey, etag: ETag?, size: Int64, written: ObjectOptions?) throws -> ObjectReadStream {
        guard let reader = store as? any ObjectReader else { throw FileSystemError(.notSupported, "this store cannot read objects") }
        var customerKey: CustomerKey?
        if case .customer(let key)? = written?.encryption { customerKey = key }
        return ObjectReadStream(key: key, etag: etag, size: size, customerKey: customerKey, reader: reader, pool: readPool,
                                settings: configuration.read.settings)
    }

    /// When the version `stream` reads was replaced by one this mount stored (another
    /// descriptor's close composed or completed the file), a stream of that version, in the
    /// handle's place of `stream` (or the one a concurrent read of the handle put there); nil
    /// otherwise (another client replaced it: EIO).
    private func streamOfVersionStoredHere(_ handle: FileHandleID, _ file: OpenFile, after stream: ObjectReadStream) throws -> ObjectReadStream? {
        let (facts, storedHere, written) = file.inode.state.withLock { ($0.facts, $0.storedHere, $0.writtenOptions) }
        guard let storedHere, storedHere == facts.etag, storedHere != stream.etag else { return nil }
        // Under the file's name now: a directory renamed since moved it (the stream, on an older
        // version, stayed under the old key and read ENOENT); a file unlinked while open is
        // stored under its hidden key (renamed before its unlink, not the stream's: EIO).
        let key = table.path(of: file.inode.number).map(objectKey) ?? hiddenKey(of: file.inode.number) ?? stream.key
        let renewed = try makeReadStream(key, etag: storedHere, size: facts.size, written: written)
        let current = openFiles.withLock { files -> ObjectReadStream? in
            guard let reads = files.files[handle]?.reads, reads === stream else { return files.files[handle]?.reads }
            files.files[handle]?.reads = renewed
            return renewed
        }
        guard current === renewed else {
            renewed.close()
            return current
        }
        stream.close()
        logger.info("\(key): \(handle) reads on from the version this mount stored (ETag \(storedHere), \(facts.size) bytes)")
        return renewed
    }

    /// The key of the object a file unlinked while open keeps for its descriptors.
    private func hiddenKey(of inode: InodeNumber) -> ObjectKey? {
        openFiles.withLock { $0.unlinkedWhileOpen[inode]?.last { !$0.madeAgain }?.key }
    }

    /// Waits for the compositions of `inode` under way (a flush, fsync or release of the
    /// descriptors changing it), so that what they store is recorded (`storedHere`).
    private func awaitCompositions(of inode: InodeNumber) async {
        let changes = openFiles.withLock { files in
            files.files.values.compactMap { $0.inode.number == inode ? $0.modify : nil } + (files.releasingChanges[inode] ?? [])
        }
        for modify in changes { await modify.awaitComposition() }
    }

    /// The stream of a handle opened while another descriptor was streaming the file: EBUSY
    /// while it still is, else the object it became (opened once, kept in the handle), also
    /// when the file was unlinked since (its object stays, hidden, for the open descriptors).
    private func streamOpenedLate(_ handle: FileHandleID, _ file: OpenFile) async throws -> ObjectReadStream {
        guard !inodesBeingWritten().contains(file.inode.number) else {
            throw FileSystemError(.busy, "\(file.inode.number) is being written; it can be read once it is closed")
        }
        let stream: ObjectReadStream
        if let path = table.path(of: file.inode.number) {
            (stream, _, _) = try await readStream(file.inode, path)
        } else if let hidden = hiddenKey(of: file.inode.number) {
            let (facts, written) = file.inode.state.withLock { ($0.facts, $0.writtenOptions) }
            stream = try makeReadStream(hidden, etag: facts.etag, size: facts.size, written: written)
        } else {
            throw FileSystemError(.noEntry, "\(file.inode.number) was unlinked and its object is gone")
        }
        let kept = attach(stream, to: handle, as: \.reads)
        if kept !== stream { stream.close() }
        guard let kept else { throw FileSystemError(.badFileHandle, "\(handle) was released") }
        return kept
    }

    /// Up to `count` bytes at `offset`: of the changes the handle (or, read-only, another
    /// descriptor) holds, else of the version the handle reads (the design note above).
    public func read(_ handle: FileHandleID, at offset: Int64, count: Int) async throws -> ReadBytes {
        var file = try openFile(handle)
        let readOnly = file.session == nil && file.modify == nil
        if readOnly {
            // A read-only descriptor reads what the descriptors changing the file hold, as on a
            // local disk. With writeback_cache this is also what keeps the one page cache right:
            // a short read would be cached as zeros and written back over the writer's bytes.
            if let changes = changes(of: file.inode.number) {
                file.modify = changes
            } else if let streaming = upload(of: file.inode.number), streaming.excludesOtherWriters {
                // Another descriptor streams the file (`cmd > log` beside `tail -f log`, opened
                // during the stream or before it, on the version the stream replaces): what was
                // written is completed as it stands and the writing descriptors go on as changes
                // to that object, which this one reads, as the writer's own read back does
                // (below), as on a local disk. A descriptor opened before read on in the replaced
                // version, cut at the new size, and kept those bytes in the page cache after the
                // writer's close (`tail -f` printed the old lines).
                if file.reads != nil, configuration.writebackCache {
                    // With the one page cache, bytes of the replaced version would be cached in
                    // the new file's pages (where it has holes, or pages it sent and dropped),
                    // and a partial write of such a page would send them back in it.
                    throw FileSystemError(.busy, "\(file.inode.number) is being written again from the start; a descriptor opened on the version it replaces can read it once it is closed")
                }
                guard !isEmptyStream(streaming, of: file.inode.number) else { return ReadBytes() }
                listings.noteChange()
                defer { listings.noteChange() }
                logger.info("\(streaming.key): read by another descriptor while being written; completing it as it stands and continuing by composition")
                if let changes = try await continueWritersByComposition(streaming, of: file.inode) { file.modify = changes }
            }
        }
        if file.modify == nil, let session = file.session, session.isUploading {
            // A length set ahead of the bytes (`ftruncate` then a shared `mmap`, whose pages the
            // kernel reads first) is zeros up to there, not an end the reader would stop at (for
            // a file unlinked while open, the changes it goes on as hold that length).
            try await fillToPendingSize(handle)
            guard !isEmptyStream(session, of: file.inode.number) else { return ReadBytes() }
            listings.noteChange()  // the upload is completed as it stands
            defer { listings.noteChange() }
            try await completeToContinue(session, of: file.inode)
            if let modify = continueAfterCompletion(handle, file, session) { file.modify = modify }
        }
        if let modify = file.modify {
            do {
                return ReadBytes(try await modify.read(at: offset, count: count))
            } catch {
                // Read-only, reading another descriptor's changes, which their last release
                // closed meanwhile: the read goes on in what they stored (below).
                guard readOnly, !openFiles.withLock({ $0.holds(modify) }) else { throw storeFailure("reading \(modify.key) at \(offset)", error) }
            }
        }
        var stream: ObjectReadStream
        if let opened = file.reads { stream = opened } else { stream = try await streamOpenedLate(handle, file) }
        // A version this mount stored since the handle's (another descriptor's close or fsync,
        // which may still be composing it) is read from here on: reading on in the old one would
        // end at its length, and the kernel would take that short read for the file's end.
        await awaitCompositions(of: file.inode.number)
        if let next = try streamOfVersionStoredHere(handle, file, after: stream) { stream = next }
        // Each move to a newer version (this mount storing again and again, under a read of
        // many concurrent ones) is bounded, so a read always ends.
        var moves = 0
        while true {
            do {
                return try await stream.read(at: offset, count: count)
            } catch {
                guard moves < Self.versionMovesPerRead else { throw readFailure(error, stream, offset, of: file.inode) }
                moves += 1
                // Another read of the handle moved it on to a newer version, closing this stream.
                if let current = openFiles.withLock({ $0.files[handle]?.reads }), current !== stream {
                    stream = current
                    continue
                }
                // Replaced meanwhile: by a composition of this mount (its new version is read
                // once it is recorded), else by another client (EIO).
                guard error is ObjectChangedError else { throw readFailure(error, stream, offset, of: file.inode) }
                await awaitCompositions(of: file.inode.number)
                guard let next = try streamOfVersionStoredHere(handle, file, after: stream) else { throw readFailure(error, stream, offset, of: file.inode) }
                stream = next
            }
        }
    }

    /// Whether `session` has received no byte and no length ahead of its bytes: a read answers
    /// the end of the file and completes nothing.
    private func isEmptyStream(_ session: UploadSession, of inode: InodeNumber) -> Bool {
        session.size == 0 && pendingSize(of: inode) == nil
    }

    /// How many times one read may move on to a newer version of the file.
    static let versionMovesPerRead = 16

    /// The error a read of `stream` answers: EIO for a version another client replaced (logged).
    /// The attributes of `inode` are asked for again at its next open: the store said its version
    /// is gone (opens within `attr_timeout=` failed alike).
    private func readFailure(_ error: any Error, _ stream: ObjectReadStream, _ offset: Int64, of inode: Inode) -> FileSystemError {
        guard let changed = error as? ObjectChangedError else { return storeFailure("reading \(stream.key) at \(offset)", error) }
        inode.state.withLock { state in
            if state.facts.etag == stream.etag { state.facts.expiry = .now }
        }
        let failure = FileSystemError(.io, changed.description)
        logger.error("\(failure.reason)")
        return failure
    }
}
