// The filesystem core: inode table, namespace over key prefixes, open files and their upload
// sessions. Knows nothing of FUSE; FuseAdapter calls it and turns thrown `FileSystemError`s
// (and any other error, through ErrnoMapping) into replies.
import Logging
import OBSProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What a mount is: where it points and how it writes.
public struct FileSystemConfiguration: Sendable {
    public var bucket: BucketName
    /// Key prefix the mount's root maps to: empty, or ending with `/`.
    public var prefix: String
    public var upload: UploadSettings
    /// The mount's upload defaults (and Content-Type inference) for every new object.
    public var uploadOptions: UploadMountOptions
    public var readOnly: Bool
    public var ownerUID: UInt32
    public var ownerGID: UInt32
    /// Permission bits cleared from 0777 (directories) and 0666 (files).
    public var umask: UInt32
    /// Keys asked for per listing request.
    public var listPageSize: Int

    public init(bucket: BucketName, prefix: String, upload: UploadSettings, uploadOptions: UploadMountOptions = UploadMountOptions(),
                readOnly: Bool = false, ownerUID: UInt32, ownerGID: UInt32, umask: UInt32 = 0o022, listPageSize: Int = 1000) {
        precondition(prefix.isEmpty || prefix.hasSuffix("/"), "prefix must be empty or end with /")
        self.bucket = bucket
        self.prefix = prefix
        self.upload = upload
        self.uploadOptions = uploadOptions
        self.readOnly = readOnly
        self.ownerUID = ownerUID
        self.ownerGID = ownerGID
        self.umask = umask
        self.listPageSize = listPageSize
    }
}

public enum FileKind: Sendable, Equatable {
    case regular, directory
}

/// What `stat` shows.
public struct FileAttributes: Sendable, Equatable {
    public var inode: InodeNumber
    public var kind: FileKind
    public var size: Int64
    /// Type and permission bits (`S_IFREG | 0644` …).
    public var mode: UInt32
    public var linkCount: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var modified: Timestamp
}

/// One name in a directory listing. `cookie` is the offset to resume after this entry.
public struct DirectoryEntry: Sendable, Equatable {
    public var name: String
    public var inode: InodeNumber
    public var kind: FileKind
    public var cookie: Int64
}

/// `statfs` numbers: an object store has no fixed capacity, so the totals are large constants.
public struct FileSystemStatistics: Sendable {
    public var blockSize: UInt64 = 4096
    public var totalBlocks: UInt64 = 1 << 40
    public var freeBlocks: UInt64 = 1 << 40
    public var totalFiles: UInt64 = 1 << 32
    public var freeFiles: UInt64 = 1 << 32
    public var maximumNameLength: UInt64 = 1024
}

/// Read-only extended attributes of every written file (all names: ObjectAttributeName).
public enum ExtendedAttribute {
    /// The multipart upload ID of a file being written.
    public static let uploadID = "user.obs.upload_id"
    /// The ETag of a written object.
    public static let etag = "user.obs.etag"
}

/// The filesystem: every operation the FUSE adapter forwards.
public final class ObsFileSystem: Sendable {
    public let configuration: FileSystemConfiguration
    let store: any ObjectStore
    let logger: Logger
    /// Directories' own `user.obs.*` attributes (ObjectAttributeStore.swift).
    let directoryAttributes: DirectoryAttributes
    /// Serialises `user.obs.*` changes of files (each reads the current options, then changes them).
    let fileAttributeChanges = AsyncBudget(units: 1)
    /// The inode table, open handles and active uploads; held only for short bookkeeping, never
    /// across a request to the store.
    let registry: Mutex<Registry>

    struct Node {
        /// Path below the mount root, `/`-separated; "" for the root.
        let path: String
        var kind: FileKind
        var size: Int64
        var modified: Timestamp
        var etag: ETag?
        /// The options this mount last wrote the object with: what the store cannot report
        /// back (expires, persistent headers, SSE details) is read from here.
        var writtenOptions: ObjectOptions?
        /// The kernel's lookup count; the node is dropped when it reaches 0.
        var lookups: UInt64
    }

