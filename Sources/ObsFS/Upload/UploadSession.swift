// Upload sessions: one file opened for writing is one multipart upload. This file is the
// lifecycle (writes admitted or queued, completion, failure, close rules, attribute changes);
// PartAssembly.swift cuts the writes into parts, UploadWindow.swift owns the part uploads in
// flight, UploadIntegrity.swift computes what each part carries to prove its bytes.
//
// Design note (the hot path)
// - create/open initiates the upload (FileSystem does that) and builds a session.
// - `admit` is called synchronously by the FUSE write callback while the kernel's buffer is
//   valid. Under the state lock it only copies the bytes into the part buffer being filled
//   (PartAssembly); the file's size is published in an atomic, so `stat` never takes this lock.
//   A full part is sealed and handed to the window, which starts its upload task at once, at
//   most `parallel` per file. The task computes the part's checksum or MD5 OUTSIDE the lock (so
//   parts hash in parallel across cores, never on the FUSE thread), sends it, and gives the
//   buffer back to the pool when the store has answered. The store decides integrity from the
//   answer and returns a receipt (OBSClient/Integrity.swift); the session trusts its verdict.
//   Nothing blocks: when no buffer is free (the mount's pool is used up, or this file already
//   holds `parallel + 1` buffers) the rest of the write is copied aside and queued, and one drain
//   task per session awaits a buffer and applies queued writes in arrival order. The write's reply
//   waits for that: backpressure without a blocked thread and with memory bounded by the pool
//   plus the writes the kernel has outstanding. A waiting write can be withdrawn (a FUSE
//   interrupt: `PendingWrite.cancel`): it leaves the queue and is answered EINTR (or short) at
//   once; when nothing is queued any more the drainer's wait is cancelled, so its place in the
//   pool's queue goes to the next waiter and it never takes a buffer later.
// - Writes arrive on several FUSE threads: the state lock orders them. Non-sequential writes are
//   accepted while they fall in the part not yet sent (a forward gap is zero-filled, and the write
//   that arrives late fills it). A write before that part is handed back to FileSystem under the
//   same lock (`continuesByComposition`, also for a write racing the completing flush), which
//   continues the file by composition; only a queued write overtaken that way fails with ESPIPE
//   and aborts the upload.
// - Completion, failure and the close rules are in mount-options/write-semantics.md. In short:
//   the flush from the writer that wrote last completes (waits for parts in flight, sends the
//   last part, checks sizes; the store checks the object's checksum or composite ETag); any
//   failure cancels the parts in flight and aborts the upload once they have ended, and every
//   later flush/close reports the failure. A complete whose last answer was lost may have
//   completed on the server: when the abort then answers NoSuchUpload and the object's ETag is
//   the parts' composite, the file is completed after all (close() returns 0, the bytes are there).
import Logging
import OBSClient
import OBSProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The answer to a write the kernel delivered.
public enum WriteAdmission: Sendable {
    /// All bytes are in part buffers.
    case accepted(Int)
    case refused(FileSystemError)
    /// The bytes are queued until a part buffer is free; await `PendingWrite.outcome`.
    case waiting(PendingWrite)

    /// The byte count written or why not, once known.
    var outcome: Result<Int, FileSystemError> {
        get async {
            switch self {
            case .accepted(let count): .success(count)
            case .refused(let error): .failure(error)
            case .waiting(let pending): await pending.outcome
            }
        }
    }
}

/// A write that waits for a part buffer.
public final class PendingWrite: Sendable {
    let result = OneShot<Result<Int, FileSystemError>>()
    /// Takes the write out of the queue it waits in; nil for waits that cannot be abandoned
    /// (a write that waits for a composition is applied once it is done).
    private let withdrawal: (@Sendable (PendingWrite) -> Void)?

    init(withdrawal: (@Sendable (PendingWrite) -> Void)? = nil) { self.withdrawal = withdrawal }

    /// The byte count written, once the bytes are in part buffers, or why it failed.
    public var outcome: Result<Int, FileSystemError> { get async { await result.value } }

    /// The caller stops waiting (a FUSE interrupt). A write still queued for a part buffer leaves
    /// the queue at once and is answered: EINTR, or the bytes already in part buffers (a short
    /// write). A write already applied, or one whose wait cannot be abandoned, answers as usual.
    public func cancel() { withdrawal?(self) }
}

/// What a session made of a write.
enum SessionAdmission {
    case admitted(WriteAdmission)
    /// The write cannot go into this upload: it falls before the part being filled (another
    /// write sealed it first), or a flush racing it is completing (or has completed) the upload.
    /// FileSystem continues the file by composition once the upload is complete.
    case continuesByComposition
}

/// What a session needs from its mount.
public struct UploadSettings: Sendable {
    public var schedule: PartSizeSchedule
    /// Part uploads in flight per file.
    public var parallel: Int
    public var pool: PartBufferPool
    /// What each part carries to prove its bytes (`checksum=`).
    public var integrity: UploadIntegrity
    /// status: the mount's upload counters (Status/MountStatistics.swift).
    public var statistics = MountStatistics()

