// The composition executor against an in-memory composer: the bytes of the new object, what
// crossed the "wire", bounded parallelism, copied-part ETags, and that every failure aborts the
// upload and leaves the previous object as it was.
import Logging
import OBSProtocol
import Testing
@testable import ObsFS

/// A base object, changes laid over it, and an executor over `composer`.
struct CompositionCase {
    let composer: InMemoryComposer
    let base: [UInt8]
    let baseETag: ETag
    let expected: [UInt8]
    let plan: CompositionPlan
    let executor: CompositionExecutor

    init(_ composer: InMemoryComposer, baseSize: Int, changes: [(Range<Int64>, [UInt8])], newSize: Int64,
         limits: CompositionLimits, parallel: Int = 4) throws {
        self.composer = composer
        base = pattern(baseSize, seed: 77)
        baseETag = composer.put("f", base)
        expected = referenceObject(base: base, baseSize: Int64(baseSize), newSize: newSize, changed: changes)
        plan = try CompositionPlan(baseSize: Int64(baseSize), changes: changes.map(\.0), newSize: newSize, limits: limits)
        var logger = Logger(label: "compose-test")
        logger.logLevel = .critical
        executor = CompositionExecutor(store: composer, pool: PartBufferPool(capacity: 64 * MiB), parallel: parallel, logger: logger)
    }

    func run() async throws -> CompositionResult {
        try await executor.compose(plan, into: ObjectKey("f"), base: ObjectKey("f"), baseETag: baseETag, changes: NewContent(bytes: expected),
                                   options: ObjectOptions())
    }
}

@Suite("Composition executor")
struct CompositionExecutorTests {
    // At a tenth of the scale of issue 9's example (1 MiB into 20 MiB), with minimum parts of
    // 16 KiB standing for OBS's 100 KiB and 512 KiB for S3's 5 MiB.
    static let changeInTheMiddle = [(MiB..<(MiB + 100 * KiB), pattern(Int(100 * KiB), seed: 78))]
    static let obsLike = CompositionLimits(minimumPartSize: 16 * KiB, maximumUploadPartSize: 2 * MiB)
    static let s3Like = CompositionLimits(minimumPartSize: 512 * KiB, maximumUploadPartSize: 2 * MiB)

    @Test func inPlaceChangeSendsOnlyTheChangeOnOBS() async throws {
        let test = try CompositionCase(InMemoryComposer(minimumPartSize: 16 * KiB), baseSize: 2 * Int(MiB),
                                       changes: Self.changeInTheMiddle, newSize: 2 * MiB,
                                       limits: Self.obsLike)
        let result = try await test.run()
        let stored = try #require(test.composer.object("f"))
        #expect(stored.bytes == test.expected)
        #expect(stored.etag == result.etag)
        #expect(result.parts.map(\.size) == [MiB, 100 * KiB, MiB - 100 * KiB])
        test.composer.state.withLock { state in
            #expect(state.bytesUploaded == 100 * KiB && state.bytesRead == 0 && state.bytesCopied == 2 * MiB - 100 * KiB)
        }
    }

    @Test func s3MinimumWidensTheChangedPartWithPinnedReadsOfTheBase() async throws {
        let test = try CompositionCase(InMemoryComposer(minimumPartSize: 512 * KiB), baseSize: 2 * Int(MiB),
                                       changes: Self.changeInTheMiddle + [(2 * MiB..<(2 * MiB + 300), pattern(300, seed: 79))],
                                       newSize: 3 * MiB, limits: Self.s3Like)
        _ = try await test.run()
        #expect(test.composer.object("f")?.bytes == test.expected)
        test.composer.state.withLock { state in
            // A minimum part for the change (the rest read), then the appended 300 bytes and the
            // zeros after them (a truncate up).
            #expect(state.bytesRead == 412 * KiB)
            #expect(state.bytesUploaded == 512 * KiB + MiB)
        }
    }

    /// `stress-ng --seek` on an ordinary bucket: 300 writes of 512 bytes across 1 MiB. The base
    /// between them is read in one GET per part, not one per gap.
    @Test func scatteredSmallChangesReadTheBaseBetweenThemInOneGet() async throws {
        let changes = (0..<300).map { index -> (Range<Int64>, [UInt8]) in
            let offset = Int64(index) * 3000 + 17
            return (offset..<offset + 512, pattern(512, seed: UInt32(index)))
        }
        let test = try CompositionCase(InMemoryComposer(minimumPartSize: 512 * KiB), baseSize: Int(MiB), changes: changes, newSize: MiB,
                                       limits: Self.s3Like)
        _ = try await test.run()
        #expect(test.composer.object("f")?.bytes == test.expected)
        test.composer.state.withLock { state in
            #expect(state.calls[InMemoryComposer.Operation.readRange] == 1)  // one part of 1 MiB: one GET (was 301)
        }
    }

