// Rename, on a store whose keys cannot be renamed: a server-side copy of everything the object
// carries (metadata, Content-Type, storage class, ACL, SSE-KMS/SSE-OBS), then the source is
// deleted. Objects above the single-copy limit (5 GiB) are copied as a multipart upload of
// UploadPartCopy ranges in parallel.
//
// Directories: every key beneath is copied (at most `renameParallel` copies in flight, a
// progress line in the log every 1,000 keys), and only when every copy succeeded are the
// sources deleted. The window is not atomic: during the copy other clients see both trees; a
// crash during the copies leaves the source whole and part of the target; a crash during the
// deletes leaves the target whole and part of the source. Running the same `mv` again finishes
// the job: a non-empty target directory whose every key also exists under the source (the
// leftover of an interrupted rename of it) is copied over again instead of answering ENOTEMPTY.
//
// A file being written (or a directory holding one) is renamed while its program goes on: a
// stream is completed as it stands (the upload's key is the name it was created with), changes
// not stored yet are composed, and the descriptors go on as changes under the new name
// (FileSystem+RenamingChanges.swift). SSE-C objects answer EOPNOTSUPP
// (the copy would need the key on both sides, which this mount does not send yet).
// RENAME_NOREPLACE is honoured; RENAME_EXCHANGE answers EINVAL (two objects cannot be swapped
// atomically).
//
// On an OBS parallel file system bucket (HEAD bucket says `x-obs-fs-file-interface: Enabled`)
// files and directories are renamed natively instead: one atomic request, nothing copied.
import OBSClient
import OBSProtocol

#if canImport(Glibc)
import Glibc
#endif

extension ObsFileSystem {
    /// `renameat2` flags.
    public static let renameNoReplace: UInt32 = 1
    public static let renameExchange: UInt32 = 2
    public static let renameWhiteout: UInt32 = 4

    public func rename(parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, flags: UInt32) async throws {
        listings.noteChange()
        defer { listings.noteChange() }
        try checkWritable()
        guard flags & ~ObsFileSystem.renameNoReplace == 0 else {
            let reason = switch flags & ~ObsFileSystem.renameNoReplace {
            case ObsFileSystem.renameExchange: "RENAME_EXCHANGE is not supported (objects cannot be swapped atomically)"
            case ObsFileSystem.renameWhiteout: "RENAME_WHITEOUT (overlayfs) is not supported"
            default: "renameat2 flags \(flags) are not supported"
            }
            let failure = FileSystemError(.invalidArgument, reason)
            repeatedLines.log(.warning, failure.reason, kind: "renameat2 flags", to: logger)
            throw failure
        }
        await awaitDirectoryRenames(above: parent)
        await awaitDirectoryRenames(above: newParent)
        let (_, sourcePath) = try resolveChild(parent, name)
        let (_, targetPath) = try resolveChild(newParent, newName, creating: true)
        guard !sourcePath.hasSameUTF8(as: targetPath) else { return }
        let files = [table.child(parent, name), table.child(newParent, newName)].compactMap { $0?.number }
        await endStoredEmptyUploads(at: [sourcePath, targetPath])
        try await continueWritersToRename(sourcePath, table.child(parent, name), replacing: table.child(newParent, newName))
        let ended = try beginRenaming(files, sourcePath)
        defer { endRenaming(files, ended) }
        if let known = table.child(parent, name), isBusy(known.number, path: sourcePath) {
            // Opened for writing after the pass above and before the registration, which keeps
            // other uploads from starting at or below the source now (`refuseChanges`): its
            // writers go on as changes too (`mv d e` beside a loop writing `d/t` answered EBUSY).
            await awaitInitiations(at: sourcePath)
            try await continueWritersToRename(sourcePath, known, replacing: table.child(newParent, newName))
            if isBusy(known.number, path: sourcePath) {
                throw FileSystemError(.busy, "\(sourcePath) is being written; rename it after it is closed")
            }
        }
        let retired = try retireChanges(moving: sourcePath, replacing: targetPath)
        let source: RemoteEntry, target: RemoteEntry?
        do {
            try await storeRetiredChanges(retired)
            // Both names asked for at once: one round trip.
            async let foundTarget = existingEntry(targetPath)
            guard let found = try await existingEntry(sourcePath) else { throw FileSystemError(.noEntry, "no \(sourcePath)") }
            source = found
            target = try await foundTarget
            if target != nil && flags & ObsFileSystem.renameNoReplace != 0 { throw FileSystemError(.exists, "\(targetPath) exists (RENAME_NOREPLACE)") }
            if let known = table.child(newParent, newName), isBusy(known.number, path: targetPath) {
                throw FileSystemError(.busy, "\(targetPath) is being written (opened for writing again during the rename)")
            }
        } catch {
            unretire(retired)
            throw error
        }
        // Objects below a moved directory may keep their ETag and Last-Modified under their new
        // keys (a parallel file system bucket renames in place): no saved answer is trusted again.
        let movesDirectory = if case .directory = source { true } else { false }
        if movesDirectory { savedHeads?.forgetEverything() }
        defer { if movesDirectory { savedHeads?.forgetEverything() } }
        do {
            switch (source, target) {
            case (.directory, .file?): throw FileSystemError(.notDirectory, "\(targetPath) is not a directory")
            case (.file, .directory?): throw FileSystemError(.isDirectory, "\(targetPath) is a directory")
            case (.directory, _) where targetPath.isPath(beneath: sourcePath):
                throw FileSystemError(.invalidArgument, "cannot move \(sourcePath) into itself")
            case (_, _) where store.fileSystemBucket != nil:
                try await renameNatively(source, sourcePath, to: targetPath, replacing: target)
                if case .file(let object) = source, let renamed = table.child(parent, name) {
                    await retypeRenamedNatively(renamed.number, targetPath, object.contentType, renamed: (name, newName))
                }
            case (.file(let object), _):
                let sourceKey = objectKey(sourcePath)
                let copied = try await copyRenamed(sourceKey, to: objectKey(targetPath), size: object.size, renamed: (name, newName))
                try await deleteMovedObject(sourceKey, of: table.child(parent, name), at: parent, name, to: objectKey(targetPath), copied: copied)
            case (.directory(_, let markerKey), let target):
                let replacing = target != nil
                let completing = replacing ? try await checkResumable(sourcePath, targetPath) : false
                let copies = try await moveDirectory(sourcePath, to: targetPath, legacyMarker: markerKey, replacing: replacing, completing: completing)
                noteCopies(copies, below: table.child(parent, name))
            }
        } catch {
            unretire(retired)
            if error is PartialRenameError { nameMayExist(newName, in: newParent) }
            throw error
        }
        _ = table.move(parent, name, to: newParent, newName)
        madeName(newName, in: newParent, kind: facts(of: source).0)
        removedName(name, from: parent)
        if let moved = table.child(newParent, newName) { table.noteChangedItself(moved.number) }  // its ctime, not its mtime
        await followRename(retired)
    }

