// Upload sessions: one file opened for writing is one multipart upload.
//
// Design note (the hot path)
// - create/open initiates the upload (FileSystem does that) and builds a session.
// - `admit` is called synchronously by the FUSE write callback while the kernel's buffer is
//   valid. It copies the bytes straight into the part buffer being filled and feeds the part's
//   MD5 as they arrive. A full part is sealed and its upload starts at once (Content-MD5, ETag
//   checked), at most `parallel` per file; the buffer goes back to the pool when the store has
//   answered. Nothing blocks: when no buffer is free (the mount's pool is used up, or this file
//   already holds `parallel + 1` buffers) the rest of the write is copied aside and queued, and
//   one drain task per session awaits a buffer and applies queued writes in arrival order. The
//   write's reply waits for that: backpressure without a blocked thread and with memory bounded
//   by the pool plus the writes the kernel has outstanding.
// - Non-sequential writes are accepted while they fall in the part not yet sent (an overwrite
//   makes the part's MD5 be recomputed from the buffer when it is sealed; a forward gap is
//   zero-filled). A write before that part fails with ESPIPE and aborts the upload.
// - Completion, failure and the close rules are in mount-options/write-semantics.md. In short:
//   the flush from the writer that wrote last completes (waits for parts in flight, sends the
//   last part, checks sizes and the composite ETag); any failure aborts the upload once no part
//   is in flight, and every later flush/close reports the failure.
import Logging
import OBSHashing
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
}

/// A write that waits for a part buffer.
public final class PendingWrite: Sendable {
    fileprivate let result = OneShot<Result<Int, FileSystemError>>()
    /// The byte count written, once the bytes are in part buffers, or why it failed.
    public var outcome: Result<Int, FileSystemError> { get async { await result.value } }
}

/// What a session needs from its mount.
public struct UploadSettings: Sendable {
    public var schedule: PartSizeSchedule
    /// Part uploads in flight per file.
    public var parallel: Int
    public var pool: PartBufferPool

    public init(schedule: PartSizeSchedule, parallel: Int, pool: PartBufferPool) {
        precondition(parallel >= 1)
        self.schedule = schedule
        self.parallel = parallel
        self.pool = pool
    }
}

/// The running MD5 of the part being filled.
private final class PartDigest: @unchecked Sendable {
    // @unchecked: used only while holding the owning session's state lock.
    private let digest = StreamingDigest(.md5)
    func update(_ bytes: UnsafeRawBufferPointer) { digest.update(bytes) }
    func finalize() -> [UInt8] { digest.finalize() }
}

/// One multipart upload fed by writes to one open file.
public final class UploadSession: Sendable {
    public let key: ObjectKey
    /// The upload and the options it was initiated with; replaced together when an attribute
    /// changes before the first part is sent (`reinitiate`). Never locked while taking `state`.
    private let identity: Mutex<(uploadID: UploadID, options: ObjectOptions)>
    /// Runs after CompleteMultipartUpload succeeded, before the outcome is decided: applies the
    /// attribute changes recorded while parts were being sent (FileSystem+Attributes.swift).
    private let afterCompletion: @Sendable (UploadSession) async throws(FileSystemError) -> Void
    private let store: any ObjectStore
    private let settings: UploadSettings
    private let logger: Logger
    /// Buffers this file may hold (`parallel + 1`: one filling, the others uploading).
    private let heldBuffers: AsyncBudget
    /// Decided once: the object's ETag, or why the upload failed.
    private let outcome = OneShot<Result<ETag, FileSystemError>>()
    /// Everything that changes as writes arrive and parts finish.
    private let state: Mutex<State>

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

    private struct FillingPart {
        let number: PartNumber
        /// File offset of the part's first byte.
        let start: Int64
        let buffer: AlignedMemory
        let digest = PartDigest()
        var filled = 0
        /// Bytes `0..<hashed` have been fed to `digest`.
        var hashed = 0
        /// An overwrite changed hashed bytes: hash the whole part when sealing.
        var rehash = false
        var capacity: Int { buffer.rawBytes.count }
    }

