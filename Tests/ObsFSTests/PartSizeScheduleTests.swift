import OBSProtocol
import Testing
@testable import ObsFS

struct PartSizeScheduleTests {
    static let initialSizes: [Int64] = [100 * KiB, 1 * MiB, 5 * MiB, 8 * MiB, 64 * MiB, 1024 * MiB]

    @Test(arguments: initialSizes)
    func reachesTheObjectLimitWithinTenThousandParts(initial: Int64) {
        let schedule = PartSizeSchedule(initialPartSize: initial)
        #expect(schedule.reach >= ProtocolLimits.maximumObjectSize)
        var previous: Int64 = 0
        for number in PartNumber.range {
            let size = schedule.size(of: PartNumber(number)!)
            #expect(size >= previous)
            #expect(size >= ProtocolLimits.minimumPartSize && size <= ProtocolLimits.maximumPartSize)
            previous = size
        }
    }

    @Test(arguments: initialSizes)
    func staysFlatAsLongAsPossible(initial: Int64) {
        let schedule = PartSizeSchedule(initialPartSize: initial)
        let flat = schedule.flatParts
        for number in 1...max(flat, 1) where number <= 10_000 { #expect(schedule.size(of: PartNumber(number)!) == initial || flat == 0) }
        if flat < 10_000 {
            // Then it doubles every 4 parts.
            #expect(schedule.size(of: PartNumber(flat + 1)!) == min(ProtocolLimits.maximumPartSize, initial * 2))
            #expect(schedule.size(of: PartNumber(flat + 4)!) == min(ProtocolLimits.maximumPartSize, initial * 2))
            #expect(schedule.size(of: PartNumber(flat + 5)!) == min(ProtocolLimits.maximumPartSize, initial * 4))
            // One more flat part would fall short of 48.8 TB.
            let longer = (0..<10_000).reduce(Int64(0)) { sum, index in
                guard index > flat else { return sum + initial }
                let doublings = (index - flat - 1) / PartSizeSchedule.partsPerDoubling + 1
                return sum + (doublings >= 17 ? ProtocolLimits.maximumPartSize : min(ProtocolLimits.maximumPartSize, initial << doublings))
            }
            #expect(longer < ProtocolLimits.maximumObjectSize)
        }
    }

    @Test func smallAndMediumFilesKeepTheInitialPartSize() {
        let small = PartSizeSchedule(initialPartSize: 100 * KiB)
        #expect(small.flatParts == 855)
        #expect(small.size(of: PartNumber(855)!) == 100 * KiB)
        #expect(small.size(of: PartNumber(856)!) == 200 * KiB)
        let eight = PartSizeSchedule(initialPartSize: 8 * MiB)
        #expect(eight.flatParts == 882)
        // A 4 GiB file uses 8 MiB parts only (so it needs no more memory than a 512 MiB one).
        #expect(Int64(eight.flatParts) * 8 * MiB > 4096 * MiB)
    }

    @Test func memoryCapLimitsPartsAndReach() {
        let schedule = PartSizeSchedule(initialPartSize: 8 * MiB, maximumPartSize: 64 * MiB)
        #expect(schedule.size(of: PartSizeScheduleTests.last) == 64 * MiB)
        #expect(schedule.reach < ProtocolLimits.maximumObjectSize)
        #expect(schedule.reach > 500 * 1024 * MiB)
    }

    static let last = PartNumber(10_000)!
}