    /// The descriptors writing the files a rename moves (the file itself, or every file below the
    /// directory) or the file it replaces go on as changes to the objects (`retireChanges` takes
    /// it from there): a file being streamed is completed as it stands first, and the writers of
    /// an upload completed already (their opener's close, or another process's close of a file
    /// stored empty) get their changes now. An upload's key is the name its file was created
    /// with: a write continuing it after the rename would have been composed under the old name.
    private func continueWritersToRename(_ sourcePath: String, _ source: Inode?, replacing target: Inode?) async throws {
        guard source != nil || target != nil else { return }
        let uploads = openFiles.withLock { $0.uploads }
        for (number, session) in uploads {
            let moved = source.map { number == $0.number || $0.kind == .directory && table.path(of: number)?.isPath(beneath: sourcePath) == true } ?? false
            let replaced = target.map { $0.kind != .directory && $0.number == number } ?? false
            guard moved || replaced, let file = table.inode(number) else { continue }
            if session.isUploading {
                logger.info("\(session.key): \(moved ? "renamed" : "replaced by a rename") while being written; completing it as it stands and continuing by composition")
                _ = try await continueWritersByComposition(session, of: file)
            } else {
                let writers = openFiles.withLock { files in files.files.filter { $0.value.session === session && $0.value.modify == nil } }
                for (handle, writer) in writers { _ = continueAfterCompletion(handle, writer, session) }
            }
        }
    }

    /// A parallel file system bucket renames a file or a whole directory in one atomic request.
    /// An empty target directory is removed first (POSIX replaces it); a non-empty one is ENOTEMPTY.
    private func renameNatively(_ source: RemoteEntry, _ sourcePath: String, to targetPath: String, replacing target: RemoteEntry?) async throws {
        guard let bucket = store.fileSystemBucket else { return }
        var from = objectKey(sourcePath)
        var to = objectKey(targetPath)
        var hidden: (dropped: Set<ObjectKey>, carried: Set<ObjectKey>) = ([], [])
        if case .directory = source {
            hidden = await hiddenFiles(below: listPrefix(ofDirectory: sourcePath))
            from = ObjectKey(listPrefix(ofDirectory: sourcePath))
            to = ObjectKey(listPrefix(ofDirectory: targetPath))
            if target != nil {
                let below = try await allKeys(below: to.rawValue)
                guard below.allSatisfy({ Self.isDirectoryItself($0.relative) }) else { throw FileSystemError(.notEmpty, "\(targetPath) is not empty") }
                do {
                    for entry in below { try await store.deleteObject(entry.key) }
                    try await store.deleteObject(to)
                } catch {
                    throw storeFailure("removing the empty directory \(to)", error)
                }
            }
        }
        do {
            try await bucket.renameNatively(from, to: to)
        } catch {
            throw storeFailure("renaming \(from) to \(to) (parallel file system)", error)
        }
        logger.info("renamed \(from) to \(to) (parallel file system: one request)")
        // The readers follow at once: they read the old keys, gone, while the older markers
        // were deleted (helper-49: ENOENT), and for good when that failed.
        followNativeRename(from: sourcePath, to: targetPath)
        // The objects of the dropped ones moved too: deleted as nothing is released for them.
        await carryHiddenFiles(hidden.carried.union(hidden.dropped), from: from.rawValue, to: to.rawValue, copies: nil)
        if case .directory(_, let markerKey) = source {
            do {
                for marker in olderMarkers(of: sourcePath, found: markerKey) { try await store.deleteObject(marker) }
            } catch {
                throw storeFailure("deleting the older markers of the renamed directory \(from)", error)
            }
        }
    }

