// The limiter of repeated log lines: the first of a kind, then one per interval with the count
// left out; kinds are independent.
import Testing
@testable import ObsFS

@Suite("Repeated log lines")
struct RepeatedLogLinesTests {
    @Test func oneLinePerKindAndIntervalCountingTheOthers() {
        let lines = RepeatedLogLines(interval: .seconds(10))
        let start = ContinuousClock.now
        #expect(lines.admit("fallocate", now: start) == 0)
        #expect(lines.admit("fallocate", now: start + .seconds(1)) == nil)
        #expect(lines.admit("fallocate", now: start + .seconds(9)) == nil)
        #expect(lines.admit("link", now: start + .seconds(9)) == 0)  // another kind
        #expect(lines.admit("fallocate", now: start + .seconds(10)) == 2)
        #expect(lines.admit("fallocate", now: start + .seconds(25)) == 0)
    }
}
