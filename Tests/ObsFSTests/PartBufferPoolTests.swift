import ObsFS
import OBSProtocol
import Testing

@Suite("Part buffer pool")
struct PartBufferPoolTests {
    /// A writer that gives each buffer back before taking the next (a fast store) still cycles
    /// through the whole warm window, so peak memory does not depend on the store's speed.
    @Test func fastStoreStillCyclesTheWholeWarmWindow() {
        let pool = PartBufferPool(capacity: 64 << 20, warmBuffersPerSize: 5)
        var seen: [ObjectIdentifier] = []
        for _ in 0..<20 {
            let buffer = pool.tryTake(size: 1 << 20)!
            seen.append(ObjectIdentifier(buffer))
            pool.giveBack(buffer)
        }
        #expect(Set(seen).count == 5)
        #expect(pool.allocatedBytes == 5 << 20)
        // Oldest idle first: the sixth take reuses the first buffer, and so on in rotation.
        #expect(Array(seen[5..<10]) == Array(seen[0..<5]))
    }

    @Test func warmingNeverExceedsTheBudget() {
        let pool = PartBufferPool(capacity: 3 << 20, warmBuffersPerSize: 5)
        let held = (0..<3).map { _ in pool.tryTake(size: 1 << 20)! }
        #expect(pool.tryTake(size: 1 << 20) == nil)
        pool.giveBack(held[0])
        let reused = pool.tryTake(size: 1 << 20)
        #expect(reused === held[0])
        #expect(pool.allocatedBytes == 3 << 20)
    }

    @Test func oneBufferWindowReusesAtOnce() {
        let pool = PartBufferPool(capacity: 8 << 20)
        let first = pool.tryTake(size: 1 << 20)!
        pool.giveBack(first)
        #expect(pool.tryTake(size: 1 << 20) === first)
        #expect(pool.allocatedBytes == 1 << 20)
    }
}