    /// s3fs's older markers of a moved directory, outside its prefix: the one the lookup found
    /// (an object `d` of Content-Type application/x-directory), and `d_$folder$`, deleted
    /// whether or not it exists, as rmdir deletes it. Left behind, they showed the old name as an
    /// empty directory.
    private func olderMarkers(of sourcePath: String, found: ObjectKey?) -> [ObjectKey] {
        let prefix = listPrefix(ofDirectory: sourcePath)
        let folder = ObjectKey(objectKey(sourcePath).rawValue + KeyNaming.folderSuffix)
        return Array(Set([folder] + (found.map { [$0] } ?? []))).filter { KeyNaming.fits($0) && !$0.rawValue.hasUTF8Prefix(prefix) }
    }

    /// Descriptors reading the renamed file, or files below the renamed directory, go on
    /// reading the same objects under their new keys (called before the table moves the names).
    private func followNativeRename(from sourcePath: String, to targetPath: String) {
        let streams = openFiles.withLock { files in files.files.values.compactMap { file in file.reads.map { (file.inode.number, $0) } } }
        for (number, stream) in streams {
            guard let path = table.path(of: number), path.isPath(atOrBeneath: sourcePath) else { continue }
            stream.moved(to: objectKey(targetPath + path.droppingUTF8(first: sourcePath.utf8.count)))
        }
    }

    /// Ends the uploads of files stored empty whose release has not arrived yet, at or below the
    /// paths (`touch f`, or `: > f`, then `mv f g` at once): close() returned, so they are
    /// renamed as the objects they are. A write through a descriptor still open then continues
    /// the object by composition, as after any completed upload, instead of storing the old name
    /// again at its release.
    private func endStoredEmptyUploads(at paths: [String]) async {
        let uploads = openFiles.withLock { $0.uploads }
        for (number, session) in uploads where session.isStoredEmpty {
            guard let path = table.path(of: number), paths.contains(where: { path.isPath(atOrBeneath: $0) }) else { continue }
            _ = await session.completeAsItStands()
        }
    }

    /// Marks the known source and target of a rename so that no upload starts on them until it
    /// ends (an open racing the rename would write the old key); EBUSY when one is written now.
    /// Returns the rename's end, fulfilled by `endRenaming`.
    private func beginRenaming(_ numbers: [InodeNumber], _ sourcePath: String) throws -> OneShot<Void> {
        let ended = OneShot<Void>()
        try openFiles.withLock { files in
            for number in numbers where files.renaming[number] != nil {
                throw FileSystemError(.busy, "\(sourcePath): a file of this rename is being renamed")
            }
            for number in numbers { files.renaming[number] = ended }
        }
        return ended
    }

    /// Returns once no upload at or below `path` is being initiated (one started before the
    /// rename registered its files: `continueWritersToRename` then finds its session).
    private func awaitInitiations(at path: String) async {
        let initiating = openFiles.withLock { $0.initiating }
        for (number, initiated) in initiating where table.path(of: number)?.isPath(atOrBeneath: path) == true {
            await initiated.value
        }
    }

    private func endRenaming(_ numbers: [InodeNumber], _ ended: OneShot<Void>) {
        openFiles.withLock { files in for number in numbers { files.renaming[number] = nil } }
        _ = ended.fulfill(())
    }

    /// Returns once no directory at or above `directory` is being renamed. A name made below one
    /// meanwhile got a key under its old prefix, which the rename had already listed: the file
    /// stayed under the old name. Called by every call that makes, removes or renames a name
    /// (create, mkdir, symlink, mknod, unlink, rmdir, rename) or changes what a file carries
    /// (setattr, setxattr, removexattr) before it resolves its path: an unlink during the copy
    /// made the rename fail on the key gone from under it (and `mv` then moved the directory
    /// into the partial copy), one after the copy deleted the old key and the file came back.
    func awaitDirectoryRenames(above directory: InodeNumber) async {
        while openFiles.withLock({ !$0.renaming.isEmpty }) {
            let ancestry = table.ancestry(of: directory)  // the tree's lock, never with openFiles'
            guard let end = openFiles.withLock({ files in ancestry.first { files.renaming[$0] != nil }.flatMap { files.renaming[$0] } }) else { return }
            await end.value
        }
    }

    /// Whether `number` is being written, or (a directory) holds such a file: its upload stores
    /// it under the name it had when opened. (Files open for changes: `retireChanges`.)
    private func isBusy(_ number: InodeNumber, path: String) -> Bool {
        let writing = inodesBeingWritten()
        return writing.contains(number) || writing.contains { table.path(of: $0)?.isPath(beneath: path) == true }
    }