    @Test func partsInFlightStayWithinTheParallelism() async throws {
        let changes = (0..<12).map { index -> (Range<Int64>, [UInt8]) in
            let start = Int64(index) * 64 * KiB
            return (start..<(start + 16 * KiB), pattern(Int(16 * KiB), seed: UInt32(index)))
        }
        let test = try CompositionCase(InMemoryComposer(minimumPartSize: 16 * KiB, latency: .milliseconds(3)), baseSize: Int(MiB),
                                       changes: changes, newSize: MiB, limits: Self.obsLike, parallel: 3)
        _ = try await test.run()
        #expect(test.composer.object("f")?.bytes == test.expected)
        test.composer.state.withLock { state in
            #expect(state.maxInFlight == 3)
        }
    }

    @Test func aReplacedBaseFailsTheCompositionAndLeavesTheOtherVersion() async throws {
        let test = try CompositionCase(InMemoryComposer(minimumPartSize: 512 * KiB), baseSize: 2 * Int(MiB), changes: Self.changeInTheMiddle,
                                       newSize: 2 * MiB, limits: Self.s3Like)
        let other = pattern(1000, seed: 80)
        let otherETag = test.composer.put("f", other)
        await #expect(throws: ObjectChangedError.self) { _ = try await test.run() }
        #expect(test.composer.object("f")?.bytes == other && test.composer.object("f")?.etag == otherETag)
        #expect(test.composer.uploadsInProgress == 0)
        #expect(test.composer.state.withLock { $0.aborts } == 1)
    }

    @Test(arguments: [InMemoryComposer.Operation.uploadPart, .copyPart, .readRange, .complete])
    func anyFailureAbortsAndLeavesTheBaseIntact(failing operation: InMemoryComposer.Operation) async throws {
        let composer = InMemoryComposer(minimumPartSize: 512 * KiB)
        composer.state.withLock { $0.failures[operation] = 1 }
        let test = try CompositionCase(composer, baseSize: 2 * Int(MiB), changes: Self.changeInTheMiddle, newSize: 2 * MiB,
                                       limits: Self.s3Like)
        await #expect(throws: ServiceError.self) { _ = try await test.run() }
        #expect(composer.object("f")?.bytes == test.base && composer.object("f")?.etag == test.baseETag)
        #expect(composer.uploadsInProgress == 0)
        #expect(composer.state.withLock { $0.aborts } == 1)
    }

    @Test func copiedPartsWithOpaqueETagsComplete() async throws {
        let composer = InMemoryComposer(minimumPartSize: 16 * KiB)
        composer.state.withLock { $0.opaqueCopyETags = true }
        let test = try CompositionCase(composer, baseSize: 2 * Int(MiB), changes: Self.changeInTheMiddle, newSize: 2 * MiB,
                                       limits: Self.obsLike)
        let result = try await test.run()
        #expect(composer.object("f")?.bytes == test.expected)
        #expect(result.parts.map(\.etag.value).filter { $0.hasPrefix("copy-") }.count == 2)
    }

    @Test func aCompletionETagOtherThanThePartsCompositeIsAnError() async throws {
        let composer = InMemoryComposer(minimumPartSize: 16 * KiB)
        composer.state.withLock { $0.wrongCompletionETag = ETag("0123456789abcdef0123456789abcdef-3") }
        let test = try CompositionCase(composer, baseSize: 2 * Int(MiB), changes: Self.changeInTheMiddle, newSize: 2 * MiB,
                                       limits: Self.obsLike)
        #expect(await errno { _ = try await test.run() } == .io)
    }

    @Test func anEmptyPlanWritesAnEmptyObject() async throws {
        let test = try CompositionCase(InMemoryComposer(minimumPartSize: 16 * KiB), baseSize: 1000, changes: [], newSize: 0,
                                       limits: CompositionLimits(dialect: .obs, maximumUploadPartSize: MiB))
        let result = try await test.run()
        #expect(result.parts.isEmpty)
        #expect(test.composer.object("f")?.bytes == [])
    }
}
