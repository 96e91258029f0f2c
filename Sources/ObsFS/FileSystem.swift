// The filesystem core: the mount's configuration, the inode table, open files and their upload
// sessions. Knows nothing of FUSE; FuseAdapter calls it and turns thrown `FileSystemError`s (and
// any other error, through ErrnoMapping) into replies. The operations live in extensions by
// concern: Namespace/ (lookup, attributes, directories, links, rename), Upload/ (new files
// streamed as multipart uploads), Read/ (prefetching reads), Compose/ (changes to existing
// objects composed on the server), Attributes/ (`user.obs.*` xattrs), Status/ (counters).
//
// Lock order (see Namespace/InodeTable.swift): the inode tree, then one inode's state; the
// open-file registry (`openFiles`) is never held together with either, nor across an await;
// an upload session's and a change session's (ModifySession) own locks may be taken under the
// open-file registry, never the other way round.
import Logging
import OBSProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What a mount is: where it points, how it writes, how long it trusts what it saw.
public struct FileSystemConfiguration: Sendable {
    public var bucket: BucketName
    /// Key prefix the mount's root maps to: empty, or ending with `/`.
    public var prefix: String
    public var upload: UploadSettings
    /// The mount's upload defaults (and Content-Type inference) for every new object.
    public var uploadOptions: UploadMountOptions
    public var readOnly: Bool
    /// Owner and permissions of objects whose metadata does not say (`uid=`, `gid=`, `umask=`).
    public var ownerUID: UInt32
    public var ownerGID: UInt32
    /// Permission bits cleared from 0777 (directories) and 0666 (files); nil: s3fs's modes for
    /// objects without metadata, 0750 and 0640 (the mount root 0755), so that a bucket looks
    /// the same through both.
    public var umask: UInt32?
    /// Keys asked for per listing request.
    public var listPageSize: Int
    /// How long attributes and names seen on the store are trusted (`attr_timeout=`).
    public var attributeTimeout: Duration
    /// How long a name found missing is trusted to stay missing (`negative_timeout=`).
    public var negativeTimeout: Duration
    /// Part size of multipart copies (renames of objects over the single-copy limit).
    public var copyPartSize: Int64
    /// Copies of objects larger than this use a multipart copy (5 GiB: the stores' limit).
    public var singleCopyLimit: Int64
    /// Server-side copies in flight during a directory rename.
    public var renameParallel: Int
    /// Prefetch window and read memory (`read_ahead=`, `read_memory_budget=`).
    public var read: ReadMountOptions
    /// The endpoint's dialect: its smallest part decides how changes are composed.
    public var dialect: Dialect
    /// Writes go through the kernel's page cache (`writeback_cache`): files open for writing are
    /// not opened with direct I/O, and the kernel sends their bytes in batches of pages.
    public var writebackCache: Bool

    public init(bucket: BucketName, prefix: String, upload: UploadSettings, uploadOptions: UploadMountOptions = UploadMountOptions(),
                readOnly: Bool = false, ownerUID: UInt32, ownerGID: UInt32, umask: UInt32? = nil, listPageSize: Int = 1000,
                attributeTimeout: Duration = .seconds(10), negativeTimeout: Duration = .seconds(1),
                copyPartSize: Int64 = 512 << 20, singleCopyLimit: Int64 = 5 << 30, renameParallel: Int = 8,
                read: ReadMountOptions = ReadMountOptions(), dialect: Dialect = .obs, writebackCache: Bool = false) {
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
        self.attributeTimeout = attributeTimeout
        self.negativeTimeout = negativeTimeout
        self.copyPartSize = copyPartSize
        self.singleCopyLimit = singleCopyLimit
        self.renameParallel = renameParallel
        self.read = read
        self.dialect = dialect
        self.writebackCache = writebackCache
    }
}

/// What a name is. FIFOs, sockets and device nodes are zero-byte objects whose metadata mode
/// carries their type, as s3fs stores them (the kernel serves their opens; the object only
/// keeps the name, type, owner, permissions, times and a device's number).
public enum FileKind: Sendable, Equatable, CaseIterable {
    case regular, directory, symlink, fifo, socket, characterDevice, blockDevice

