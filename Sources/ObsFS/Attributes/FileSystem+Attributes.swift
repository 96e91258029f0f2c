// `user.obs.*` extended attributes on files and directories: the FUSE xattr calls, the options
// of a new file (mount defaults, directory chain), and changes to a file while it uploads.
//
// Who holds a path's attributes:
// - a directory: its own values (DirectoryAttributes, a hidden object per directory);
// - a file being written: its upload session (the options it was initiated with, plus the
//   changes recorded for after completion);
// - any other file: the object in the store, read at each call (HEAD, GET ?acl, GET ?tagging).
// When a change takes effect is decided by `ObjectAttributeName.update(at:from:to:)`
// (ObjectAttributeTiming.swift); this file carries out its answer. Other `user.*` names
// (`cp --preserve=xattr`, `rsync -X`, `setfattr -n user.foo`) are kept in the object's metadata
// in s3fs's format (Namespace/FileSystem+Metadata.swift); `security.*`, `system.*` and
// `trusted.*` answer ENOTSUP without a request.
import OBSProtocol

#if canImport(Glibc)
import Glibc
#endif

extension ObsFileSystem {
    enum AttributeHolder {
        case directory(path: String)
        case writing(UploadSession, path: String)
        case object(path: String, etag: ETag?, size: Int64, written: ObjectOptions?)
    }

    func holder(_ number: InodeNumber) throws -> AttributeHolder {
        let (inode, path) = try resolve(number)
        if inode.kind == .directory { return .directory(path: path) }
        let session = upload(of: number)
        // A file stored empty (`touch`, whose release has not arrived yet) shows its object: its
        // names did not change between the close and the release (fsstress: listxattr's size
        // probe, then ERANGE).
        if let session, session.isUploading, !session.isStoredEmpty { return .writing(session, path: path) }
        let (facts, written) = inode.state.withLock { ($0.facts, $0.writtenOptions) }
        return .object(path: path, etag: session?.etag ?? facts.etag, size: facts.size, written: written)
    }

    /// The failure of an xattr call: the errno, and one log line naming the attribute and the rule.
    private func refusal(_ error: ObjectAttributeError, _ path: String) -> FileSystemError {
        let failure = FileSystemError(Errno(error.errno), "\(path.isEmpty ? "/" : path): \(error)")
        if error.errno != ENODATA { logger.warning("\(failure.reason)") }
        return failure
    }

    func attributeStore(for path: String) throws -> any AttributeStore {
        guard let store = store as? any AttributeStore else {
            throw FileSystemError(.notSupported, "\(path): this store cannot change the attributes of existing objects")
        }
        return store
    }

    private func parse(_ name: String, _ path: String) throws -> ObjectAttributeName? {
        do {
            return try ObjectAttributeName.parse(name)
        } catch {
            throw refusal(error, path)
        }
    }

    // MARK: Reading

    /// An existing object's attributes from the store: HEAD, plus the ACL and the tags when
    /// asked. Without an AttributeStore: the ETag and size this mount knows.
    /// What a store cannot report back (expires days, persistent headers, the encoding type, the SSE-C key and KMS
    /// bucket key) comes from `written`, the options this mount wrote the object with.
    func storedAttributes(_ path: String, etag: ETag?, size: Int64, written: ObjectOptions?, acl: Bool, tags: Bool) async throws -> StoredObjectAttributes {
        guard let store = store as? any AttributeStore else {
            return StoredObjectAttributes(options: ObjectOptions(), state: ObjectAttributeState(etag: etag, size: etag == nil ? nil : size))
        }
        let key = objectKey(path)
        do {
            // The three replies are independent: one round trip, not three.
            async let headed = head(key, store: store, written: written)
            async let policy = acl ? store.objectACL(key) : nil
            async let tagSet = tags ? store.objectTags(key) : nil
            guard var stored = try await headed else { throw FileSystemError(.noEntry, "no object \(key)") }
            if let policy = try await policy { ObjectACLMapping.read(policy, into: &stored.options) }
            if let tagSet = try await tagSet { stored.options.tags = tagSet }
            if let written {
                stored.options.expiresDays = written.expiresDays
                stored.options.persistentHeaders = written.persistentHeaders
                stored.options.encodingType = written.encodingType
                switch (stored.options.encryption, written.encryption) {
                case (.customer?, .customer?), (.kms?, .kms?): stored.options.encryption = written.encryption
                default: break
                }
            }
            return stored
        } catch {
            throw storeFailure("reading the attributes of \(key)", error)
        }
    }

