// Waits that end early (a FUSE interrupt cancels them) and writes that arrive out of order (the
// multi-threaded session loop delivers a file's writes on several threads).
import Dispatch
import OBSProtocol
import Synchronization
import Testing
@testable import ObsFS

@Suite("Interrupted waits")
struct InterruptedWaitTests {
    /// A waiter for a large buffer holds up a smaller one behind it (FIFO); once it is cancelled
    /// it gets nil at once, and the one behind it is served from what is free.
    @Test func aCancelledPoolWaiterLeavesTheQueueAndUnblocksTheNext() async {
        let pool = PartBufferPool(capacity: 3 * MiB)
        let held = [pool.tryTake(size: MiB)!, pool.tryTake(size: MiB)!]
        let large = Task { await pool.takeUnlessCancelled(size: 2 * MiB) }
        // With one MiB free, tryTake fails only while somebody is queued.
        while let free = pool.tryTake(size: MiB) {
            pool.giveBack(free)
            await Task.yield()
        }
        let small = Task { await pool.take(size: MiB) }
        for _ in 0..<100 { await Task.yield() }
        large.cancel()
        #expect(await large.value == nil)
        let served = await small.value
        #expect(served.rawBytes.count == Int(MiB))
        #expect(pool.allocatedBytes == 3 * MiB)
        // The cancelled waiter never takes a buffer later: both held ones fit back in the idle list
        // and a new 2 MiB take after they return is served without waiting.
        for buffer in held { pool.giveBack(buffer) }
        pool.giveBack(served)
        #expect(pool.tryTake(size: 2 * MiB) != nil)
    }

    @Test func aCancelledBudgetWaiterTakesNothing() async {
        let budget = AsyncBudget(units: 2)
        #expect(budget.tryAcquire(2))
        let first = Task { await budget.acquireUnlessCancelled(2) }
        while budget.tryAcquire(0) { await Task.yield() }  // false once `first` is queued
        let second = Task { await budget.acquireUnlessCancelled(1) }
        for _ in 0..<100 { await Task.yield() }
        first.cancel()
        #expect(await first.value == false)
        budget.release(1)
        #expect(await second.value == true)
        #expect(budget.tryAcquire(1) == false)  // first took nothing; second holds the released unit
        budget.release(1)
        #expect(budget.tryAcquire(1))
    }

    /// The writer of `f` waits for a part buffer (the pool is full of held part uploads), and so
    /// does the writer of `g` behind it. Interrupting `f`'s write answers it EINTR at once, its
    /// bytes never reach the object, and `g`'s write gets the next buffer.
    @Test func anInterruptedWriteLeavesTheQueueAndTheNextWriterIsServed() async throws {
        let store = FaultInjectingStore()
        store.holdParts()
        let part = Int(minimumPart)
        let fs = makeFileSystem(store, parallel: 2, budget: 3 * minimumPart)
        let (_, f) = try await fs.create(parent: .root, name: "f")
        let (_, g) = try await fs.create(parent: .root, name: "g")
        let fData = pattern(2 * part, seed: 1)
        let gData = pattern(part, seed: 2)
        #expect(try await write(fs, f, at: 0, fData).get() == fData.count)
        #expect(try await write(fs, g, at: 0, gData).get() == gData.count)
        while store.heldPartCount < 3 { await Task.yield() }
        let interrupted = pattern(1000, seed: 3).withUnsafeBytes { fs.write(f, at: Int64(2 * part), bytes: $0, writer: WriterIdentity(7)) }
        guard case .waiting(let fPending) = interrupted else {
            Issue.record("f's write did not wait: \(interrupted)")
            return
        }
        let gMore = pattern(part, seed: 4)
        let queued = gMore.withUnsafeBytes { fs.write(g, at: Int64(part), bytes: $0, writer: WriterIdentity(7)) }
        guard case .waiting(let gPending) = queued else {
            Issue.record("g's write did not wait: \(queued)")
            return
        }
        fPending.cancel()
        // Answered before any part upload finished.
        #expect(store.heldPartCount == 3)
        switch await fPending.outcome {
        case .success(let count): Issue.record("the interrupted write succeeded with \(count) bytes")
        case .failure(let error): #expect(error.errno == .interrupted)
        }
        store.releaseParts()
        #expect(try await gPending.outcome.get() == gMore.count)
        try await fs.flush(f, writer: WriterIdentity(7))
        try await fs.flush(g, writer: WriterIdentity(7))
        #expect(store.inner.object("f") == fData)
        #expect(store.inner.object("g") == gData + gMore)
        await fs.release(f)
        await fs.release(g)
    }

