// Changing an existing object through an open file: appends (`>>`, `O_APPEND`), in-place writes
// (`O_RDWR`, `dd conv=notrunc`, `pwrite`), truncation, and writes after an earlier close()
// completed the file. The open file is its base object (pinned by ETag) plus the ranges written
// since, held in memory; reads see both (read-your-writes). At the opener's flush, at fsync and
// at release the new object is composed on the server (CompositionPlan.swift): unchanged
// ranges are UploadPartCopy copies of the base, changed ranges are uploaded, so only what
// changed crosses the wire. The base is never touched before the new object is complete; then
// the new object becomes the base and writing may go on.
//
// On an OBS parallel file system bucket the native calls are used instead: `PUT ?modify` for
// each changed range and `PUT ?truncate` for a new length.
//
// Memory: the changed ranges of one file may hold at most `changeBudget` bytes; a write beyond
// it composes what is held first (the write waits for that) and continues from the new base.
//
// One session per file: every descriptor changing the same file shares it (bonnie++'s seekers,
// several processes updating one database), so each reads what the others wrote, and each
// opener's close stores what all wrote so far, as on a local disk. Separate sessions would each
// compose over the version they opened, and all but the first would fail on its changed ETag.
//
// Rename: a file whose openers' flushes stored every change may be renamed while its descriptors
// still await their release; the rename retires the session (writes through it answer EBUSY
// while the copy runs) and replaces it by one over the object under its new name
// (FileSystem+RenamingChanges.swift). A file with changes not yet stored answers EBUSY.
//
// Failure is final: once a composition failed (after the client's retries), the session holds
// that error and every later write, flush, fsync and release answers it; nothing is composed
// later, so a close() that reported the failure never turns into a stored object after all.
//
// Unlinked while open: the last release drops the changes (`drop`) before the hidden object is
// deleted. It waits for a composition under way (a flush of the same descriptor from another
// process, as after fork), and no composition starts after it, so none lands after the DELETE
// and brings the name back.
import Logging
import OBSProtocol
import Synchronization

/// The ranges written since the base: runs of bytes, sorted by offset, never overlapping. A
/// write that continues a run is appended to it in place (amortized: `bonnie++`'s rewrite,
/// `dd conv=notrunc`, appends), one inside a run is copied over it, up to `runCapacity` bytes a
/// run; other writes make new runs (runs may touch) or replace the runs they overlap by their
/// union. Runs are found by binary search: a write or read costs O(log runs + bytes).
struct ChangedRanges: Sendable, ChangedBytes {
    struct Run: Sendable {
        var offset: Int64
        var bytes: [UInt8]
        var end: Int64 { offset + Int64(bytes.count) }
    }

    /// The largest run a write grows in place: what a copy-on-write or a reallocation of one
    /// run may copy at most.
    static let runCapacity = 4 << 20

    private(set) var runs: [Run] = []
    /// The bytes held (the runs' sizes).
    private(set) var byteCount = 0

    /// The changed ranges, touching runs joined.
    var ranges: [Range<Int64>] {
        var joined: [Range<Int64>] = []
        for run in runs {
            if let last = joined.last, last.upperBound == run.offset {
                joined[joined.count - 1] = last.lowerBound..<run.end
            } else {
                joined.append(run.offset..<run.end)
            }
        }
        return joined
    }
    var isEmpty: Bool { runs.isEmpty }

