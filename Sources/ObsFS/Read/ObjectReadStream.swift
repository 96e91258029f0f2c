// Reading one open file: ranged GETs pinned to the version seen at open, with prefetch for
// sequential readers.
//
// Design (after studying mountpoint-s3's prefetcher; nothing copied):
// - A stream is one open file's view of one object version: key, size and ETag from open, the
//   SSE-C key. Every GET carries `If-Match: <ETag>`; when the object was replaced the store
//   answers 412, the read fails with `ObjectChangedError` (EIO), and no read ever returns bytes
//   of two versions. A native rename (parallel file system bucket) moves the same object to
//   another key, a directory rename by copies makes a copy of the version read: the stream
//   follows either (`moved(to:copyETag:)`); a GET in flight at that moment fails.
// - The stream keeps chunks: disjoint byte ranges of the object, each one GET into one pool
//   buffer, in flight or done. A read returns slices of the chunks covering it (`ReadBytes`: the
//   FUSE reply is written from them, no copy) and fetches what no chunk covers ("demand" GETs,
//   in the reading task, whose buffer may wait for pool memory).
// - Access pattern. A first read within `backwardTolerance` of offset 0, or a read that
//   continues the previous one (within one `randomRequestGranularity`), starts a sequential run.
//   While a run lasts, reads may land up to `backwardTolerance` behind the furthest read or
//   anywhere inside the prefetch window ahead. The tolerance (16 MiB) is larger than the kernel's
//   readahead: its requests for one window (1 MiB each with `kernel_read_ahead=1M`, up to the
//   whole window in flight) are answered by several threads and arrive in any order; a 1 MiB
//   tolerance turned a 4 MiB readahead into a seek every few requests. Anything else
//   is a seek: the run ends, prefetched chunks outside the read are dropped (their GETs
//   cancelled) and the window starts small again, as mountpoint-s3 resets its prefetcher.
// - Prefetch. During a run the chunks reach `window` bytes past the read, where
//   window = min(read_ahead, max(initialRequestSize, 2 × bytes read in the run)); new chunks
//   are cut from the first gap on, each GET twice as large as the one before, from
//   `initialRequestSize` (1 MiB) up to `maximumRequestSize` (8 MiB). A long run therefore keeps
//   read_ahead / 8 MiB GETs in flight in parallel, each writing straight into its buffer.
//   Chunks the reader has passed are dropped. Prefetch buffers are only taken when the pool
//   has room at once (never waiting): an idle or memory-starved stream degrades to demand
//   GETs, it never deadlocks (ReadBufferPool's reserve).
// - Random reads get one GET of the read rounded out to `randomRequestGranularity` (128 KiB)
//   boundaries; the last few are kept (if the pool's retained share has room) so re-reads and
//   neighbouring small reads (a database's pages) do not go to the store again.
// - Memory: every buffer comes from the mount's one ReadBufferPool (`read_memory_budget=`), so
//   reads never hold more than that, whatever the file sizes; a stream holds about one window.
// - Concurrency: reads on one stream may run concurrently; the chunk list and the run's state
//   sit behind one lock that is never held across an await. A read waiting for a GET or for
//   memory ends with CancellationError when its task is cancelled.
import OBSProtocol
import Synchronization

/// How read streams fetch: GET sizes and the prefetch window's limits.
public struct ReadSettings: Sendable, Equatable {
    /// The largest prefetch window of one file (`read_ahead=`).
    public let readAhead: Int64
    /// The first prefetch GET of a sequential run.
    public let initialRequestSize: Int64
    /// Prefetch GETs double up to this size.
    public let maximumRequestSize: Int64
    /// A random read's GET covers the read rounded out to multiples of this.
    public let randomRequestGranularity: Int64
    /// How far behind the furthest read a read may land and still continue a run.
    public let backwardTolerance: Int64
    /// Random reads kept per stream for re-reading.
    public let randomCacheChunks: Int