    struct OpenFile {
        let inode: InodeNumber
        let session: UploadSession?
    }

    struct Registry {
        var nodes: [InodeNumber: Node]
        var inodeByPath: [String: InodeNumber]
        var nextInode: UInt64 = 2
        var openFiles: [FileHandleID: OpenFile] = [:]
        var nextHandle: UInt64 = 1
        /// Uploads by key, from the initiate request until release; also keys being initiated.
        var uploads: [ObjectKey: UploadSession] = [:]
        var initiating: Set<ObjectKey> = []
        var directories: [DirectoryHandleID: DirectoryStream] = [:]
    }

    public init(configuration: FileSystemConfiguration, store: any ObjectStore, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        directoryAttributes = DirectoryAttributes(store: store, prefix: configuration.prefix, mount: configuration.uploadOptions, logger: logger)
        let root = Node(path: "", kind: .directory, size: 0, modified: .now(), etag: nil, writtenOptions: nil, lookups: 1)
        registry = Mutex(Registry(nodes: [.root: root], inodeByPath: ["": .root]))
    }

    // MARK: Namespace

    func objectKey(_ path: String) -> ObjectKey { ObjectKey(configuration.prefix + path) }

    private func childPath(_ parent: InodeNumber, _ name: String) throws -> String {
        guard name.utf8.count <= 1024 else { throw FileSystemError(.nameTooLong, "name longer than 1024 bytes") }
        guard !name.isEmpty, !name.contains("/") else { throw FileSystemError(.invalidArgument, "bad name \(name)") }
        guard name != DirectoryAttributes.objectName else { throw FileSystemError(.noEntry, "\(name) holds directory attributes (hidden)") }
        let parentPath = try registry.withLock { registry -> String in
            guard let node = registry.nodes[parent] else { throw FileSystemError(.noEntry, "unknown \(parent)") }
            guard node.kind == .directory else { throw FileSystemError(.notDirectory, "\(node.path) is a file") }
            return node.path
        }
        return parentPath.isEmpty ? name : parentPath + "/" + name
    }

    private func attributes(_ inode: InodeNumber, _ node: Node, _ registry: Registry) -> FileAttributes {
        var size = node.size
        if node.kind == .regular, let session = registry.uploads[objectKey(node.path)], session.isUploading { size = session.size }
        let isDirectory = node.kind == .directory
        let permissions = (isDirectory ? 0o777 : 0o666) & ~configuration.umask & (configuration.readOnly ? ~0o222 : 0o7777)
        return FileAttributes(inode: inode, kind: node.kind, size: size,
                              mode: (isDirectory ? UInt32(S_IFDIR) : UInt32(S_IFREG)) | permissions,
                              linkCount: isDirectory ? 2 : 1, uid: configuration.ownerUID, gid: configuration.ownerGID,
                              modified: node.modified)
    }

    /// Records a lookup of `path` (kernel lookup count + 1) and returns its attributes.
    private func remember(_ path: String, kind: FileKind, size: Int64, modified: Timestamp?, etag: ETag?) -> FileAttributes {
        registry.withLock { registry in
            let inode: InodeNumber
            if let known = registry.inodeByPath[path], var node = registry.nodes[known] {
                inode = known
                node.kind = kind
                node.size = size
                if let modified { node.modified = modified }
                if etag != nil { node.etag = etag }
                node.lookups += 1
                registry.nodes[inode] = node
            } else {
                inode = InodeNumber(registry.nextInode)
                registry.nextInode += 1
                registry.nodes[inode] = Node(path: path, kind: kind, size: size, modified: modified ?? .now(), etag: etag, writtenOptions: nil, lookups: 1)
                registry.inodeByPath[path] = inode
            }
            return attributes(inode, registry.nodes[inode]!, registry)
        }
    }