    /// The `S_IFMT` bits of the kind.
    public var typeBits: UInt32 {
        let bits: mode_t = switch self {
        case .regular: S_IFREG
        case .directory: S_IFDIR
        case .symlink: S_IFLNK
        case .fifo: S_IFIFO
        case .socket: S_IFSOCK
        case .characterDevice: S_IFCHR
        case .blockDevice: S_IFBLK
        }
        return UInt32(bits)
    }

    /// The kind a mode's `S_IFMT` bits name; nil when they name none.
    public init?(mode: UInt32) {
        guard let kind = FileKind.allCases.first(where: { $0.typeBits == mode & UInt32(S_IFMT) }) else { return nil }
        self = kind
    }
}

/// What `stat` shows.
public struct FileAttributes: Sendable, Equatable {
    public var inode: InodeNumber
    public var kind: FileKind
    public var size: Int64
    /// Type and permission bits (`S_IFREG | 0644` …).
    public var mode: UInt32
    public var linkCount: UInt32
    /// `st_rdev` of a device node (0 otherwise).
    public var device: UInt64
    public var uid: UInt32
    public var gid: UInt32
    public var modified: FileTime
    public var accessed: FileTime
    public var changed: FileTime
}

/// Who asks: the caller's identity from the kernel request, for the owner of what it creates.
public struct Caller: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    /// The caller's umask (applied to the mode of what it creates).
    public var umask: UInt32
    public var process: ProcessID

    public init(uid: UInt32, gid: UInt32, umask: UInt32, process: ProcessID = .unknown) {
        self.uid = uid
        self.gid = gid
        self.umask = umask
        self.process = process
    }
}

/// `statfs` numbers: an object store has no fixed capacity, so the totals are large constants.
public struct FileSystemStatistics: Sendable {
    public var blockSize: UInt64 = 4096
    public var totalBlocks: UInt64 = 1 << 40
    public var freeBlocks: UInt64 = 1 << 40
    public var totalFiles: UInt64 = 1 << 32
    public var freeFiles: UInt64 = 1 << 32
    public var maximumNameLength: UInt64 = UInt64(KeyNaming.maximumNewNameLength)
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
    /// Directories' own `user.obs.*` attributes (Attributes/ObjectAttributeStore.swift).
    let directoryAttributes: DirectoryAttributes
    /// Serialises `user.obs.*` and POSIX metadata changes of files (each reads the current
    /// options, then changes them).
    let fileAttributeChanges = AsyncBudget(units: 1)
    let table: InodeTable
    /// Names found missing (`negative_timeout=`).
    let negativeCache: NameCache
    /// LISTs that renew what this mount knows of the directories it made (Namespace/EveryChildRenewal.swift).
    let everyChildRenewals = EveryChildRenewals()
    /// Names a listing showed as files, with no directory of the same name (`attr_timeout=`).
    let listedFiles: NameCache
    /// HEADs sent ahead for those names, for the lookups that follow a listing.
    let listedPrefetch: ListedPrefetch
    /// HEAD answers saved for later mounts, and those earlier mounts saved (`saved_attr_timeout=`;
    /// nil: off).
    let savedHeads: SavedHeadAnswers?
    /// Listing pages reused by later readdirs while nothing changed (`attr_timeout=`).
    let listings: ListingCache
    /// The mount's read buffers (`read_memory_budget=`), shared by every open file.
    let readPool: ReadBufferPool
    /// Lines a program can cause at every call, at most one per kind every 10 s.
    let repeatedLines = RepeatedLogLines()
    /// Whether the store keeps user metadata on directory markers (`d/`): nil until the first
    /// marker written with metadata was read back (SeaweedFS keeps none).
    let markersKeepMetadata = Mutex<Bool?>(nil)

    struct OpenFile {
        let inode: Inode
        let session: UploadSession?
        /// The object version the handle reads (open for reading, or O_RDWR of an object).
        var reads: ObjectReadStream? = nil
        /// Changes to an existing object (Compose/ModifySession.swift), shared by every handle
        /// changing the same file (`OpenFiles.shareableChanges`).
        var modify: ModifySession? = nil
        /// The process that opened the handle for changes (an upload's handle: its session's).
        var opener: ProcessID = .unknown
        /// The opener's flush stored the handle's changes: `close()` returned (Compose/FileSystem+RenamingChanges.swift).
        var openerClosed = false