    private struct SealedPart {
        let number: PartNumber
        let buffer: AlignedMemory
        let size: Int
        let md5: [UInt8]
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
        /// Highest end offset written: the file's size.
        var size: Int64 = 0
        var filling: FillingPart?
        var nextPartNumber: PartNumber? = .first
        var nextPartStart: Int64 = 0
        /// Sealed parts waiting for an upload slot.
        var sealedWaiting: [SealedPart] = []
        var inFlight = 0
        var uploaded: [PartNumber: (part: UploadedPart, md5: [UInt8])] = [:]
        var queued: [QueuedWrite] = []
        var drainerRunning = false
        /// Tasks waiting until nothing is queued, sealed or in flight.
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        var finalizing = false
        var lastWriter: WriterIdentity?
        /// ETag of the zero-byte object a flush of the still-empty file created.
        var emptyObjectETag: ETag?
        var writeRequests = 0
        var largestWrite = 0
        /// A re-initiation is under way: sealed parts wait, completion and abort wait.
        var reinitiating = false
        /// Attribute changes to send once the upload is complete (see `recordAfterCompletion`).
        var pendingUpdates: [ObjectUpdateRequest] = []
        /// The options those updates bring the object to.
        var pendingOptions: ObjectOptions?
        /// `afterCompletion` has taken the pending updates; later changes apply to the object.
        var updatesTaken = false
    }

    private enum Effect {
        case upload(SealedPart)
        case complete
        case abort(FileSystemError)
        case drain
        case giveBack(AlignedMemory)
        case answer(PendingWrite, Result<Int, FileSystemError>)
        case resumeIdle([CheckedContinuation<Void, Never>])
    }

    /// The SSE-C key every part carries, when the object is encrypted with one.
    private var customerKey: CustomerKey? {
        if case .customer(let key)? = options.encryption { return key }
        return nil
    }

    /// Whether the store's ETags are MD5s of the bytes (not with SSE-KMS or SSE-C).
    private var etagIsMD5: Bool {
        switch options.encryption {
        case .kms?, .customer?: false
        case .obs?, nil: true
        }
    }

    public init(key: ObjectKey, uploadID: UploadID, options: ObjectOptions, store: any ObjectStore, settings: UploadSettings, logger: Logger,
                afterCompletion: @escaping @Sendable (UploadSession) async throws(FileSystemError) -> Void = { _ in }) {
        self.key = key
        identity = Mutex((uploadID, options))
        self.afterCompletion = afterCompletion
        self.store = store
        self.settings = settings
        self.logger = logger
        heldBuffers = AsyncBudget(units: Int64(settings.parallel + 1))
        state = Mutex(State())
    }

    /// The multipart upload's ID (a new one after `reinitiate`).
    public var uploadID: UploadID { identity.withLock { $0.uploadID } }

    /// The options the upload was initiated with.
    public var options: ObjectOptions { identity.withLock { $0.options } }

    /// Bytes written so far (the size `stat` shows while the file is being written).
    public var size: Int64 { state.withLock { $0.size } }

    /// The object's ETag once the upload completed (or the empty object was written).
    public var etag: ETag? {
        if case .success(let etag)? = outcome.current { return etag }
        return state.withLock { $0.emptyObjectETag }
    }

    /// True until the outcome is decided.
    public var isUploading: Bool { outcome.current == nil }

    /// Whether another open for writing must get EBUSY: while the outcome is open, unless the
    /// file is still empty and its zero-byte object is written (a `touch` whose release has not
    /// arrived yet must not block the next writer).
    public var excludesOtherWriters: Bool {
        guard isUploading else { return false }
        return state.withLock { !($0.size == 0 && $0.emptyObjectETag != nil && $0.queued.isEmpty) }
    }

    // MARK: Writes

