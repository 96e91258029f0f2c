// POSIX metadata changes (chmod, chown, utimensat, truncate) and extended attributes outside
// `user.obs.`, all kept in the object's metadata in s3fs's format (PosixMetadata.swift):
// - a closed file or symlink: the metadata is replaced in place (`PUT ?metadata` on OBS, a copy
//   onto itself in the S3 dialects, keeping class, ACL and encryption: the `user.obs.*` machinery
//   of Attributes/ sends it);
// - a file being written: the change rides on its upload (re-initiated before the first part,
//   else applied right after completion, before `close()` returns);
// - a directory: its marker object `d/` is written again with the new metadata (created when
//   the directory had none). The bucket root has no object: its changes are refused (EPERM).
// Nothing returns success without effect.
import OBSProtocol

#if canImport(Glibc)
import Glibc
#endif

/// What `setattr` changes; nil fields stay as they are.
public struct AttributeChanges: Sendable, Equatable {
    public var size: Int64?
    public var permissions: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var accessed: FileTime?
    public var modified: FileTime?

    /// Only the ctime is to change (`chown(f, -1, -1)`: the kernel sends it alone).
    public var changeTimeOnly = false

    public init(size: Int64? = nil, permissions: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil,
                accessed: FileTime? = nil, modified: FileTime? = nil) {
        self.size = size
        self.permissions = permissions
        self.uid = uid
        self.gid = gid
        self.accessed = accessed
        self.modified = modified
    }

    var changesMetadata: Bool { permissions != nil || uid != nil || gid != nil || accessed != nil || modified != nil }

    /// The first metadata entry (PosixMetadata) these changes write, for the log line.
    var firstStoredEntry: String {
        permissions != nil ? "mode" : uid != nil ? "uid" : gid != nil ? "gid" : modified != nil ? "mtime" : "atime"
    }

    /// Writes these changes into `posix`; `otherPermissions` when no permissions are given.
    func apply(to posix: inout PosixMetadata, otherPermissions: UInt32? = nil) {
        if let permissions = permissions ?? otherPermissions { posix.permissions = permissions & 0o7777 }
        if let uid { posix.uid = uid }
        if let gid { posix.gid = gid }
        if let accessed { posix.accessed = accessed }
        if let modified { posix.modified = modified }
    }
}

extension ObsFileSystem {
    /// Extended attribute values above this size are refused (object metadata is small: 2 KiB
    /// on S3 for all of it).
    static let maximumPlainAttributeSize = 1024

    /// Changes what `changes` names. With `caller` (the FUSE adapter gives it), a truncate or a
    /// chown also drops the set-ID bits Linux drops (SetIDBits.swift).
    public func setattr(_ number: InodeNumber, _ changes: AttributeChanges, by caller: Caller? = nil) async throws -> FileAttributes {
        listings.noteChange()
        defer { listings.noteChange() }
        await awaitDirectoryRenames(above: number)
        guard let (inode, path) = try? resolve(number) else { return try await changeUnlinked(number, changes) }
        if let size = changes.size {
            try await truncate(inode, path, to: size)
            if let caller { try await dropSetIDBits(inode, path, .content, by: caller) }
        }
        if changes.changeTimeOnly, changes.size == nil, !changes.changesMetadata {
            try checkWritable()
            table.noteChangedItself(number)
        }
        if changes.changesMetadata {
            let ownerChanged = changes.uid != nil || changes.gid != nil
            let keptByChown = ownerChanged && changes.permissions == nil ? caller.flatMap { permissionsAfterDroppingSetID(inode, .owner, by: $0) } : nil
            let changed = try await changePosix(inode, path, entry: changes.firstStoredEntry) { changes.apply(to: &$0, otherPermissions: keptByChown) }
            // The mtime stored: the one given, else the file's (`touch -a` opens for writing and
            // changes the atime alone: its mtime showed the time of the touch until the close).
            self.changes(of: number)?.noteMetadataChange(modified: changes.modified ?? inode.facts.posix.modified, changed: changed)
        }
        return attributes(of: inode)
    }

