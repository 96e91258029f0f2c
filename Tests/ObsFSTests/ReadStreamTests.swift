// The read engine against an in-memory store: prefetch growth, random reads, EOF, a replaced
// object, the mount-wide memory bound, cancellation, concurrent reads on one handle.
import OBSProtocol
import Testing
@testable import ObsFS

/// Small sizes so the tests stay fast: 64 KiB first GET, 512 KiB largest, 2 MiB window.
let smallReadSettings = ReadSettings(readAhead: 2 * MiB, initialRequestSize: 64 * KiB, maximumRequestSize: 512 * KiB,
                                     randomRequestGranularity: 16 * KiB, backwardTolerance: 64 * KiB)

/// A stream over `key` as the open would create it (the store's current ETag and size).
func openStream(_ reader: InMemoryObjectReader, _ key: String, pool: ReadBufferPool,
                settings: ReadSettings = smallReadSettings) -> ObjectReadStream {
    let object = reader.state.withLock { $0.objects[ObjectKey(key)]! }
    return ObjectReadStream(key: ObjectKey(key), etag: object.etag, size: Int64(object.bytes.count), customerKey: nil,
                            reader: reader, pool: pool, settings: settings)
}

/// Reads the whole stream front to back in `chunk`-sized reads.
func readSequentially(_ stream: ObjectReadStream, chunk: Int) async throws -> [UInt8] {
    var bytes: [UInt8] = []
    while true {
        let piece = try await stream.read(at: Int64(bytes.count), count: chunk).gathered()
        if piece.isEmpty { return bytes }
        bytes += piece
    }
}