        /// The process whose flush stores what the handle wrote (the close rule).
        var closingProcess: ProcessID { session?.opener ?? opener }

        /// Whether the handle may read the stored object later: not a handle that streams a new
        /// file (whose close stored it; its release may come a moment after `close()`), nor one
        /// whose changes a rename is moving to the new name (`retireChanges`).
        var readsStoredObject: Bool {
            if let modify { return !modify.isRetired }
            return session == nil
        }

        /// Whether the handle streamed a new file that its opener's close stored, and has
        /// written no changes since.
        var isStoredStream: Bool { modify == nil && session?.isUploading == false }
    }

    /// Where a file was when it was unlinked while open: its object is deleted later, unless
    /// this mount made the name again meanwhile (the object then is, or is about to be, the new
    /// file's).
    struct UnlinkedName: Sendable {
        /// The object's key: the name's, or, once a directory above was renamed, the copy's.
        var key: ObjectKey
        let parent: InodeNumber
        let name: String
        /// The version kept (nil: the one the inode knows last, as for a stream completed after
        /// its unlink): another version found under the key at the last release is another
        /// client's object, not deleted.
        var etag: ETag?
        var madeAgain = false

        mutating func noteMade(_ name: String, in parent: InodeNumber) {
            if parent == self.parent && name.hasSameUTF8(as: self.name) { madeAgain = true }
        }
    }

    struct OpenFiles {
        var files: [FileHandleID: OpenFile] = [:]
        var nextHandle: UInt64 = 1
        /// Uploads by inode, from the initiate request until release.
        var uploads: [InodeNumber: UploadSession] = [:]
        /// Inodes whose upload is being initiated, with the initiation's end (an open for
        /// writing arriving meanwhile waits for it, then joins that upload).
        var initiating: [InodeNumber: OneShot<Void>] = [:]
        /// Files and directories being renamed (source and replaced target), with the rename's
        /// end: no upload may start on them, as it would write the key the name had before; names
        /// are made below such a directory once its rename ended (`awaitDirectoryRenames`).
        var renaming: [InodeNumber: OneShot<Void>] = [:]
        /// Files whose unlink is under way (from before its DELETE until the name has left the
        /// table), with the unlink's end: no upload may start on them, nor a completion be
        /// decided, as either would write the object again after the DELETE.
        var unlinking: [InodeNumber: OneShot<Void>] = [:]
        /// Files unlinked while open for writing: their upload's completion is barred
        /// (`UploadSession.barCompletion`) and it is aborted at release.
        var discarded: [InodeNumber: UnlinkedName] = [:]
        /// Files unlinked while open otherwise (reading, or changing an existing object), and
        /// files renamed (copied) while open for reading: the object under the old name stays,
        /// hidden from this mount's lookups and listings, so that the descriptors go on reading
        /// it as on a local filesystem; it is deleted at the last release.
        /// A file renamed twice while open leaves two names.
        var unlinkedWhileOpen: [InodeNumber: [UnlinkedName]] = [:]
        /// Names of `unlinkedWhileOpen` whose last release took them, until their DELETE is
        /// answered: still hidden (a listing meanwhile showed the file again, `stat` ENOENT).
        var hiddenUntilDeleted: [UnlinkedName] = []
        /// The size a truncate gave a file being streamed without cutting what it received (a new
        /// file's `truncate -s`, `cp` ending in a hole, and with `writeback_cache` the kernel's size
        /// ahead of the pages it has not sent yet): zeros fill up to it at the next flush.
        var pendingSizes: [InodeNumber: Int64] = [:]
        /// The changes of handles whose release is under way (no longer in `files`): their last
        /// composition may still run, and a directory removed or renamed over them drops them.
        var releasingChanges: [InodeNumber: [ModifySession]] = [:]
        /// Releases under way, by inode (from `beginRelease` to `takeUnlinkedNames`): what was
        /// unlinked while open is deleted by the last of them to end, once every other has
        /// stored or aborted what it held (a writer's release completes the upload a reader
        /// opened during the stream still reads; the reader's release may end first).
        var releasesUnderWay: [InodeNumber: Int] = [:]
        var directories: [DirectoryHandleID: DirectoryReader] = [:]
        /// Set by shutdown: no upload may start any more.
        var shuttingDown = false