    /// A file unlinked while open has no name left to change (its object is deleted at its last
    /// close): its times, mode and owner change in memory, for its descriptors' `fstat`. The
    /// kernel sends such changes itself (with `writeback_cache`, the ctime an unlink gave the
    /// file, before the close); refusing them failed the close with EIO. `ftruncate` through a
    /// descriptor writing it changes its length as for a linked file.
    private func changeUnlinked(_ number: InodeNumber, _ changes: AttributeChanges) async throws -> FileAttributes {
        guard let inode = table.inode(number), isOpen(inode) else {
            throw FileSystemError(.noEntry, "\(number) is no longer linked")
        }
        if let size = changes.size { try await truncate(inode, nil, to: size) }
        inode.state.withLock { state in
            changes.apply(to: &state.facts.posix)
            state.facts.posix.changed = .now()
        }
        return attributes(of: inode)
    }

    /// `fallocate`: an object store reserves no space, so allocating within the file
    /// (`FALLOC_FL_KEEP_SIZE`) has nothing to do, and allocating past its end makes it that long,
    /// zeros up to there, as `truncate` does. Punching holes and the other modes answer
    /// `EOPNOTSUPP`.
    public func allocate(_ number: InodeNumber, offset: Int64, length: Int64, mode: Int32) async throws {
        guard offset >= 0, length > 0, offset <= Int64.max - length else {
            throw FileSystemError(.invalidArgument, "fallocate of \(length) bytes at \(offset)")
        }
        let keepSize: Int32 = 0x01  // FALLOC_FL_KEEP_SIZE (linux/falloc.h, which Glibc does not bring)
        guard mode & ~keepSize == 0 else {
            let file = (try? resolve(number)).map { objectKey($0.1).description } ?? "\(number)"  // unlinked while open: no key
            let failure = FileSystemError(.notSupported, "\(file): fallocate mode \(mode) (holes, zeroed or moved ranges) is not supported")
            repeatedLines.log(.warning, failure.reason, kind: "fallocate", to: logger)
            throw failure
        }
        guard mode & keepSize == 0 else { return }
        let end = offset + length
        if end > (try await getattr(number)).size { _ = try await setattr(number, AttributeChanges(size: end)) }
    }

    /// The kernel's own times of a file open for writing: with `writeback_cache` it keeps mtime
    /// and ctime itself and sends them with the writing handle at close and at writeback. They are
    /// not stored: the object keeps the time of its open, as without the cache
    /// (mount-options/write-semantics.md); storing them would cost a second initiation or a copy
    /// per file. Nil when `handle` is not the writing handle of that file (an ordinary setattr).
    public func timesOfCachedWrites(_ number: InodeNumber, handle: FileHandleID) -> FileAttributes? {
        guard configuration.writebackCache, let file = try? openFile(handle), file.inode.number == number,
              file.session != nil || file.modify != nil else { return nil }
        return attributes(of: file.inode)
    }