    /// The index of the first run ending after `offset`.
    private func firstRun(endingAfter offset: Int64) -> Int {
        var low = 0
        var high = runs.count
        while low < high {
            let middle = (low + high) / 2
            if runs[middle].end <= offset { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Lays `bytes` at `offset` over what is held, the new bytes winning.
    mutating func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) {
        guard !bytes.isEmpty else { return }
        let typed = bytes.assumingMemoryBound(to: UInt8.self)
        let end = offset + Int64(bytes.count)
        let low = firstRun(endingAfter: offset)
        var high = low
        while high < runs.count && runs[high].offset < end { high += 1 }
        if low == high {
            // Overlaps nothing: continues the run before it, or is a run of its own.
            if low > 0, runs[low - 1].end == offset, runs[low - 1].bytes.count + bytes.count <= ChangedRanges.runCapacity {
                runs[low - 1].bytes.append(contentsOf: typed)
            } else {
                runs.insert(Run(offset: offset, bytes: Array(typed)), at: low)
            }
            byteCount += bytes.count
            return
        }
        if high == low + 1, runs[low].offset <= offset, end <= runs[low].end {
            // Inside one run: copied over it in place.
            let start = Int(offset - runs[low].offset)
            runs[low].bytes.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[start..<start + bytes.count]).copyMemory(from: bytes) }
            return
        }
        // Overlaps runs: they are replaced by their union with the new bytes.
        let start = min(runs[low].offset, offset)
        let stop = max(runs[high - 1].end, end)
        var union = [UInt8](repeating: 0, count: Int(stop - start))
        for run in runs[low..<high] {
            union.replaceSubrange(Int(run.offset - start)..<Int(run.end - start), with: run.bytes)
            byteCount -= run.bytes.count
        }
        union.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[Int(offset - start)..<Int(end - start)]).copyMemory(from: bytes) }
        runs.replaceSubrange(low..<high, with: [Run(offset: start, bytes: union)])
        byteCount += union.count
    }

    /// Drops everything at or past `size`.
    mutating func cut(at size: Int64) {
        runs = runs.compactMap { run in
            if run.offset >= size { return nil }
            if run.end <= size { return run }
            return Run(offset: run.offset, bytes: Array(run.bytes[0..<Int(size - run.offset)]))
        }
        byteCount = runs.reduce(0) { $0 + $1.bytes.count }
    }

    /// Lays the held bytes that fall in `range` over `destination` (which holds `range`).
    func overlay(_ range: Range<Int64>, on destination: inout [UInt8]) {
        destination.withUnsafeMutableBytes { overlay(range, into: $0) }
    }

    /// The same, into raw memory.
    func overlay(_ range: Range<Int64>, into destination: UnsafeMutableRawBufferPointer) {
        var index = firstRun(endingAfter: range.lowerBound)
        while index < runs.count && runs[index].offset < range.upperBound {
            let run = runs[index]
            let start = max(run.offset, range.lowerBound)
            let stop = min(run.end, range.upperBound)
            run.bytes.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(rebasing: destination[Int(start - range.lowerBound)..<Int(stop - range.lowerBound)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[Int(start - run.offset)..<Int(stop - run.offset)]))
            }
            index += 1
        }
    }

    /// The bytes of `range`, zeros where nothing was written, straight into `destination`.
    func copyBytes(_ range: Range<Int64>, into destination: UnsafeMutableRawBufferPointer) {
        destination.initializeMemory(as: UInt8.self, repeating: 0)
        overlay(range, into: destination)
    }

    /// Removes what a composition stored: each range of `committed` that still holds the bytes
    /// it held there (a write that came in while composing stays). One pass over both.
    mutating func remove(_ committed: ChangedRanges) {
        var remaining: [Run] = []
        var index = 0
        for range in committed.ranges {
            while index < runs.count && runs[index].end <= range.lowerBound {
                remaining.append(runs[index])
                index += 1
            }
            var expected = [UInt8](repeating: 0, count: range.count)
            committed.overlay(range, on: &expected)
            var current = [UInt8](repeating: 0, count: range.count)
            overlay(range, on: &current)
            guard expected == current else { continue }
            while index < runs.count && runs[index].offset < range.upperBound {
                let run = runs[index]
                if run.offset < range.lowerBound { remaining.append(Run(offset: run.offset, bytes: Array(run.bytes[0..<Int(range.lowerBound - run.offset)]))) }
                if run.end > range.upperBound {
                    runs[index] = Run(offset: range.upperBound, bytes: Array(run.bytes[Int(range.upperBound - run.offset)...]))
                    break
                }
                index += 1
            }
        }
        remaining.append(contentsOf: runs[index...])
        runs = remaining
        byteCount = runs.reduce(0) { $0 + $1.bytes.count }
    }
}