        /// The changes another handle of `inode` holds and shares: its writes and this handle's
        /// are one set of changes, read by both and stored at either's close, as one file on a
        /// local disk. Not a session whose composition failed or that a rename retired. Also
        /// the changes of a handle whose release is under way: its last composition may still
        /// store them, and a session started from the version stored now would be overtaken.
        func shareableChanges(of inode: InodeNumber) -> ModifySession? {
            files.values.lazy.compactMap { $0.inode.number == inode ? $0.modify : nil }.first { $0.isShareable }
                ?? releasingChanges[inode]?.last { $0.isShareable }
        }

        mutating func add(_ file: OpenFile) -> FileHandleID {
            let handle = FileHandleID(nextHandle)
            nextHandle += 1
            files[handle] = file
            return handle
        }

        /// An upload or composition started on a file now would write `key` while a rename of
        /// it or of a directory above it (`ancestry`: the file's inode, then its directories', as
        /// the inode table gives them) or an unlink of it is under way: after the copy, or after
        /// the DELETE.
        func refuseChanges(to ancestry: [InodeNumber], key: ObjectKey) throws {
            if let ended = ancestry.lazy.compactMap({ renaming[$0] }).first { throw ObsFileSystem.OpenRacedARename(ended: ended) }
            if let inode = ancestry.first, unlinking[inode] != nil { throw FileSystemError(.noEntry, "\(key) is being unlinked") }
        }

        /// `inode`'s object is about to lose its name (`unlinked`); descriptors that may still
        /// read it keep it, hidden and deleted at their last release. Whether any does.
        /// `storedStreamHeld`: a handle whose stream its opener's close stored counts too (another
        /// process still holds it; `holdsStoredStream`).
        mutating func keepForReaders(of inode: Inode, _ unlinked: UnlinkedName, storedStreamHeld: Bool = false) -> Bool {
            let reading = files.values.contains { file in
                file.inode === inode && (file.readsStoredObject || (storedStreamHeld && file.session?.isUploading == false))
            }
            guard reading else { return false }
            unlinkedWhileOpen[inode.number, default: []].append(unlinked)
            return true
        }

        /// Whether a handle of `inode` streamed a new file that its opener's close stored, and is
        /// not released yet: its release may be on its way, or another process holds it.
        func holdsStoredStream(_ inode: Inode) -> Bool {
            files.values.contains { $0.inode === inode && $0.isStoredStream }
        }

        /// This mount made `name` in `parent` again: an object stored there is not to be deleted.
        mutating func nameMadeAgain(_ parent: InodeNumber, _ name: String) {
            for inode in discarded.keys { discarded[inode]?.noteMade(name, in: parent) }
            for inode in unlinkedWhileOpen.keys {
                for index in unlinkedWhileOpen[inode]!.indices { unlinkedWhileOpen[inode]![index].noteMade(name, in: parent) }
            }
            for index in hiddenUntilDeleted.indices { hiddenUntilDeleted[index].noteMade(name, in: parent) }
        }

        /// Takes `handle` out of the open handles for its release (`endRelease` when done).
        mutating func beginRelease(_ handle: FileHandleID) -> OpenFile? {
            guard let file = files.removeValue(forKey: handle) else { return nil }
            releasesUnderWay[file.inode.number, default: 0] += 1
            if let modify = file.modify { releasingChanges[file.inode.number, default: []].append(modify) }
            return file
        }

        /// Ends the release of `file`; returns its changes when nothing holds them any more (the
        /// caller closes them): decided under this lock, where a new handle joins them.
        mutating func endRelease(_ file: OpenFile) -> ModifySession? {
            guard let modify = file.modify, var releasing = releasingChanges[file.inode.number],
                  let index = releasing.firstIndex(where: { $0 === modify }) else { return nil }
            releasing.remove(at: index)
            releasingChanges[file.inode.number] = releasing.isEmpty ? nil : releasing
            return holds(modify) || releasing.contains { $0 === modify } ? nil : modify
        }

