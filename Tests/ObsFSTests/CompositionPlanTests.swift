// The composition planner against a reference model over random inputs, and the plans of the
// cases issue 9 names (in-place change, append, truncate up and down).
import OBSProtocol
import Testing
@testable import ObsFS

/// What the new object must be: the base cut at `baseSize`, zeros up to `newSize`, changes laid over.
func referenceObject(base: [UInt8], baseSize: Int64, newSize: Int64, changed: [(Range<Int64>, [UInt8])]) -> [UInt8] {
    var object = Array(base.prefix(Int(min(baseSize, newSize)))) + [UInt8](repeating: 0, count: Int(max(0, newSize - min(baseSize, newSize))))
    for (range, bytes) in changed where range.lowerBound < newSize {
        let end = min(range.upperBound, newSize)
        object.replaceSubrange(Int(range.lowerBound)..<Int(end), with: bytes.prefix(Int(end - range.lowerBound)))
    }
    return object
}

/// Applies a plan as the store would: copies from the base, uploads from the pieces.
func apply(_ plan: CompositionPlan, base: [UInt8], newContent: [UInt8]) -> [UInt8] {
    var object: [UInt8] = []
    for part in plan.parts {
        switch part.content {
        case .copy:
            object += base[Int(part.range.lowerBound)..<Int(part.range.upperBound)]
        case .upload(let pieces):
            for piece in pieces {
                let range = Int(piece.range.lowerBound)..<Int(piece.range.upperBound)
                switch piece.source {
                case .changed: object += newContent[range]
                case .base: object += base[range]
                case .zeros: object += [UInt8](repeating: 0, count: range.count)
                }
            }
        }
    }
    return object
}

@Suite("Composition plan")
struct CompositionPlanTests {
    @Test func randomPlansRebuildTheReferenceObjectWithinTheLimits() throws {
        var generator = SeededGenerator(seed: 2026)
        for round in 0..<3000 {
            let minimum = Int64([64, 100, 300].randomElement(using: &generator)!)
            let limits = CompositionLimits(minimumPartSize: minimum,
                                           maximumCopyPartSize: [2 * minimum, 3 * minimum + 7, 4096].randomElement(using: &generator)!,
                                           maximumUploadPartSize: [minimum, 2 * minimum + 1, 1000].randomElement(using: &generator)!)
            let base = pattern(Int.random(in: 0...5000, using: &generator), seed: UInt32(round + 1))
            // A truncate since open lowers what shows through of the base.
            let baseSize = Bool.random(using: &generator) ? Int64(base.count) : Int64.random(in: 0...Int64(base.count), using: &generator)
            let newSize = Int64.random(in: 0...6000, using: &generator)
            var changed: [(Range<Int64>, [UInt8])] = []
            for index in 0..<Int.random(in: 0...6, using: &generator) {
                let start = Int64.random(in: 0...6000, using: &generator)
                let range = start..<(start + Int64.random(in: 1...700, using: &generator))
                changed.append((range, pattern(range.count, seed: UInt32(round * 10 + index + 7))))
            }
            let expected = referenceObject(base: base, baseSize: baseSize, newSize: newSize, changed: changed)
            let plan = try CompositionPlan(baseSize: baseSize, changes: changed.map(\.0), newSize: newSize, limits: limits)
            let context = "round \(round): base \(baseSize)/\(base.count), new \(newSize), changes \(changed.map(\.0)), \(limits)"

            #expect(apply(plan, base: base, newContent: expected) == expected, "\(context)")
            // Parts tile 0..<newSize; all but the last reach the minimum; copies and uploads stay
            // within their maxima; copies and base reads come from the base that shows through.
            #expect(plan.parts.first?.range.lowerBound ?? 0 == 0, "\(context)")
            #expect(plan.parts.last?.range.upperBound ?? 0 == newSize, "\(context)")
            #expect(zip(plan.parts, plan.parts.dropFirst()).allSatisfy { $0.range.upperBound == $1.range.lowerBound }, "\(context)")
            #expect(plan.parts.dropLast().allSatisfy { Int64($0.range.count) >= minimum }, "\(context)")
            for part in plan.parts {
                switch part.content {
                case .copy:
                    #expect(Int64(part.range.count) <= limits.maximumCopyPartSize && part.range.upperBound <= baseSize, "\(context)")
                    #expect(!changed.contains { $0.0.overlaps(part.range) }, "\(context)")
                case .upload(let pieces):
                    #expect(Int64(part.range.count) <= limits.maximumUploadPartSize, "\(context)")
                    #expect(pieces.filter { $0.source == .base }.allSatisfy { $0.range.upperBound <= baseSize }, "\(context)")
                }
            }
            // Each run of unchanged base costs at most two minimum parts of reading.
            let baseRuns = CompositionPlan.runs(baseSize: min(baseSize, newSize), changes: changed.map(\.0), newSize: newSize).filter { $0.source == .base }.count
            #expect(plan.baseBytesRead <= Int64(baseRuns) * 2 * minimum, "\(context)")
        }
    }

