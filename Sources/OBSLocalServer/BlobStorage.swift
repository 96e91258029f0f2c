// Blob storage: the bytes of parts and objects. A blob is written once, as a request body
// streams in (MD5, and SHA-256 when asked, computed on the way), and never changed afterwards;
// objects are lists of stretches of blobs (`Segment`s), so completing a multipart upload,
// appending, or modifying and truncating an object of a parallel file system bucket never copies
// bytes. Two implementations: files under `DIR/blobs/` and RAM.
//
// Writers run on the server's thread pool, one call at a time per writer (the body ingest on the
// event loop serialises them), so their state needs no lock.
import NIOCore
import OBSHashing
import Synchronization
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// The name of one blob: 32 random hex digits, never derived from a key.
struct BlobID: Hashable, Codable, Sendable, CustomStringConvertible {
    let rawValue: String
    init(rawValue: String) { self.rawValue = rawValue }
    static func random() -> BlobID {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return BlobID(rawValue: bytes.hexString)
    }
    var description: String { rawValue }

    /// True for names this server issues (so a name read from a metadata file is safe in a path).
    var isWellFormed: Bool {
        rawValue.utf8.count == 32 && rawValue.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}

/// A stretch of an object's bytes: `length` bytes of a blob from `offset` (a whole blob, but for
/// what a modify or truncate kept of an earlier one).
struct Segment: Codable, Sendable, Equatable {
    var blob: BlobID
    var offset: Int64
    var length: Int64

    init(blob: BlobID, offset: Int64 = 0, length: Int64) {
        self.blob = blob
        self.offset = offset
        self.length = length
    }

    /// Records written before segments had offsets have none: they start at 0.
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        blob = try container.decode(BlobID.self, forKey: .blob)
        offset = try container.decodeIfPresent(Int64.self, forKey: .offset) ?? 0
        length = try container.decode(Int64.self, forKey: .length)
    }
}

/// Part of a blob to read.
struct BlobSlice: Sendable, Equatable {
    var blob: BlobID
    var offset: Int64
    var length: Int64
}

extension Array where Element == Segment {
    /// The segments holding `range` of the concatenation of these segments, cut at its ends
    /// (the range may cross segment boundaries).
    func segments(covering range: Range<Int64>) -> [Segment] {
        var result: [Segment] = []
        var start: Int64 = 0
        for segment in self {
            let end = start + segment.length
            let lower = Swift.max(start, range.lowerBound), upper = Swift.min(end, range.upperBound)
            if lower < upper {
                result.append(Segment(blob: segment.blob, offset: segment.offset + lower - start, length: upper - lower))
            }
            start = end
            if start >= range.upperBound { break }
        }
        return result
    }

    /// The blob slices to read for `range` of the concatenation of these segments.
    func slices(covering range: Range<Int64>) -> [BlobSlice] {
        segments(covering: range).map { BlobSlice(blob: $0.blob, offset: $0.offset, length: $0.length) }
    }
}

/// A finished blob and the digests of its bytes.
struct WrittenBlob: Sendable {
    var id: BlobID
    var length: Int64
    var md5: [UInt8]
    /// Present when the writer was asked to compute it (V4 signed payloads).
    var sha256: [UInt8]?
    var checksums: StoredChecksums

    var segment: Segment { Segment(blob: id, length: length) }
}

/// Receives a body's bytes in order, on the thread pool. `write` calls come one at a time, and
/// so do `digest` calls, but a `write` and a `digest` of the same buffers may run at once (two
/// pipeline stages on two threads); `finish` comes after both.
protocol BlobWriter: AnyObject, Sendable {
    /// Stores the bytes.
    func write(_ buffers: [ByteBuffer]) throws
    /// Feeds the bytes to the digests.
    func digest(_ buffers: [ByteBuffer])
    /// Flushes and returns the blob; the writer must not be used afterwards.
    func finish() throws -> WrittenBlob
    /// Discards the partial blob.
    func abort()
}

extension BlobWriter {
    /// Digests and stores, one after the other (server-side copies).
    func append(_ buffers: [ByteBuffer]) throws {
        digest(buffers)
        try write(buffers)
    }
}