        /// Whether an open handle holds `modify`.
        func holds(_ modify: ModifySession) -> Bool { files.values.contains { $0.modify === modify } }

        /// Ends a release of `inode` (`beginRelease`); its unlinked-while-open names once none of
        /// its handles is left, open or being released.
        mutating func takeUnlinkedNames(afterReleaseOf inode: InodeNumber) -> [UnlinkedName] {
            let underWay = (releasesUnderWay[inode] ?? 1) - 1
            releasesUnderWay[inode] = underWay > 0 ? underWay : nil
            guard unlinkedWhileOpen[inode] != nil, underWay <= 0, !files.values.contains(where: { $0.inode.number == inode }) else { return [] }
            let taken = unlinkedWhileOpen.removeValue(forKey: inode) ?? []
            hiddenUntilDeleted += taken
            return taken
        }

        /// Whether this mount made the name of `unlinked`, taken by `takeUnlinkedNames`, again
        /// since (a create after the last close, before the DELETE: the object is the new file's).
        func madeAgainBeforeDeleted(_ unlinked: UnlinkedName) -> Bool {
            hiddenUntilDeleted.contains { $0.key == unlinked.key && $0.parent == unlinked.parent && $0.madeAgain }
        }

        /// The DELETE of a name `takeUnlinkedNames` took was answered (or not sent).
        mutating func endHiding(_ unlinked: UnlinkedName) {
            if let index = hiddenUntilDeleted.firstIndex(where: { $0.key == unlinked.key && $0.parent == unlinked.parent }) {
                hiddenUntilDeleted.remove(at: index)
            }
        }

        /// Hidden names of a directory being removed or renamed: their objects go with it (the
        /// caller deletes them), and their descriptors can read them no longer. Also returns the
        /// changes those descriptors hold, which the caller drops first (`dropHiddenFiles`).
        /// `chosen` is also told whether the name's descriptors hold changes (`holdsChanges`).
        mutating func dropHiddenNames(where chosen: (UnlinkedName, _ changed: Bool) -> Bool) -> (names: [UnlinkedName], changes: [ModifySession]) {
            var names: [UnlinkedName] = []
            var inodes: Set<InodeNumber> = []
            for (inode, list) in unlinkedWhileOpen {
                let changed = holdsChanges(inode)
                let picked = list.filter { !$0.madeAgain && chosen($0, changed) }
                guard !picked.isEmpty else { continue }
                names += picked
                inodes.insert(inode)
                unlinkedWhileOpen[inode]?.removeAll { !$0.madeAgain && chosen($0, changed) }
            }
            var changes: [ModifySession] = []
            let held = files.values.compactMap { inodes.contains($0.inode.number) ? $0.modify : nil }
            for modify in held + inodes.flatMap({ releasingChanges[$0] ?? [] }) where !changes.contains(where: { $0 === modify }) {
                changes.append(modify)
            }
            return (names, changes)
        }

        /// Whether descriptors of `inode`, open or being released, hold changes.
        func holdsChanges(_ inode: InodeNumber) -> Bool {
            releasingChanges[inode] != nil || files.values.contains { $0.inode.number == inode && $0.modify != nil }
        }

        /// The keys below `prefix` of the hidden names.
        func hiddenKeys(below prefix: String) -> Set<ObjectKey> {
            Set(hiddenNames.lazy.filter { $0.key.rawValue.hasUTF8Prefix(prefix) }.map(\.key))
        }

        /// Whether `key` is the object of a hidden name.
        func hides(_ key: ObjectKey) -> Bool {
            hiddenNames.contains { $0.key == key }
        }

        /// The names unlinked (or renamed away) while open that are not made again.
        private var hiddenNames: some Sequence<UnlinkedName> {
            unlinkedWhileOpen.values.joined().lazy.filter { !$0.madeAgain }
        }

        /// The keys below `prefix` of hidden names, those whose DELETE is under way included.
        func keysHiddenOrBeingDeleted(below prefix: String) -> Set<ObjectKey> {
            hiddenKeys(below: prefix)
                .union(hiddenUntilDeleted.filter { $0.key.rawValue.hasUTF8Prefix(prefix) }.map(\.key))
        }

