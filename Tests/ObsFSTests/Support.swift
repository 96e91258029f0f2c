// Helpers shared by the ObsFS tests.
import Logging
import OBSProtocol

#if canImport(Glibc)
import Glibc
#endif
@testable import ObsFS

let KiB: Int64 = 1024
let MiB: Int64 = 1024 * 1024
let minimumPart = ProtocolLimits.minimumPartSize

/// A mount over `store` with small parts so tests stay fast.
func makeFileSystem(_ store: any ObjectStore, partSize: Int64 = ProtocolLimits.minimumPartSize, parallel: Int = 2,
                    budget: Int64 = 16 * MiB, prefix: String = "", listPageSize: Int = 1000,
                    uploadOptions: UploadMountOptions = UploadMountOptions(), attributeTimeout: Duration = .seconds(10),
                    singleCopyLimit: Int64 = 5 << 30, integrity: UploadIntegrity = .md5, writebackCache: Bool = false,
                    negativeTimeout: Duration = .seconds(5), savedHeads: SavedHeadAnswers? = nil, umask: UInt32? = nil,
                    logger: Logger? = nil) -> ObsFileSystem {
    let schedule = PartSizeSchedule(initialPartSize: partSize, maximumPartSize: budget / 2)
    let settings = UploadSettings(schedule: schedule, parallel: parallel, pool: PartBufferPool(capacity: budget), integrity: integrity)
    let configuration = FileSystemConfiguration(bucket: BucketName("bucket"), prefix: prefix, upload: settings, uploadOptions: uploadOptions,
                                                ownerUID: 1000, ownerGID: 1000, umask: umask, listPageSize: listPageSize,
                                                attributeTimeout: attributeTimeout, negativeTimeout: negativeTimeout, singleCopyLimit: singleCopyLimit,
                                                writebackCache: writebackCache)
    var quiet = Logger(label: "obsfs-test")
    quiet.logLevel = .critical
    return ObsFileSystem(configuration: configuration, store: store, logger: logger ?? quiet, savedHeads: savedHeads)
}

/// Deterministic bytes that differ from part to part.
func pattern(_ count: Int, seed: UInt32 = 1) -> [UInt8] {
    var state = seed &* 2_654_435_761 | 1
    return (0..<count).map { _ in
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        return UInt8(truncatingIfNeeded: state)
    }
}

/// Writes like the kernel does: admission, then the reply when the bytes are in part buffers.
func write(_ fs: ObsFileSystem, _ handle: FileHandleID, at offset: Int64, _ bytes: [UInt8], writer: WriterIdentity = WriterIdentity(7)) async -> Result<Int, FileSystemError> {
    let admission = bytes.withUnsafeBytes { fs.write(handle, at: offset, bytes: $0, writer: writer) }
    return await admission.outcome
}

/// Writes `bytes` sequentially in `chunk`-sized writes from offset 0.
func writeAll(_ fs: ObsFileSystem, _ handle: FileHandleID, _ bytes: [UInt8], chunk: Int, from start: Int64 = 0,
              writer: WriterIdentity = WriterIdentity(7)) async throws {
    var offset = 0
    while offset < bytes.count {
        let end = min(offset + chunk, bytes.count)
        let count = try await write(fs, handle, at: start + Int64(offset), Array(bytes[offset..<end]), writer: writer).get()
        offset += count
    }
}

/// Creates `name` in the root, writes `bytes` in `chunk`-sized writes, closes it; its inode.
func writeFile(_ fs: ObsFileSystem, _ name: String, _ bytes: [UInt8], chunk: Int) async throws -> InodeNumber {
    let (attributes, handle) = try await fs.create(parent: .root, name: name)
    try await writeAll(fs, handle, bytes, chunk: chunk)
    try await fs.flush(handle, writer: WriterIdentity(7))
    await fs.release(handle)
    return attributes.inode
}

func errno(of body: () async throws -> Void) async -> Errno? {
    do {
        try await body()
        return nil
    } catch {
        return ErrnoMapping.errno(for: error)
    }
}

/// Metadata without the POSIX names (mode, owner, times) that every new object carries.
func userMetadata(_ metadata: [String: String]?) -> [String: String]? {
    metadata?.filter { !PosixMetadata.names.contains($0.key) }
}

/// The caller of the tests' creates.
let testCaller = Caller(uid: 1000, gid: 1000, umask: 0o022)

extension ObsFileSystem {
    /// `create` with mode 0644 by `testCaller` (`creat`'s flags unless told).
    func create(parent: InodeNumber, name: String, flags: Int32 = O_WRONLY | O_CREAT | O_TRUNC) async throws -> (FileAttributes, FileHandleID) {
        try await create(parent: parent, name: name, mode: 0o644, flags: flags, caller: testCaller)
    }

    /// `readDirectory` of a handle opened on the mount's root.
    func readDirectory(_ handle: DirectoryHandleID, from offset: Int64) async throws -> [DirectoryEntry] {
        try await readDirectory(handle, directory: .root, from: offset)
    }
}