    public init(readAhead: Int64 = 64 << 20, initialRequestSize: Int64 = 1 << 20, maximumRequestSize: Int64 = 8 << 20,
                randomRequestGranularity: Int64 = 128 << 10, backwardTolerance: Int64 = 16 << 20, randomCacheChunks: Int = 4) {
        precondition(readAhead > 0 && initialRequestSize > 0 && randomRequestGranularity > 0 && backwardTolerance >= 0 && randomCacheChunks >= 0,
                     "read settings must be positive")
        self.readAhead = readAhead
        self.maximumRequestSize = min(max(maximumRequestSize, initialRequestSize), readAhead)
        self.initialRequestSize = min(initialRequestSize, self.maximumRequestSize)
        self.randomRequestGranularity = randomRequestGranularity
        self.backwardTolerance = backwardTolerance
        self.randomCacheChunks = randomCacheChunks
    }

    /// The bytes a run keeps requested ahead of its reads after `run` bytes were read.
    func window(afterSequentialBytes run: Int64) -> Int64 {
        min(readAhead, max(initialRequestSize, run > readAhead ? readAhead : 2 * run))
    }
}

/// What a stream did, for the log line at release and for tests.
public struct ReadStatistics: Sendable, Equatable {
    /// GETs sent.
    public var gets = 0
    /// Bytes those GETs asked for.
    public var bytesFetched: Int64 = 0
    /// Bytes returned to reads.
    public var bytesReturned: Int64 = 0
}

/// One open file's reads of one object version. Create it at open with the attributes the open
/// saw; call `close` at release.
public final class ObjectReadStream: Sendable {
    /// Where the object is: the key opened, until a rename moves it (`moved(to:copyETag:)`).
    public var key: ObjectKey { location.withLock { $0.key } }
    /// The version's ETag, sent as If-Match with every GET (nil: the store gave none, no
    /// pinning); a copy's after a rename by copies.
    public var etag: ETag? { location.withLock { $0.etag } }
    /// Guards the object's key and ETag; taken alone, never with `state`.
    private let location: Mutex<(key: ObjectKey, etag: ETag?)>
    public let size: Int64
    private let customerKey: CustomerKey?
    private let reader: any ObjectReader
    private let pool: ReadBufferPool
    private let settings: ReadSettings

    /// A byte range of the object: a GET in flight or done.
    private final class Chunk: Sendable {
        let range: Range<Int64>
        let fetch: PendingFetch
        /// The prefetch GET (cancelled when the chunk is dropped early); nil for a kept random read.
        let task: Task<Void, Never>?
        /// Creation order, to drop the oldest kept random reads first.
        let serial: Int

        init(range: Range<Int64>, fetch: PendingFetch, task: Task<Void, Never>?, serial: Int) {
            self.range = range
            self.fetch = fetch
            self.task = task
            self.serial = serial
        }
    }

    /// Where a part of a read comes from.
    private enum Source {
        case chunk(Chunk)
        case demand(Range<Int64>)
    }

    private struct State {
        /// Sorted by offset, disjoint.
        var chunks: [Chunk] = []
        /// The end of the furthest read of the current run (or of the last random read); nil
        /// before the first read.
        var furthestRead: Int64?
        /// Bytes read in the current sequential run; 0 while reads are random.
        var sequentialRun: Int64 = 0
        /// The size of the next prefetch GET.
        var nextRequestSize: Int64
        var nextSerial = 0
        var closed = false
        var statistics = ReadStatistics()
    }

    /// Guards the chunks, the access-pattern state and the statistics.
    private let state: Mutex<State>

    /// - Parameters:
    ///   - etag, size: what the open saw (HEAD or the inode's attributes).
    ///   - customerKey: the file's SSE-C key, sent with every GET.
    ///   - pool: the mount's read buffer pool.
    public init(key: ObjectKey, etag: ETag?, size: Int64, customerKey: CustomerKey?, reader: any ObjectReader,
                pool: ReadBufferPool, settings: ReadSettings) {
        location = Mutex((key, etag))
        self.size = size
        self.customerKey = customerKey
        self.reader = reader
        self.pool = pool
        self.settings = settings
        state = Mutex(State(nextRequestSize: settings.initialRequestSize))
    }