        /// Hidden names whose objects a directory rename moved (`moves`, old key to new; the
        /// copies' ETags, none for a native rename): they take the new keys. Returns the inodes of
        /// the old keys still hidden; the others' last descriptors were released meanwhile.
        mutating func moveHiddenNames(_ moves: [ObjectKey: ObjectKey], copies: [ObjectKey: ETag]?) -> [ObjectKey: InodeNumber] {
            var moved: [ObjectKey: InodeNumber] = [:]
            for inode in unlinkedWhileOpen.keys {
                for index in unlinkedWhileOpen[inode]!.indices where !unlinkedWhileOpen[inode]![index].madeAgain {
                    let old = unlinkedWhileOpen[inode]![index].key
                    guard let new = moves[old] else { continue }
                    unlinkedWhileOpen[inode]![index].key = new
                    if let copy = copies?[old] { unlinkedWhileOpen[inode]![index].etag = copy }
                    moved[old] = inode
                }
            }
            return moved
        }

        /// The names unlinked (or renamed away) while open whose objects are still stored and
        /// not made again: hidden from lookups and listings.
        func hiddenNames(in directory: InodeNumber) -> [String] {
            (Array(unlinkedWhileOpen.values.joined()) + hiddenUntilDeleted).filter { $0.parent == directory && !$0.madeAgain }.map(\.name)
        }
    }

    /// Open handles and active uploads; held only for short bookkeeping, never across a request
    /// to the store, never with the inode tree's lock.
    let openFiles = Mutex(OpenFiles())