    public init(schedule: PartSizeSchedule, parallel: Int, pool: PartBufferPool, integrity: UploadIntegrity = .md5) {
        precondition(parallel >= 1)
        self.schedule = schedule
        self.parallel = parallel
        self.pool = pool
        self.integrity = integrity
    }
}

/// One multipart upload fed by writes to one open file.
public final class UploadSession: Sendable {
    public let key: ObjectKey
    /// The upload and the options it was initiated with; replaced together when an attribute
    /// changes before the first part is sent (`reinitiate`). Never locked while taking `state`.
    private let identity: Mutex<(uploadID: UploadID, options: ObjectOptions)>
    /// Runs after CompleteMultipartUpload succeeded (with the object's ETag), before the outcome
    /// is decided: applies the attribute changes recorded while parts were being sent
    /// (FileSystem+Attributes.swift) and records the stored object as the file's, so an open
    /// that sees the upload ended also sees what it stored.
    private let afterCompletion: @Sendable (UploadSession, ETag) async throws(FileSystemError) -> Void
    private let store: any ObjectStore
    private let settings: UploadSettings
    private let logger: Logger
    /// Buffers this file may hold (`parallel + 1`: one filling, the others uploading).
    private let heldBuffers: AsyncBudget
    /// Decided once: the object's ETag, or why the upload failed.
    private let outcome = OneShot<Result<ETag, FileSystemError>>()
    /// Everything that changes as writes arrive and parts finish.
    private let state: Mutex<State>
    /// The file's size (`PartAssembly.size`), stored under `state`'s lock, read without it.
    private let publishedSize = Atomic<Int64>(0)
    /// status: live counters for `obsmount status` and metrics (Status/UploadProgress.swift).
    let progress: UploadProgress

    private enum Phase {
        /// Accepting writes.
        case open
        /// The last writer flushed: waiting for parts in flight, then complete.
        case completing
        /// Failed: waiting for parts in flight, then abort.
        case failing(FileSystemError)
        /// Outcome decided.
        case done
    }

    private struct QueuedWrite {
        var offset: Int64
        /// The bytes not yet applied start at `data.rawBytes[consumed]`.
        let data: AlignedMemory
        var consumed = 0
        let reportedCount: Int
        let pending: PendingWrite
    }

    private struct State {
        var phase = Phase.open
        /// The file's bytes cut into parts; its `size` is the file's size.
        var assembly: PartAssembly
        /// Sealed parts until the store's receipt; paused while re-initiating.
        var window: UploadWindow
        var queued: [QueuedWrite] = []
        /// The task applying queued writes (`drain`), while there are any.
        var drainer: Task<Void, Never>?
        /// Tasks waiting until nothing is queued, sealed or in flight.
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        var finalizing = false
        var lastWriter: WriterIdentity?
        /// The lock owner (descriptor table) of the opener, once a write or flush from the
        /// opening process showed it: the opener's other threads complete the file too.
        var openerOwner: WriterIdentity?
        /// A flush from the opener came (`isCompletingFlush`): the opener closed the file, so the
        /// flush of the last process holding it completes it (`flush`).
        var openerFlushed = false
        /// Ended on purpose (unmount, unlinked while open): logged as a notice, not an error.
        var deliberate = false
        /// Unlinked while open (`barCompletion`): no flush or completion may store the object,
        /// which would put it back after the unlink's DELETE; its release aborts it.
        var completionBarred = false
        /// ETag of the zero-byte object a flush of the still-empty file created.
        var emptyObjectETag: ETag?
        /// The end of that object's PUT while it is under way (an attribute change waits for it,
        /// then changes the object).
        var emptyObjectWrite: OneShot<Void>?
        /// Why the last flush of the still-empty file could not write its zero-byte object: a
        /// close() reported it, so release must not write the object after all.
        var emptyObjectFailure: FileSystemError?
        var writeRequests = 0
        var largestWrite = 0
        /// Attribute changes to send once the upload is complete (see `recordAfterCompletion`).
        var pendingUpdates: [ObjectUpdateRequest] = []
        /// The options those updates bring the object to.
        var pendingOptions: ObjectOptions?
        /// `afterCompletion` has taken the pending updates; later changes apply to the object.
        var updatesTaken = false
        /// The file's claim on one part buffer of the pool, taken by its first write of bytes and
        /// held until the outcome (PartBufferPool.swift): a file opened and never written holds none.
        var reservation: WriterReservation?
        /// A write was refused for want of a reservation (logged once per file).
        var refusedForBudget = false
    }

    private enum Effect {
        case complete
        case abort(FileSystemError)
        /// Stops the drainer's wait for a buffer: nothing is queued any more.
        case stopDrainer(Task<Void, Never>)
        case giveBack(AlignedMemory)
        case answer(PendingWrite, Result<Int, FileSystemError>)
        case resumeIdle([CheckedContinuation<Void, Never>])
        /// An error line (written outside the state lock).
        case log(FileSystemError)
    }

    /// The SSE-C key every part carries, when the object is encrypted with one.
    private var customerKey: CustomerKey? {
        if case .customer(let key)? = options.encryption { return key }
        return nil
    }

    /// The process that opened the file: its close completes the upload.
    public let opener: ProcessID