    /// Finds `name` in `parent`: a file being written here, an object, or a directory implied by
    /// keys under `name/`. Counts as one kernel lookup.
    public func lookup(parent: InodeNumber, name: String) async throws -> FileAttributes {
        let path = try childPath(parent, name)
        let key = objectKey(path)
        if let session = registry.withLock({ $0.uploads[key] }), session.isUploading {
            return remember(path, kind: .regular, size: session.size, modified: nil, etag: nil)
        }
        do {
            if let object = try await store.headObject(key) {
                return remember(path, kind: .regular, size: object.size, modified: object.lastModified, etag: object.etag)
            }
            let listing = try await store.listObjects(prefix: key.rawValue + "/", delimiter: "/", marker: nil, maxKeys: 1)
            if !listing.objects.isEmpty || !listing.commonPrefixes.isEmpty {
                return remember(path, kind: .directory, size: 0, modified: nil, etag: nil)
            }
        } catch {
            let failure = FileSystemError(doing: "looking up \(key)", error)
            logger.error("\(failure)")
            throw failure
        }
        throw FileSystemError(.noEntry, "no object \(key) and no keys under \(key)/")
    }

    /// The kernel dropped `count` lookups of `inode`.
    public func forget(_ inode: InodeNumber, count: UInt64) {
        registry.withLock { registry in
            guard inode != .root, var node = registry.nodes[inode] else { return }
            node.lookups -= min(count, node.lookups)
            if node.lookups == 0 {
                registry.nodes[inode] = nil
                if registry.inodeByPath[node.path] == inode { registry.inodeByPath[node.path] = nil }
            } else {
                registry.nodes[inode] = node
            }
        }
    }

    public func getattr(_ inode: InodeNumber) throws -> FileAttributes {
        try registry.withLock { registry in
            guard let node = registry.nodes[inode] else { throw FileSystemError(.noEntry, "unknown \(inode)") }
            return attributes(inode, node, registry)
        }
    }

    /// `truncate`/`utimes`/`chmod`. A size is accepted only when it is the file's current size
    /// (a new file truncated to 0); mode and owner changes are accepted and not kept (the store
    /// has no such thing); times are kept in memory for the inode.
    public func setattr(_ inode: InodeNumber, size: Int64?, modified: Timestamp?) throws -> FileAttributes {
        let attributes = try getattr(inode)
        if let size, size != attributes.size {
            throw FileSystemError(.notSupported, "truncating \(inode) from \(attributes.size) to \(size) bytes is not supported")
        }
        return registry.withLock { registry in
            if let modified { registry.nodes[inode]?.modified = modified }
            return self.attributes(inode, registry.nodes[inode]!, registry)
        }
    }

    // MARK: Writing

    /// Creates `name` in `parent` and opens it for writing: initiates the multipart upload and
    /// returns once the upload ID is known. Counts as one kernel lookup.
    public func create(parent: InodeNumber, name: String) async throws -> (FileAttributes, FileHandleID) {
        guard !configuration.readOnly else { throw FileSystemError(.readOnlyFileSystem, "mounted read-only") }
        let path = try childPath(parent, name)
        let session = try await startUpload(path)
        let attributes = remember(path, kind: .regular, size: 0, modified: .now(), etag: nil)
        return (attributes, register(OpenFile(inode: attributes.inode, session: session)))
    }

    /// Opens an existing file. Writing starts a new upload that replaces the object when it
    /// completes; that needs O_TRUNC unless the object is empty (no in-place changes yet).
    /// Read-only opens succeed (reads come with a later issue).
    public func open(_ inode: InodeNumber, flags: Int32) async throws -> FileHandleID {
        let node = try registry.withLock { registry in
            guard let node = registry.nodes[inode] else { throw FileSystemError(.noEntry, "unknown \(inode)") }
            return node
        }
        guard node.kind == .regular else { throw FileSystemError(.isDirectory, "\(node.path) is a directory") }
        guard flags & O_ACCMODE != O_RDONLY else { return register(OpenFile(inode: inode, session: nil)) }
        guard !configuration.readOnly else { throw FileSystemError(.readOnlyFileSystem, "mounted read-only") }
        let current = try getattr(inode).size
        guard current == 0 || flags & O_TRUNC != 0 else {
            let failure = FileSystemError(.notSupported, "\(objectKey(node.path)) has \(current) bytes; opening it for writing needs O_TRUNC (no in-place changes)")
            logger.warning("\(failure)")
            throw failure
        }
        let session = try await startUpload(node.path)
        registry.withLock { registry in
            registry.nodes[inode]?.size = 0
            registry.nodes[inode]?.etag = nil
        }
        return register(OpenFile(inode: inode, session: session))
    }

