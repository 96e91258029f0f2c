// Symlinks in s3fs's format: an object whose body is the target and whose metadata mode has
// `S_IFLNK`. mknod makes a zero-byte object: an empty regular file, or a FIFO, socket or device
// node as s3fs stores them (the type in the metadata mode), and a device's number in `rdev`
// (obsmount's own: s3fs keeps none). Hard links are refused (EPERM): an object has one name.
import OBSProtocol

#if canImport(Glibc)
import Glibc
#endif

extension ObsFileSystem {
    public func symlink(parent: InodeNumber, name: String, target: String, caller: Caller) async throws -> FileAttributes {
        listings.noteChange()
        defer { listings.noteChange() }
        try checkWritable()
        await awaitDirectoryRenames(above: parent)
        let (_, path) = try resolveChild(parent, name, creating: true)
        if table.child(parent, name) != nil { throw FileSystemError(.exists, "\(path) exists") }
        try await checkStillMissing(parent, name, path)
        var posix = newPosixMetadata(mode: 0o777, caller: caller, in: parent, kind: .symlink)
        posix.permissions = 0o777
        return try await putNewObject(parent: parent, name: name, path: path, kind: .symlink, bytes: Array(target.utf8), posix: posix) { state in
            state.symlinkTarget = target
        }
    }

    public func readlink(_ number: InodeNumber) async throws -> String {
        let (inode, path) = try resolve(number)
        guard inode.kind == .symlink else { throw FileSystemError(.invalidArgument, "\(path) is not a symlink") }
        if let target = inode.state.withLock({ $0.symlinkTarget }) { return target }
        let key = objectKey(path)
        let bytes: [UInt8]?
        do {
            bytes = try await store.objectBytes(key)
        } catch {
            throw storeFailure("reading the symlink \(key)", error)
        }
        guard let bytes else { throw FileSystemError(.noEntry, "\(key) is gone") }
        let target = String(decoding: bytes, as: UTF8.self)
        inode.state.withLock { $0.symlinkTarget = target }
        return target
    }

    /// A zero-byte object with the caller's mode and owner: an empty regular file (no type bits
    /// in `mode` mean one), a FIFO, a socket, or a device node numbered `device`.
    public func mknod(parent: InodeNumber, name: String, mode: UInt32, device: UInt64 = 0, caller: Caller) async throws -> FileAttributes {
        listings.noteChange()
        defer { listings.noteChange() }
        try checkWritable()
        await awaitDirectoryRenames(above: parent)
        let (_, path) = try resolveChild(parent, name, creating: true)
        let kind = mode & UInt32(S_IFMT) == 0 ? .regular : FileKind(mode: mode)
        guard let kind, kind != .directory, kind != .symlink else { throw FileSystemError(.invalidArgument, "\(path): mknod of mode \(String(mode, radix: 8))") }
        if table.child(parent, name) != nil { throw FileSystemError(.exists, "\(path) exists") }
        try await checkStillMissing(parent, name, path)
        var posix = newPosixMetadata(mode: mode, caller: caller, in: parent, kind: kind)
        if kind == .characterDevice || kind == .blockDevice { posix.device = device }
        return try await putNewObject(parent: parent, name: name, path: path, kind: kind, bytes: [], posix: posix)
    }

    /// `EOPNOTSUPP`, as s3fs answers (a directory's link is `EPERM`, from the kernel itself).
    public func link(_ number: InodeNumber, parent: InodeNumber, name: String) throws -> FileAttributes {
        let failure = FileSystemError(.notSupported, "hard links are not supported (an object has one name)")
        repeatedLines.log(.warning, failure.reason, kind: "link", to: logger)
        throw failure
    }

    /// Writes a small new object (symlink, empty file) and enters it into the table.
    private func putNewObject(parent: InodeNumber, name: String, path: String, kind: FileKind, bytes: [UInt8], posix: PosixMetadata,
                              also: (inout Inode.State) -> Void = { _ in }) async throws -> FileAttributes {
        let key = objectKey(path)
        var options: ObjectOptions
        let etag: ETag
        do {
            options = try await optionsForNewFile(path)
            posix.write(into: &options.metadata, kind: kind)
            etag = try await store.putObject(key, bytes: bytes, options: options)
        } catch {
            throw storeFailure("creating \(key)", error)
        }
        madeName(name, in: parent, kind: kind)
        let facts = InodeFacts(size: Int64(bytes.count), etag: etag, lastModified: .now(), posix: posix, posixLoaded: true, expiry: freshExpiry())
        guard let (inode, _) = table.entry(parent: parent, name: name, kind: kind, facts: facts, isCurrent: { _ in false }) else {
            throw FileSystemError(.noEntry, "the parent of \(path) is gone")
        }
        inode.state.withLock { state in
            state.writtenOptions = options
            also(&state)
        }
        return attributes(of: inode)
    }
}
