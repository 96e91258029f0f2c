// Runs a CompositionPlan as one multipart upload: copies of base ranges pinned to the base's
// ETag, uploads assembled from changed bytes, zeros and pinned ranged reads of the base, at most
// `parallel` parts in flight. Any failure aborts the upload, so the object keeps its previous
// version until the new one is complete; completion replaces it in one step.
//
// Memory: an uploaded part is assembled in a buffer of the mount's pool, waited for at most
// `poolPatience`. The files being written may hold the whole budget in parts they are still
// filling, which only their programs' closes end; a program that closes this file first (one
// thread: append to a file while new files are open) would wait for ever. After that wait the
// part gets a buffer of its own, beyond memory_budget=, freed once it is sent (a warning says so).
import Logging
import OBSClient
import OBSProtocol

/// What a composition sent, for the log line and the tests.
public struct CompositionResult: Sendable, Equatable {
    /// The new object's ETag.
    public let etag: ETag
    /// The parts completed, in order.
    public let parts: [PartReceipt]
}

/// Composes new objects from a base and changed bytes.
public struct CompositionExecutor: Sendable {
    /// Changed bytes between two base pieces of a part up to this size are read from the base
    /// too (and then overwritten): one GET instead of two.
    static let baseGapReadThrough: Int64 = 64 << 10

    let store: any ObjectComposer
    /// Memory for uploaded parts: the mount's part buffers.
    let pool: PartBufferPool
    let parallel: Int
    /// What uploaded parts carry (the mount's `checksum=`, as the store declares it on
    /// initiation); copied parts carry what the store computes.
    let integrity: UploadIntegrity
    let logger: Logger
    /// How long a part waits for a pool buffer before it takes one beyond the budget.
    let poolPatience: Duration

    public init(store: any ObjectComposer, pool: PartBufferPool, parallel: Int, integrity: UploadIntegrity = .md5, logger: Logger,
                poolPatience: Duration = .seconds(5)) {
        precondition(parallel > 0, "at least one part in flight")
        self.store = store
        self.pool = pool
        self.parallel = parallel
        self.integrity = integrity
        self.logger = logger
        self.poolPatience = poolPatience
    }

    /// Writes `key` as `plan` says: base ranges from `base` at `baseETag` (a changed base fails
    /// with `ObjectChangedError`), changed ranges from `changes`, with `options` (their SSE-C key
    /// also reads and copies the base). An empty plan writes an empty object.
    public func compose(_ plan: CompositionPlan, into key: ObjectKey, base: ObjectKey, baseETag: ETag?, changes: any ChangedBytes,
                        options: ObjectOptions) async throws -> CompositionResult {
        guard !plan.parts.isEmpty else {
            return CompositionResult(etag: try await store.putEmptyObject(key, options: options), parts: [])
        }
        let uploadID = try await store.initiateUpload(key, options: options)
        let parts: [PartReceipt]
        let etag: ETag
        do {
            parts = try await send(plan, key: key, uploadID: uploadID, base: base, baseETag: baseETag, changes: changes, options: options)
            etag = try await store.completeUpload(key, uploadID: uploadID, parts: parts).etag
        } catch {
            do {
                try await store.abortUpload(key, uploadID: uploadID)
            } catch let abortError {
                logger.warning("\(key): composing failed and the abort of upload \(uploadID) failed too (\(abortError)); the store's lifecycle rules remove it")
            }
            throw error
        }
        // The composite ETag of the part ETags the store answered (copied parts included), when
        // they are MD5s: a completed object that differs from them was assembled wrongly. (The
        // client checks it only when it verified every part's MD5 itself, which copies are not.)
        let md5s = parts.compactMap(\.etag.md5Bytes)
        if options.partETagsAreMD5s, md5s.count == parts.count {
            let expected = ETag.composite(partMD5s: md5s)
            guard etag.value.lowercased() == expected.value else {
                throw FileSystemError(.io, "\(key): composed, but the store's ETag \(etag) differs from the composite ETag \(expected) of its parts")
            }
        }
        return CompositionResult(etag: etag, parts: parts)
    }