/// Where a blob's bytes are, for sending them.
enum BlobLocation: Sendable {
    /// A file; the reader opens it (sendfile).
    case file(path: String)
    /// Buffers in memory, in order.
    case memory([ByteBuffer])
}

/// The store of blobs. Thread-safe.
protocol BlobStorage: Sendable {
    func makeWriter(computeSHA256: Bool) throws -> any BlobWriter
    /// A new blob of `length` zero bytes (a truncate that grows an object), stored without
    /// writing them where the storage allows (a sparse file).
    func makeZeros(length: Int64) throws -> Segment
    func location(of blob: BlobID) -> BlobLocation
    /// Calls `body` with the bytes of `slice` in order, in chunks (on the calling thread).
    func read(_ slice: BlobSlice, chunk: (ByteBuffer) throws -> Void) throws
    /// Removes blobs at once (`delete` is what callers use: it spares pinned blobs).
    func remove(_ blobs: [BlobID])
    /// Every blob present (to collect those no metadata references after a crash).
    func allBlobs() -> [BlobID]
    /// The blobs GETs are sending.
    var pins: BlobPins { get }
}

extension BlobStorage {
    /// Deletes blobs no record names any more; those a GET is sending go when it ends.
    func delete(_ blobs: [BlobID]) { remove(pins.deletableNow(blobs)) }

    /// Keeps `blobs` until the pin is gone (a GET sends the version it started with, as on S3,
    /// whatever replaces the object meanwhile).
    func pin(_ blobs: [BlobID]) -> BlobPin { BlobPin(blobs, in: self) }
}

/// Blobs held by GETs under way, and the deletions that wait for them.
final class BlobPins: Sendable {
    /// Holders per pinned blob, and the pinned blobs deleted meanwhile.
    private let state = Mutex<(holders: [BlobID: Int], deleted: Set<BlobID>)>(([:], []))

    fileprivate func pin(_ blobs: [BlobID]) {
        state.withLock { state in for blob in blobs { state.holders[blob, default: 0] += 1 } }
    }

    /// Those of `blobs` no GET holds; the others are remembered for their last unpin.
    fileprivate func deletableNow(_ blobs: [BlobID]) -> [BlobID] {
        state.withLock { state in
            blobs.filter { blob in
                guard state.holders[blob] != nil else { return true }
                state.deleted.insert(blob)
                return false
            }
        }
    }

    /// Unpins `blobs`; returns those deleted while pinned and now free.
    fileprivate func unpin(_ blobs: [BlobID]) -> [BlobID] {
        state.withLock { state in
            blobs.filter { blob in
                let holders = (state.holders[blob] ?? 1) - 1
                state.holders[blob] = holders > 0 ? holders : nil
                return holders == 0 && state.deleted.remove(blob) != nil
            }
        }
    }
}

/// Blobs pinned for one GET; unpinned (and deleted, when deleted meanwhile) when released.
final class BlobPin: Sendable {
    private let blobs: [BlobID]
    private let storage: any BlobStorage

    fileprivate init(_ blobs: [BlobID], in storage: any BlobStorage) {
        self.blobs = blobs
        self.storage = storage
        storage.pins.pin(blobs)
    }

    deinit { storage.remove(storage.pins.unpin(blobs)) }
}

/// Digests fed alongside a writer (the CRCs at hardware speed, for StoredChecksums.swift).
final class BodyDigests {
    private let md5 = StreamingDigest(.md5)
    private let sha256: StreamingDigest?
    private var crc64 = CRC(.crc64ecma)
    private var crc32c = CRC(.crc32c)

    init(computeSHA256: Bool) { sha256 = computeSHA256 ? StreamingDigest(.sha256) : nil }

    func update(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { bytes in
            md5.update(bytes)
            sha256?.update(bytes)
            crc64.update(bytes)
            crc32c.update(bytes)
        }
    }

    func finalize() -> (md5: [UInt8], sha256: [UInt8]?, checksums: StoredChecksums) {
        (md5.finalize(), sha256?.finalize(), StoredChecksums(crc64ecma: crc64, crc32c: crc32c))
    }
}

// MARK: - Files