    public init(key: ObjectKey, uploadID: UploadID, options: ObjectOptions, store: any ObjectStore, settings: UploadSettings, logger: Logger,
                opener: ProcessID = .unknown,
                afterCompletion: @escaping @Sendable (UploadSession, ETag) async throws(FileSystemError) -> Void = { _, _ in }) {
        self.key = key
        self.opener = opener
        identity = Mutex((uploadID, options))
        self.afterCompletion = afterCompletion
        self.store = store
        self.settings = settings
        self.logger = logger
        heldBuffers = AsyncBudget(units: Int64(settings.parallel + 1))
        state = Mutex(State(assembly: PartAssembly(schedule: settings.schedule), window: UploadWindow(parallel: settings.parallel)))
        progress = UploadProgress(statistics: settings.statistics)  // status:
        settings.statistics.opened(self)  // status:
    }

    /// The multipart upload's ID (a new one after `reinitiate`).
    public var uploadID: UploadID { identity.withLock { $0.uploadID } }

    /// The options the upload was initiated with.
    public var options: ObjectOptions { identity.withLock { $0.options } }

    /// Bytes written so far (the size `stat` shows while the file is being written).
    public var size: Int64 { publishedSize.load(ordering: .acquiring) }

    /// The object's ETag once the upload completed (or the empty object was written).
    public var etag: ETag? {
        if case .success(let etag)? = outcome.current { return etag }
        return state.withLock { $0.emptyObjectETag }
    }

    /// True until the outcome is decided.
    public var isUploading: Bool { outcome.current == nil }

    /// Whether another writer may not start an upload of its own: while the outcome is open
    /// (an open for writing, or a create that finds the name, joins this one by composition),
    /// unless the file is stored empty (a `touch` whose release has not arrived yet must not
    /// block the next writer).
    public var excludesOtherWriters: Bool { isUploading && !isStoredEmpty }

    /// Whether the file is still empty and its zero-byte object, which a flush wrote, is stored:
    /// the upload stays open only for a write that may still come, and its descriptors' release
    /// ends it. Readers, renames and truncates take the file for that stored empty object, not
    /// for one being streamed (`touch f; mv f g` right after the close).
    public var isStoredEmpty: Bool {
        isUploading && state.withLock { $0.assembly.size == 0 && $0.emptyObjectETag != nil && $0.queued.isEmpty }
    }

    // MARK: Writes

