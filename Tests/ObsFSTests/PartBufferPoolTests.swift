import OBSProtocol
import Glibc
import Testing
@testable import ObsFS

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

    @Test func writerReservationsNeverExceedTheBudget() {
        let pool = PartBufferPool(capacity: 32 << 20)
        let held = (0..<8).compactMap { _ in pool.reserveWriter(partSize: 4 << 20) }
        #expect(held.count == 8)
        #expect(pool.reserveWriter(partSize: 4 << 20) == nil)
        #expect(pool.reservations.writers == 8 && pool.reservations.bytes == 32 << 20)
        held[0].release()
        held[0].release()  // once only
        #expect(pool.reservations.writers == 7)
        let again = pool.reserveWriter(partSize: 4 << 20)
        #expect(again != nil)
        #expect(pool.reserveWriter(partSize: 1) == nil)
    }
}

/// The hang of issue 11 in the core: more files than the budget holds parts, written round-robin.
@Suite("Writers bounded at their first write")
struct WriterBoundTests {
    let store = InMemoryStore()
    let part = ProtocolLimits.minimumPartSize

    /// A mount whose budget holds `parts` parts, with `count` files created (named `prefix` and
    /// a number) and open for writing.
    func created(_ count: Int, named prefix: String, budgetParts parts: Int64) async throws -> (ObsFileSystem, [FileHandleID]) {
        let fs = makeFileSystem(store, partSize: part, parallel: 2, budget: parts * part)
        var handles: [FileHandleID] = []
        for index in 0..<count { handles.append(try await fs.create(parent: .root, name: "\(prefix)\(index)").1) }
        return (fs, handles)
    }

    @Test func roundRobinWritersBeyondTheBudgetAreRefusedAtTheirFirstWriteAndTheOthersFinish() async throws {
        let (fs, handles) = try await created(6, named: "f", budgetParts: 4)
        let chunk = pattern(Int(part) / 2)
        let writing = handles
        let refused = try await withThrowingTaskGroup(of: [Int: Errno].self) { group in
            group.addTask {
                var refused: [Int: Errno] = [:]
                for round in 0..<5 {
                    for (index, handle) in writing.enumerated() where refused[index] == nil {
                        if case .failure(let error) = await write(fs, handle, at: Int64(round * chunk.count), chunk) {
                            refused[index] = ErrnoMapping.errno(for: error)
                        }
                    }
                }
                return refused
            }
            group.addTask {
                try await Task.sleep(for: .seconds(20))
                throw FileSystemError(.io, "the round-robin writer is stuck")
            }
            let refused = try await group.next()!
            group.cancelAll()
            return refused
        }
        #expect(refused == [4: .outOfMemory, 5: .outOfMemory])
        for handle in handles {
            try await fs.flush(handle, writer: WriterIdentity(7))
            await fs.release(handle)
        }
        for index in 0..<4 { #expect(store.object("f\(index)") == Array(repeating: chunk, count: 5).flatMap { $0 }) }
        // The refused files stay what they were: empty.
        for index in 4..<6 { #expect(store.object("f\(index)") == []) }
        // Closed files gave their reservations back: new writers fit again.
        let (_, handle) = try await fs.create(parent: .root, name: "after")
        #expect(try await write(fs, handle, at: 0, chunk).get() == chunk.count)
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("after") == chunk)
    }

    /// A single-threaded program with new files open (their filling parts hold the whole budget)
    /// closes a file it appended to: the composition waited for a pool buffer for ever (found
    /// by a helper); after `poolPatience` it takes one beyond the budget.
    @Test func aCompositionDoesNotWaitForEverForPartsOtherFilesAreFilling() async throws {
        let (fs, handles) = try await created(2, named: "n", budgetParts: 2)
        for handle in handles { #expect(try await write(fs, handle, at: 0, pattern(1000)).get() == 1000) }
        store.seed("old", pattern(500, seed: 3))
        let old = try await fs.lookup(parent: .root, name: "old").inode
        let appending = try await fs.open(old, flags: O_WRONLY | O_APPEND).handle
        #expect(try await write(fs, appending, at: 500, Array("tail".utf8)).get() == 4)
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await fs.flush(appending, writer: WriterIdentity(7)) }
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                throw FileSystemError(.io, "the close of the appended file is stuck")
            }
            try await group.next()
            group.cancelAll()
        }
        #expect(ContinuousClock.now - started < .seconds(20))
        #expect(store.object("old") == pattern(500, seed: 3) + Array("tail".utf8))
        await fs.release(appending)
        for handle in handles {
            try await fs.flush(handle, writer: WriterIdentity(7))
            await fs.release(handle)
        }
        #expect(store.object("n0") == pattern(1000) && store.object("n1") == pattern(1000))
    }

    /// test_tempfile's `test_basic_many` opens 100 files for writing and writes none: opening
    /// reserves nothing, so far more files than the budget holds parts may be open at once.
    @Test func filesOpenedAndNotYetWrittenHoldNoPartBuffer() async throws {
        let (fs, handles) = try await created(100, named: "t", budgetParts: 2)
        #expect(fs.configuration.upload.pool.reservations.writers == 0)
        for index in [7, 93] { #expect(try await write(fs, handles[index], at: 0, pattern(100)).get() == 100) }
        #expect(fs.configuration.upload.pool.reservations.writers == 2)
        for handle in handles {
            try await fs.flush(handle, writer: WriterIdentity(7))
            await fs.release(handle)
        }
        #expect(store.object("t7") == pattern(100) && store.object("t93") == pattern(100) && store.object("t0") == [])
        #expect(fs.configuration.upload.pool.reservations.writers == 0)
    }
}