/// Waits (up to 5 s) until `condition` holds: prefetch GETs end on their own tasks.
func eventually(_ condition: () -> Bool) async throws -> Bool {
    for _ in 0..<500 {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

@Suite("Read stream")
struct ReadStreamTests {
    @Test func sequentialReadGrowsThePrefetchWindowAndFetchesEachByteOnce() async throws {
        let reader = InMemoryObjectReader(latency: .milliseconds(2))
        let source = pattern(6 * Int(MiB) + 777)
        reader.put("big", source)
        let pool = ReadBufferPool(capacity: Int(16 * MiB))
        let stream = openStream(reader, "big", pool: pool)

        let bytes = try await readSequentially(stream, chunk: 16 * 1024)
        #expect(bytes == source)

        let gets = reader.gets.sorted { $0.lowerBound < $1.lowerBound }
        // Disjoint GETs covering the object exactly once.
        #expect(gets.first?.lowerBound == 0)
        #expect(zip(gets, gets.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        #expect(gets.last?.upperBound == Int64(source.count))
        // 64 KiB, then doubling up to 512 KiB; only the last may be shorter.
        let sizes = gets.map { $0.count }
        #expect(Array(sizes.prefix(4)) == [64 * 1024, 128 * 1024, 256 * 1024, 512 * 1024])
        #expect(sizes.dropFirst(3).dropLast().allSatisfy { $0 == 512 * 1024 })
        #expect(gets.count == 4 + Int((6 * MiB + 777 - 960 * KiB + 512 * KiB - 1) / (512 * KiB)))
        // The window keeps several GETs in flight at once.
        #expect(reader.maxInFlight > 1)
        #expect(stream.statistics.gets == gets.count)
        #expect(stream.statistics.bytesReturned == Int64(source.count))
        stream.close()
        #expect(try await eventually { pool.allocatedBytes == 0 })
    }

    @Test func randomReadsAtManyOffsetsMatchTheSourceWithSmallGETs() async throws {
        let reader = InMemoryObjectReader()
        let source = pattern(3 * Int(MiB) + 123, seed: 9)
        reader.put("random", source)
        let pool = ReadBufferPool(capacity: Int(8 * MiB))
        let stream = openStream(reader, "random", pool: pool)
        var generator = SeededGenerator(seed: 42)
        var roundedOut: Int64 = 0
        for _ in 0..<1000 {
            let offset = Int.random(in: 0..<(source.count + 100), using: &generator)
            let count = Int.random(in: 1...20_000, using: &generator)
            let bytes = try await stream.read(at: Int64(offset), count: count).gathered()
            let expected = offset < source.count ? Array(source[offset..<min(source.count, offset + count)]) : []
            #expect(bytes == expected, "read at \(offset), \(count) bytes")
            if offset < source.count {
                roundedOut += Int64(min(source.count, (offset + count + 16383) / 16384 * 16384) - offset / 16384 * 16384)
            }
        }
        // A random reader gets GETs of its reads rounded out to 16 KiB; the odd read that happens
        // to continue the one before starts a run, which the next jump ends before it grows.
        #expect(reader.gets.allSatisfy { $0.count <= 128 * 1024 }, "\(reader.gets.filter { $0.count > 128 * 1024 })")
        #expect(stream.statistics.bytesFetched <= roundedOut + roundedOut / 4)
        stream.close()
    }

    @Test func readsEndAtTheEndOfTheObject() async throws {
        let reader = InMemoryObjectReader()
        let source = pattern(100_000, seed: 3)
        reader.put("small", source)
        reader.put("empty", [])
        let pool = ReadBufferPool(capacity: Int(8 * MiB))
        let stream = openStream(reader, "small", pool: pool)
        #expect(try await stream.read(at: 99_000, count: 4096).gathered() == Array(source[99_000...]))
        #expect(try await stream.read(at: 100_000, count: 4096).gathered().isEmpty)
        #expect(try await stream.read(at: 5_000_000, count: 4096).gathered().isEmpty)
        #expect(try await readSequentially(stream, chunk: 4096) == source)
        let empty = openStream(reader, "empty", pool: pool)
        #expect(try await empty.read(at: 0, count: 4096).gathered().isEmpty)
        #expect(empty.statistics.gets == 0)
        #expect(await errno { _ = try await stream.read(at: -1, count: 1).gathered() } == .invalidArgument)
        stream.close()
        #expect(await errno { _ = try await stream.read(at: 0, count: 1).gathered() } == .badFileHandle)
    }

    /// Another client replaces the object while a sequential reader is half-way: every byte
    /// returned before the failure is the old version's, and the failure is EIO.
    @Test func replacedObjectFailsWithEIONeverMixingVersions() async throws {
        let reader = InMemoryObjectReader()
        let old = pattern(4 * Int(MiB), seed: 5)
        reader.put("f", old)
        let pool = ReadBufferPool(capacity: Int(16 * MiB))
        let stream = openStream(reader, "f", pool: pool)
        var returned: [UInt8] = []
        var failure: (any Error)?
        do {
            while returned.count < old.count {
                if returned.count == Int(MiB) { reader.put("f", pattern(4 * Int(MiB), seed: 6)) }
                returned += try await stream.read(at: Int64(returned.count), count: 32 * 1024).gathered()
            }
        } catch {
            failure = error
        }
        #expect(failure is ObjectChangedError)
        #expect(failure.map(ErrnoMapping.errno(for:)) == .io)
        #expect(returned.count >= Int(MiB) && returned.count < old.count)
        #expect(returned == Array(old.prefix(returned.count)))
        // A fresh open sees the new version.
        let reopened = openStream(reader, "f", pool: pool)
        #expect(try await reopened.read(at: 0, count: 10).gathered() == Array(pattern(4 * Int(MiB), seed: 6).prefix(10)))
        stream.close()
        reopened.close()
    }

    @Test func memoryStaysWithinThePoolUnderConcurrentReaders() async throws {
        let reader = InMemoryObjectReader(latency: .milliseconds(1))
        let sources = (0..<6).map { pattern(3 * Int(MiB) + $0 * 1000, seed: UInt32(20 + $0)) }
        for (index, source) in sources.enumerated() { reader.put("f\(index)", source) }
        let pool = ReadBufferPool(capacity: Int(3 * MiB))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, source) in sources.enumerated() {
                group.addTask {
                    let stream = openStream(reader, "f\(index)", pool: pool)
                    defer { stream.close() }
                    let whole = try await readSequentially(stream, chunk: 32 * 1024)
                    #expect(whole == source)
                    var generator = SeededGenerator(seed: UInt64(index))
                    for _ in 0..<50 {
                        let offset = Int.random(in: 0..<source.count, using: &generator)
                        let bytes = try await stream.read(at: Int64(offset), count: 4096).gathered()
                        #expect(bytes == Array(source[offset..<min(source.count, offset + 4096)]))
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(pool.peakBytes <= pool.capacity)
        // Six windows of 2 MiB would need 12 MiB: the pool held the readers to its 3 MiB.
        #expect(pool.peakBytes > Int(MiB))
        #expect(try await eventually { pool.allocatedBytes == 0 })
    }

    @Test func freedBuffersAreReusedAndGiveWayToLiveOnes() async throws {
        let pool = ReadBufferPool(capacity: Int(8 * MiB), demandReserve: Int(4 * MiB))
        var first: ReadBuffer? = try await pool.take(size: Int(MiB))
        let address = first?.rawBytes.baseAddress
        first = nil
        #expect(pool.allocatedBytes == 0)
        #expect(pool.spareBytes == Int(MiB))
        // The next buffer of that size is the same memory, not a new mapping.
        var second: ReadBuffer? = try await pool.take(size: Int(MiB))
        #expect(second?.rawBytes.baseAddress == address)
        #expect(pool.spareBytes == 0)
        second = nil
        // At most an eighth of the budget is kept.
        var large: ReadBuffer? = try await pool.take(size: Int(2 * MiB))
        large = nil
        #expect(pool.spareBytes == Int(MiB))
        // Live buffers may use the whole budget: the spare memory is freed for them.
        let demand = try await pool.take(size: Int(4 * MiB))
        let retained = try #require(pool.tryTakeRetained(size: Int(4 * MiB)))
        #expect(pool.allocatedBytes == Int(8 * MiB))
        #expect(pool.spareBytes == 0)
        _ = (demand, retained, large, second)
    }

    @Test func aReadWaitingForMemoryEndsWhenCancelled() async throws {
        let reader = InMemoryObjectReader()
        reader.put("f", pattern(Int(MiB)))
        let pool = ReadBufferPool(capacity: Int(256 * KiB), demandReserve: Int(256 * KiB))
        let stream = openStream(reader, "f", pool: pool)
        var hog: ReadBuffer? = try await pool.take(size: Int(256 * KiB))
        let read = Task { try await stream.read(at: 500_000, count: 4096).gathered() }
        #expect(try await eventually { pool.waitingReads == 1 })
        read.cancel()
        await #expect(throws: CancellationError.self) { try await read.value }
        #expect(pool.waitingReads == 0)
        #expect(reader.gets.isEmpty)
        #expect(hog != nil)
        hog = nil
        #expect(try await eventually { pool.allocatedBytes == 0 })
        // The pool serves the next read normally.
        #expect(try await stream.read(at: 0, count: 10).gathered() == Array(pattern(Int(MiB)).prefix(10)))
        stream.close()
    }

    @Test func aReadWaitingForAGETEndsWhenCancelled() async throws {
        let reader = InMemoryObjectReader()
        reader.put("f", pattern(Int(MiB)))
        let pool = ReadBufferPool(capacity: Int(8 * MiB))
        let stream = openStream(reader, "f", pool: pool)
        reader.hold()
        let read = Task { try await stream.read(at: 0, count: 4096).gathered() }
        #expect(try await eventually { reader.heldCount == 1 })
        read.cancel()
        await #expect(throws: CancellationError.self) { try await read.value }
        reader.release()
        // The prefetched chunk is still good for the next read.
        #expect(try await stream.read(at: 0, count: 4096).gathered() == Array(pattern(Int(MiB)).prefix(4096)))
        #expect(reader.gets.count == 1)
        stream.close()
    }

    @Test func concurrentReadsOnOneHandleGetTheirOwnBytes() async throws {
        let reader = InMemoryObjectReader(latency: .milliseconds(1))
        let source = pattern(4 * Int(MiB), seed: 11)
        reader.put("shared", source)
        let pool = ReadBufferPool(capacity: Int(8 * MiB))
        let stream = openStream(reader, "shared", pool: pool)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var generator = SeededGenerator(seed: UInt64(100 + task))
                    var offset = task * 512 * 1024
                    for _ in 0..<64 {
                        // Mostly runs of sequential reads, with a jump now and then.
                        if Int.random(in: 0..<8, using: &generator) == 0 { offset = Int.random(in: 0..<source.count, using: &generator) }
                        let count = Int.random(in: 1...40_000, using: &generator)
                        let bytes = try await stream.read(at: Int64(offset), count: count).gathered()
                        #expect(bytes == Array(source[min(offset, source.count)..<min(source.count, offset + count)]))
                        offset = min(source.count, offset + count)
                    }
                }
            }
            try await group.waitForAll()
        }
        stream.close()
        #expect(try await eventually { pool.allocatedBytes == 0 })
    }

    /// The kernel's readahead sends a window's requests at once, and several threads answer
    /// them in any order, the first one included: the stream must still see one sequential run.
    @Test func readaheadRequestsArrivingOutOfOrderStayOneRunFetchingEachByteOnce() async throws {
        let reader = InMemoryObjectReader(latency: .milliseconds(1))
        let source = pattern(8 * Int(MiB), seed: 5)
        reader.put("ahead", source)
        let pool = ReadBufferPool(capacity: Int(32 * MiB))
        let settings = ReadSettings(readAhead: 4 * MiB, initialRequestSize: 256 * KiB, maximumRequestSize: 1 * MiB,
                                    randomRequestGranularity: 16 * KiB, backwardTolerance: 2 * MiB)
        let stream = openStream(reader, "ahead", pool: pool, settings: settings)
        var generator = SeededGenerator(seed: 7)
        let request = 128 * 1024
        let window = Int(MiB)
        var bytes = source.map { _ in UInt8(0) }
        for windowStart in stride(from: 0, to: source.count, by: window) {
            for offset in stride(from: windowStart, to: windowStart + window, by: request).shuffled(using: &generator) {
                let piece = try await stream.read(at: Int64(offset), count: request).gathered()
                bytes.replaceSubrange(offset..<(offset + piece.count), with: piece)
            }
        }
        #expect(bytes == source)
        // No seek: the GETs are the run's prefetch (growing to 1 MiB: about 10 of them; reads
        // taken as random sent 34), disjoint, each byte fetched once.
        let gets = reader.gets.sorted { $0.lowerBound < $1.lowerBound }
        #expect(gets.count <= 12)
        #expect(zip(gets, gets.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        #expect(stream.statistics.bytesFetched == Int64(source.count))
        stream.close()
        #expect(try await eventually { pool.allocatedBytes == 0 })
    }
}

@Suite("Read mount options")
struct ReadMountOptionsTests {
    @Test func parsedWithTheOtherOptions() throws {
        let options = try MountOptions(parsing: ["part_size=5M,read_ahead=16M,read_memory_budget=1G"])
        #expect(options.read.readAhead == 16 * MiB)
        #expect(options.read.memoryBudget == 1024 * MiB)
        #expect(options.read.settings.readAhead == 16 * MiB)
        #expect(options.read.makePool().capacity == Int(1024 * MiB))
        let defaults = try MountOptions(parsing: [])
        #expect(defaults.read == ReadMountOptions())
        #expect(defaults.read.kernelReadAhead == MiB)
        #expect(try MountOptions(parsing: ["kernel_read_ahead=4M"]).read.kernelReadAhead == 4 * MiB)
        #expect(try MountOptions(parsing: ["kernel_read_ahead=0"]).read.kernelReadAhead == nil)
        #expect(defaults.read.openRevalidation == .seconds(1))
        #expect(try MountOptions(parsing: ["open_revalidate=0.25"]).read.openRevalidation == .milliseconds(250))
    }

    @Test(arguments: [
        ("read_ahead=512K", "must be between 1M and 1G"),
        ("read_ahead=", "needs a value"),
        ("read_memory_budget=2M", "must be between 4M and 1T"),
        ("kernel_read_ahead=1K", "must be 0 or between 4K and 64M"),
        ("kernel_read_ahead=128M", "must be 0 or between 4K and 64M"),
        ("open_revalidate=-1", "must be a number of seconds from 0 to 86400"),
        ("read_ahead=64M,read_memory_budget=100M", "must be at least twice read_ahead (67108864 bytes)"),
    ])
    func refusedWithTheReason(option: String, reason: String) {
        #expect(throws: MountOptionError.self) { try MountOptions(parsing: [option]) }
        do {
            _ = try MountOptions(parsing: [option])
        } catch {
            #expect(error.reason == reason)
        }
    }
}

/// A reproducible generator (SplitMix64) for random offsets.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
