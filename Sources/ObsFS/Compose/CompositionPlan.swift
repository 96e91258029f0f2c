// Server-side composition: a changed file becomes a new object whose unchanged ranges are
// server-side copies of the base object, without downloading or re-uploading them.
//
// Design:
// - The new object is the base (the version pinned at open, possibly cut short by a truncate)
//   with the changed ranges (bytes written since open, held in memory) laid over it, and zeros
//   past the base's end up to the new size. Every byte of the new object sits at the same
//   offset as the base byte it replaces, so one offset space serves both.
// - A plan is the list of multipart parts, in order, covering the new object exactly: a part
//   is either a copy of a base range (UploadPartCopy with a source range, nothing crosses the
//   wire) or an upload assembled in memory from changed bytes, zeros, and base ranges that must
//   be read (ranged GETs) to widen the part to the dialect's minimum part size (100 KiB on OBS,
//   5 MiB on S3; the last part may be smaller). Copies are at most 5 GiB; uploads at most the
//   memory cap the caller gives.
// - The planner is greedy, left to right: changed and zero runs accumulate into the upload in
//   progress; a base run is copied when, after lending the upload in progress what it lacks of
//   the minimum, at least a minimum part remains (or the run ends the object); otherwise it is
//   read into the upload. Each base run thus costs at most two minimum parts of reading, and an
//   in-place change of 1 MiB in a large object costs about 1 MiB of upload on OBS.
// - The plan is a pure value (property-tested against a reference model); CompositionExecutor
//   runs it against an ObjectComposer.
import OBSProtocol

/// The part-size rules a composition must follow.
public struct CompositionLimits: Sendable, Equatable {
    /// Every part but the last is at least this large (100 KiB on OBS, 5 MiB on S3).
    public let minimumPartSize: Int64
    /// A copied part is at most this large (5 GiB).
    public let maximumCopyPartSize: Int64
    /// An uploaded part is at most this large (it is held whole in memory).
    public let maximumUploadPartSize: Int64
    /// Parts of one upload (10,000).
    public let maximumParts: Int

    public init(minimumPartSize: Int64, maximumCopyPartSize: Int64 = ProtocolLimits.maximumPartSize,
                maximumUploadPartSize: Int64, maximumParts: Int = PartNumber.range.upperBound) {
        precondition(minimumPartSize > 0 && maximumUploadPartSize >= minimumPartSize && maximumCopyPartSize >= 2 * minimumPartSize,
                     "part limits: minimum ≤ largest upload, 2 × minimum ≤ largest copy")
        self.minimumPartSize = minimumPartSize
        self.maximumCopyPartSize = maximumCopyPartSize
        self.maximumUploadPartSize = maximumUploadPartSize
        self.maximumParts = maximumParts
    }

    /// Unchanged ranges are copied in pieces of about this size, in parallel (one copy of a whole
    /// gigabyte is as slow as the server's single copy stream), unless the object is so large
    /// that its parts would run out: then in 1/5,000 of it.
    public static let preferredCopyPartSize: Int64 = 128 << 20

    /// The limits of a dialect: OBS takes 100 KiB parts, S3 servers (V2, V4) 5 MiB ones. Copies
    /// of an object of `objectSize` bytes are cut to `preferredCopyPartSize`.
    public init(dialect: Dialect, maximumUploadPartSize: Int64, objectSize: Int64 = 0) {
        let copyPartSize = min(ProtocolLimits.maximumPartSize, max(CompositionLimits.preferredCopyPartSize, objectSize / 5_000))
        self.init(minimumPartSize: dialect == .obs ? ProtocolLimits.minimumPartSize : 5 << 20, maximumCopyPartSize: copyPartSize,
                  maximumUploadPartSize: max(maximumUploadPartSize, dialect == .obs ? ProtocolLimits.minimumPartSize : 5 << 20))
    }
}

/// Where a stretch of an uploaded part's bytes comes from. Ranges are offsets of the new object
/// (equal to the base's offsets).
public struct PartPiece: Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        /// Bytes written since open.
        case changed
        /// The base's bytes, read with a ranged GET pinned to its ETag.
        case base
        /// Zeros (past the base's end).
        case zeros
    }

    public let source: Source
    public let range: Range<Int64>
}

/// One part of the new object.
public struct PlannedPart: Sendable, Equatable {
    public enum Content: Sendable, Equatable {
        /// A server-side copy of the base's bytes `range` (the part's own range).
        case copy
        /// Bytes assembled in memory from these pieces, in order.
        case upload([PartPiece])
    }

    /// The bytes of the new object this part holds.
    public let range: Range<Int64>
    public let content: Content
}

/// Why no plan could be made.
public struct CompositionPlanError: Error, Sendable, CustomStringConvertible {
    public let description: String
}

/// The parts of a new object composed from a base and changed ranges.
public struct CompositionPlan: Sendable, Equatable {
    public let parts: [PlannedPart]
    public let newSize: Int64

    /// - Parameters:
    ///   - baseSize: bytes of the base that show through: its size, or less when the file was
    ///     truncated below it since open (bytes past that are zeros unless changed).
    ///   - changes: ranges written since open (any order, may overlap); cut at `newSize`.
    ///   - newSize: the new object's size (0: no parts; write an empty object instead).
    public init(baseSize: Int64, changes: [Range<Int64>], newSize: Int64, limits: CompositionLimits) throws(CompositionPlanError) {
        var planner = Planner(limits: limits, newSize: newSize)
        for run in Self.runs(baseSize: min(baseSize, newSize), changes: changes, newSize: newSize) {
            planner.add(run)
        }
        planner.flush()
        guard planner.parts.count <= limits.maximumParts else {
            throw CompositionPlanError(description: "\(planner.parts.count) parts, more than \(limits.maximumParts): too many scattered changes for one upload")
        }
        parts = planner.parts
        self.newSize = newSize
    }