    /// HEAD of `key`. An SSE-C object needs the key on HEAD too: the key the mount wrote the
    /// object with (the store retries a refused HEAD with the mount's key by itself).
    private func head(_ key: ObjectKey, store: any AttributeStore, written: ObjectOptions?) async throws -> StoredObjectAttributes? {
        var writtenKey: CustomerKey?
        if case .customer(let key)? = written?.encryption { writtenKey = key }
        return try await store.objectAttributes(key, customerKey: writtenKey)
    }

    private func needsACL(_ name: ObjectAttributeName) -> Bool {
        switch name {
        case .acl, .grant: true
        default: false
        }
    }

    /// The value of a `user.obs.*` attribute (ENODATA when it has none or the name is not ours).
    /// Names outside `user.obs.` are answered before any request (`ls -l` asks for
    /// `security.selinux` and `system.posix_acl_access` on every file).
    public func getxattr(_ inode: InodeNumber, name: String) async throws -> [UInt8] {
        guard name.hasPrefix(ObjectAttributeName.namespace) else { return try await plainAttribute(inode, name: name) }
        let holder = try holder(inode)
        let (options, state, path) = try await view(holder, acl: needsACL, tags: { $0 == .tagging }, parsing: name)
        guard let attribute = try parse(name, path) else { throw FileSystemError(.noAttribute, "\(name) is not kept by obsmount") }
        do {
            return try attribute.value(in: options, state: state, mount: configuration.uploadOptions)
        } catch {
            throw refusal(error, path)
        }
    }

    /// The `user.obs.*` names set on `inode`. Read-only facts (ETag, size, upload ID, …) are
    /// readable by name but not listed: copy tools (`cp -a`, `rsync -X`) copy or remove every
    /// listed name, and these can be neither written nor removed. A symlink or special file
    /// lists none: Linux answers `user.*` names of those itself (ENODATA, EPERM), so `rsync -aX`
    /// failed on every name listed. Neither are the store's defaults, which every stored object
    /// reports whether or not anything set them (ACL `private`, storage class `STANDARD`): the
    /// list is what was set, the same while the file is written and after (a file being written
    /// shows what its upload sets), and copy tools do not set the defaults on every copy. Nor is
    /// a file's Content-Type when it is the one its name infers: a new file lists no attribute,
    /// as on a local disk, `cp -a` and `rsync -X` out of the mount copy none, and `rsync -X` into
    /// it no longer removes the inferred types (the files were left `application/octet-stream`).
    public func listxattr(_ inode: InodeNumber) async throws -> [String] {
        let kind = table.inode(inode)?.kind
        if let kind, kind != .regular, kind != .directory { return [] }
        let (options, state, path) = try await view(try holder(inode), acl: { _ in true }, tags: { _ in true }, parsing: nil)
        let inferredType = kind == .regular ? configuration.uploadOptions.inferredContentType(forFileName: String(path.split(separator: "/").last ?? "")) : nil
        let own = ObjectAttributeName.listNames(in: options, state: state).filter { name in
            switch name {
            case _ where name.isReadOnly: false
            case .metadata(let key): !PosixMetadata.names.contains(key)
            case .acl: options.acl != .private
            case .storageClass: options.storageClass != .standard
            case .contentType: inferredType == nil || options.contentType != inferredType
            default: true
            }
        }
        return own.map(\.description) + (try await plainAttributeNames(inode))
    }

    /// The options and facts a holder shows; ACL and tags of a closed object are fetched only
    /// when `acl`/`tags` hold for the parsed name (always for listing).
    private func view(_ holder: AttributeHolder, acl: (ObjectAttributeName) -> Bool, tags: (ObjectAttributeName) -> Bool,
                      parsing name: String?) async throws -> (ObjectOptions, ObjectAttributeState, String) {
        switch holder {
        case .directory(let path):
            do {
                return (try await directoryAttributes.options(of: path), ObjectAttributeState(), path)
            } catch {
                throw storeFailure("reading the attributes of directory '\(path)'", error)
            }
        case .writing(let session, let path):
            return (session.intendedOptions, ObjectAttributeState(uploadID: session.uploadID, size: session.size), path)
        case .object(let path, let etag, let size, let written):
            let parsed = try name.map { try parse($0, path) } ?? nil
            let all = name == nil
            let stored = try await storedAttributes(path, etag: etag, size: size, written: written,
                                                    acl: all || parsed.map(acl) == true, tags: all || parsed.map(tags) == true)
            return (stored.options, stored.state, path)
        }
    }