    private func register(_ file: OpenFile) -> FileHandleID {
        registry.withLock { registry in
            let handle = FileHandleID(registry.nextHandle)
            registry.nextHandle += 1
            registry.openFiles[handle] = file
            return handle
        }
    }

    private func startUpload(_ path: String) async throws -> UploadSession {
        let key = objectKey(path)
        try registry.withLock { registry in
            if registry.uploads[key]?.excludesOtherWriters == true || registry.initiating.contains(key) {
                throw FileSystemError(.busy, "\(key) is already open for writing")
            }
            registry.initiating.insert(key)
        }
        defer { _ = registry.withLock { $0.initiating.remove(key) } }
        let options: ObjectOptions
        let uploadID: UploadID
        do {
            options = try await optionsForNewFile(path)
            uploadID = try await store.initiateUpload(key, options: options)
        } catch {
            let failure = FileSystemError(doing: "initiating the upload of \(key)", error)
            logger.error("\(failure)")
            throw failure
        }
        let session = UploadSession(key: key, uploadID: uploadID, options: options, store: store,
                                    settings: configuration.upload, logger: logger,
                                    afterCompletion: { [weak self] session throws(FileSystemError) in try await self?.applyRecordedChanges(of: session) })
        registry.withLock { $0.uploads[key] = session }
        logger.info("\(key): upload \(uploadID) initiated")
        return session
    }

    private func openFile(_ handle: FileHandleID) throws -> OpenFile {
        try registry.withLock { registry in
            guard let file = registry.openFiles[handle] else { throw FileSystemError(.badFileHandle, "unknown \(handle)") }
            return file
        }
    }

    /// A write the kernel delivered; see `UploadSession.admit`. Synchronous, never blocks.
    public func write(_ handle: FileHandleID, at offset: Int64, bytes: UnsafeRawBufferPointer, writer: WriterIdentity) -> WriteAdmission {
        do {
            guard let session = try openFile(handle).session else {
                return .refused(FileSystemError(.badFileHandle, "\(handle) is not open for writing"))
            }
            return session.admit(at: offset, bytes: bytes, writer: writer)
        } catch {
            return .refused(FileSystemError(doing: "write", error))
        }
    }

    /// One `close()` of a descriptor of the file (see mount-options/write-semantics.md).
    public func flush(_ handle: FileHandleID, writer: WriterIdentity) async throws {
        let file = try openFile(handle)
        guard let session = file.session else { return }
        try await session.flush(writer: writer).get()
        if let etag = session.etag {
            let size = session.size
            let written = session.intendedOptions
            registry.withLock { registry in
                registry.nodes[file.inode]?.etag = etag
                registry.nodes[file.inode]?.size = size
                registry.nodes[file.inode]?.writtenOptions = written
            }
        }
    }

    public func fsync(_ handle: FileHandleID) async throws {
        guard let session = try openFile(handle).session else { return }
        try await session.fsync().get()
    }

    /// The last reference to the open file is gone. Errors can only be logged (the kernel does not
    /// wait for release).
    public func release(_ handle: FileHandleID) async {
        guard let file = registry.withLock({ $0.openFiles.removeValue(forKey: handle) }), let session = file.session else { return }
        let result = await session.release()
        let size = session.size
        registry.withLock { registry in
            if registry.uploads[session.key] === session { registry.uploads[session.key] = nil }
            if case .success(let etag) = result {
                registry.nodes[file.inode]?.etag = etag
                registry.nodes[file.inode]?.size = size
                registry.nodes[file.inode]?.writtenOptions = session.intendedOptions
            }
        }
    }