    /// Takes a write the kernel delivered. Called synchronously while `bytes` is valid; copies
    /// what fits into part buffers and queues the rest. Never blocks.
    public func admit(at offset: Int64, bytes: UnsafeRawBufferPointer, writer: WriterIdentity) -> WriteAdmission {
        var effects: [Effect] = []
        let admission = state.withLock { state -> WriteAdmission in
            state.writeRequests += 1
            state.largestWrite = max(state.largestWrite, bytes.count)
            guard case .open = state.phase else { return .refused(refusal(state)) }
            state.lastWriter = writer
            var consumed = 0
            if state.queued.isEmpty {
                switch apply(&state, offset: offset, bytes: bytes, effects: &effects) {
                case .done: return .accepted(bytes.count)
                case .failed(let error):
                    fail(&state, error, &effects)
                    return .refused(error)
                case .needsBuffer(let count): consumed = count
                }
            }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[consumed...])
            let copy = AlignedMemory(byteCount: rest.count)
            copy.rawBytes.copyMemory(from: rest)
            let pending = PendingWrite()
            state.queued.append(QueuedWrite(offset: offset + Int64(consumed), data: copy, reportedCount: bytes.count, pending: pending))
            if !state.drainerRunning {
                state.drainerRunning = true
                effects.append(.drain)
            }
            return .waiting(pending)
        }
        run(effects)
        return admission
    }

    private enum ApplyResult {
        case done
        /// `count` bytes were applied; the rest needs a part buffer.
        case needsBuffer(Int)
        case failed(FileSystemError)
    }

    /// Copies `bytes` (written at `offset`) into part buffers, sealing full parts.
    private func apply(_ state: inout State, offset: Int64, bytes: UnsafeRawBufferPointer, effects: inout [Effect]) -> ApplyResult {
        let unsentStart = state.filling?.start ?? state.nextPartStart
        guard offset >= unsentStart else {
            return .failed(FileSystemError(.illegalSeek, "write at offset \(offset), but the bytes before \(unsentStart) are already uploaded (random writes are not supported)"))
        }
        var position = offset
        var index = 0
        while index < bytes.count || state.size < position {
            if state.filling == nil {
                guard let number = state.nextPartNumber else {
                    return .failed(FileSystemError(.fileTooBig, "the file would exceed this mount's largest object, \(settings.schedule.reach) bytes in \(PartNumber.range.upperBound) parts"))
                }
                let partSize = settings.schedule.size(of: number)
                guard heldBuffers.tryAcquire(1) else { return .needsBuffer(index) }
                guard let buffer = settings.pool.tryTake(size: partSize) else {
                    heldBuffers.release(1)
                    return .needsBuffer(index)
                }
                state.filling = FillingPart(number: number, start: state.nextPartStart, buffer: buffer)
            }
            // Invariant: state.size == filling.start + filling.filled.
            var part = state.filling!
            let local = Int(position - part.start)
            if part.filled < local {
                // A forward gap: zeros up to the write, or to the end of this part.
                let gapEnd = min(local, part.capacity)
                UnsafeMutableRawBufferPointer(rebasing: part.buffer.rawBytes[part.filled..<gapEnd]).initializeMemory(as: UInt8.self, repeating: 0)
                part.filled = gapEnd
            } else {
                let count = min(bytes.count - index, part.capacity - local)
                UnsafeMutableRawBufferPointer(rebasing: part.buffer.rawBytes[local..<(local + count)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[index..<(index + count)]))
                if local < part.hashed { part.rehash = true }
                part.filled = max(part.filled, local + count)
                index += count
                position += Int64(count)
            }
            if !part.rehash, part.hashed < part.filled {
                part.digest.update(UnsafeRawBufferPointer(rebasing: part.buffer.rawBytes[part.hashed..<part.filled]))
                part.hashed = part.filled
            }
            state.size = part.start + Int64(part.filled)
            state.filling = part
            if part.filled == part.capacity { seal(&state, &effects) }
        }
        return .done
    }

    /// Moves the filling part (if it holds bytes) to upload.
    private func seal(_ state: inout State, _ effects: inout [Effect]) {
        guard let part = state.filling else { return }
        state.filling = nil
        guard part.filled > 0 else {
            effects.append(.giveBack(part.buffer))
            return
        }
        let md5 = part.rehash ? Hash.md5(UnsafeRawBufferPointer(rebasing: part.buffer.rawBytes[0..<part.filled])) : part.digest.finalize()
        state.nextPartStart = part.start + Int64(part.filled)
        state.nextPartNumber = part.number.next
        let sealed = SealedPart(number: part.number, buffer: part.buffer, size: part.filled, md5: md5)
        if state.inFlight < settings.parallel && !state.reinitiating {
            state.inFlight += 1
            effects.append(.upload(sealed))
        } else {
            state.sealedWaiting.append(sealed)
        }
    }

    /// Applies queued writes in order, waiting for buffers as needed. One per session at a time.
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
                    switch apply(&state, offset: head.offset, bytes: rest, effects: &effects) {
                    case .done:
                        state.queued.removeFirst()
                        effects.append(.answer(head.pending, .success(head.reportedCount)))
                    case .needsBuffer(let count):
                        head.consumed += count
                        head.offset += Int64(count)
                        state.queued[0] = head
                        // apply() only asks when nextPartNumber exists.
                        return settings.schedule.size(of: state.nextPartNumber!)
                    case .failed(let error):
                        fail(&state, error, &effects)
                    }
                }
                state.drainerRunning = false
                effects += idleEffects(&state)
                return nil
            }
            run(effects)
            guard let wanted else { return }
            await heldBuffers.acquire(1)
            let buffer = await settings.pool.take(size: wanted)
            let unused = state.withLock { state -> AlignedMemory? in
                guard case .open = state.phase, state.filling == nil, let number = state.nextPartNumber,
                      settings.schedule.size(of: number) == wanted else { return buffer }
                state.filling = FillingPart(number: number, start: state.nextPartStart, buffer: buffer)
                return nil
            }
            if let unused {
                settings.pool.giveBack(unused)
                heldBuffers.release(1)
            }
        }
    }

    // MARK: Parts

    private func upload(_ part: SealedPart) async {
        let result: Result<UploadedPart, FileSystemError>
        let expected = ETag(md5: part.md5)
        do {
            let etag = try await store.uploadPart(key, uploadID: uploadID, number: part.number,
                                                  body: MemoryRegion(owner: part.buffer, range: 0..<part.size), contentMD5: part.md5,
                                                  customerKey: customerKey)
            // With SSE-KMS or SSE-C the ETag is not the MD5 of the plaintext (the client has
            // checked what it can); the composite check at completion is skipped likewise.
            if etag.value.lowercased() == expected.value || !etagIsMD5 {
                result = .success(UploadedPart(number: part.number, etag: expected, size: Int64(part.size)))
            } else {
                result = .failure(FileSystemError(.io, "part \(part.number): the store answered ETag \(etag), the MD5 of the bytes sent is \(expected)"))
            }
        } catch {
            result = .failure(FileSystemError(doing: "uploading part \(part.number) (\(part.size) bytes)", error))
        }
        settings.pool.giveBack(part.buffer)
        heldBuffers.release(1)
        var effects: [Effect] = []
        state.withLock { state in
            state.inFlight -= 1
            switch result {
            case .success(let uploaded): state.uploaded[part.number] = (uploaded, part.md5)
            case .failure(let error): fail(&state, error, &effects)
            }
            if !state.sealedWaiting.isEmpty {
                state.inFlight += 1
                effects.append(.upload(state.sealedWaiting.removeFirst()))
            }
            settle(&state, &effects)
            effects += idleEffects(&state)
        }
        run(effects)
    }

    /// Starts completion or abort once nothing is in flight.
    private func settle(_ state: inout State, _ effects: inout [Effect]) {
        guard state.inFlight == 0, state.sealedWaiting.isEmpty, !state.finalizing, !state.reinitiating else { return }
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
        logger.error("upload of \(key) (upload ID \(uploadID)) failed: \(error.reason)")
        if let filling = state.filling {
            state.filling = nil
            effects.append(.giveBack(filling.buffer))
        }
        // Sealed parts not yet sending are dropped; their buffers go back.
        for sealed in state.sealedWaiting { effects.append(.giveBack(sealed.buffer)) }
        state.sealedWaiting = []
        refuseQueued(&state, error, &effects)
        settle(&state, &effects)
    }

    private func refuseQueued(_ state: inout State, _ error: FileSystemError, _ effects: inout [Effect]) {
        for queued in state.queued { effects.append(.answer(queued.pending, .failure(error))) }
        state.queued = []
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
        guard state.inFlight == 0, state.sealedWaiting.isEmpty, state.queued.isEmpty, !state.reinitiating, !state.idleWaiters.isEmpty else { return [] }
        defer { state.idleWaiters = [] }
        return [.resumeIdle(state.idleWaiters)]
    }

    /// Suspends until nothing is queued, waiting for a slot or in flight.
    private func waitUntilIdle() async {
        await withCheckedContinuation { continuation in
            let idle = state.withLock { state -> Bool in
                if state.inFlight == 0, state.sealedWaiting.isEmpty, state.queued.isEmpty, !state.reinitiating { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    // MARK: Completion

    private func complete() async {
        let (parts, md5s, size) = state.withLock { state in
            let sorted = state.uploaded.values.sorted { $0.part.number < $1.part.number }
            return (sorted.map(\.part), sorted.map(\.md5), state.size)
        }
        let numbersContiguous = parts.enumerated().allSatisfy { $0.element.number.rawValue == $0.offset + 1 }
        let partBytes = parts.reduce(Int64(0)) { $0 + $1.size }
        guard numbersContiguous, partBytes == size else {
            await abort(because: FileSystemError(.io, "parts \(parts.map(\.number.rawValue)) hold \(partBytes) bytes, \(size) were written"))
            return
        }
        let expected = ETag.composite(partMD5s: md5s)
        let answered: ETag
        do {
            answered = try await store.completeUpload(key, uploadID: uploadID, parts: parts)
        } catch {
            await abort(because: FileSystemError(doing: "completing \(parts.count) parts", error))
            return
        }
        guard answered.value.lowercased() == expected.value || !etagIsMD5 else {
            finish(.failure(FileSystemError(.io, "completed, but the store's ETag \(answered) differs from the composite ETag \(expected) of the parts sent")))
            return
        }
        logger.info("\(key): complete, \(size) bytes in \(parts.count) parts, ETag \(answered)")
        do {
            try await afterCompletion(self)
        } catch {
            finish(.failure(error))
            return
        }
        finish(.success(etagIsMD5 ? expected : answered))
    }

    private func abort(because reason: FileSystemError) async {
        do {
            try await store.abortUpload(key, uploadID: uploadID)
            logger.error("aborted upload of \(key) (upload ID \(uploadID)): \(reason.reason)")
        } catch {
            logger.error("upload of \(key) (upload ID \(uploadID)) failed (\(reason.reason)) and aborting it failed too: \(error)")
        }
        finish(.failure(reason))
    }

    private func finish(_ result: Result<ETag, FileSystemError>) {
        let (requests, largest) = state.withLock { state -> (Int, Int) in
            state.phase = .done
            return (state.writeRequests, state.largestWrite)
        }
        logger.info("\(key): \(requests) write requests, largest \(largest) bytes")
        outcome.fulfill(result)
    }

    // MARK: Attribute changes (rules: ObjectAttributeTiming.swift, wiring: FileSystem+Attributes.swift)

    /// Where the upload stands for an attribute change: before the first part is sealed, after,
    /// or done (completed, failed, or the empty object already written).
    public var attributeStage: UploadStage {
        guard isUploading else { return .complete }
        return state.withLock { state in
            guard case .open = state.phase, state.emptyObjectETag == nil else { return .complete }
            return state.nextPartNumber == .first ? .beforeFirstPart : .partsSent
        }
    }

    /// Aborts the upload and initiates it again with `options`, keeping the bytes buffered for
    /// the first part. Returns false, changing nothing, when a part was sealed (or the file closed)
    /// meanwhile: the caller then treats the change as one after the first part.
    public func reinitiate(with options: ObjectOptions) async throws(FileSystemError) -> Bool {
        let started = state.withLock { state -> Bool in
            guard case .open = state.phase, state.nextPartNumber == .first, state.emptyObjectETag == nil, !state.reinitiating else { return false }
            state.reinitiating = true
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
            state.reinitiating = false
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
            while state.inFlight < settings.parallel, !state.sealedWaiting.isEmpty {
                state.inFlight += 1
                effects.append(.upload(state.sealedWaiting.removeFirst()))
            }
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

    /// Hands the recorded changes to `afterCompletion` (once); later changes are not recorded.
    public func takePendingUpdates() -> (requests: [ObjectUpdateRequest], options: ObjectOptions?) {
        state.withLock { state in
            state.updatesTaken = true
            return (state.pendingUpdates, state.pendingOptions)
        }
    }

    /// Waits until the upload's outcome is decided.
    public func finished() async -> Result<ETag, FileSystemError> { await outcome.value }

    // MARK: Close

    /// A `flush` (one per close() of any descriptor of the file). Completes the upload when `writer`
    /// wrote last; see mount-options/write-semantics.md.
    public func flush(writer: WriterIdentity) async -> Result<Void, FileSystemError> {
        enum Step { case outcome, empty, noop, waitIdle }
        while true {
            var effects: [Effect] = []
            let step = state.withLock { state -> Step in
                switch state.phase {
                case .done, .failing, .completing: return .outcome
                case .open: break
                }
                if !state.queued.isEmpty || state.reinitiating { return .waitIdle }
                if state.size == 0 { return .empty }
                if let last = state.lastWriter, last != writer, last != .unknown, writer != .unknown { return .noop }
                state.phase = .completing
                seal(&state, &effects)
                settle(&state, &effects)
                return .outcome
            }
            run(effects)
            switch step {
            case .outcome: return await outcome.value.map { _ in () }
            case .noop: return .success(())
            case .waitIdle: await waitUntilIdle()
            case .empty: return await writeEmptyObject().map { _ in () }
            }
        }
    }

    /// `fsync`: waits until every full part is on the store (the tail stays in memory until close).
    public func fsync() async -> Result<Void, FileSystemError> {
        await waitUntilIdle()
        return state.withLock { state in
            if case .failing(let error) = state.phase { return .failure(error) }
            if case .failure(let error)? = outcome.current { return .failure(error) }
            return .success(())
        }
    }

    /// The kernel released the file (after the last close). Finishes what no flush finished:
    /// an empty file gets its zero-byte object and the multipart upload is aborted; a file the
    /// last writer never flushed is completed (its failure can only be logged).
    public func release() async -> Result<ETag, FileSystemError> {
        var effects: [Effect] = []
        let emptyFile = state.withLock { state -> Bool? in
            guard case .open = state.phase else { return nil }
            if state.size == 0 {
                state.phase = .done
                return true
            }
            logger.warning("\(key): released without a flush from the last writer; completing now")
            state.phase = .completing
            seal(&state, &effects)
            settle(&state, &effects)
            return false
        }
        run(effects)
        if emptyFile == true {
            let result = await writeEmptyObject()
            do {
                try await store.abortUpload(key, uploadID: uploadID)
            } catch {
                logger.warning("\(key): the empty object is written, but aborting the unused upload \(uploadID) failed: \(error)")
            }
            outcome.fulfill(result)
        }
        return await outcome.value
    }

    /// The file is going away (unmount, or unlinked while open): an upload still open is
    /// aborted, one completing finishes.
    public func shutdown(because reason: String = "unmounted while the file was open for writing") async -> Result<ETag, FileSystemError> {
        var effects: [Effect] = []
        let wasEmpty = state.withLock { state -> Bool in
            guard case .open = state.phase else { return false }
            if state.size == 0 && state.queued.isEmpty {
                state.phase = .done
                return true
            }
            fail(&state, FileSystemError(.io, reason), &effects)
            return false
        }
        run(effects)
        if wasEmpty {
            await abort(because: FileSystemError(.io, "\(reason) (empty)"))
        }
        return await outcome.value
    }

    private func writeEmptyObject() async -> Result<ETag, FileSystemError> {
        if let etag = state.withLock({ $0.emptyObjectETag }) { return .success(etag) }
        do {
            let etag = try await store.putEmptyObject(key, options: options)
            state.withLock { $0.emptyObjectETag = etag }
            return .success(etag)
        } catch {
            let failure = FileSystemError(doing: "writing the empty object", error)
            logger.error("\(key): \(failure.reason)")
            return .failure(failure)
        }
    }

    private func run(_ effects: [Effect]) {
        for effect in effects {
            switch effect {
            case .upload(let part): Task { await self.upload(part) }
            case .complete: Task { await self.complete() }
            case .abort(let reason): Task { await self.abort(because: reason) }
            case .drain: Task { await self.drain() }
            case .giveBack(let buffer):
                settings.pool.giveBack(buffer)
                heldBuffers.release(1)
            case .answer(let pending, let result): pending.result.fulfill(result)
            case .resumeIdle(let waiters): for waiter in waiters { waiter.resume() }
            }
        }
    }
}
