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
    func growsAsLateAsPossible(initial: Int64) {
        let schedule = PartSizeSchedule(initialPartSize: initial)
        let perDoubling = schedule.partsPerDoubling
        for number in 1...min(perDoubling, 10_000) { #expect(schedule.size(of: PartNumber(number)!) == initial) }
        // One part more per doubling would fall short of 48.8 TB (unless no growth is needed).
        if perDoubling < 10_000 {
            let slower = (0..<10_000).reduce(Int64(0)) { sum, index in
                let doublings = index / (perDoubling + 1)
                return sum + (doublings >= 17 ? ProtocolLimits.maximumPartSize : min(ProtocolLimits.maximumPartSize, initial << doublings))
            }
            #expect(slower < ProtocolLimits.maximumObjectSize)
        }
    }

    @Test func smallFilesKeepSmallParts() {
        let schedule = PartSizeSchedule(initialPartSize: 100 * KiB)
        #expect(schedule.partsPerDoubling == 61)
        // 10 MB: all parts are the initial 100 KiB.
        #expect(schedule.size(of: PartNumber(61)!) == 100 * KiB)
        #expect(schedule.size(of: PartNumber(62)!) == 200 * KiB)
        // A 1 GiB file stays under 500 parts.
        var total: Int64 = 0
        var parts = 0
        while total < 1024 * MiB {
            parts += 1
            total += schedule.size(of: PartNumber(parts)!)
        }
        #expect(parts < 500)
        let eight = PartSizeSchedule(initialPartSize: 8 * MiB)
        #expect(eight.partsPerDoubling == 108)
    }

    @Test func memoryCapLimitsPartsAndReach() {
        let schedule = PartSizeSchedule(initialPartSize: 8 * MiB, maximumPartSize: 64 * MiB)
        #expect(schedule.size(of: PartSizeScheduleTests.last) == 64 * MiB)
        #expect(schedule.reach < ProtocolLimits.maximumObjectSize)
        #expect(schedule.reach > 600 * 1024 * MiB)
    }

    static let last = PartNumber(10_000)!
}