    // MARK: Changing

    /// `setxattr` flags (sys/xattr.h): fail if the attribute exists / does not exist.
    public static let createOnly: Int32 = 1
    public static let replaceOnly: Int32 = 2

    /// Sets a `user.obs.*` attribute (xattrs.md: when a change takes effect). `flags` may hold
    /// `createOnly` (EEXIST when set) or `replaceOnly` (ENODATA when not set).
    public func setxattr(_ inode: InodeNumber, name: String, value: [UInt8], flags: Int32 = 0) async throws {
        listings.noteChange()
        defer { listings.noteChange() }
        await awaitDirectoryRenames(above: inode)
        guard name.hasPrefix(ObjectAttributeName.namespace) else {
            return try await changePlainAttribute(inode, name: name, value: value, flags: flags)
        }
        let mount = configuration.uploadOptions
        try await change(inode, name) { attribute, options throws(ObjectAttributeError) in
            let isSet = attribute.isSet(in: options)
            if flags & ObsFileSystem.createOnly != 0 && isSet {
                throw ObjectAttributeError(errno: EEXIST, attribute: attribute.description, message: "already set (XATTR_CREATE)")
            }
            if flags & ObsFileSystem.replaceOnly != 0 && !isSet {
                throw ObjectAttributeError(errno: ENODATA, attribute: attribute.description, message: "not set (XATTR_REPLACE)")
            }
            try attribute.apply(value, to: &options, mount: mount, now: .now())
        }
    }

    /// Removes a `user.obs.*` attribute (`setfattr -x`).
    public func removexattr(_ inode: InodeNumber, name: String) async throws {
        listings.noteChange()
        defer { listings.noteChange() }
        await awaitDirectoryRenames(above: inode)
        guard name.hasPrefix(ObjectAttributeName.namespace) else {
            return try await changePlainAttribute(inode, name: name, value: nil, flags: 0)
        }
        try await change(inode, name) { attribute, options throws(ObjectAttributeError) in try attribute.remove(from: &options) }
    }

    typealias Edit = @Sendable (ObjectAttributeName, inout ObjectOptions) throws(ObjectAttributeError) -> Void

    private func change(_ inode: InodeNumber, _ name: String, _ edit: @escaping Edit) async throws {
        let holder = try holder(inode)
        let path: String
        switch holder {
        case .directory(let directory): path = directory
        case .writing(_, let file), .object(let file, _, _, _): path = file
        }
        guard let attribute = try parse(name, path) else {
            throw FileSystemError(.notSupported, "\(name): only user.obs. attributes are kept (mount-options/xattrs.md)")
        }
        guard !configuration.readOnly else { throw FileSystemError(.readOnlyFileSystem, "mounted read-only") }
        switch holder {
        case .directory:
            do {
                try await directoryAttributes.modify(path) { options in try edit(attribute, &options) }
            } catch let error as ObjectAttributeError {
                throw refusal(error, path)
            } catch {
                throw storeFailure("storing the attributes of directory '\(path)'", error)
            }
            logger.info("directory '\(path)': \(attribute) changed")
        case .writing(let session, _):
            await fileAttributeChanges.acquire(1)
            defer { fileAttributeChanges.release(1) }
            if try await changeWhileWriting(session, path, attribute, edit) { return }
            try await changeObject(inode, path, attribute, edit, written: session.intendedOptions)
        case .object(_, _, _, let written):
            await fileAttributeChanges.acquire(1)
            defer { fileAttributeChanges.release(1) }
            try await changeObject(inode, path, attribute, edit, written: written)
        }
    }