    /// A later write arrives first, the earlier one fills the gap it left: within the part being
    /// filled, or behind a part the later write sealed (then the earlier write is not refused,
    /// which would fail the upload, but continues the file by composition). Either way the object
    /// holds both in place.
    @Test(arguments: [(size: 3 * Int(minimumPart) / 2, split: 3 * Int(minimumPart) / 4), (size: 2 * Int(minimumPart), split: 1000)])
    func aWriteOvertakenByALaterOneStillLandsInPlace(size: Int, split: Int) async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store, parallel: 2)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        let data = pattern(size)
        #expect(try await write(fs, handle, at: Int64(split), Array(data[split...])).get() == data.count - split)
        #expect(try await write(fs, handle, at: 0, Array(data[..<split])).get() == split)
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("f") == data)
    }

    /// Many threads deliver one file's writes at once, as the multi-threaded session loop does:
    /// neighbouring writes overtake each other, also across part boundaries. Every write succeeds
    /// and the object holds every byte in place.
    @Test func writesOfOneFileFromManyThreadsStoreEveryByte() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store, parallel: 2, budget: 64 * MiB)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        let data = pattern(Int(minimumPart) * 6 + 1234)
        let chunk = 8 * 1024
        let count = (data.count + chunk - 1) / chunk
        let admissions = Mutex<[WriteAdmission]>([])
        DispatchQueue.concurrentPerform(iterations: count) { index in
            let range = index * chunk..<min(data.count, (index + 1) * chunk)
            let admission = data[range].withUnsafeBytes { fs.write(handle, at: Int64(range.lowerBound), bytes: $0, writer: WriterIdentity(7)) }
            admissions.withLock { $0.append(admission) }
        }
        for admission in admissions.withLock({ $0 }) {
            switch admission {
            case .accepted: break
            case .refused(let error): Issue.record("refused: \(error)")
            case .waiting(let pending): _ = try await pending.outcome.get()
            }
        }
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("f") == data)
    }

    /// A write part of whose bytes went into a buffer before the rest had to wait answers the
    /// bytes taken (a short write) when interrupted; the object holds exactly those.
    @Test func anInterruptedWritePartlyTakenAnswersAShortCount() async throws {
        let store = FaultInjectingStore()
        store.holdParts()
        let part = Int(minimumPart)
        let fs = makeFileSystem(store, parallel: 1, budget: 2 * minimumPart)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        let data = pattern(5 * part / 2)
        #expect(try await write(fs, handle, at: 0, Array(data[..<part])).get() == part)
        // The second part fits the pool's last buffer; the half part after it must wait.
        let admission = data[part...].withUnsafeBytes { fs.write(handle, at: Int64(part), bytes: $0, writer: WriterIdentity(7)) }
        guard case .waiting(let pending) = admission else {
            Issue.record("the write did not wait: \(admission)")
            return
        }
        pending.cancel()
        #expect(try await pending.outcome.get() == part)
        store.releaseParts()
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.inner.object("f") == Array(data[..<(2 * part)]))
    }

    /// Two writes wait for a buffer; the one that arrived second ends where the first begins (two
    /// FUSE threads delivered them out of order). It is applied first, so the first, which ends a
    /// part, does not seal the part before the second's bytes are in it.
    @Test func queuedWritesDeliveredOutOfOrderAreAppliedInFileOrder() async throws {
        let store = FaultInjectingStore()
        store.holdParts()
        let part = Int(minimumPart)
        let fs = makeFileSystem(store, parallel: 1, budget: 2 * minimumPart)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        let data = pattern(3 * part)
        // Two parts fill the pool (one uploading and held, one sealed behind it).
        #expect(try await write(fs, handle, at: 0, Array(data[..<(2 * part)])).get() == 2 * part)
        let split = 2 * part + 1000
        let later = data[split...].withUnsafeBytes { fs.write(handle, at: Int64(split), bytes: $0, writer: WriterIdentity(7)) }
        let earlier = data[(2 * part)..<split].withUnsafeBytes { fs.write(handle, at: Int64(2 * part), bytes: $0, writer: WriterIdentity(7)) }
        guard case .waiting(let laterPending) = later, case .waiting(let earlierPending) = earlier else {
            Issue.record("the writes did not wait: \(later), \(earlier)")
            return
        }
        store.releaseParts()
        #expect(try await earlierPending.outcome.get() == 1000)
        #expect(try await laterPending.outcome.get() == data.count - split)
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.inner.object("f") == data)
        #expect(store.inner.completeCalls == 1)  // one upload: nothing went the composition way
    }
}