    /// Deletes an object. A file being written answers EBUSY.
    public func unlink(parent: InodeNumber, name: String) async throws {
        guard !configuration.readOnly else { throw FileSystemError(.readOnlyFileSystem, "mounted read-only") }
        let path = try childPath(parent, name)
        let key = objectKey(path)
        try registry.withLock { registry in
            if registry.uploads[key]?.excludesOtherWriters == true || registry.initiating.contains(key) {
                throw FileSystemError(.busy, "\(key) is open for writing")
            }
        }
        do {
            try await store.deleteObject(key)
        } catch {
            let failure = FileSystemError(doing: "deleting \(key)", error)
            logger.error("\(failure)")
            throw failure
        }
        registry.withLock { registry in
            if let inode = registry.inodeByPath.removeValue(forKey: path) { registry.nodes[inode]?.size = 0 }
        }
    }

    // MARK: Directories

    public func openDirectory(_ inode: InodeNumber) throws -> DirectoryHandleID {
        try registry.withLock { registry in
            guard let node = registry.nodes[inode] else { throw FileSystemError(.noEntry, "unknown \(inode)") }
            guard node.kind == .directory else { throw FileSystemError(.notDirectory, "\(node.path) is a file") }
            let listPrefix = configuration.prefix + (node.path.isEmpty ? "" : node.path + "/")
            let writing = registry.uploads.keys.compactMap { key -> String? in
                guard key.rawValue.hasPrefix(listPrefix) else { return nil }
                let name = key.rawValue.dropFirst(listPrefix.count)
                return name.contains("/") ? nil : String(name)
            }
            let parentPath = node.path.split(separator: "/").dropLast().joined(separator: "/")
            let parent = registry.inodeByPath[parentPath] ?? .root
            let knownInodes = registry.inodeByPath
            let stream = DirectoryStream(store: store, listPrefix: listPrefix, pageSize: configuration.listPageSize,
                                         selfInode: inode, parentInode: parent, filesBeingWritten: writing.sorted(),
                                         inodeOf: { name in knownInodes[node.path.isEmpty ? name : node.path + "/" + name] })
            let handle = DirectoryHandleID(registry.nextHandle)
            registry.nextHandle += 1
            registry.directories[handle] = stream
            return handle
        }
    }

    /// Entries from `offset` (0, or the cookie of the last entry the caller consumed) on: at
    /// least one page when there are more, empty at the end.
    public func readDirectory(_ handle: DirectoryHandleID, from offset: Int64) async throws -> [DirectoryEntry] {
        guard let stream = registry.withLock({ $0.directories[handle] }) else { throw FileSystemError(.badFileHandle, "unknown \(handle)") }
        do {
            return try await stream.entries(from: Int(offset))
        } catch {
            let failure = FileSystemError(doing: "listing", error)
            logger.error("\(failure)")
            throw failure
        }
    }

    public func releaseDirectory(_ handle: DirectoryHandleID) {
        _ = registry.withLock { $0.directories.removeValue(forKey: handle) }
    }

    public func statistics() -> FileSystemStatistics { FileSystemStatistics() }

    // MARK: Shutdown

    /// Unmounting: uploads being completed finish, uploads still open are aborted; one log line each.
    public func shutdown() async {
        let sessions = registry.withLock { Array($0.uploads.values) }
        await withTaskGroup(of: Void.self) { group in
            for session in sessions {
                group.addTask {
                    switch await session.shutdown() {
                    case .success(let etag): self.logger.notice("unmount: \(session.key) finished, ETag \(etag)")
                    case .failure(let error): self.logger.notice("unmount: \(session.key) (upload \(session.uploadID)) not written: \(error.reason)")
                    }
                }
            }
        }
    }
}