/// Blobs as files `DIR/blobs/<first two hex digits>/<id>`.
final class DiskBlobStorage: BlobStorage {
    let directory: String

    init(directory: String) throws {
        self.directory = directory
        try FileSystem.makeDirectories(directory)
    }

    private func shard(_ blob: BlobID) -> String { directory + "/" + String(blob.rawValue.prefix(2)) }
    func path(of blob: BlobID) -> String { shard(blob) + "/" + blob.rawValue }

    func makeWriter(computeSHA256: Bool) throws -> any BlobWriter {
        let id = BlobID.random()
        try FileSystem.makeDirectories(shard(id))
        let path = path(of: id)
        let fd = try FileSystem.open(path, O_WRONLY | O_CREAT | O_EXCL)
        return DiskBlobWriter(id: id, path: path, fd: fd, digests: BodyDigests(computeSHA256: computeSHA256))
    }

    func makeZeros(length: Int64) throws -> Segment {
        let id = BlobID.random()
        try FileSystem.makeDirectories(shard(id))
        let path = path(of: id)
        let fd = try FileSystem.open(path, O_WRONLY | O_CREAT | O_EXCL)
        do {
            try FileSystem.setLength(fd, length, path: path)
            try FileSystem.close(fd, path: path)
        } catch {
            try? FileSystem.close(fd, path: path)
            FileSystem.remove(path)
            throw error
        }
        return Segment(blob: id, length: length)
    }

    func location(of blob: BlobID) -> BlobLocation { .file(path: path(of: blob)) }

    func read(_ slice: BlobSlice, chunk: (ByteBuffer) throws -> Void) throws {
        let path = path(of: slice.blob)
        let fd = try FileSystem.open(path, O_RDONLY)
        defer { try? FileSystem.close(fd, path: path) }
        let chunkSize = 1 << 20
        var offset = slice.offset, remaining = slice.length
        let allocator = ByteBufferAllocator()
        while remaining > 0 {
            let want = Int(Swift.min(Int64(chunkSize), remaining))
            var buffer = allocator.buffer(capacity: want)
            var failure: (any Error)?
            let got = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: want) { raw in
                do {
                    return try FileSystem.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<want]), at: offset, path: path)
                } catch {
                    failure = error
                    return 0
                }
            }
            if let failure { throw failure }
            if got == 0 { throw StorageIOError(operation: "pread (short file)", path: path, errno: EIO) }
            offset += Int64(got)
            remaining -= Int64(got)
            try chunk(buffer)
        }
    }

    let pins = BlobPins()

    func remove(_ blobs: [BlobID]) {
        for blob in blobs where blob.isWellFormed { FileSystem.remove(path(of: blob)) }
    }

    func allBlobs() -> [BlobID] {
        FileSystem.list(directory).flatMap { shard in
            FileSystem.list(directory + "/" + shard).map(BlobID.init(rawValue:)).filter(\.isWellFormed)
        }
    }
}

/// Writes one blob file with `write(2)` from the received buffers (no copy), digesting as it goes.
final class DiskBlobWriter: BlobWriter, @unchecked Sendable {
    // @unchecked: `fd` and `length` are used by one `write` at a time, `digests` by one `digest`
    // at a time (BodyIngest serialises each kind of call), `finish` after both.
    private let id: BlobID
    private let path: String
    private var fd: Int32
    private var length: Int64 = 0
    private let digests: BodyDigests

    init(id: BlobID, path: String, fd: Int32, digests: BodyDigests) {
        self.id = id
        self.path = path
        self.fd = fd
        self.digests = digests
    }

    deinit { abort() }

    func digest(_ buffers: [ByteBuffer]) {
        for buffer in buffers { digests.update(buffer) }
    }

    func write(_ buffers: [ByteBuffer]) throws {
        for buffer in buffers {
            try buffer.withUnsafeReadableBytes { try FileSystem.writeAll(fd, $0, path: path) }
            length += Int64(buffer.readableBytes)
        }
    }

    func finish() throws -> WrittenBlob {
        let descriptor = fd
        fd = -1
        do {
            try FileSystem.close(descriptor, path: path)
        } catch {
            FileSystem.remove(path)
            throw error
        }
        let (md5, sha256, checksums) = digests.finalize()
        return WrittenBlob(id: id, length: length, md5: md5, sha256: sha256, checksums: checksums)
    }