    /// The current size changes nothing; a file open for changes is cut there; a closed object
    /// gets its new length by composition (Compose/: a prefix copy, zeros appended, or an empty
    /// object with the same metadata). A file being streamed keeps a size that cuts nothing it
    /// received until its next flush, which fills zeros up to it (`cp` of a file ending in a hole,
    /// `truncate -s` of a new file, the kernel's size ahead of its cached pages); cut, it is
    /// completed as it stands and its descriptor goes on as changes to that object.
    /// `path` is nil for a file unlinked while open, which only its writing descriptors can cut.
    private func truncate(_ inode: Inode, _ path: String?, to size: Int64) async throws {
        guard inode.kind == .regular else { throw FileSystemError(inode.kind == .directory ? .isDirectory : .invalidArgument, "truncate of \(path ?? "\(inode.number)")") }
        let current = attributes(of: inode).size
        if changes(of: inode.number) == nil, size == current { return }
        try checkWritable()
        // What a write could not reach either: checked before any plan (or zeros) is made.
        let largest = configuration.upload.schedule.reach
        guard size <= largest else {
            throw FileSystemError(.fileTooBig, "truncate of \(path.map { objectKey($0).description } ?? "\(inode.number)") to \(size) bytes: more than this mount's largest object, \(largest) bytes")
        }
        // A file stored empty (closed, its release not yet arrived) has no next flush to fill
        // it: it is changed as the object it is (below).
        if changes(of: inode.number) == nil, let session = upload(of: inode.number), session.excludesOtherWriters, size >= session.size {
            openFiles.withLock { $0.pendingSizes[inode.number] = size }  // nothing received is cut
            return
        }
        openFiles.withLock { $0.pendingSizes[inode.number] = nil }
        guard let modify = try await changesForTruncate(inode) ?? (path == nil ? changesOfStoredStream(inode) : nil) else {
            guard let path else { throw FileSystemError(.noEntry, "\(inode.number) is no longer linked and not open for writing") }
            return try await truncateExisting(inode, path, to: size)
        }
        try modify.truncate(to: size)
        inode.state.withLock { $0.facts.size = size }
    }

    /// The changes a truncate of an open file cuts: those of a descriptor changing the object,
    /// or, for a file being streamed, those its writing descriptor continues with once its
    /// upload is completed as it stands. Nil for a file nobody writes (a closed object).
    private func changesForTruncate(_ inode: Inode) async throws -> ModifySession? {
        if let modify = changes(of: inode.number) { return modify }
        guard let session = upload(of: inode.number), session.isUploading else { return nil }
        logger.info("\(session.key): length changed while being written; completing the upload and continuing by composition")
        // Nil when its descriptors were released meanwhile: the object just completed (which
        // continueWritersByComposition recorded) is changed closed.
        return try await continueWritersByComposition(session, of: inode)
    }

    /// The changes a new file unlinked while open goes on with when its opener's close stored it
    /// and another process still holds its descriptor (a forked child's `ftruncate`), as a
    /// write through that descriptor goes on (`continueAfterCompletion`).
    private func changesOfStoredStream(_ inode: Inode) -> ModifySession? {
        let held = openFiles.withLock { files in
            files.files.first { $0.value.inode === inode && $0.value.isStoredStream }
        }
        guard let (handle, file) = held, let session = file.session else { return nil }
        return continueAfterCompletion(handle, file, session)
    }