    /// The copy of a renamed file is stored: its old object is deleted. Descriptors opened before
    /// the rename that only read the version copied read on from the copy (as a directory
    /// rename's do), so a file made under the old name later is not theirs (`mv log log.1` and a
    /// new `log` beside a reader of it read EIO); while others still read the old object (an
    /// older version), it is kept for them (hidden, deleted at the last release).
    private func deleteMovedObject(_ source: ObjectKey, of inode: Inode?, at parent: InodeNumber, _ name: String, to target: ObjectKey,
                                   copied: ETag) async throws {
        let keptForReaders = inode.map { inode in
            let kept = inode.state.withLock { $0.facts.etag }
            return openFiles.withLock { files in
                let handles = files.files.values.filter { $0.inode === inode }
                let followers = handles.compactMap { file in file.session == nil && file.modify == nil ? file.reads : nil }
                    .filter { $0.key == source && kept != nil && $0.etag == kept }
                for stream in followers { stream.moved(to: target, copyETag: copied) }
                guard followers.count < handles.count else { return false }
                return files.keepForReaders(of: inode, UnlinkedName(key: source, parent: parent, name: name, etag: kept))
            }
        } ?? false
        // The copy is a new object, with its own ETag: a version found later with another ETag
        // is another file (a new inode), not this one grown or shrunk under its readers.
        inode?.state.withLock { $0.noteCopy(copied) }
        guard !keptForReaders else { return }
        do {
            try await store.deleteObject(source)
        } catch {
            throw storeFailure("deleting \(source), renamed", error)
        }
    }

    /// The options a copy must send to keep what the source carries.
    private func copyOptions(_ key: ObjectKey) async throws -> ObjectOptions {
        guard let store = store as? any AttributeStore else {
            var options = ObjectOptions()
            if let head = try await store.headObject(key) {
                options.metadata = head.metadata
                options.contentType = head.contentType
            }
            return options
        }
        // A copy keeps neither the ACL nor (S3) the class and encryption unless sent: HEAD and
        // ACL, asked for at once.
        async let policy = store.objectACL(key)
        guard let stored = try await store.objectAttributes(key, customerKey: nil) else { throw FileSystemError(.noEntry, "\(key) is gone") }
        var options = stored.options
        if case .customer? = options.encryption {
            throw FileSystemError(.notSupported, "\(key) is encrypted with SSE-C; renaming it is not supported")
        }
        ObjectACLMapping.read(try await policy, into: &options)
        options.objectLockMode = nil
        options.objectLockRetainUntil = nil
        return options
    }

    /// Copies one object to `target` with everything it carries (a multipart copy above
    /// `singleCopyLimit`); the copy's ETag. With `renamed` (a file's old and new name), a
    /// Content-Type the mount inferred from the old name is inferred again from the new one
    /// (`rsync` writes `.photo.jpg.XyZ12` and renames it `photo.jpg`), as s3fs does; a type set
    /// otherwise (`user.obs.content-type`, another client) is kept.
    func copyRenamed(_ source: ObjectKey, to target: ObjectKey, size: Int64, renamed names: (from: String, to: String)? = nil) async throws -> ETag {
        do {
            return try await copyRenamedUnlogged(source, to: target, size: size, renamed: names)
        } catch {
            throw renameCopyFailure(source, to: target, error)
        }
    }

    /// `copyRenamed` without logging its failure, for a caller that may expect it.
    private func copyRenamedUnlogged(_ source: ObjectKey, to target: ObjectKey, size: Int64, renamed names: (from: String, to: String)? = nil) async throws -> ETag {
        var options = try await copyOptions(source)
        if let names, let type = contentTypeInferredAgain(options.contentType, renamed: names) { options.contentType = type }
        if size > configuration.singleCopyLimit {
            return try await multipartCopy(source, to: target, size: size, options: options)
        }
        return try await store.copyObject(source, to: target, options: options)
    }

    /// The failure of the rename's copy of `source`, logged.
    private func renameCopyFailure(_ source: ObjectKey, to target: ObjectKey, _ error: any Error) -> FileSystemError {
        guard let error = error as? FileSystemError else { return storeFailure("renaming \(source) to \(target)", error) }
        logger.error("renaming \(source) to \(target): \(error.reason)")
        return error
    }

    /// The type a renamed file is to get instead of `type`, the one it has: nil unless `type` is
    /// the one inferred from the old name and the new name infers another.
    private func contentTypeInferredAgain(_ type: String?, renamed names: (from: String, to: String)) -> String? {
        let mount = configuration.uploadOptions
        guard let type, type == mount.inferredContentType(forFileName: names.from) else { return nil }
        let inferred = mount.inferredContentType(forFileName: names.to)
        return inferred == type ? nil : inferred
    }

    /// A native rename keeps the object's Content-Type: the one of the new name is set after it,
    /// as a copy would have carried it. The rename is done either way: a failure is logged.
    private func retypeRenamedNatively(_ number: InodeNumber, _ path: String, _ type: String?, renamed names: (from: String, to: String)) async {
        guard let inferred = contentTypeInferredAgain(type, renamed: names) else { return }
        do {
            try await changeObject(number, path, .contentType, { _, options in options.contentType = inferred }, written: nil)
        } catch {
            logger.warning("\(path): renamed, but its Content-Type stays \(type ?? "unset") instead of \(inferred): \(error)")
        }
    }