    public var statistics: ReadStatistics { state.withLock { $0.statistics } }

    /// The object was renamed: natively (the same object and ETag under another key), or copied
    /// from the version this stream reads (`copyETag`, the copy's ETag). Later GETs ask for it
    /// there.
    func moved(to key: ObjectKey, copyETag: ETag? = nil) {
        location.withLock { location in
            location.key = key
            if let copyETag { location.etag = copyETag }
        }
    }

    /// Up to `count` bytes from `offset`: fewer only at the end of the object, none at or past it.
    /// Throws `ObjectChangedError` when the object was replaced since open, the store's error
    /// when a GET fails, `CancellationError` when the task is cancelled while waiting.
    public func read(at offset: Int64, count: Int) async throws -> ReadBytes {
        guard offset >= 0, count >= 0 else { throw FileSystemError(.invalidArgument, "read of \(key): \(count) bytes at \(offset)") }
        guard offset < size, count > 0 else { return ReadBytes() }
        let wanted = offset..<(offset + min(Int64(count), size - offset))
        let (sources, dropped) = try state.withLock { state in try plan(wanted, &state) }
        for chunk in dropped { chunk.task?.cancel() }
        var bytes = ReadBytes()
        for source in sources {
            switch source {
            case .chunk(let chunk):
                do {
                    append(try await chunk.fetch.buffer(), holding: chunk.range, of: wanted, to: &bytes)
                } catch {
                    // A chunk another read dropped (its GET cancelled) is fetched again; a chunk
                    // still listed failed for real and is forgotten, so a later read retries.
                    guard !(error is CancellationError && Task.isCancelled), !forget(chunk) else { throw error }
                    let overlap = chunk.range.clamped(to: wanted)
                    for case .demand(let piece) in demandPieces(overlap, within: overlap, wanted) {
                        try await demandRead(piece, of: wanted, into: &bytes)
                    }
                }
            case .demand(let range):
                try await demandRead(range, of: wanted, into: &bytes)
            }
        }
        precondition(bytes.count == wanted.count, "read sources do not cover the read")
        state.withLock { $0.statistics.bytesReturned += Int64(bytes.count) }
        return bytes
    }

    /// Drops every chunk and cancels the GETs in flight. Later reads fail with EBADF.
    public func close() {
        let chunks = state.withLock { state -> [Chunk] in
            state.closed = true
            defer { state.chunks = [] }
            return state.chunks
        }
        for chunk in chunks { chunk.task?.cancel() }
    }

    // MARK: Planning (under the lock)

    /// Classifies the read, moves the run's state, starts prefetch GETs, and returns the sources
    /// covering `wanted` in order, and the chunks dropped (whose GETs the caller cancels).
    private func plan(_ wanted: Range<Int64>, _ state: inout State) throws -> (sources: [Source], dropped: [Chunk]) {
        guard !state.closed else { throw FileSystemError(.badFileHandle, "read of \(key) after close") }
        var dropped: [Chunk] = []
        if isSequential(wanted.lowerBound, state) {
            let furthest = max(state.furthestRead ?? 0, wanted.upperBound)
            state.sequentialRun += furthest - (state.furthestRead ?? 0)
            state.furthestRead = furthest
            let passed = furthest - settings.backwardTolerance
            dropped = state.chunks.filter { $0.range.upperBound <= passed && $0.range.upperBound <= wanted.lowerBound }
            state.chunks.removeAll { $0.range.upperBound <= passed && $0.range.upperBound <= wanted.lowerBound }
            let windowEnd = min(size, wanted.lowerBound + settings.window(afterSequentialBytes: state.sequentialRun))
            prefetch(wanted.lowerBound..<max(windowEnd, wanted.upperBound), &state)
        } else {
            state.sequentialRun = 0
            state.nextRequestSize = settings.initialRequestSize
            state.furthestRead = wanted.upperBound
            dropped = state.chunks.filter { $0.task != nil && !$0.range.overlaps(wanted) }
            state.chunks.removeAll { $0.task != nil && !$0.range.overlaps(wanted) }
        }
        return (sources(covering: wanted, state.chunks), dropped)
    }

