// How big each part of an upload is, as a pure function of the part number.
//
// A file of unknown size must be able to reach the 48.8 TB object limit within 10,000 parts,
// while a small file keeps small parts (little memory, early parallelism). The schedule:
//
//     size(part n) = min(cap, initial × 2^⌊(n − 1) / D⌋)
//
// where `initial` is the mount's `part_size`, and D ("parts per doubling") is the LARGEST value
// for which 10,000 parts reach 48.8 TB when the cap is the protocol's 5 GiB part limit — i.e. the
// sizes grow as late and as slowly as the limit allows. Examples (cap 5 GiB):
//   initial 100 KiB → D = 61: parts 1–61 are 100 KiB, 62–122 are 200 KiB, … 1 GiB uses < 500 parts.
//   initial   8 MiB → D = 108: a 2 GiB file uses 8 and 16 MiB parts (~180 parts).
// A part is held whole in memory (its Content-MD5 goes in the request headers), so the mount
// also caps a part at half its memory budget; `reach` is then what this mount can write, and a
// write beyond it fails with EFBIG. mount-options/README.md documents both.
import OBSProtocol

/// Part sizes of one mount's uploads.
public struct PartSizeSchedule: Sendable, Equatable {
    /// Size of the first parts (the mount's `part_size`).
    public let initialPartSize: Int64
    /// The largest part this mount makes (5 GiB, or less when memory is smaller).
    public let maximumPartSize: Int64
    /// How many consecutive parts share one size before it doubles.
    public let partsPerDoubling: Int

    /// - Parameters:
    ///   - initialPartSize: at least 100 KiB, at most 5 GiB.
    ///   - maximumPartSize: the memory cap; at least `initialPartSize`.
    public init(initialPartSize: Int64, maximumPartSize: Int64 = ProtocolLimits.maximumPartSize) {
        precondition(initialPartSize >= ProtocolLimits.minimumPartSize && initialPartSize <= ProtocolLimits.maximumPartSize,
                     "part size outside 100 KiB…5 GiB")
        precondition(maximumPartSize >= initialPartSize, "memory cap below the initial part size")
        self.initialPartSize = initialPartSize
        self.maximumPartSize = min(maximumPartSize, ProtocolLimits.maximumPartSize)
        // Largest D whose 10,000 parts (5 GiB cap) reach the object limit; total is decreasing in D.
        var low = 1, high = PartNumber.range.upperBound
        while low < high {
            let middle = (low + high + 1) / 2
            if PartSizeSchedule.total(initial: initialPartSize, cap: ProtocolLimits.maximumPartSize, partsPerDoubling: middle) >= ProtocolLimits.maximumObjectSize {
                low = middle
            } else {
                high = middle - 1
            }
        }
        partsPerDoubling = low
    }

    /// The size of part `number` (every part but the last is exactly this size).
    public func size(of number: PartNumber) -> Int64 {
        PartSizeSchedule.size(index: number.rawValue - 1, initial: initialPartSize, cap: maximumPartSize, partsPerDoubling: partsPerDoubling)
    }

    /// The largest file this schedule can write in 10,000 parts.
    public var reach: Int64 {
        PartSizeSchedule.total(initial: initialPartSize, cap: maximumPartSize, partsPerDoubling: partsPerDoubling)
    }

    private static func size(index: Int, initial: Int64, cap: Int64, partsPerDoubling: Int) -> Int64 {
        let doublings = index / partsPerDoubling
        // initial ≥ 2^17 and cap ≤ 2^33: beyond 16 doublings the cap always wins.
        guard doublings < 17 else { return cap }
        return min(cap, initial << doublings)
    }

    private static func total(initial: Int64, cap: Int64, partsPerDoubling: Int) -> Int64 {
        var sum: Int64 = 0
        for index in 0..<PartNumber.range.upperBound {
            sum += size(index: index, initial: initial, cap: cap, partsPerDoubling: partsPerDoubling)
        }
        return sum
    }
}