    /// A directory marker (`d/`) is written again under its new name with its metadata rather
    /// than copied: some S3 servers (SeaweedFS) keep markers as directories and answer a copy
    /// of one with NoSuchKey.
    private func copyMarker(_ source: ObjectKey, to target: ObjectKey) async throws {
        do {
            var options = ObjectOptions()
            options.contentType = KeyNaming.directoryContentType
            if let marker = try await store.headObject(source) {
                options.metadata = marker.metadata
                options.contentType = marker.contentType ?? KeyNaming.directoryContentType
            }
            _ = try await store.putObject(target, bytes: [], options: options)
        } catch {
            throw storeFailure("renaming directory marker \(source) to \(target)", error)
        }
    }

    /// UploadPartCopy of `copyPartSize` ranges, `renameParallel` at a time; aborted on failure.
    private func multipartCopy(_ source: ObjectKey, to target: ObjectKey, size: Int64, options: ObjectOptions) async throws -> ETag {
        let uploadID = try await store.initiateUpload(target, options: options)
        logger.info("\(source) → \(target): multipart copy of \(size) bytes (upload \(uploadID))")
        let partSize = configuration.copyPartSize
        let ranges = stride(from: Int64(0), to: size, by: Int(partSize)).map { $0...min($0 + partSize, size) - 1 }
        guard ranges.count <= PartNumber.range.upperBound else {
            throw FileSystemError(.fileTooBig, "\(source): \(size) bytes need more than \(PartNumber.range.upperBound) copy parts")
        }
        do {
            var parts: [PartReceipt] = []
            try await withThrowingTaskGroup(of: PartReceipt.self) { group in
                var next = 0
                func addNext() {
                    guard next < ranges.count else { return }
                    let index = next
                    next += 1
                    group.addTask {
                        let number = PartNumber(index + 1)!  // checked above: at most 10,000 ranges
                        let range = ranges[index]
                        let etag = try await self.store.copyPart(target, uploadID: uploadID, number: number, source: source, range: range)
                        // A copied part proves nothing about its bytes to the client: the store copied them.
                        return PartReceipt(number: number, etag: etag, size: Int64(range.count), verdict: .unchecked)
                    }
                }
                for _ in 0..<configuration.renameParallel { addNext() }
                while let part = try await group.next() {
                    parts.append(part)
                    addNext()
                }
            }
            return try await store.completeUpload(target, uploadID: uploadID, parts: parts.sorted { $0.number < $1.number }).etag
        } catch {
            do {
                try await store.abortUpload(target, uploadID: uploadID)
            } catch let abortError {
                logger.error("\(target): aborting the failed multipart copy \(uploadID) failed: \(abortError)")
            }
            throw error
        }
    }

    /// The target directory is the leftover of an interrupted rename, which may be completed: it
    /// holds the rename's record naming this source (written before the first copy, deleted
    /// after the last delete), and every key of the target is a copy of the source's key of that
    /// name (stopped during the copies), or every key of the source has its copy under the
    /// target (during the deletes). Otherwise ENOTEMPTY. Whether it is such a leftover (false:
    /// the target is empty).
    private func checkResumable(_ sourcePath: String, _ targetPath: String) async throws -> Bool {
        let targetPrefix = listPrefix(ofDirectory: targetPath)
        let sourcePrefix = listPrefix(ofDirectory: sourcePath)
        let targetKeys = try await allKeys(below: targetPrefix)
        // The markers, the directories' attributes and the record are left out: the rename makes
        // the target's marker when the source has none, and the target takes the source's attributes.
        let target = Dictionary(targetKeys.filter { !Self.isDirectoryItself($0.relative) }
                                    .map { (ExactName($0.relative), $0.version) }, uniquingKeysWith: { first, _ in first })
        guard !target.isEmpty else { return false }
        // Files of the same names and sizes are no proof of copies (multipart ETags are not MD5s):
        // a directory of other files that happen to match would be overwritten.
        let recordKey = ObjectKey(targetPrefix + KeyNaming.renameRecordName)
        let record: [UInt8]?
        do {
            record = targetKeys.contains { $0.key == recordKey } ? try await store.objectBytes(recordKey) : nil
        } catch {
            throw storeFailure("reading \(recordKey)", error)
        }
        guard record == Array(sourcePrefix.utf8) else { throw FileSystemError(.notEmpty, "\(targetPath) is not empty") }
        let source = Dictionary(try await allKeys(below: sourcePrefix).filter { !Self.isDirectoryItself($0.relative) }
                                    .map { (ExactName($0.relative), $0.version) }, uniquingKeysWith: { first, _ in first })
        // Stopped during the copies: the target holds part of the source. During the deletes:
        // the source holds part of the target. Either way each name is a copy on the other side
        // (a directory of other files with the same names is not an earlier rename).
        let copying = target.allSatisfy { source[$0.key].map($0.value.couldBeACopy) == true }
        // An empty source (a directory with nothing but its marker) is no leftover of the deletes:
        // renaming it onto a directory holding anything, even empty subdirectories, is ENOTEMPTY.
        // The deletes go in key order, so the target's names the source no longer has all come
        // before the first name it still has.
        let firstLeft = source.keys.min()
        let deleting = !source.isEmpty && source.allSatisfy { target[$0.key].map($0.value.couldBeACopy) == true }
            && target.keys.allSatisfy { name in source[name] != nil || firstLeft.map { name < $0 } == true }
        guard copying || deleting else { throw FileSystemError(.notEmpty, "\(targetPath) is not empty") }
        logger.notice("\(targetPath) holds part of an earlier rename of \(sourcePath) (stopped during its \(copying ? "copies" : "deletes")); completing it")
        return true
    }