    /// A change to a file being written; false when its upload finished meanwhile (the change
    /// then goes to the object). `batched`: a change that may wait for completion even before
    /// the first part (POSIX metadata: `tar`, `rsync` and `cp -a` set owner, mode and times one
    /// after the other before closing; one request after completion applies them all, instead of
    /// initiating the upload again for each).
    func changeWhileWriting(_ session: UploadSession, _ path: String, _ attribute: ObjectAttributeName, _ edit: Edit,
                            batched: Bool = false) async throws -> Bool {
        while true {
            let stage = session.attributeStage
            guard stage != .complete else {
                // Completing: wait for the object. (An empty file's object already exists; its
                // outcome is only decided at release, which may be far off.)
                if session.etag == nil { _ = await session.finished() }
                return false
            }
            let current = session.intendedOptions
            var proposed = current
            let update: ObjectAttributeUpdate
            do {
                try edit(attribute, &proposed)
                update = try attribute.update(at: stage, from: current, to: proposed)
            } catch {
                throw refusal(error, path)
            }
            if batched, case .reinitiate = update, let request = attribute.updateRequest {
                _ = try attributeStore(for: path)
                if session.recordAfterCompletion(request, options: proposed) { return true }
                // Completing meanwhile: once complete, the change goes to the object.
                if session.attributeStage == .complete { continue }
                if await session.awaitEmptyObjectWrite() { continue }
                _ = await session.finished()
                return false
            }
            switch update {
            case .unchanged:
                return true
            case .reinitiate:
                do {
                    try EffectiveOptions.check(proposed, now: .now())
                } catch {
                    // Half of a pair (lock mode and date, bucket key and key id): kept until
                    // the other half arrives; completing without it fails close().
                    guard session.recordAfterCompletion(nil, options: proposed) else { continue }
                    logger.info("\(session.key): \(attribute) kept; the upload is initiated again once \(error.attribute) is set too")
                    return true
                }
                if try await session.reinitiate(with: proposed) {
                    logger.info("\(session.key): \(attribute) changed before the first part; upload initiated again")
                    return true
                }
            case .afterCompletion(let request):
                _ = try attributeStore(for: path)
                if session.recordAfterCompletion(request, options: proposed) {
                    logger.info("\(session.key): \(attribute) changed while parts are being sent; applied after completion")
                    return true
                }
                if await session.awaitEmptyObjectWrite() { continue }
                _ = await session.finished()
                return false
            case .immediately:
                return false
            }
        }
    }

    /// A change to `attribute` of the existing object of `number` at `path`: read its current
    /// values, check, send the request. The options this mount wrote it with, which later
    /// compositions keep (an append after a chmod), follow the change; so do those of a
    /// descriptor open for changes (`ModifySession.changeBase`).
    func changeObject(_ number: InodeNumber, _ path: String, _ attribute: ObjectAttributeName, _ edit: Edit, written: ObjectOptions?) async throws {
        let store = try attributeStore(for: path)
        let reads = Self.readsBeforeChanging(attribute, replacingByCopy: store.replacesMetadataByCopy)
        let stored = try await storedAttributes(path, etag: nil, size: 0, written: written, acl: reads.acl, tags: reads.tags)
        var proposed = stored.options
        let update: ObjectAttributeUpdate
        do {
            try edit(attribute, &proposed)
            update = try attribute.update(at: .complete, from: stored.options, to: proposed)
        } catch {
            throw refusal(error, path)
        }
        guard case .immediately(let request) = update else { return }
        let key = objectKey(path)
        // Before the change too: a crash after it leaves no stale answer saved.
        let changed = table.linkedInode(number)
        if let changed { forgetFetchedAhead(around: changed) }
        defer { if let changed { forgetFetchedAhead(around: changed) } }
        if let modify = changes(of: number) {
            // Open for changes: the object composed at its close keeps this change too.
            try await modify.changeBase {
                try await send(request, for: key, options: proposed, store: store)
                return (proposed, try? await store.headObject(key)?.etag)
            }
        } else {
            try await send(request, for: key, options: proposed, store: store)
        }
        table.linkedInode(number)?.state.withLock { state in
            if state.writtenOptions != nil { state.writtenOptions = proposed }
        }
        logger.info("\(key): \(attribute) changed")
    }