    func abort() {
        if fd >= 0 {
            try? FileSystem.close(fd, path: path)
            fd = -1
            FileSystem.remove(path)
        }
    }
}

// MARK: - Memory

/// Blobs kept as the received buffers (`--memory`).
final class MemoryBlobStorage: BlobStorage {
    /// Finished blobs by ID; guarded because writers finish and readers look up on any thread.
    private let blobs = Mutex<[BlobID: [ByteBuffer]]>([:])

    func makeWriter(computeSHA256: Bool) throws -> any BlobWriter {
        MemoryBlobWriter(storage: self, digests: BodyDigests(computeSHA256: computeSHA256))
    }

    fileprivate func store(_ id: BlobID, _ buffers: [ByteBuffer]) { blobs.withLock { $0[id] = buffers } }

    /// One MiB of zeros, shared by every zero blob (buffers are copy-on-write and never written).
    private static let zeroChunk = ByteBuffer(repeating: 0, count: 1 << 20)

    func makeZeros(length: Int64) throws -> Segment {
        let chunk = Int64(Self.zeroChunk.readableBytes)
        var buffers: [ByteBuffer] = []
        var remaining = length
        while remaining > 0 {
            let count = Swift.min(remaining, chunk)
            buffers.append(Self.zeroChunk.getSlice(at: 0, length: Int(count))!)
            remaining -= count
        }
        let id = BlobID.random()
        store(id, buffers)
        return Segment(blob: id, length: length)
    }

    func location(of blob: BlobID) -> BlobLocation { .memory(blobs.withLock { $0[blob] } ?? []) }

    func read(_ slice: BlobSlice, chunk: (ByteBuffer) throws -> Void) throws {
        guard case .memory(let buffers) = location(of: slice.blob) else { return }
        for piece in buffers.slices(offset: slice.offset, length: slice.length) { try chunk(piece) }
    }

    let pins = BlobPins()

    func remove(_ ids: [BlobID]) { blobs.withLock { for id in ids { $0[id] = nil } } }

    func allBlobs() -> [BlobID] { blobs.withLock { Array($0.keys) } }
}

final class MemoryBlobWriter: BlobWriter, @unchecked Sendable {
    // @unchecked: `buffers` and `length` are used by one `write` at a time, `digests` by one
    // `digest` at a time (BodyIngest serialises each kind of call), `finish` after both.
    private let storage: MemoryBlobStorage
    private let digests: BodyDigests
    private var buffers: [ByteBuffer] = []
    private var length: Int64 = 0

    init(storage: MemoryBlobStorage, digests: BodyDigests) {
        self.storage = storage
        self.digests = digests
    }

    func digest(_ received: [ByteBuffer]) {
        for buffer in received { digests.update(buffer) }
    }

    func write(_ received: [ByteBuffer]) throws {
        for buffer in received {
            length += Int64(buffer.readableBytes)
            buffers.append(buffer)
        }
    }

    func finish() throws -> WrittenBlob {
        let id = BlobID.random()
        storage.store(id, buffers)
        buffers = []
        let (md5, sha256, checksums) = digests.finalize()
        return WrittenBlob(id: id, length: length, md5: md5, sha256: sha256, checksums: checksums)
    }

    func abort() { buffers = [] }
}

extension Array where Element == ByteBuffer {
    /// The bytes `offset..<offset+length` of these buffers' concatenation, as slices (no copy).
    func slices(offset: Int64, length: Int64) -> [ByteBuffer] {
        var result: [ByteBuffer] = []
        var start: Int64 = 0
        let end = offset + length
        for buffer in self {
            let bufferEnd = start + Int64(buffer.readableBytes)
            let lower = Swift.max(start, offset), upper = Swift.min(bufferEnd, end)
            if lower < upper, let slice = buffer.getSlice(at: buffer.readerIndex + Int(lower - start), length: Int(upper - lower)) {
                result.append(slice)
            }
            start = bufferEnd
            if start >= end { break }
        }
        return result
    }
}
