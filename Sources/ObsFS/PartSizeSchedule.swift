// How big each part of an upload is, as a pure function of the part number.
//
// A file of unknown size must be able to reach the 48.8 TB object limit within 10,000 parts,
// while small and medium files keep small parts (little memory, early parallelism, and a memory
// footprint that does not depend on the file's size). The schedule:
//
//     size(part n) = initial                                   for n ≤ K
//                  = min(cap, initial × 2^(⌊(n − K − 1) / 4⌋ + 1))  for n > K
//
// `initial` is the mount's `part_size`; after the first K parts the size doubles every 4 parts up
// to the cap. K ("flat parts") is the LARGEST count for which 10,000 parts still reach 48.8 TB
// when the cap is the protocol's 5 GiB part limit: parts stay at `part_size` as long as the
// limit allows. Examples (cap 5 GiB): initial 100 KiB → K = 855 (files up to 83 MiB use only
// 100 KiB parts); initial 8 MiB → K = 882 (files up to 6.8 GiB use only 8 MiB parts).
// A part is held whole in memory (its Content-MD5 goes in the request headers), so the mount
// also caps a part at half its memory budget; `reach` is then what this mount can write, and a
// write beyond it fails with EFBIG. mount-options/README.md documents both.
import OBSProtocol

/// Part sizes of one mount's uploads.
public struct PartSizeSchedule: Sendable, Equatable {
    /// After the flat parts, the size doubles every this many parts.
    public static let partsPerDoubling = 4

    /// Size of the first parts (the mount's `part_size`).
    public let initialPartSize: Int64
    /// The largest part this mount makes (5 GiB, or less when memory is smaller).
    public let maximumPartSize: Int64
    /// How many parts keep `initialPartSize` before sizes start doubling.
    public let flatParts: Int

    /// - Parameters:
    ///   - initialPartSize: at least 100 KiB, at most 5 GiB.
    ///   - maximumPartSize: the memory cap; at least `initialPartSize`.
    public init(initialPartSize: Int64, maximumPartSize: Int64 = ProtocolLimits.maximumPartSize) {
        precondition(initialPartSize >= ProtocolLimits.minimumPartSize && initialPartSize <= ProtocolLimits.maximumPartSize,
                     "part size outside 100 KiB…5 GiB")
        precondition(maximumPartSize >= initialPartSize, "memory cap below the initial part size")
        self.initialPartSize = initialPartSize
        self.maximumPartSize = min(maximumPartSize, ProtocolLimits.maximumPartSize)
        // Largest K whose 10,000 parts (5 GiB cap) reach the object limit; the total falls as K grows.
        var low = 0, high = PartNumber.range.upperBound
        while low < high {
            let middle = (low + high + 1) / 2
            if PartSizeSchedule.total(initial: initialPartSize, cap: ProtocolLimits.maximumPartSize, flatParts: middle) >= ProtocolLimits.maximumObjectSize {
                low = middle
            } else {
                high = middle - 1
            }
        }
        flatParts = low
    }

    /// The size of part `number` (every part but the last is exactly this size).
    public func size(of number: PartNumber) -> Int64 {
        PartSizeSchedule.size(index: number.rawValue - 1, initial: initialPartSize, cap: maximumPartSize, flatParts: flatParts)
    }

    /// The largest file this schedule can write in 10,000 parts.
    public var reach: Int64 {
        PartSizeSchedule.total(initial: initialPartSize, cap: maximumPartSize, flatParts: flatParts)
    }

    private static func size(index: Int, initial: Int64, cap: Int64, flatParts: Int) -> Int64 {
        guard index >= flatParts else { return initial }
        let doublings = (index - flatParts) / partsPerDoubling + 1
        // initial ≥ 2^17 and cap ≤ 2^33: beyond 16 doublings the cap always wins.
        guard doublings < 17 else { return cap }
        return min(cap, initial << doublings)
    }

    private static func total(initial: Int64, cap: Int64, flatParts: Int) -> Int64 {
        var sum: Int64 = 0
        for index in 0..<PartNumber.range.upperBound {
            sum += size(index: index, initial: initial, cap: cap, flatParts: flatParts)
        }
        return sum
    }
}