    /// What a change of `attribute` on a closed object reads besides the HEAD: the ACL or the
    /// tags it compares (an ACL or tagging change), and what the request that applies it would
    /// reset unless sent again (a metadata replace on OBS sends the tags; a copy onto itself in
    /// the S3 dialects, the ACL). A `chmod` on OBS reads the HEAD and the tags, not the ACL.
    static func readsBeforeChanging(_ attribute: ObjectAttributeName, replacingByCopy: Bool) -> (acl: Bool, tags: Bool) {
        switch attribute.updateRequest {
        case .putACL?: (acl: true, tags: false)
        case .putTagging?: (acl: false, tags: true)
        case .replaceMetadata?: (acl: replacingByCopy, tags: !replacingByCopy)
        case .changeStorageClass?: (acl: replacingByCopy, tags: false)
        case nil: (acl: true, tags: true)
        }
    }

    /// Sends the request that brings the object's attributes to `options`.
    private func send(_ request: ObjectUpdateRequest, for key: ObjectKey, options: ObjectOptions, store: any AttributeStore) async throws {
        do {
            switch request {
            case .changeStorageClass:
                try await store.replaceMetadata(key, with: options, storageClassOnly: true)
            case .replaceMetadata:
                try await store.replaceMetadata(key, with: options, storageClassOnly: false)
            case .putACL:
                if options.grants.values.allSatisfy(\.isEmpty) {
                    try await store.setObjectACL(key, canned: options.acl ?? .private)
                } else {
                    let owner = try await store.objectACL(key).owner
                    try await store.setObjectACL(key, policy: ObjectACLMapping.policy(for: options, owner: owner))
                }
            case .putTagging:
                try await store.setObjectTags(key, options.tags)
            }
        } catch {
            throw storeFailure("changing the attributes of \(key) (\(request))", error)
        }
    }

    /// The order recorded changes are sent in: a copy onto itself (S3 dialects) comes before the
    /// ACL and tags it could reset.
    private static let requestOrder: [ObjectUpdateRequest] = [.changeStorageClass, .replaceMetadata, .putACL, .putTagging]

    /// UploadSession's `afterCompletion`: sends the changes recorded while parts were sent.
    func applyRecordedChanges(of session: UploadSession) async throws(FileSystemError) {
        let (requests, recorded) = session.takePendingUpdates()
        guard let options = recorded else { return }
        let initiated = session.options
        if let missing = ObsFileSystem.initiationOnlyDifference(options, initiated) {
            let failure = FileSystemError(.invalidArgument, "\(session.key): \(missing) was set without its other half before the first part was sent; the object was written without it")
            logger.error("\(failure.reason)")
            throw failure
        }
        do {
            let store = try attributeStore(for: session.key.rawValue)
            for request in ObsFileSystem.requestOrder where requests.contains(request) {
                try await send(request, for: session.key, options: options, store: store)
            }
        } catch {
            throw FileSystemError(doing: "applying attribute changes after completion", error)
        }
    }

    /// The first initiation-only attribute (xattrs.md) whose value in `intended` the upload was
    /// not initiated with.
    private static func initiationOnlyDifference(_ intended: ObjectOptions, _ initiated: ObjectOptions) -> ObjectAttributeName? {
        if intended.objectLockMode != initiated.objectLockMode { return .objectLockMode }
        if intended.objectLockRetainUntil != initiated.objectLockRetainUntil { return .objectLockRetainUntil }
        if intended.encryption != initiated.encryption { return .encryption }
        if intended.expiresDays != initiated.expiresDays { return .expires }
        if intended.persistentHeaders != initiated.persistentHeaders { return .persistentHeader(intended.persistentHeaders.keys.sorted().first ?? "") }
        if intended.encodingType != initiated.encodingType { return .encodingType }
        return nil
    }

    // MARK: New files

    /// The options a new file at `path` is initiated with: mount defaults, every directory from
    /// the root down, Content-Type from the name; EINVAL when they break a paired rule.
    func optionsForNewFile(_ path: String) async throws -> ObjectOptions {
        let name = path.pathComponents.last ?? path
        let chain: [ObjectOptions]
        do {
            chain = try await directoryAttributes.chain(forFileAt: path)
        } catch {
            throw storeFailure("reading the directory attributes above \(path)", error)
        }
        let options = EffectiveOptions.forNewFile(named: name, mount: configuration.uploadOptions, directoryChain: chain, file: ObjectOptions())
        do {
            try EffectiveOptions.check(options, now: .now())
        } catch {
            throw refusal(error, path)
        }
        return options
    }
}