    /// Changes the POSIX metadata of `inode` with `edit`, completing a record the object lacked
    /// with what `stat` showed (s3fs always writes the whole set). ctime becomes now; returns it.
    /// `entry` names the metadata entry (PosixMetadata) the change is logged as.
    @discardableResult
    func changePosix(_ inode: Inode, _ path: String, entry: String, _ edit: @escaping @Sendable (inout PosixMetadata) -> Void) async throws -> FileTime {
        try checkWritable()
        let shown = attributes(of: inode)
        let kind = inode.kind
        // One time for the object and for what `stat` shows: taken twice, the one shown came
        // later than the one stored, and the ctime went back once read from the store (tar:
        // "file changed as we read it").
        let changed = FileTime.now()
        let update: @Sendable (inout PosixMetadata) -> Void = { posix in
            if posix.permissions == nil { posix.permissions = shown.mode & 0o7777 }
            if posix.uid == nil { posix.uid = shown.uid }
            if posix.gid == nil { posix.gid = shown.gid }
            // The times shown stay (a directory's mtime moved by names changed in it since its
            // marker was written went back to the marker's).
            posix.modified = shown.modified
            if posix.accessed == nil { posix.accessed = shown.accessed }
            edit(&posix)
            posix.changed = changed
        }
        // Whether the stored object was changed (a copy onto itself may give it another ETag),
        // rather than the upload in progress, which carries the change when it completes.
        var storedObjectChanged = false
        if kind == .directory {
            try await changeDirectoryMarker(path, update)
        } else {
            let metadataEdit: Edit = { _, options in
                var posix = PosixMetadata(metadata: options.metadata)
                update(&posix)
                posix.write(into: &options.metadata, kind: kind)
            }
            await fileAttributeChanges.acquire(1)
            defer { fileAttributeChanges.release(1) }
            let attribute = ObjectAttributeName.metadata(entry)
            var done = false
            if let session = upload(of: inode.number), session.isUploading {
                done = try await changeWhileWriting(session, path, attribute, metadataEdit, batched: true)
            }
            if !done {
                try await changeObject(inode.number, path, attribute, metadataEdit, written: inode.state.withLock { $0.writtenOptions })
                storedObjectChanged = true
            }
        }
        forgetFetchedAhead(around: inode)
        // A copy onto itself (the S3 dialects) may give the object another ETag: descriptors
        // reading the file follow it to that ETag (the same bytes), as they follow this mount's
        // other changes; with none open it is asked for at the next use. OBS changes the
        // metadata in place and keeps the ETag.
        let copiedOntoItself = storedObjectChanged && (store as? any AttributeStore)?.replacesMetadataByCopy != false
        let copied: ETag? = if copiedOntoItself, isOpen(inode) { try? await store.headObject(objectKey(path))?.etag } else { nil }
        inode.state.withLock { state in
            update(&state.facts.posix)
            // The times just set, ctime now, are the ones to show.
            state.changedHere = nil
            state.namesChangedHere = nil
            state.facts.posixLoaded = true
            if copiedOntoItself {
                state.facts.etag = copied
                if let copied { state.storedHere = copied }
            }
        }
        return changed
    }

    /// Writes the directory's marker `d/` again (or for the first time) with changed metadata.
    private func changeDirectoryMarker(_ path: String, _ update: (inout PosixMetadata) -> Void) async throws {
        let markerKey = markerKey(ofDirectory: path)
        let unkept = FileSystemError(.notSupported, "\(markerKey): this store keeps no metadata on directory markers, so a directory's mode, owner, times and xattrs cannot be changed")
        if markersKeepMetadata.withLock({ $0 }) == false { throw unkept }
        var posix: PosixMetadata
        do {
            var options = ObjectOptions()
            // Not on `.obsmount-root`: s3fs would show an object of that type as a directory.
            if markerKey.rawValue.hasSuffix("/") { options.contentType = KeyNaming.directoryContentType }
            if let marker = try await store.headObject(markerKey) { options.metadata = marker.metadata }
            posix = PosixMetadata(metadata: options.metadata)
            update(&posix)
            posix.write(into: &options.metadata, kind: .directory)
            _ = try await store.putObject(markerKey, bytes: [], options: options)
        } catch {
            throw storeFailure("changing the metadata of directory \(markerKey)", error)
        }
        if await learnWhetherMarkersKeepMetadata(markerKey, wrote: posix) == false { throw unkept }
    }

    /// Reads back, once per mount, a marker just written with `posix`: whether the store keeps
    /// metadata on directory markers (nil: not known yet). The first time it does not, says so in
    /// the log; from then on directory metadata changes answer EOPNOTSUPP instead of succeeding
    /// without effect.
    func learnWhetherMarkersKeepMetadata(_ markerKey: ObjectKey, wrote posix: PosixMetadata) async -> Bool? {
        if let known = markersKeepMetadata.withLock({ $0 }) { return known }
        guard let marker = try? await store.headObject(markerKey) else { return nil }
        let kept = PosixMetadata(metadata: marker.metadata).permissions == posix.permissions
        markersKeepMetadata.withLock { $0 = kept }
        if !kept {
            logger.warning("\(markerKey) was written with a mode, owner and times and reads back without them: this store keeps no metadata on directory markers (SeaweedFS does this). Directories show the mount's defaults; chmod, chown, touch and setfattr of a directory answer EOPNOTSUPP")
        }
        return kept
    }