/// One open file changing an existing object.
final class ModifySession: Sendable {
    let key: ObjectKey
    private let store: any ObjectStore
    private let executor: CompositionExecutor
    private let limits: CompositionLimits
    private let customerKey: CustomerKey?
    private let readPool: ReadBufferPool
    private let readSettings: ReadSettings
    private let changeBudget: Int
    private let logger: Logger

    struct State {
        var baseETag: ETag?
        /// The base's length.
        var baseSize: Int64
        /// The base's length still visible (a truncate since the base cuts it).
        var baseVisible: Int64
        var size: Int64
        var changes = ChangedRanges()
        /// A truncate or extension since the base, even with no bytes written.
        var resized = false
        /// The shortest length a truncate set while a composition ran (nil: none did). The
        /// composed object holds the bytes from before the truncate: past this length they
        /// stay hidden (`baseVisible`) once it is the base.
        var cutWhileComposing: Int64?
        var baseReads: ObjectReadStream
        /// What the composed object carries (metadata, class, ACL…): the base's at open, changed
        /// by metadata changes since (`changeBase`).
        var options: ObjectOptions
        /// The error of a failed composition; the changes are abandoned from then on.
        var failure: (any Error)?
        /// A rename of the file is under way (`retire`): writes wait
        /// for this to be fulfilled, then go on through the handle's session, the session that
        /// follows the file to its new name (`renameEnded`), or this one again (`unretire`).
        var retirement: OneShot<Void>?
        /// The changes went with the unlinked file (`drop`): commits store nothing.
        var dropped = false
        /// The file's times as changed so far, which `stat` shows and the composed object
        /// stores: nil until the first change.
        var times: ChangeTimes?
    }

    /// The modification and change times of a changed file (s3fs's `mtime`, `ctime`): a write
    /// or a truncate sets both to now, as a local filesystem does; a `utimens` between them sets
    /// the mtime it gives.
    struct ChangeTimes: Sendable, Equatable {
        var modified: FileTime
        var changed: FileTime

        static func now() -> ChangeTimes {
            let now = FileTime.now()
            return ChangeTimes(modified: now, changed: now)
        }
    }

    /// What a write to the session came to.
    enum WriteResult {
        case taken
        /// The changes held would outgrow the budget: compose first.
        case overBudget
        /// The file is being renamed (`retire`): try again once the OneShot is fulfilled.
        case retired(OneShot<Void>)
    }

    /// The base, the changes and the size; never held across an await.
    private let state: Mutex<State>
    /// One composition at a time.
    private let composing = AsyncBudget(units: 1)

    init(key: ObjectKey, baseETag: ETag?, baseSize: Int64, options: ObjectOptions, customerKey: CustomerKey?,
         store: any ObjectStore, executor: CompositionExecutor, limits: CompositionLimits, readPool: ReadBufferPool,
         readSettings: ReadSettings, changeBudget: Int, logger: Logger) throws {
        guard let reader = store as? any ObjectReader else { throw FileSystemError(.notSupported, "this store cannot read objects") }
        self.key = key
        self.store = store
        self.executor = executor
        self.limits = limits
        self.customerKey = customerKey
        self.readPool = readPool
        self.readSettings = readSettings
        self.changeBudget = changeBudget
        self.logger = logger
        let reads = ObjectReadStream(key: key, etag: baseETag, size: baseSize, customerKey: customerKey, reader: reader, pool: readPool, settings: readSettings)
        state = Mutex(State(baseETag: baseETag, baseSize: baseSize, baseVisible: baseSize, size: baseSize, baseReads: reads, options: options))
    }

    var size: Int64 { state.withLock { $0.size } }
    var etag: ETag? { state.withLock { $0.changes.isEmpty && !$0.resized ? $0.baseETag : nil } }
    /// Why an earlier composition failed, if one did.
    var failure: (any Error)? { state.withLock { $0.failure } }