    public init(configuration: FileSystemConfiguration, store: any ObjectStore, logger: Logger, savedHeads: SavedHeadAnswers? = nil) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.savedHeads = configuration.attributeTimeout > .zero ? savedHeads : nil
        directoryAttributes = DirectoryAttributes(store: store, prefix: configuration.prefix, mount: configuration.uploadOptions, logger: logger)
        table = InodeTable(rootFacts: InodeFacts.unknown(expiry: .now + configuration.attributeTimeout))  // posix: `loadRootMetadata`
        negativeCache = NameCache(timeout: configuration.negativeTimeout)
        listedFiles = NameCache(timeout: configuration.attributeTimeout)
        listings = ListingCache(lifetime: configuration.attributeTimeout)
        listedPrefetch = ListedPrefetch(lifetime: configuration.attributeTimeout)
        readPool = configuration.read.makePool()
    }

    // MARK: Shared helpers

    func objectKey(_ path: String) -> ObjectKey { ObjectKey(configuration.prefix + path) }

    /// The key a directory's children are listed under (`PREFIX/DIR/`).
    func listPrefix(ofDirectory path: String) -> String { configuration.prefix + (path.isEmpty ? "" : path + "/") }

    /// Where a directory's mode, owner, times and xattrs live: its marker `d/`; the mount
    /// root's is the prefix's marker, or on a whole bucket the hidden `.obsmount-root`.
    func markerKey(ofDirectory path: String) -> ObjectKey {
        path.isEmpty && configuration.prefix.isEmpty ? ObjectKey(KeyNaming.bucketRootMarkerName) : ObjectKey(listPrefix(ofDirectory: path))
    }

    func childPath(_ parentPath: String, _ name: String) -> String { InodeTable.childPath(parentPath, name) }

    /// Whether any descriptor has `inode` open.
    func isOpen(_ inode: Inode) -> Bool { openFiles.withLock { $0.files.values.contains { $0.inode === inode } } }

    /// The linked inode and its path; ENOENT for a forgotten, unlinked or replaced inode.
    func resolve(_ number: InodeNumber) throws -> (inode: Inode, path: String) {
        guard let inode = table.linkedInode(number), let path = table.path(of: number) else {
            throw FileSystemError(.noEntry, "\(number) is no longer linked")
        }
        return (inode, path)
    }

    /// The parent directory and the checked name of a looked-up child, or of a new one
    /// (`creating`: NAME_MAX and the store's key length apply, see KeyNaming; a directory's
    /// marker key has one byte more, "d/").
    func resolveChild(_ parent: InodeNumber, _ name: String, creating: Bool = false, makingDirectory: Bool = false) throws -> (parent: Inode, path: String) {
        if let problem = KeyNaming.problem(with: name) {
            throw FileSystemError(name.utf8.count > KeyNaming.maximumNameLength ? .nameTooLong : .invalidArgument, problem)
        }
        let (directory, parentPath) = try resolve(parent)
        guard !KeyNaming.isHidden(name, under: listPrefix(ofDirectory: parentPath)) else {
            if creating { throw refusedName(name, "is kept by obsmount for its own use (hidden)") }
            throw FileSystemError(.noEntry, "\(name) is kept by obsmount (hidden)")
        }
        guard directory.kind == .directory else { throw FileSystemError(.notDirectory, "\(parentPath) is not a directory") }
        let path = childPath(parentPath, name)
        if creating {
            // s3fs's oldest directory marker: such a file would show as the directory `d`.
            if name.hasSuffix(KeyNaming.folderSuffix) {
                throw refusedName(name, "ends in \(KeyNaming.folderSuffix), s3fs's marker of the directory \(name.dropLast(KeyNaming.folderSuffix.count))")
            }
            if name.utf8.count > KeyNaming.maximumNewNameLength {
                throw FileSystemError(.nameTooLong, "name longer than \(KeyNaming.maximumNewNameLength) bytes")
            }
            if objectKey(path).rawValue.utf8.count + (makingDirectory ? 1 : 0) > KeyNaming.maximumNameLength {
                throw FileSystemError(.nameTooLong, "\(path): the object key would be longer than \(KeyNaming.maximumNameLength) bytes")
            }
        }
        return (directory, path)
    }

    /// A name no file or directory may be made under: EINVAL, logged (at most once per 10 s).
    private func refusedName(_ name: String, _ reason: String) -> FileSystemError {
        let failure = FileSystemError(.invalidArgument, "\(name): cannot be made: it \(reason)")
        repeatedLines.log(.warning, failure.reason, kind: "reserved name", to: logger)
        return failure
    }

    func checkWritable() throws {
        guard !configuration.readOnly else { throw FileSystemError(.readOnlyFileSystem, "mounted read-only") }
    }

    func storeFailure(_ action: String, _ error: any Error) -> FileSystemError {
        let failure = FileSystemError(doing: action, error)
        logger.error("\(failure)")
        return failure
    }

    /// Drops the hidden names `chosen` picks (a directory removed or renamed over them) and the
    /// changes their descriptors hold, once no composition of them is under way: nothing
    /// composed lands after the caller deletes their objects and brings them back.
    func dropHiddenFiles(where chosen: (UnlinkedName, _ changed: Bool) -> Bool) async -> [UnlinkedName] {
        let (names, changes) = openFiles.withLock { $0.dropHiddenNames(where: chosen) }
        for modify in changes { await modify.drop() }
        return names
    }

    /// The upload of a file being written here, if any.
    func upload(of inode: InodeNumber) -> UploadSession? {
        openFiles.withLock { $0.uploads[inode] }
    }

    /// Inodes whose upload is being initiated or still open (a completed upload whose release has
    /// not arrived yet is not "being written": close() already returned).
    func inodesBeingWritten() -> Set<InodeNumber> {
        let (uploads, initiating) = openFiles.withLock { ($0.uploads, $0.initiating) }
        return Set(uploads.filter { $0.value.excludesOtherWriters }.keys).union(initiating.keys)
    }

    /// The changes of the newest descriptor changing `inode` (an older one may only await its
    /// release after its opener closed it: `truncate` and `stat` are about the newer).
    func changes(of inode: InodeNumber) -> ModifySession? {
        openFiles.withLock { files in
            files.files.filter { $0.value.inode.number == inode && $0.value.modify != nil }.max { $0.key.rawValue < $1.key.rawValue }?.value.modify
        }
    }

    /// Whether this mount holds what `inode` is becoming: an upload (being initiated, or open)
    /// or changes. Its cached facts are then current whatever their age: the store has nothing
    /// newer to tell (a lookup while a slow initiation runs found no object: ENOENT).
    func isChangingHere(_ inode: InodeNumber) -> Bool {
        openFiles.withLock { $0.uploads[inode] != nil || $0.initiating[inode] != nil } || changes(of: inode) != nil
    }

    func freshExpiry() -> ContinuousClock.Instant { .now + configuration.attributeTimeout }

    /// The size a truncate gave `inode` while it is streamed, ahead of its bytes (`pendingSizes`).
    func pendingSize(of inode: InodeNumber) -> Int64? { openFiles.withLock { $0.pendingSizes[inode] } }

    /// `stat` of an inode, from its cached facts (and the size of its upload while writing).
    func attributes(of inode: Inode) -> FileAttributes {
        let (facts, changedHere, namesChangedHere) = inode.state.withLock { ($0.facts, $0.changedHere, $0.namesChangedHere) }
        var size = facts.size
        var changeTimes: ModifySession.ChangeTimes?
        if inode.kind == .regular, let modify = changes(of: inode.number) {
            size = modify.size
            changeTimes = modify.times
        } else if inode.kind == .regular, let session = upload(of: inode.number), session.isUploading {
            size = max(session.size, pendingSize(of: inode.number) ?? 0)
        }
        let defaultPermissions: UInt32 = switch inode.kind {
        case .directory: configuration.umask.map { 0o777 & ~$0 } ?? (inode.number == .root ? 0o755 : 0o750)
        case .symlink: 0o777
        case .regular, .fifo, .socket, .characterDevice, .blockDevice: configuration.umask.map { 0o666 & ~$0 } ?? 0o640
        }
        var permissions = facts.posix.permissions ?? defaultPermissions
        if configuration.readOnly && inode.kind != .symlink { permissions &= ~0o222 }
        var modified = facts.posix.modified ?? facts.lastModified
        var changed = facts.posix.changed ?? modified
        if let namesChangedHere { modified = max(modified, namesChangedHere) }
        if let changedHere { changed = max(changed, changedHere) }
        if let changeTimes {
            // Open for changes: the times of the last change, as the composed object will store.
            modified = changeTimes.modified
            changed = max(changed, changeTimes.changed)
        }
        return FileAttributes(inode: inode.number, kind: inode.kind, size: inode.kind == .directory ? 0 : size,
                              mode: inode.kind.typeBits | permissions,
                              linkCount: table.linkCount(of: inode),
                              device: facts.posix.device ?? 0,
                              uid: facts.posix.uid ?? configuration.ownerUID, gid: facts.posix.gid ?? configuration.ownerGID,
                              modified: modified, accessed: facts.posix.accessed ?? modified, changed: changed)
    }

    public func statistics() -> FileSystemStatistics { FileSystemStatistics() }

    // MARK: Shutdown

    /// Unmounting: uploads being completed finish, uploads still open are aborted, compositions
    /// under way finish; one log line each. Uploads being initiated are waited for (and
    /// aborted), so none is left behind. The objects of files unlinked while open are deleted.
    /// HEAD answers not yet saved are.
    public func shutdown() async {
        openFiles.withLock { $0.shuttingDown = true }
        while openFiles.withLock({ !$0.initiating.isEmpty }) { try? await Task.sleep(for: .milliseconds(10)) }
        let sessions = openFiles.withLock { Array($0.uploads.values) }
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
        // Changes to existing objects still open are not stored, as uploads still open are not
        // completed: one line each. A composition under way (a close's) ends first: it stores
        // what it holds, and its close returns 0.
        let changing = openFiles.withLock { files in files.files.values.compactMap(\.modify) }
        for modify in changing { await modify.awaitComposition() }
        var logged = Set<ObjectIdentifier>()
        for modify in changing where modify.holdsChanges && logged.insert(ObjectIdentifier(modify)).inserted {
            logger.notice("unmount: \(modify.key): changes not stored: unmounted while the file was open for changes (the object keeps its previous content)")
        }
        // Files unlinked while open, still open: their descriptors end with the mount.
        let unlinkedWhileOpen = openFiles.withLock { files in
            defer { files.unlinkedWhileOpen = [:] }
            return files.unlinkedWhileOpen
        }
        for (inode, names) in unlinkedWhileOpen {
            for unlinked in names { await deleteUnlinkedObject(unlinked, of: inode) }
        }
        savedHeads?.writeChanged()
    }
}