    /// Sends every part, `parallel` at a time; the first failure cancels the others.
    private func send(_ plan: CompositionPlan, key: ObjectKey, uploadID: UploadID, base: ObjectKey, baseETag: ETag?,
                      changes: any ChangedBytes, options: ObjectOptions) async throws -> [PartReceipt] {
        try await withThrowingTaskGroup(of: PartReceipt.self) { group in
            var done: [PartReceipt] = []
            for (index, part) in plan.parts.enumerated() {
                if index >= parallel, let finished = try await group.next() { done.append(finished) }
                let number = PartNumber(index + 1)!
                group.addTask {
                    switch part.content {
                    case .copy:
                        let etag = try await store.copyPart(key, uploadID: uploadID, number: number, source: base, range: part.range,
                                                            sourceETag: baseETag, customerKey: options.customerKey)
                        // The store copied bytes the client never saw: it vouches for them.
                        return PartReceipt(number: number, etag: etag, size: Int64(part.range.count), verdict: .acceptedByService)
                    case .upload(let pieces):
                        return try await upload(pieces, of: part.range, number: number, key: key, uploadID: uploadID,
                                                base: base, baseETag: baseETag, changes: changes, options: options)
                    }
                }
            }
            for try await finished in group { done.append(finished) }
            return done.sorted { $0.number < $1.number }
        }
    }

    /// Assembles one part in a pool buffer (changed bytes, zeros, pinned reads of the base) and
    /// uploads it with its proof (the client decides what the answer proved).
    private func upload(_ pieces: [PartPiece], of range: Range<Int64>, number: PartNumber, key: ObjectKey, uploadID: UploadID,
                        base: ObjectKey, baseETag: ETag?, changes: any ChangedBytes, options: ObjectOptions) async throws -> PartReceipt {
        let (buffer, pooled) = await partBuffer(size: Int64(range.count), for: key, number: number)
        defer { if pooled { pool.giveBack(buffer) } }
        let body = MemoryRegion(owner: buffer, range: 0..<range.count)
        func region(_ bytes: Range<Int64>) -> MemoryRegion {
            MemoryRegion(owner: buffer, range: Int(bytes.lowerBound - range.lowerBound)..<Int(bytes.upperBound - range.lowerBound))
        }
        // Base pieces less than `baseGapReadThrough` apart come in one GET (the changed pieces
        // between are laid over it): small writes scattered across a file (`stress-ng --seek`)
        // made thousands of tiny GETs per part.
        for (span, _) in coalesced(pieces.filter { $0.source == .base }.map(\.range), maximumGap: Self.baseGapReadThrough) {
            let count = try await store.readRange(base, range: span, ifMatch: baseETag, customerKey: options.customerKey, into: region(span))
            guard count == span.count else {
                throw FileSystemError(.io, "\(base): GET of bytes \(span.lowerBound)-\(span.upperBound - 1) returned \(count) bytes")
            }
        }
        for piece in pieces {
            switch piece.source {
            case .changed: changes.copyBytes(piece.range, into: region(piece.range).mutableBytes)
            case .zeros: region(piece.range).mutableBytes.initializeMemory(as: UInt8.self, repeating: 0)
            case .base: break  // read above
            }
        }
        return try await store.uploadPart(key, uploadID: uploadID, number: number, body: body, integrity: integrity.proof(of: body.bytes),
                                          customerKey: options.customerKey)
    }
}

extension CompositionExecutor {
    /// A buffer of `size` bytes for part `number`: the pool's, waited for at most `poolPatience`
    /// (`pooled`), else one of its own (see the note at the top).
    private func partBuffer(size: Int64, for key: ObjectKey, number: PartNumber) async -> (buffer: AlignedMemory, pooled: Bool) {
        if let free = pool.tryTake(size: size) { return (free, true) }  // the common case: no tasks to race
        let pool = pool
        let patience = poolPatience
        let taken = await withTaskGroup(of: AlignedMemory?.self) { group -> AlignedMemory? in
            group.addTask { await pool.takeUnlessCancelled(size: size) }
            group.addTask {
                try? await Task.sleep(for: patience)
                return nil
            }
            var taken: AlignedMemory?
            // The first to end stops the other; a buffer granted as the wait ends is still taken.
            for await result in group {
                if let result { taken = result }
                group.cancelAll()
            }
            return taken
        }
        if let taken { return (taken, true) }
        logger.warning("\(key): part \(number) of a composition waited \(patience) for memory_budget=, held by files being written; it takes \(size) bytes beyond it")
        return (AlignedMemory(byteCount: Int(size)), false)
    }
}

extension ObjectOptions {
    /// The SSE-C key of an object encrypted with one.
    var customerKey: CustomerKey? {
        if case .customer(let key)? = encryption { return key }
        return nil
    }

    /// Whether the store answers MD5s of the bytes as part ETags (not with SSE-KMS or SSE-C).
    var partETagsAreMD5s: Bool {
        switch encryption {
        case .kms?, .customer?: false
        case .obs?, nil: true
        }
    }
}