    private func isSequential(_ offset: Int64, _ state: State) -> Bool {
        guard let furthest = state.furthestRead else { return offset < settings.backwardTolerance }
        guard state.sequentialRun > 0 else { return abs(offset - furthest) <= settings.randomRequestGranularity }
        return offset >= furthest - settings.backwardTolerance
            && offset <= furthest + settings.window(afterSequentialBytes: state.sequentialRun)
    }

    /// Starts prefetch GETs from the first gap in `range` on, each twice the size of the one
    /// before (up to the maximum, cut short only by the next chunk or the end of the object),
    /// until GETs start beyond the range or the pool has no room.
    private func prefetch(_ range: Range<Int64>, _ state: inout State) {
        for gap in gaps(in: range, state.chunks) {
            let limit = state.chunks.first { $0.range.lowerBound >= gap.upperBound }?.range.lowerBound ?? size
            var start = gap.lowerBound
            while start < gap.upperBound {
                let end = min(limit, start + state.nextRequestSize)
                guard let buffer = pool.tryTakeRetained(size: Int(end - start)) else { return }
                let fetch = PendingFetch()
                let chunkRange = start..<end
                let task = Task { [self] in
                    do {
                        try await getRange(chunkRange, into: buffer)
                        fetch.finish(.success(buffer))
                    } catch {
                        fetch.finish(.failure(error))
                    }
                }
                insert(Chunk(range: chunkRange, fetch: fetch, task: task, serial: state.nextSerial), &state)
                state.nextSerial += 1
                state.nextRequestSize = min(settings.maximumRequestSize, 2 * state.nextRequestSize)
                start = end
            }
        }
    }

    /// The chunks overlapping `wanted` and, for what they leave uncovered, demand GETs rounded
    /// out to the granularity (without overlapping a chunk) and cut to what the pool can grant.
    private func sources(covering wanted: Range<Int64>, _ chunks: [Chunk]) -> [Source] {
        var sources: [Source] = []
        var position = wanted.lowerBound
        let overlapping = chunks.filter { $0.range.overlaps(wanted) }
        for (index, chunk) in overlapping.enumerated() {
            if position < chunk.range.lowerBound {
                let before = index > 0 ? overlapping[index - 1].range.upperBound : chunks.last { $0.range.upperBound <= position }?.range.upperBound ?? 0
                sources += demandPieces(position..<chunk.range.lowerBound, within: before..<chunk.range.lowerBound, wanted)
            }
            sources.append(.chunk(chunk))
            position = chunk.range.upperBound
        }
        if position < wanted.upperBound {
            let before = overlapping.last?.range.upperBound ?? chunks.last { $0.range.upperBound <= position }?.range.upperBound ?? 0
            let after = chunks.first { $0.range.lowerBound >= wanted.upperBound }?.range.lowerBound ?? size
            sources += demandPieces(position..<wanted.upperBound, within: before..<after, wanted)
        }
        return sources
    }

    /// `gap` rounded out to the granularity inside `room`, cut into pieces the pool can grant,
    /// keeping those that overlap the read.
    private func demandPieces(_ gap: Range<Int64>, within room: Range<Int64>, _ wanted: Range<Int64>) -> [Source] {
        let granularity = settings.randomRequestGranularity
        let lower = max(room.lowerBound, gap.lowerBound / granularity * granularity)
        let upper = min(room.upperBound, size, (gap.upperBound + granularity - 1) / granularity * granularity)
        let limit = min(Int64(pool.demandReserve), settings.maximumRequestSize)
        return stride(from: lower, to: upper, by: Int(limit)).map { $0..<min(upper, $0 + limit) }
            .filter { $0.overlaps(wanted) }
            .map { .demand($0) }
    }