    /// Whether a key below a directory, relative to it, is the directory's own: its marker, its
    /// `user.obs.*` attributes or a rename's record (a directory holding only these is empty).
    static func isDirectoryItself(_ relative: String) -> Bool {
        relative.isEmpty || relative.hasSameUTF8(as: DirectoryAttributes.objectName) || relative.hasSameUTF8(as: KeyNaming.renameRecordName)
    }

    /// What tells a key's copy from another object of the same name: the size, and the ETag
    /// where it is the MD5 of the bytes (a server-side copy keeps it).
    struct KeyVersion: Equatable {
        let size: Int64
        let etag: ETag?

        /// Whether one may be a copy of the other: the same size, and the same ETag unless either
        /// is not an MD5 of the bytes (multipart `…-N`, unknown), which a copy does not keep.
        func couldBeACopy(of other: KeyVersion) -> Bool {
            guard size == other.size else { return false }
            guard let etag, let otherETag = other.etag, etag.md5Bytes != nil, otherETag.md5Bytes != nil else { return true }
            return etag == otherETag
        }
    }

    /// A key found below a directory: the key, its name relative to the directory, its version.
    typealias ListedKey = (key: ObjectKey, relative: String, version: KeyVersion)

    /// The files unlinked while open below a directory being renamed: the keys of those whose
    /// descriptors hold changes, dropped now (they have no name to compose under), and of the
    /// others, which move with the directory (`carryHiddenFiles`).
    private func hiddenFiles(below prefix: String) async -> (dropped: Set<ObjectKey>, carried: Set<ObjectKey>) {
        let dropped = Set(await dropHiddenFiles { name, changed in changed && name.key.rawValue.hasUTF8Prefix(prefix) }.map(\.key))
        return (dropped, openFiles.withLock { $0.hiddenKeys(below: prefix) })
    }

    /// Whether `key` is the object of a file unlinked while open, still kept for its descriptors.
    private func isHidden(_ key: ObjectKey) -> Bool {
        openFiles.withLock { $0.hides(key) }
    }

    /// Files unlinked while open below a renamed directory (`hidden`, their keys under the
    /// source) move with it, still hidden, as on a local disk their descriptors read on: their
    /// names take the new keys and their readers follow. A moved object whose last descriptor was
    /// released meanwhile (which deleted the old key, or found nothing to delete) is deleted, so
    /// that it does not show up in the directory. `copies`: the copies' ETags; nil after a native
    /// rename, which moved the objects themselves.
    private func carryHiddenFiles(_ hidden: Set<ObjectKey>, from sourcePrefix: String, to targetPrefix: String, copies: [ObjectKey: ETag]?) async {
        guard !hidden.isEmpty else { return }
        let moves = Dictionary(uniqueKeysWithValues: hidden.map { ($0, ObjectKey(targetPrefix + $0.rawValue.droppingUTF8(first: sourcePrefix.utf8.count))) })
        let (carried, streams) = openFiles.withLock { files in (files.moveHiddenNames(moves, copies: copies), files.files.values.compactMap(\.reads)) }
        for (old, number) in carried {
            if let etag = copies?[old] { table.inode(number)?.state.withLock { $0.noteCopy(etag) } }
        }
        for stream in streams where carried[stream.key] != nil {
            stream.moved(to: moves[stream.key]!, copyETag: copies?[stream.key])
        }
        for (old, new) in moves where carried[old] == nil && (copies == nil || copies?[old] != nil) {
            do {
                try await store.deleteObject(new)
            } catch {
                _ = storeFailure("deleting \(new), the moved object of a file unlinked while open and closed during the rename", error)
            }
        }
        if !carried.isEmpty {
            logger.info("renaming directory \(sourcePrefix) to \(targetPrefix): \(carried.count) file(s) unlinked while open moved with it, still read by their descriptors")
        }
    }

    /// Every key under `prefix` (no delimiter), with its size and ETag.
    private func allKeys(below prefix: String) async throws -> [ListedKey] {
        var keys: [ListedKey] = []
        var marker: String?
        repeat {
            let page: ObjectListing
            do {
                page = try await store.listObjects(prefix: prefix, delimiter: nil, marker: marker, maxKeys: configuration.listPageSize)
            } catch {
                throw storeFailure("listing \(prefix)", error)
            }
            keys += page.objects.map { object in
                (object.key, object.key.rawValue.droppingUTF8(first: prefix.utf8.count), KeyVersion(size: object.attributes.size, etag: object.attributes.etag))
            }
            marker = page.nextMarker
        } while marker != nil
        return keys
    }

    /// A file copied by a directory rename: its key relative to the directory, the ETag the
    /// listing showed for the source and the copy's.
    struct CopiedFile {
        let relative: String
        let source: ETag?
        let copy: ETag
    }