    // MARK: Extended attributes outside user.obs.

    /// The namespaces whose attributes the kernel or other tools interpret (capabilities, ACLs,
    /// SELinux labels): never kept.
    static let systemAttributeNamespaces = ["security.", "system.", "trusted."]

    /// Why `name` is not kept (in a system namespace, or empty), or nil: `user.*` names are kept,
    /// and so are names in no namespace, which FUSE passes through and s3fs keeps (`setfattr -n
    /// key`; s3fs's own tests use them). Decided without the store, so the FUSE adapter answers it
    /// on its own thread: with `writeback_cache` the kernel asks for `security.capability` before
    /// every write into its page cache.
    public static func unkeptAttributeName(_ name: String) -> FileSystemError? {
        guard !name.isEmpty, name != "user.", !systemAttributeNamespaces.contains(where: { name.hasPrefix($0) }) else {
            return FileSystemError(.notSupported, "\(name): security.*, system.* and trusted.* extended attributes are not kept")
        }
        return nil
    }

    private func checkPlainName(_ name: String) throws {
        if let refusal = Self.unkeptAttributeName(name) { throw refusal }
    }

    /// The POSIX metadata as the object (or the upload writing it) holds it now.
    private func currentPosix(_ number: InodeNumber) async throws -> PosixMetadata {
        let (inode, _) = try resolve(number)
        if let session = upload(of: number), session.isUploading { return PosixMetadata(metadata: session.intendedOptions.metadata) }
        let facts = inode.facts
        if facts.posixLoaded && facts.expiry > .now { return facts.posix }
        inode.state.withLock { $0.facts.expiry = .now }
        _ = try await getattr(number)
        return inode.facts.posix
    }

    func plainAttribute(_ number: InodeNumber, name: String) async throws -> [UInt8] {
        try checkPlainName(name)
        guard let value = try await currentPosix(number).extendedAttributes[ExactName(name)] else {
            throw FileSystemError(.noAttribute, "\(name) is not set")
        }
        return value
    }

    func plainAttributeNames(_ number: InodeNumber) async throws -> [String] {
        try await currentPosix(number).extendedAttributes.keys.sorted().map(\.text)
    }

    /// Sets (`value`) or removes (nil) a `user.*` attribute; XATTR_CREATE / XATTR_REPLACE honoured.
    func changePlainAttribute(_ number: InodeNumber, name: String, value: [UInt8]?, flags: Int32) async throws {
        try checkPlainName(name)
        if let value, value.count > ObsFileSystem.maximumPlainAttributeSize {
            throw FileSystemError(.tooBig, "\(name): values above \(ObsFileSystem.maximumPlainAttributeSize) bytes do not fit in object metadata")
        }
        let current = try await currentPosix(number)
        let isSet = current.extendedAttributes[ExactName(name)] != nil
        if flags & ObsFileSystem.createOnly != 0 && isSet { throw FileSystemError(.exists, "\(name) is already set (XATTR_CREATE)") }
        if (flags & ObsFileSystem.replaceOnly != 0 || value == nil) && !isSet { throw FileSystemError(.noAttribute, "\(name) is not set") }
        let (inode, path) = try resolve(number)
        if value != nil {
            // All of a file's metadata shares one budget on the store: full is ENOSPC, as a
            // local filesystem answers when an inode's attribute space is used up.
            var changed = current
            changed.extendedAttributes[ExactName(name)] = value
            var metadata: [String: String] = [:]
            changed.write(into: &metadata, kind: inode.kind)
            let bytes = ProtocolLimits.metadataBytes(metadata)
            guard bytes <= ProtocolLimits.maximumMetadataBytes else {
                throw FileSystemError(.noSpace, "\(name): the file's metadata would take \(bytes) bytes, more than the store's \(ProtocolLimits.maximumMetadataBytes)")
            }
        }
        try await changePosix(inode, path, entry: "xattr") { posix in posix.extendedAttributes[ExactName(name)] = value }
    }
}