    private func gaps(in range: Range<Int64>, _ chunks: [Chunk]) -> [Range<Int64>] {
        var gaps: [Range<Int64>] = []
        var position = range.lowerBound
        for chunk in chunks where chunk.range.upperBound > position && chunk.range.lowerBound < range.upperBound {
            if chunk.range.lowerBound > position { gaps.append(position..<chunk.range.lowerBound) }
            position = chunk.range.upperBound
        }
        if position < range.upperBound { gaps.append(position..<range.upperBound) }
        return gaps
    }

    private func insert(_ chunk: Chunk, _ state: inout State) {
        let index = state.chunks.firstIndex { $0.range.lowerBound > chunk.range.lowerBound } ?? state.chunks.endIndex
        state.chunks.insert(chunk, at: index)
    }

    // MARK: Fetching

    /// One GET of `range` into the start of `buffer`, pinned to the open's ETag.
    private func getRange(_ range: Range<Int64>, into buffer: ReadBuffer) async throws {
        state.withLock { state in
            state.statistics.gets += 1
            state.statistics.bytesFetched += Int64(range.count)
        }
        let (key, etag) = location.withLock { ($0.key, $0.etag) }
        let count = try await reader.readRange(key, range: range, ifMatch: etag, customerKey: customerKey,
                                               into: MemoryRegion(owner: buffer, range: 0..<range.count))
        guard count == range.count else {
            throw FileSystemError(.io, "GET \(key) bytes \(range.lowerBound)-\(range.upperBound - 1) returned \(count) bytes, not \(range.count)")
        }
    }

    /// A GET in the reading task (its buffer may wait for memory), then kept as a random-read
    /// chunk when the stream and the pool have room.
    private func demandRead(_ range: Range<Int64>, of wanted: Range<Int64>, into bytes: inout ReadBytes) async throws {
        let buffer = try await pool.take(size: Int(range.count))
        try await getRange(range, into: buffer)
        append(buffer, holding: range, of: wanted, to: &bytes)
        guard settings.randomCacheChunks > 0 else { return }
        let evicted = state.withLock { state -> [Chunk] in
            guard !state.closed, !state.chunks.contains(where: { $0.range.overlaps(range) }), pool.retain(buffer) else { return [] }
            insert(Chunk(range: range, fetch: PendingFetch(done: buffer), task: nil, serial: state.nextSerial), &state)
            state.nextSerial += 1
            let kept = state.chunks.filter { $0.task == nil }.sorted { $0.serial > $1.serial }
            let evicted = Array(kept.dropFirst(settings.randomCacheChunks))
            state.chunks.removeAll { chunk in evicted.contains { $0 === chunk } }
            return evicted
        }
        _ = evicted  // their buffers go back to the pool here, outside the lock
    }

    /// Removes a chunk from the list; false when it was no longer listed (dropped by a seek).
    private func forget(_ chunk: Chunk) -> Bool {
        state.withLock { state in
            guard let index = state.chunks.firstIndex(where: { $0 === chunk }) else { return false }
            state.chunks.remove(at: index)
            return true
        }
    }

    /// Appends the part of `wanted` that `buffer` (holding the object's bytes `range`) covers.
    private func append(_ buffer: ReadBuffer, holding range: Range<Int64>, of wanted: Range<Int64>, to bytes: inout ReadBytes) {
        let overlap = range.clamped(to: wanted)
        guard !overlap.isEmpty else { return }
        let start = Int(overlap.lowerBound - range.lowerBound)
        bytes.append(buffer, start..<(start + overlap.count))
    }
}