    /// The files below a moved directory keep their inodes, now naming the copies: their ETags
    /// are the copies' (a copy of a multipart or composed object has another ETag, and a read
    /// pinned to the old one failed with `EIO` until `attr_timeout=` passed).
    private func noteCopies(_ copies: [CopiedFile], below directory: Inode?) {
        guard let directory else { return }
        for copy in copies {
            var inode: Inode? = directory
            for name in copy.relative.pathComponents { inode = inode.flatMap { table.child($0.number, name) } }
            inode?.state.withLock { $0.noteCopy(copy.copy) }
        }
    }

    /// Descriptors reading the version of a file that a directory rename copied read on from the
    /// copy (called before the sources are deleted; they read nothing but ENOENT after).
    /// Their inodes take the copies' ETags first (`noteCopies` does the others' after): a read
    /// between the two found the stream on the copy and the inode on the source's version, moved
    /// the stream back to that version (`streamOfVersionStoredHere`) and read EIO from then on.
    private func followCopies(_ copies: [CopiedFile], from sourcePrefix: String, to targetPrefix: String) {
        let sources = Dictionary(copies.map { (ObjectKey(sourcePrefix + $0.relative), $0) }, uniquingKeysWith: { first, _ in first })
        let readers = openFiles.withLock { files in files.files.values.compactMap { file in file.reads.map { (file.inode, $0) } } }
        for (inode, stream) in readers {
            guard let copied = sources[stream.key], let source = copied.source, stream.etag == source else { continue }
            inode.state.withLock { state in if state.facts.etag == source { state.noteCopy(copied.copy) } }
            stream.moved(to: ObjectKey(targetPrefix + copied.relative), copyETag: copied.copy)
        }
    }

    /// Copies every key below `sourcePath` under `targetPath`, then deletes the sources; the
    /// files copied. A refusal before anything changed (the listing failed, a key would be too
    /// long) is thrown as it is; a failure after is a `PartialRenameError`: both names may now
    /// exist on the server.
    private func moveDirectory(_ sourcePath: String, to targetPath: String, legacyMarker: ObjectKey?, replacing: Bool, completing: Bool) async throws -> [CopiedFile] {
        let sourcePrefix = listPrefix(ofDirectory: sourcePath)
        let targetPrefix = listPrefix(ofDirectory: targetPath)
        // Files unlinked while open whose last close may delete them before their copy (listed,
        // then gone: the copy failed and with it the rename, helper-49).
        let hiddenWhenListed = openFiles.withLock { $0.keysHiddenOrBeingDeleted(below: sourcePrefix) }
        let keys = try await allKeys(below: sourcePrefix)
        // Every key must fit under its new name before anything is copied (the target's marker
        // included, which the rename makes when the source has none).
        let longest = max(targetPrefix.utf8.count, keys.map { targetPrefix.utf8.count + $0.relative.utf8.count }.max() ?? 0)
        guard longest <= KeyNaming.maximumNameLength else {
            throw FileSystemError(.nameTooLong, "renaming \(sourcePrefix) to \(targetPrefix): a key below would be \(longest) bytes, more than \(KeyNaming.maximumNameLength)")
        }
        do {
            return try await copyDirectoryKeys(keys, hiddenWhenListed: hiddenWhenListed, from: sourcePath, to: targetPath, legacyMarker: legacyMarker,
                                               replacing: replacing, completing: completing)
        } catch {
            throw PartialRenameError(failure: FileSystemError(doing: "renaming directory \(sourcePath) to \(targetPath)", error))
        }
    }