    @Test func inPlaceChangeOfOneMiBUploadsOnlyItOnOBSAndWidensToFiveMiBOnS3() throws {
        let change = 10 * MiB..<11 * MiB
        let obs = try CompositionPlan(baseSize: 20 * MiB, changes: [change], newSize: 20 * MiB,
                                      limits: CompositionLimits(dialect: .obs, maximumUploadPartSize: 64 * MiB))
        #expect(obs.parts.map(\.range) == [0..<10 * MiB, change, 11 * MiB..<20 * MiB])
        #expect(obs.uploadedBytes == MiB && obs.baseBytesRead == 0 && obs.copiedBytes == 19 * MiB)

        let s3 = try CompositionPlan(baseSize: 20 * MiB, changes: [change], newSize: 20 * MiB,
                                     limits: CompositionLimits(dialect: .v4, maximumUploadPartSize: 64 * MiB))
        #expect(s3.parts.map(\.range) == [0..<10 * MiB, 10 * MiB..<15 * MiB, 15 * MiB..<20 * MiB])
        #expect(s3.uploadedBytes == 5 * MiB && s3.baseBytesRead == 4 * MiB)
    }

    @Test func aGigabyteBaseIsCopiedInPiecesThatRunInParallel() throws {
        let base = 1024 * MiB
        let plan = try CompositionPlan(baseSize: base, changes: [base..<base + MiB], newSize: base + MiB,
                                       limits: CompositionLimits(dialect: .obs, maximumUploadPartSize: 64 * MiB, objectSize: base))
        #expect(plan.parts.filter { $0.content == .copy }.map(\.range.count) == Array(repeating: Int(128 * MiB), count: 8))
        #expect(plan.uploadedBytes == MiB && plan.copiedBytes == base)
        // An object so large that 128 MiB copies would use up the parts copies 1/5,000 of it each.
        let huge = CompositionLimits(dialect: .obs, maximumUploadPartSize: 64 * MiB, objectSize: 5_000 * 1024 * MiB)
        #expect(huge.maximumCopyPartSize == 1024 * MiB)
    }

    @Test func appendCopiesTheBaseOrReadsOneSmallerThanAPart() throws {
        let limits = CompositionLimits(dialect: .obs, maximumUploadPartSize: 8 * MiB)
        let large = try CompositionPlan(baseSize: 20 * MiB, changes: [20 * MiB..<21 * MiB], newSize: 21 * MiB, limits: limits)
        #expect(large.parts == [PlannedPart(range: 0..<20 * MiB, content: .copy),
                                PlannedPart(range: 20 * MiB..<21 * MiB, content: .upload([PartPiece(source: .changed, range: 20 * MiB..<21 * MiB)]))])
        let small = try CompositionPlan(baseSize: 50 * KiB, changes: [50 * KiB..<(50 * KiB + MiB)], newSize: 50 * KiB + MiB, limits: limits)
        #expect(small.parts == [PlannedPart(range: 0..<(50 * KiB + MiB), content: .upload([
            PartPiece(source: .base, range: 0..<50 * KiB), PartPiece(source: .changed, range: 50 * KiB..<(50 * KiB + MiB)),
        ]))])
    }

    @Test func truncateDownCopiesAPrefixAndUpAddsZeros() throws {
        let limits = CompositionLimits(dialect: .obs, maximumUploadPartSize: 8 * MiB)
        let down = try CompositionPlan(baseSize: 10 * MiB, changes: [], newSize: 1000, limits: limits)
        #expect(down.parts == [PlannedPart(range: 0..<1000, content: .copy)])
        let up = try CompositionPlan(baseSize: MiB, changes: [], newSize: 3 * MiB, limits: limits)
        #expect(up.parts == [PlannedPart(range: 0..<MiB, content: .copy),
                             PlannedPart(range: MiB..<3 * MiB, content: .upload([PartPiece(source: .zeros, range: MiB..<3 * MiB)]))])
        #expect(try CompositionPlan(baseSize: MiB, changes: [], newSize: 0, limits: limits).parts.isEmpty)
    }

    @Test func tooManyScatteredChangesAreRefused() {
        let limits = CompositionLimits(minimumPartSize: 100, maximumUploadPartSize: 100, maximumParts: 10)
        let changes = (0..<20).map { Int64($0) * 1000..<(Int64($0) * 1000 + 1) }
        #expect(throws: CompositionPlanError.self) { try CompositionPlan(baseSize: 20_000, changes: changes, newSize: 20_000, limits: limits) }
    }
}