    /// Takes a write the kernel delivered. Called synchronously while `bytes` is valid; copies
    /// what fits into part buffers and queues the rest. Never blocks. Writes may arrive on several
    /// threads at once and in any order: the state lock orders them, and one that finds its
    /// offset already sealed by another, or the upload completing, is handed back
    /// (`continuesByComposition`), never refused.
    func admit(at offset: Int64, bytes: UnsafeRawBufferPointer, writer: WriterIdentity, process: ProcessID = .unknown) -> SessionAdmission {
        var effects: [Effect] = []
        let admission = state.withLock { state -> SessionAdmission in
            switch state.phase {
            case .open where offset < state.assembly.unsentStart: return .continuesByComposition
            case .completing, .done:
                if case .failure? = outcome.current { break }
                return .continuesByComposition
            case .open, .failing: break
            }
            state.writeRequests += 1
            state.largestWrite = max(state.largestWrite, bytes.count)
            guard case .open = state.phase else { return .admitted(.refused(refusal(state))) }
            if state.reservation == nil && !bytes.isEmpty {
                guard let reservation = settings.pool.reserveWriter(partSize: settings.schedule.initialPartSize) else {
                    let failure = budgetRefusal()
                    if !state.refusedForBudget {
                        state.refusedForBudget = true
                        effects.append(.log(failure))
                    }
                    return .admitted(.refused(failure))
                }
                state.reservation = reservation
            }
            state.lastWriter = writer
            if process == opener && process != .unknown && writer != .unknown { state.openerOwner = writer }
            var consumed = 0
            if state.queued.isEmpty {
                switch apply(&state, offset: offset, bytes: bytes) {
                case .done: return .admitted(.accepted(bytes.count))
                case .failed(let error):
                    fail(&state, error, &effects)
                    return .admitted(.refused(error))
                case .needsBuffer(let count): consumed = count
                }
            }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[consumed...])
            let copy = AlignedMemory(byteCount: rest.count)
            copy.rawBytes.copyMemory(from: rest)
            let pending = PendingWrite(withdrawal: { [weak self] in self?.withdraw($0) })
            let start = offset + Int64(consumed)
            // Arrival order, except that a write ending before a queued one that has not started
            // goes ahead of it (two callback threads can deliver a file's writes out of order).
            let position = state.queued.firstIndex { $0.consumed == 0 && $0.offset >= start + Int64(rest.count) } ?? state.queued.endIndex
            state.queued.insert(QueuedWrite(offset: start, data: copy, reportedCount: bytes.count, pending: pending), at: position)
            if state.drainer == nil { startDrainer(&state) }
            return .admitted(.waiting(pending))
        }
        run(effects)
        return admission
    }

    /// Copies `bytes` (written at `offset`) into part buffers; full parts go to the window.
    private func apply(_ state: inout State, offset: Int64, bytes: UnsafeRawBufferPointer) -> PartAssembly.Applied {
        var sealed: [SealedPart] = []
        let applied = state.assembly.apply(offset: offset, bytes: bytes, buffer: takeBufferIfFree, sealed: { sealed.append($0) })
        publishedSize.store(state.assembly.size, ordering: .releasing)
        for part in sealed { state.window.add(part, launch: launchUpload) }
        return applied
    }

    /// A part buffer of `size` bytes when this file may hold one more and the pool has one free.
    private func takeBufferIfFree(size: Int64) -> AlignedMemory? {
        guard heldBuffers.tryAcquire(1) else { return nil }
        guard let buffer = settings.pool.tryTake(size: size) else {
            heldBuffers.release(1)
            return nil
        }
        return buffer
    }

    /// Seals the last part (completion); an empty filling buffer goes back.
    private func sealLast(_ state: inout State, _ effects: inout [Effect]) {
        if let part = state.assembly.seal() { state.window.add(part, launch: launchUpload) }
        if let unused = state.assembly.dropFilling() { effects.append(.giveBack(unused)) }
    }

    private func startDrainer(_ state: inout State) {
        state.drainer = Task { await self.drain() }
    }

    /// An interrupted write leaves the queue (see `PendingWrite.cancel`); when nothing is queued
    /// any more, the drainer stops waiting for a buffer.
    private func withdraw(_ pending: PendingWrite) {
        var effects: [Effect] = []
        let withdrawn = state.withLock { state -> (count: Int, applied: Int)? in
            guard let index = state.queued.firstIndex(where: { $0.pending === pending }) else { return nil }
            let write = state.queued.remove(at: index)
            let applied = write.reportedCount - (write.data.rawBytes.count - write.consumed)
            if state.queued.isEmpty, let drainer = state.drainer { effects.append(.stopDrainer(drainer)) }
            effects += idleEffects(&state)
            return (write.reportedCount, applied)
        }
        guard let withdrawn else { return }
        let interrupted = FileSystemError(.interrupted, "write of \(withdrawn.count) bytes to \(key) interrupted while waiting for a part buffer")
        logger.info("\(interrupted.reason)\(withdrawn.applied > 0 ? "; \(withdrawn.applied) bytes were already taken (a short write)" : "")")
        effects.append(.answer(pending, withdrawn.applied > 0 ? .success(withdrawn.applied) : .failure(interrupted)))
        run(effects)
    }

    /// Applies queued writes in order, waiting for buffers as needed. One per session at a time;
    /// cancelled (`withdraw`) when nothing is queued any more.
    private func drain() async {
        while true {
            var effects: [Effect] = []
            let wanted = state.withLock { state -> Int64? in
                while !state.queued.isEmpty {
                    guard case .open = state.phase else {
                        refuseQueued(&state, refusal(state), &effects)
                        break
                    }
                    var head = state.queued[0]
                    let rest = UnsafeRawBufferPointer(rebasing: head.data.rawBytes[head.consumed...])
                    switch apply(&state, offset: head.offset, bytes: rest) {
                    case .done:
                        state.queued.removeFirst()
                        effects.append(.answer(head.pending, .success(head.reportedCount)))
                    case .needsBuffer(let count):
                        head.consumed += count
                        head.offset += Int64(count)
                        state.queued[0] = head
                        // apply() only asks when a part must start.
                        return state.assembly.wantedBufferSize!
                    case .failed(let error):
                        fail(&state, error, &effects)
                    }
                }
                state.drainer = nil
                effects += idleEffects(&state)
                return nil
            }
            run(effects)
            guard let wanted else { return }
            guard await heldBuffers.acquireUnlessCancelled(1) else { return drainerStopped() }
            guard let buffer = await settings.pool.takeUnlessCancelled(size: wanted) else {
                heldBuffers.release(1)
                return drainerStopped()
            }
            // A buffer that came after every queued write was withdrawn goes straight back.
            let unused = state.withLock { state -> AlignedMemory? in
                guard case .open = state.phase, !state.queued.isEmpty, state.assembly.start(in: buffer, ofSize: wanted) else { return buffer }
                return nil
            }
            if let unused {
                settings.pool.giveBack(unused)
                heldBuffers.release(1)
            }
        }
    }

    /// The drainer was cancelled while waiting: a write queued since then gets a new one.
    private func drainerStopped() {
        var effects: [Effect] = []
        state.withLock { state in
            state.drainer = nil
            if !state.queued.isEmpty { startDrainer(&state) }
            effects += idleEffects(&state)
        }
        run(effects)
    }

    // MARK: Parts

    /// Creates the task that uploads `part` (called by the window under the state lock).
    private func launchUpload(_ part: SealedPart) -> Task<Void, Never> {
        Task { await self.upload(part) }
    }

    /// One part's task: its proof computed here, outside the state lock, then sent; the store's
    /// receipt is final (its verdict is not checked again here).
    private func upload(_ part: SealedPart) async {
        let result: Result<PartReceipt, FileSystemError>
        let bytes = UnsafeRawBufferPointer(rebasing: part.buffer.rawBytes[0..<part.size])
        let proof = settings.integrity.proof(of: bytes)
        progress.partStarted()  // status:
        do {
            result = .success(try await store.uploadPart(key, uploadID: uploadID, number: part.number,
                                                         body: MemoryRegion(owner: part.buffer, range: 0..<part.size), integrity: proof,
                                                         customerKey: customerKey))
        } catch {
            result = .failure(FileSystemError(doing: "uploading part \(part.number) (\(part.size) bytes)", error))
        }
        progress.partEnded(bytes: (try? result.get()).map { _ in part.size })  // status:
        settings.pool.giveBack(part.buffer)
        heldBuffers.release(1)
        var effects: [Effect] = []
        state.withLock { state in
            state.window.finished(part.number, receipt: try? result.get())
            if case .failure(let error) = result { fail(&state, error, &effects) }
            state.window.fill(launch: launchUpload)
            settle(&state, &effects)
            effects += idleEffects(&state)
        }
        run(effects)
    }

    /// Starts completion or abort once nothing is in flight.
    private func settle(_ state: inout State, _ effects: inout [Effect]) {
        guard state.window.isIdle, !state.finalizing, !state.window.paused else { return }
        switch state.phase {
        case .completing:
            state.finalizing = true
            effects.append(.complete)
        case .failing(let error):
            state.finalizing = true
            effects.append(.abort(error))
        case .open, .done:
            break
        }
    }

    /// Records the first failure: no more writes, buffers back, queued writes refused, abort when
    /// nothing is in flight.
    private func fail(_ state: inout State, _ error: FileSystemError, _ effects: inout [Effect]) {
        switch state.phase {
        case .open, .completing: break
        case .failing, .done: return
        }
        state.phase = .failing(error)
        logger.log(level: state.deliberate ? .notice : .error, "upload of \(key) (upload ID \(uploadID)) ended: \(error.reason)")
        if let filling = state.assembly.dropFilling() { effects.append(.giveBack(filling)) }
        // Parts in flight are cancelled; sealed parts not yet sending are dropped, their buffers go back.
        for sealed in state.window.cancel() { effects.append(.giveBack(sealed)) }
        refuseQueued(&state, error, &effects)
        settle(&state, &effects)
    }

    private func refuseQueued(_ state: inout State, _ error: FileSystemError, _ effects: inout [Effect]) {
        for queued in state.queued { effects.append(.answer(queued.pending, .failure(error))) }
        state.queued = []
    }

    /// ENOMEM for a first write while the files being written hold every part buffer of the
    /// budget (logged once per file); the file stays open and empty, a later write may find room.
    private func budgetRefusal() -> FileSystemError {
        let pool = settings.pool
        let partSize = settings.schedule.initialPartSize
        let (writers, bytes) = pool.reservations
        return FileSystemError(.outOfMemory, "cannot write \(key): the \(writers) files being written hold \(bytes) bytes of memory_budget=\(pool.capacity) (one part_size=\(partSize) each); close one, or raise memory_budget= or lower part_size=")
    }

    private func refusal(_ state: State) -> FileSystemError {
        switch state.phase {
        case .failing(let error): return error
        case .done:
            if case .failure(let error)? = outcome.current { return error }
            return FileSystemError(.io, "write after the object was completed by an earlier close()")
        case .open, .completing:
            return FileSystemError(.io, "write after the object was completed by an earlier close()")
        }
    }

    private func idleEffects(_ state: inout State) -> [Effect] {
        guard isIdle(state), !state.idleWaiters.isEmpty else { return [] }
        defer { state.idleWaiters = [] }
        return [.resumeIdle(state.idleWaiters)]
    }

    /// Nothing queued, waiting for a slot or in flight, and no re-initiation under way.
    private func isIdle(_ state: State) -> Bool { state.window.isIdle && state.queued.isEmpty && !state.window.paused }

    /// Suspends until nothing is queued, waiting for a slot or in flight.
    private func waitUntilIdle() async {
        await withCheckedContinuation { continuation in
            let idle = state.withLock { state -> Bool in
                if isIdle(state) { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    // MARK: Completion

    private func complete() async {
        let (parts, size) = state.withLock { ($0.window.acceptedParts, $0.assembly.size) }
        let numbersContiguous = parts.enumerated().allSatisfy { $0.element.number.rawValue == $0.offset + 1 }
        let partBytes = parts.reduce(Int64(0)) { $0 + $1.size }
        guard numbersContiguous, partBytes == size else {
            await abort(because: FileSystemError(.io, "parts \(parts.map(\.number.rawValue)) hold \(partBytes) bytes, \(size) were written"))
            return
        }
        // The empty object's PUT of an earlier flush (nothing was written then) lands first:
        // the completion replaces it, never the other way round.
        _ = await awaitEmptyObjectWrite()
        let stored: StoredObject
        do {
            stored = try await store.completeUpload(key, uploadID: uploadID, parts: parts)
        } catch {
            let failure = FileSystemError(doing: "completing \(parts.count) parts", error)
            guard let etag = await abort(because: failure, unlessCompletedWith: parts) else { return }
            stored = StoredObject(etag: etag, versionID: nil, checksum: nil, verdict: .etagMatchesMD5)
        }
        logger.info("\(key): complete, \(size) bytes in \(parts.count) parts, ETag \(stored.etag), integrity \(settings.integrity): \(stored.verdict)\(stored.checksum.map { " \($0)" } ?? "")")
        do {
            try await afterCompletion(self, stored.etag)
        } catch {
            finish(.failure(error))
            return
        }
        finish(.success(stored.etag))
    }

    /// Aborts the upload and fails the file with `reason`. After a failed complete (`parts`), an
    /// abort answering NoSuchUpload may mean that the server completed the upload after all (the
    /// complete's answer was lost when no retry was left): when the object's ETag is the parts'
    /// composite ETag, that is returned and nothing is finished (the caller completes).
    @discardableResult
    private func abort(because reason: FileSystemError, unlessCompletedWith parts: [PartReceipt]? = nil) async -> ETag? {
        do {
            try await store.abortUpload(key, uploadID: uploadID)
            settings.statistics.aborted()  // status:
            logger.log(level: state.withLock { $0.deliberate } ? .notice : .error, "aborted upload of \(key) (upload ID \(uploadID)): \(reason.reason)")
        } catch {
            let code = (error as? OBSClientError)?.serviceCode ?? (error as? ServiceError)?.code
            if code == .noSuchUpload, let parts, let etag = await completedObject(of: parts) {
                logger.warning("\(key): the complete's answer was lost (\(reason.reason)), but the server completed upload \(uploadID): ETag \(etag)")
                return etag
            }
            logger.error("upload of \(key) (upload ID \(uploadID)) failed (\(reason.reason)) and aborting it failed too: \(error)")
        }
        finish(.failure(reason))
        return nil
    }

    /// The ETag of the object under the key when it is the composite of these parts (their ETags
    /// being MD5s), else nil.
    private func completedObject(of parts: [PartReceipt]) async -> ETag? {
        let md5s = parts.compactMap(\.etag.md5Bytes)
        guard md5s.count == parts.count, !parts.isEmpty else { return nil }
        let expected = ETag.composite(partMD5s: md5s)
        guard let attributes = try? await store.headObject(key), attributes.etag == expected else { return nil }
        return expected
    }

    private func finish(_ result: Result<ETag, FileSystemError>) {
        let (requests, largest) = state.withLock { state -> (Int, Int) in
            state.phase = .done
            return (state.writeRequests, state.largestWrite)
        }
        logger.info("\(key): \(requests) write requests, largest \(largest) bytes")
        decide(result)
    }

    /// Fulfils the outcome and gives the file's part-buffer reservation back.
    private func decide(_ result: Result<ETag, FileSystemError>) {
        settings.statistics.finished(self, succeeded: (try? result.get()) != nil)  // status:
        state.withLock { $0.reservation.take() }?.release()
        outcome.fulfill(result)
    }

    // MARK: Attribute changes (rules: ObjectAttributeTiming.swift, wiring: FileSystem+Attributes.swift)

    /// Where the upload stands for an attribute change: before the first part is sealed, after,
    /// or done (completed, failed, or the empty object already written).
    public var attributeStage: UploadStage {
        guard isUploading else { return .complete }
        return state.withLock { state in
            guard case .open = state.phase, state.emptyObjectETag == nil else { return .complete }
            return state.assembly.sealedAnyPart ? .partsSent : .beforeFirstPart
        }
    }

    /// Aborts the upload and initiates it again with `options`, keeping the bytes buffered for
    /// the first part. Returns false, changing nothing, when a part was sealed (or the file closed)
    /// meanwhile: the caller then treats the change as one after the first part.
    public func reinitiate(with options: ObjectOptions) async throws(FileSystemError) -> Bool {
        let started = state.withLock { state -> Bool in
            guard case .open = state.phase, !state.assembly.sealedAnyPart, state.emptyObjectETag == nil, !state.updatesTaken,
                  !state.window.paused else { return false }
            state.window.paused = true
            return true
        }
        guard started else { return false }
        let newID: UploadID?
        var failure: FileSystemError?
        do {
            newID = try await store.initiateUpload(key, options: options)
        } catch {
            newID = nil
            failure = FileSystemError(doing: "initiating the upload of \(key) again with changed attributes", error)
        }
        var effects: [Effect] = []
        let (replaced, unused) = state.withLock { state -> (UploadID?, UploadID?) in
            state.window.paused = false
            // A failure or unmount meanwhile aborts the current upload: the new one is unused.
            let stillWanted = switch state.phase {
            case .open, .completing: true
            case .failing, .done: false
            }
            var replaced: UploadID?
            var unused = newID
            if let newID, stillWanted {
                state.pendingOptions = nil  // the new initiation carries everything intended so far
                replaced = identity.withLock { identity in
                    defer { identity = (newID, options) }
                    return identity.uploadID
                }
                unused = nil
            }
            state.window.fill(launch: launchUpload)
            settle(&state, &effects)
            effects += idleEffects(&state)
            return (replaced, unused)
        }
        run(effects)
        for obsolete in [replaced, unused].compactMap({ $0 }) {
            do {
                try await store.abortUpload(key, uploadID: obsolete)
            } catch {
                logger.warning("\(key): aborting the replaced upload \(obsolete) failed: \(error)")
            }
        }
        if let failure {
            logger.error("\(failure)")
            throw failure
        }
        if let replaced { logger.info("\(key): upload \(replaced) replaced by \(uploadID) (attributes changed before the first part)") }
        return replaced != nil
    }

    /// Records `request`, bringing the object to `options`, to be sent after completion, before
    /// `close()` returns; without a request, `options` only become the file's intended options
    /// (half of a paired value, waiting for the other half). False when completion has already
    /// taken the recorded changes (apply the change to the object once `finished` returns).
    public func recordAfterCompletion(_ request: ObjectUpdateRequest?, options: ObjectOptions) -> Bool {
        state.withLock { state in
            guard !state.updatesTaken else { return false }
            if let request, !state.pendingUpdates.contains(request) { state.pendingUpdates.append(request) }
            state.pendingOptions = options
            return true
        }
    }

    /// The options the object will have (the initiated ones plus the recorded changes).
    public var intendedOptions: ObjectOptions { state.withLock { $0.pendingOptions } ?? options }

    /// Hands the recorded changes to `afterCompletion` or to the empty object's PUT; later
    /// changes are not recorded.
    public func takePendingUpdates() -> (requests: [ObjectUpdateRequest], options: ObjectOptions?) {
        state.withLock { state in
            state.updatesTaken = true
            return (state.pendingUpdates, state.pendingOptions)
        }
    }

    /// Waits until the upload's outcome is decided.
    public func finished() async -> Result<ETag, FileSystemError> { await outcome.value }

    /// Waits for the empty object's PUT when one is under way (the flush of the still-empty
    /// file, by a forked child's exit for instance); false when none is. The upload's outcome
    /// waits for the release, which the program changing the file may not send for long.
    public func awaitEmptyObjectWrite() async -> Bool {
        guard let write = state.withLock({ $0.emptyObjectWrite }) else { return false }
        await write.value
        return true
    }

    // MARK: Unlinked while open

    /// An unlink of the file: from now on nothing completes the upload (a flush passes, and
    /// `completeAsItStands` answers nil), until `liftCompletionBar`. False when a completion is
    /// already under way or done: the unlink waits for its outcome and deletes what it stored.
    public func barCompletion() -> Bool {
        state.withLock { state in
            guard case .open = state.phase, outcome.current == nil else { return false }
            state.completionBarred = true
            return true
        }
    }

    /// The unlink failed, or its name was taken over by descriptors that read the file back
    /// (a temporary file): the upload may be completed again.
    public func liftCompletionBar() {
        state.withLock { $0.completionBarred = false }
    }

    // MARK: Close

    /// A `flush` (one per close() of any descriptor of the file). Completes the upload when it
    /// comes from the process that opened the file (or a thread sharing its descriptors); when the
    /// opener is unknown, when `writer` wrote last; after the opener's own flush (it closed the
    /// file before a process that inherited it wrote), when no other process holds the file
    /// open for writing (`heldByOthers`, asked only then). See mount-options/write-semantics.md.
    public func flush(writer: WriterIdentity, process: ProcessID = .unknown,
                      heldByOthers: @Sendable () -> Bool = { true }) async -> Result<Void, FileSystemError> {
        enum Step { case outcome, empty, noop, waitIdle, askHolders }
        var lastHolder: Bool?
        while true {
            var effects: [Effect] = []
            let step = state.withLock { state -> Step in
                switch state.phase {
                case .done, .failing, .completing: return .outcome
                case .open: break
                }
                if state.completionBarred { return .noop }
                if !state.queued.isEmpty || state.window.paused { return .waitIdle }
                let fromOpener = isCompletingFlush(state, writer: writer, process: process)
                if fromOpener { state.openerFlushed = true }
                if state.assembly.size == 0 { return .empty }
                if !fromOpener {
                    guard state.openerFlushed else { return .noop }
                    guard let lastHolder else { return .askHolders }
                    guard lastHolder else { return .noop }
                }
                state.phase = .completing
                sealLast(&state, &effects)
                settle(&state, &effects)
                return .outcome
            }
            run(effects)
            switch step {
            case .outcome: return await outcome.value.map { _ in () }
            case .noop: return .success(())
            case .waitIdle: await waitUntilIdle()
            case .empty: return await writeEmptyObject().map { _ in () }
            case .askHolders: lastHolder = !heldByOthers()  // /proc reads: outside the lock
            }
        }
    }

    /// Whether a flush from the opener came (`State.openerFlushed`).
    public var openerHasFlushed: Bool { state.withLock { $0.openerFlushed } }

    /// The close rule: the opener's flush completes; other processes' flushes pass.
    private func isCompletingFlush(_ state: State, writer: WriterIdentity, process: ProcessID) -> Bool {
        if opener != .unknown && process != .unknown {
            return process == opener || (writer != .unknown && writer == state.openerOwner)
        }
        if let last = state.lastWriter, last != writer, last != .unknown, writer != .unknown { return false }
        return true
    }

    /// `fsync`: waits until every full part is on the store (the tail stays in memory until close).
    public func fsync() async -> Result<Void, FileSystemError> {
        await waitUntilIdle()
        let phase = state.withLock { $0.phase }
        switch phase {
        case .failing(let error): return .failure(error)
        // `finish` marks the phase done just before it fulfils the outcome: wait for it.
        case .done: return await outcome.value.map { _ in () }
        case .open, .completing:
            if case .failure(let error)? = outcome.current { return .failure(error) }
            return .success(())
        }
    }

    /// The kernel released the file (after the last close). Finishes what no flush finished:
    /// an empty file gets its zero-byte object and the multipart upload is aborted; a file the
    /// last writer never flushed is completed (its failure can only be logged).
    public func release() async -> Result<ETag, FileSystemError> {
        if let outcome = await finish(unflushed: "released without a flush from the last writer; completing now", level: .warning) { return outcome }
        return await discard()
    }

    /// Ends the upload as it stands, after a flush (which leaves an empty file's upload open for
    /// a writer to come): the file goes on as changes to the object (Compose/). An empty file
    /// gets its zero-byte object and the multipart upload is aborted. Nil, and nothing done,
    /// while an unlink bars the completion (`barCompletion`).
    public func completeAsItStands() async -> Result<ETag, FileSystemError>? {
        await finish(unflushed: "completed as it stands without a flush", level: .info)  // its callers say why
    }

    private func finish(unflushed: String, level: Logger.Level) async -> Result<ETag, FileSystemError>? {
        enum Step { case barred, empty, outcome }
        var effects: [Effect] = []
        let step = state.withLock { state -> Step in
            guard case .open = state.phase else { return .outcome }
            if state.completionBarred { return .barred }
            if state.assembly.size == 0 {
                state.phase = .done
                return .empty
            }
            logger.log(level: level, "\(key): \(unflushed)")
            state.phase = .completing
            sealLast(&state, &effects)
            settle(&state, &effects)
            return .outcome
        }
        run(effects)
        switch step {
        case .barred: return nil
        case .outcome: break
        case .empty:
            // A close() that already reported the empty object's failure stands: nothing is written now.
            let reported = state.withLock { $0.emptyObjectFailure }
            let result: Result<ETag, FileSystemError>
            if let reported { result = .failure(reported) } else { result = await writeEmptyObject() }
            do {
                try await store.abortUpload(key, uploadID: uploadID)
            } catch {
                logger.warning("\(key): the empty object is written, but aborting the unused upload \(uploadID) failed: \(error)")
            }
            decide(result)
        }
        return await outcome.value
    }

    /// The mount is going away: an upload still open is aborted, one completing finishes.
    public func shutdown() async -> Result<ETag, FileSystemError> {
        await end(FileSystemError(.io, "unmounted while the file was open for writing"))
    }

    /// The file was unlinked while open: ends like `shutdown`. Whoever still awaits the outcome
    /// (a second writer's open joining the file) finds the name gone: ENOENT.
    public func discard() async -> Result<ETag, FileSystemError> {
        await end(FileSystemError(.noEntry, "unlinked while open for writing"))
    }

    private func end(_ failure: FileSystemError) async -> Result<ETag, FileSystemError> {
        var effects: [Effect] = []
        let wasEmpty = state.withLock { state -> Bool in
            guard case .open = state.phase else { return false }
            state.deliberate = true
            if state.assembly.size == 0 && state.queued.isEmpty {
                state.phase = .done
                return true
            }
            fail(&state, failure, &effects)
            return false
        }
        run(effects)
        if wasEmpty {
            await abort(because: FileSystemError(failure.errno, "\(failure.reason) (empty)"))
        }
        return await outcome.value
    }

    private func writeEmptyObject() async -> Result<ETag, FileSystemError> {
        if let etag = state.withLock({ $0.emptyObjectETag }) { return .success(etag) }
        let written = OneShot<Void>()
        state.withLock { $0.emptyObjectWrite = written }
        // The one request carries the changes recorded for after completion (owner, mode, times).
        let intended = takePendingUpdates().options ?? options
        defer {
            state.withLock { state in if state.emptyObjectWrite === written { state.emptyObjectWrite = nil } }
            written.fulfill(())
        }
        do {
            let etag = try await store.putEmptyObject(key, options: intended)
            state.withLock { state in
                state.emptyObjectETag = etag
                state.emptyObjectFailure = nil
            }
            return .success(etag)
        } catch {
            let failure = FileSystemError(doing: "writing the empty object", error)
            logger.error("\(key): \(failure.reason)")
            state.withLock { state in
                state.emptyObjectFailure = failure
                state.updatesTaken = false  // nothing took them: recorded again for the next try
            }
            return .failure(failure)
        }
    }

    private func run(_ effects: [Effect]) {
        for effect in effects {
            switch effect {
            case .complete: Task { await self.complete() }
            case .abort(let reason): Task { await self.abort(because: reason) }
            case .stopDrainer(let drainer): drainer.cancel()
            case .giveBack(let buffer):
                settings.pool.giveBack(buffer)
                heldBuffers.release(1)
            case .answer(let pending, let result): pending.result.fulfill(result)
            case .resumeIdle(let waiters): for waiter in waiters { waiter.resume() }
            case .log(let failure): logger.error("\(failure.reason)")
            }
        }
    }
}