    /// Bytes sent in uploaded parts.
    public var uploadedBytes: Int64 { pieceBytes { _ in true } }
    /// Bytes of the base read (GET) to widen uploaded parts.
    public var baseBytesRead: Int64 { pieceBytes { $0 == .base } }
    /// Bytes copied server-side.
    public var copiedBytes: Int64 { parts.filter { $0.content == .copy }.reduce(0) { $0 + Int64($1.range.count) } }

    private func pieceBytes(_ matching: (PartPiece.Source) -> Bool) -> Int64 {
        parts.reduce(0) { total, part in
            guard case .upload(let pieces) = part.content else { return total }
            return total + pieces.filter { matching($0.source) }.reduce(0) { $0 + Int64($1.range.count) }
        }
    }

    /// The new object as maximal runs of one source, in order, covering 0..<newSize.
    static func runs(baseSize: Int64, changes: [Range<Int64>], newSize: Int64) -> [PartPiece] {
        // Changed ranges merged and cut at the new size.
        var merged: [Range<Int64>] = []
        for change in changes.map({ $0.clamped(to: 0..<newSize) }).filter({ !$0.isEmpty }).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, change.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, change.upperBound)
            } else {
                merged.append(change)
            }
        }
        var runs: [PartPiece] = []
        func unchanged(_ range: Range<Int64>) {
            let base = range.clamped(to: 0..<baseSize), zeros = range.clamped(to: baseSize..<max(baseSize, newSize))
            if !base.isEmpty { runs.append(PartPiece(source: .base, range: base)) }
            if !zeros.isEmpty { runs.append(PartPiece(source: .zeros, range: zeros)) }
        }
        var position: Int64 = 0
        for change in merged {
            unchanged(position..<change.lowerBound)
            runs.append(PartPiece(source: .changed, range: change))
            position = change.upperBound
        }
        unchanged(position..<newSize)
        return runs
    }
}

/// The greedy part cutter (see the design note).
private struct Planner {
    let limits: CompositionLimits
    let newSize: Int64
    var parts: [PlannedPart] = []
    /// The upload in progress.
    var pending: [PartPiece] = []
    var pendingBytes: Int64 = 0

    init(limits: CompositionLimits, newSize: Int64) {
        self.limits = limits
        self.newSize = newSize
    }

    mutating func add(_ run: PartPiece) {
        guard run.source == .base else { return absorb(run) }
        let lent = pendingBytes > 0 ? min(Int64(run.range.count), max(0, limits.minimumPartSize - pendingBytes)) : 0
        let rest = run.range.lowerBound + lent..<run.range.upperBound
        let restCopyable = Int64(rest.count) >= limits.minimumPartSize || (!rest.isEmpty && rest.upperBound == newSize)
        guard restCopyable else { return absorb(run) }
        if lent > 0 { absorb(PartPiece(source: .base, range: run.range.lowerBound..<rest.lowerBound)) }
        flush()
        // Equal copies of at most the maximum: each at least half of it, so at least the minimum.
        let count = (Int64(rest.count) + limits.maximumCopyPartSize - 1) / limits.maximumCopyPartSize
        var start = rest.lowerBound
        for index in 0..<count {
            let end = rest.lowerBound + Int64(rest.count) * (index + 1) / count
            parts.append(PlannedPart(range: start..<end, content: .copy))
            start = end
        }
    }

    /// Adds a run to the upload in progress, cutting a part whenever it reaches the largest size.
    private mutating func absorb(_ run: PartPiece) {
        var start = run.range.lowerBound
        while start < run.range.upperBound {
            let end = min(run.range.upperBound, start + limits.maximumUploadPartSize - pendingBytes)
            pending.append(PartPiece(source: run.source, range: start..<end))
            pendingBytes += end - start
            start = end
            if pendingBytes == limits.maximumUploadPartSize { flush() }
        }
    }

    mutating func flush() {
        guard let first = pending.first, let last = pending.last else { return }
        parts.append(PlannedPart(range: first.range.lowerBound..<last.range.upperBound, content: .upload(pending)))
        pending = []
        pendingBytes = 0
    }
}

/// Sorted, non-overlapping ranges joined across gaps of at most `maximumGap` bytes, a join at
/// most `maximumSpan` long and the gaps of all joins at most `gapBudget` bytes together;
/// `merged`: the span holds a gap (bytes the caller reads or fills). For reading or writing
/// scattered small pieces with fewer requests.
func coalesced(_ ranges: some Sequence<Range<Int64>>, maximumGap: Int64, maximumSpan: Int64 = .max,
               gapBudget: Int64 = .max) -> [(span: Range<Int64>, merged: Bool)] {
    var spans: [(span: Range<Int64>, merged: Bool)] = []
    var gapBytes: Int64 = 0
    for range in ranges {
        if let last = spans.last {
            let gap = range.lowerBound - last.span.upperBound
            if gap <= maximumGap, range.upperBound - last.span.lowerBound <= maximumSpan, gap <= gapBudget - gapBytes {
                gapBytes += gap
                spans[spans.count - 1] = (last.span.lowerBound..<range.upperBound, true)
                continue
            }
        }
        spans.append((range, false))
    }
    return spans
}