    /// What the composed object carries (the base's options, changed since by metadata changes).
    var options: ObjectOptions { state.withLock { $0.options } }

    /// Takes a write, unless it would outgrow the budget or a rename retired the session.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) -> WriteResult {
        state.withLock { state in
            if let retirement = state.retirement { return .retired(retirement) }
            guard state.changes.byteCount + bytes.count <= changeBudget || state.changes.isEmpty else { return .overBudget }
            state.changes.write(bytes, at: offset)
            state.size = max(state.size, offset + Int64(bytes.count))
            state.times = .now()
            return .taken
        }
    }

    /// Sets the length: shorter cuts the base and the changes, longer reads as zeros. EBUSY while
    /// a rename retired the session.
    func truncate(to size: Int64) throws(FileSystemError) {
        try state.withLock { state throws(FileSystemError) in
            guard state.retirement == nil else { throw renameUnderWay }
            guard size != state.size else { return }  // nothing to cut or extend: nothing to compose
            state.changes.cut(at: size)
            state.baseVisible = min(state.baseVisible, size)
            state.cutWhileComposing = min(state.cutWhileComposing ?? size, size)
            state.size = size
            state.resized = true
            state.times = .now()
        }
    }

    /// The times `stat` shows while the file is open for changes (nil: none made yet).
    var times: ChangeTimes? { state.withLock { $0.times } }

    /// A metadata change made while the file is open (chmod, chown, utimens) at `changed`, the
    /// ctime it stored: its mtime the one given, if any; the object composed next stores them.
    func noteMetadataChange(modified: FileTime?, changed: FileTime) {
        state.withLock { state in
            state.times = ChangeTimes(modified: modified ?? state.times?.modified ?? changed, changed: changed)
        }
    }

    /// Marks the session as being renamed whatever it holds (the rename stores it first,
    /// `storeRetiredChanges`); false when an earlier composition failed.
    func retire() -> Bool {
        state.withLock { state in
            guard state.failure == nil else { return false }
            if state.retirement == nil { state.retirement = OneShot() }
            return true
        }
    }

    var isRetired: Bool { state.withLock { $0.retirement != nil } }

    /// The file was unlinked and this is its last release: once no composition is under way,
    /// the changes are dropped and later commits store nothing.
    func drop() async {
        await composing.acquire(1)
        defer { composing.release(1) }
        state.withLock { $0.dropped = true }
    }

    /// Whether another descriptor of the file may join the session: no failed composition, no
    /// rename under way, not dropped with the unlinked file.
    var isShareable: Bool { state.withLock { $0.failure == nil && $0.retirement == nil && !$0.dropped } }

    /// Whether writes or a new length are held that no commit stored yet.
    var holdsChanges: Bool { state.withLock { !$0.dropped && (!$0.changes.isEmpty || $0.resized) } }

    /// What a write or truncate through a retired session answers.
    var renameUnderWay: FileSystemError { FileSystemError(.busy, "\(key) is being renamed; change it again once the rename ended") }

    /// The rename ended without a new name for this session (it failed, or this file was the
    /// target it replaced): writes are taken again, the ones held first.
    func unretire() {
        let retirement = state.withLock { state in
            defer { state.retirement = nil }
            return state.retirement
        }
        _ = retirement?.fulfill(())
    }

    /// The rename ended and this session stays retired (a session under the new name replaced
    /// it, or none could be made): the writes held go on through the handle's session now.
    func renameEnded() { _ = state.withLock { $0.retirement }?.fulfill(()) }

    /// Up to `count` bytes at `offset` of the file as written so far. A composition of another
    /// descriptor's close that replaces the base meanwhile (its old version is gone: 412, or
    /// the stream closed; natively, the object changes before the composition ends) makes the
    /// read start over from the new base, which holds the same bytes.
    func read(at offset: Int64, count: Int) async throws -> [UInt8] {
        while true {
            let (size, baseVisible, reads, changes) = state.withLock { ($0.size, $0.baseVisible, $0.baseReads, $0.changes) }
            guard offset < size, count > 0 else { return [] }
            let range = offset..<min(offset + Int64(count), size)
            var bytes = [UInt8](repeating: 0, count: range.count)
            if offset < baseVisible {
                let base: [UInt8]
                do {
                    base = try await reads.read(at: offset, count: Int(min(range.upperBound, baseVisible) - offset)).gathered()
                } catch {
                    // A composition under way may be replacing the base (on a parallel file
                    // system bucket, in place): once it ended, the read starts over.
                    await awaitComposition()
                    if state.withLock({ $0.baseReads !== reads }) { continue }
                    throw error
                }
                bytes.replaceSubrange(0..<base.count, with: base)
            }
            changes.overlay(range, on: &bytes)
            return bytes
        }
    }

    /// Returns once no composition is under way (at once when none is).
    func awaitComposition() async {
        await composing.acquire(1)
        composing.release(1)
    }

    /// Makes what was written durable: composes the new object (or sends the native calls) and
    /// makes it the base; nothing to store does nothing. `recordStored` gets the new ETag and
    /// size before the next composition may start, so a commit that waited for this one and
    /// found nothing left to store returns after they were recorded (a descriptor opened once
    /// its close() returned starts from the new object).
    func commit(recordStored: (ETag?, Int64, ChangeTimes) -> Void) async throws {
        await composing.acquire(1)
        defer { composing.release(1) }
        let (baseETag, baseSize, baseVisible, size, changes, resized, options, failure, dropped, times) = state.withLock {
            $0.cutWhileComposing = nil  // the snapshot holds every truncate so far
            return ($0.baseETag, $0.baseSize, $0.baseVisible, $0.size, $0.changes, $0.resized, $0.options, $0.failure, $0.dropped, $0.times)
        }
        if let failure { throw failure }
        guard (!changes.isEmpty || resized) && !dropped else { return }
        let etag: ETag?
        // The times stored with the new object (s3fs's `mtime`, `ctime`), and recorded: those of
        // the last change it holds, which `stat` showed meanwhile.
        let storedTimes = times ?? .now()
        do {
            if let bucket = store.fileSystemBucket {
                try await commitNatively(bucket, baseETag: baseETag, baseSize: baseSize, baseVisible: baseVisible, size: size, changes: changes)
                do {
                    try await bucket.replaceUserMetadataNatively(key, with: touched(options, at: storedTimes).metadata)
                } catch {
                    // The bytes are stored: the close stands, only the time is the old one.
                    logger.warning("\(key): changed in place, but storing its modification time failed: \(error)")
                }
                // The ETag the object has now (a truncate answers none, a metadata change may give
                // another), which this mount's readers of the file follow; unknown if the HEAD fails.
                etag = try? await store.headObject(key)?.etag
            } else {
                let plan = try CompositionPlan(baseSize: baseVisible, changes: changes.ranges, newSize: size, limits: limits)
                let result = try await executor.compose(plan, into: key, base: key, baseETag: baseETag, changes: changes, options: touched(options, at: storedTimes))
                logger.info("\(key): composed \(size) bytes: \(plan.copiedBytes) copied on the server, \(plan.uploadedBytes) uploaded (\(plan.baseBytesRead) read back)")
                etag = result.etag
            }
        } catch {
            state.withLock { $0.failure = error }
            throw error
        }
        recordStored(etag, size, storedTimes)
        guard let reader = store as? any ObjectReader else { return }
        let reads = ObjectReadStream(key: key, etag: etag, size: size, customerKey: customerKey, reader: reader, pool: readPool, settings: readSettings)
        let old = state.withLock { state -> ObjectReadStream in
            let old = state.baseReads
            state.baseETag = etag
            state.baseSize = size
            // Writes that arrived while composing stay as changes over the new base; a truncate
            // that came in while composing still hides what it cut (from the snapshot's changes).
            state.baseVisible = min(size, state.cutWhileComposing ?? size)
            state.cutWhileComposing = nil
            state.changes.remove(changes)
            state.resized = state.size != size || state.baseVisible < size
            state.baseReads = reads
            return old
        }
        old.close()
    }

    /// Runs `change`, a metadata change of the base (chmod, chown, utimens, an xattr), with no
    /// composition under way, then takes what it returns: the options the composed object keeps,
    /// and the base's ETag now (the S3 dialects copy the object onto itself, which may give it a
    /// new one; the bytes are the same, so the changes written stay valid over it).
    func changeBase(_ change: () async throws -> (options: ObjectOptions, etag: ETag?)) async throws {
        await composing.acquire(1)
        defer { composing.release(1) }
        let (options, etag) = try await change()
        guard let reader = store as? any ObjectReader else { return }
        let old = state.withLock { state -> ObjectReadStream? in
            state.options = options
            guard let etag, etag != state.baseETag else { return nil }
            let old = state.baseReads
            state.baseETag = etag
            state.baseReads = ObjectReadStream(key: key, etag: etag, size: state.baseSize, customerKey: customerKey, reader: reader,
                                               pool: readPool, settings: readSettings)
            return old
        }
        old?.close()
    }

    /// `options` with the POSIX modification and change times (s3fs's `mtime`, `ctime`) set to
    /// `times`: those of the last change the new object holds.
    private func touched(_ options: ObjectOptions, at times: ChangeTimes) -> ObjectOptions {
        var touched = options
        touched.metadata["mtime"] = times.modified.description
        touched.metadata["ctime"] = times.changed.description
        return touched
    }

    /// The same change with the native calls: cut the base where a truncate cut it, write each
    /// span of changed ranges in place (extending with zeros first to a span that starts past
    /// the end), then extend to the new size (zeros) when it is longer. The base bytes in the
    /// spans' gaps are read first, pinned to the base's ETag, before anything changes it.
    private func commitNatively(_ bucket: any FileSystemBucketStore, baseETag: ETag?, baseSize: Int64, baseVisible: Int64, size: Int64,
                                changes: ChangedRanges) async throws {
        var writes: [(span: Range<Int64>, bytes: AlignedMemory)] = []
        // Ranges closer than 1 MiB go as one write: 1,000 writes of 512 bytes across 16 MiB (as
        // `stress-ng --seek` makes) were 1,000 requests, each slower as the object's pieces grew.
        let budget = limits.maximumUploadPartSize
        for (span, merged) in coalesced(changes.ranges, maximumGap: 1 << 20, maximumSpan: budget, gapBudget: budget) {
            let bytes = AlignedMemory(byteCount: span.count)
            bytes.rawBytes.initializeMemory(as: UInt8.self, repeating: 0)
            let base = span.clamped(to: 0..<baseVisible)
            if merged, !base.isEmpty {
                guard let reader = store as? any ObjectReader else { throw FileSystemError(.notSupported, "this store cannot read objects") }
                let offset = Int(base.lowerBound - span.lowerBound)
                let count = try await reader.readRange(key, range: base, ifMatch: baseETag, customerKey: customerKey,
                                                       into: MemoryRegion(owner: bytes, range: offset..<offset + base.count))
                guard count == base.count else { throw FileSystemError(.io, "\(key): GET of bytes \(base) returned \(count) bytes") }
            }
            changes.overlay(span, into: bytes.rawBytes)
            writes.append((span, bytes))
        }
        var length = baseSize
        if baseVisible < baseSize {
            try await bucket.truncateNatively(key, length: baseVisible)
            length = baseVisible
        }
        for (span, bytes) in writes {
            // A write past the end leaves a hole: the native write starts at most at the end.
            if span.lowerBound > length { try await bucket.truncateNatively(key, length: span.lowerBound) }
            _ = try await bucket.modifyNatively(key, position: span.lowerBound, bytes: MemoryRegion(owner: bytes))
            length = max(length, span.upperBound)
        }
        if size > length { try await bucket.truncateNatively(key, length: size) }
        logger.info("\(key): \(changes.byteCount) bytes written in place in \(writes.count) requests (parallel file system), length \(size)")
    }

    func close() { state.withLock { $0.baseReads }.close() }
}