    /// `moveDirectory`'s changes: the record, the copies of `keys`, the deletes of the sources.
    private func copyDirectoryKeys(_ listed: [ListedKey], hiddenWhenListed: Set<ObjectKey>, from sourcePath: String, to targetPath: String,
                                   legacyMarker: ObjectKey?, replacing: Bool, completing: Bool) async throws -> [CopiedFile] {
        let sourcePrefix = listPrefix(ofDirectory: sourcePath)
        let targetPrefix = listPrefix(ofDirectory: targetPath)
        var keys = listed
        // Files unlinked below while open are copied with the rest, still hidden (their
        // descriptors read on), but those whose descriptors hold changes: not copied, deleted with
        // the sources, their changes dropped. A record of an earlier rename into the source is
        // not this rename's.
        let (unnamed, hidden) = await hiddenFiles(below: sourcePrefix)
        let copies = keys.filter { !unnamed.contains($0.key) && !$0.relative.hasSameUTF8(as: KeyNaming.renameRecordName) }
        // The record says the target is this rename's work until the last delete: running the
        // rename again after a crash completes it (`checkResumable`). A target too deep for it
        // goes without (such a rename, interrupted, answers ENOTEMPTY when run again).
        let recordKey = ObjectKey(targetPrefix + KeyNaming.renameRecordName)
        let recorded = KeyNaming.fits(recordKey)
        if recorded {
            do {
                _ = try await store.putObject(recordKey, bytes: Array(sourcePrefix.utf8), options: ObjectOptions())
            } catch {
                throw storeFailure("recording the rename of \(sourcePrefix) in \(recordKey)", error)
            }
        }
        if !keys.contains(where: { $0.relative.isEmpty }) {
            // No marker (an implied directory, or s3fs's older forms): the target gets one, so an
            // empty directory survives the rename.
            var options = ObjectOptions()
            options.contentType = KeyNaming.directoryContentType
            if let legacyMarker, let head = try? await store.headObject(legacyMarker) { options.metadata = head.metadata }
            do {
                _ = try await store.putObject(ObjectKey(targetPrefix), bytes: [], options: options)
            } catch {
                throw storeFailure("creating directory \(targetPrefix)", error)
            }
        }
        logger.notice("renaming directory \(sourcePrefix) to \(targetPrefix): \(copies.count) keys to copy\(completing ? " (completing an earlier rename)" : replacing ? " (replacing an empty directory)" : "")")
        let operations = configuration.upload.statistics.operations
        let progress = operations.begin("renaming directory \(sourcePrefix) to \(targetPrefix)", total: Int64(copies.count), unit: "keys")
        defer { operations.finished(progress) }
        var copied: [CopiedFile] = []
        var copiedCount = 0
        try await withThrowingTaskGroup(of: CopiedFile?.self) { group in
            var next = 0
            func addNext() {
                guard next < copies.count else { return }
                let entry = copies[next]
                next += 1
                group.addTask {
                    let target = ObjectKey(targetPrefix + entry.relative)
                    if entry.key.rawValue.hasSuffix("/") {
                        try await self.copyMarker(entry.key, to: target)
                        return nil
                    }
                    // A hidden file whose last descriptor was released meanwhile was deleted then:
                    // its copy is skipped, or fails without an error.
                    let released = { (hidden.contains(entry.key) || hiddenWhenListed.contains(entry.key)) && !self.isHidden(entry.key) }
                    if released() { return nil }
                    let copy: ETag
                    do {
                        copy = try await self.copyRenamedUnlogged(entry.key, to: target, size: entry.version.size)
                    } catch {
                        if released() { return nil }
                        throw self.renameCopyFailure(entry.key, to: target, error)
                    }
                    return CopiedFile(relative: entry.relative, source: entry.version.etag, copy: copy)
                }
            }
            for _ in 0..<configuration.renameParallel { addNext() }
            while let result = try await group.next() {
                if let result { copied.append(result) }
                copiedCount += 1
                progress.advance()
                if copiedCount % 1000 == 0 { logger.notice("renaming directory \(sourcePrefix): \(copiedCount) of \(copies.count) keys copied") }
                addNext()
            }
        }
        await carryHiddenFiles(hidden, from: sourcePrefix, to: targetPrefix,
                               copies: Dictionary(copied.map { (ObjectKey(sourcePrefix + $0.relative), $0.copy) }, uniquingKeysWith: { first, _ in first }))
        followCopies(copied, from: sourcePrefix, to: targetPrefix)
        keys += olderMarkers(of: sourcePath, found: legacyMarker).map { ($0, "", KeyVersion(size: 0, etag: nil)) }
        // A replaced empty directory's attributes are not the moved one's.
        let attributesName = DirectoryAttributes.objectName
        if replacing, !copies.contains(where: { $0.relative.hasSameUTF8(as: attributesName) }) {
            do {
                try await store.deleteObject(ObjectKey(targetPrefix + attributesName))
            } catch {
                throw storeFailure("deleting the attributes of the replaced directory \(targetPrefix)", error)
            }
        }
        do {
            for entry in keys { try await store.deleteObject(entry.key) }
        } catch {
            throw storeFailure("deleting the renamed keys under \(sourcePrefix)", error)
        }
        await deleteEmptiedFolders(below: sourcePrefix, keys.map(\.relative))
        do {
            if recorded { try await store.deleteObject(recordKey) }
        } catch {
            logger.warning("renamed directory \(sourcePrefix) to \(targetPrefix), but deleting its record \(recordKey) failed (it stays hidden): \(error)")
        }
        logger.notice("renamed directory \(sourcePrefix) to \(targetPrefix): \(keys.count) keys")
        return copied
    }

    /// SeaweedFS keeps a folder whose marker was deleted before the keys below it (the key order
    /// of the deletes), empty, and lists it as a common prefix: the renamed directory stayed in
    /// its parent's listing under its old name. Deleting each directory's marker again once the
    /// keys below are gone, deepest first, removes it; elsewhere a DELETE of a missing key
    /// changes nothing. A failure leaves an empty directory behind: logged, not fatal.
    private func deleteEmptiedFolders(below sourcePrefix: String, _ relatives: [String]) async {
        var folders: Set<String> = [""]
        for relative in relatives {
            var components = relative.split(separator: "/", omittingEmptySubsequences: false).dropLast()
            while !components.isEmpty {
                folders.insert(components.joined(separator: "/") + "/")
                components = components.dropLast()
            }
        }
        for folder in folders.sorted(by: { $0.utf8.count > $1.utf8.count }) {
            let marker = ObjectKey(sourcePrefix + folder)
            do {
                try await store.deleteObject(marker)
            } catch {
                logger.warning("renamed directory \(sourcePrefix): deleting \(marker) again failed; an empty directory may stay listed: \(error)")
            }
        }
    }
}
