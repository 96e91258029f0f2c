// Test doubles of ObjectStore: an in-memory store that enforces the multipart rules OBS enforces,
// and a wrapper that injects failures and holds requests.
import OBSClient
import OBSHashing
import OBSProtocol
import Synchronization
@testable import ObsFS

/// An object store in memory with OBS's multipart rules: Content-MD5 and CRC checksums checked
/// (BadDigest), parts at least 100 KiB but the last (EntityTooSmall), ascending part numbers
/// (InvalidPartOrder), ETags that match (InvalidPart), composite ETag on completion, the object's
/// checksum checked against its bytes. Receipts carry the verdict a client would decide. With
/// `defaultKMS` it behaves like a bucket with default SSE-KMS: ETags are not MD5s.
final class InMemoryStore: ObjectStore {
    let defaultKMS: Bool

    /// False: like SeaweedFS, user metadata written on `d/` markers is dropped.
    let keepsMarkerMetadata: Bool

    init(defaultKMS: Bool = false, isFileSystemBucket: Bool = false, keepsMarkerMetadata: Bool = true) {
        self.defaultKMS = defaultKMS
        self.isFileSystemBucket = isFileSystemBucket
        self.keepsMarkerMetadata = keepsMarkerMetadata
    }

    struct Upload {
        let key: ObjectKey
        var parts: [PartNumber: [UInt8]] = [:]
    }

    struct Contents {
        var objects: [ObjectKey: [UInt8]] = [:]
        var etags: [ObjectKey: ETag] = [:]
        /// Metadata and Content-Type each object was written with.
        var written: [ObjectKey: ObjectOptions] = [:]
        var uploads: [UploadID: Upload] = [:]
        /// The options each key's latest upload was initiated with.
        var initiatedOptions: [ObjectKey: ObjectOptions] = [:]
        var nextUpload = 1
        var completeCalls = 0
        var abortCalls = 0
        var partUploads = 0
        /// What each part upload carried, in arrival order.
        var partIntegrity: [PartIntegrity] = []
        /// The checksum each completion sent, by key.
        var objectChecksums: [ObjectKey: Checksum] = [:]
        var listCalls = 0
        var headCalls = 0
        var copyCalls = 0
        var renameCalls = 0
        var modifyCalls = 0
    }

    /// Everything stored; tests read it directly.
    let contents = Mutex(Contents())
    /// Serves the parallel file system calls (FileSystemBucketStore) when true.
    let isFileSystemBucket: Bool

    func serviceError(_ code: ObsErrorCode, _ message: String) -> ServiceError {
        ServiceError(status: code.httpStatus, code: code, message: message, requestID: "REQ-\(code)")
    }

    func checkBucket() async throws {}

    func headObject(_ key: ObjectKey) async throws -> ObjectAttributes? {
        contents.withLock { contents in
            contents.headCalls += 1
            guard let bytes = contents.objects[key] else { return nil }
            let written = contents.written[key]
            return ObjectAttributes(size: Int64(bytes.count), etag: contents.etags[key], lastModified: nil,
                                    metadata: written?.metadata ?? [:], contentType: written?.contentType)
        }
    }

    func listObjects(prefix: String, delimiter: String?, marker: String?, maxKeys: Int) async throws -> ObjectListing {
        contents.withLock { contents in
            contents.listCalls += 1
            // Keys and common prefixes in key order, after the marker, up to maxKeys of them; by
            // bytes, as stores compare keys (a `/` before a combining mark is one Character).
            var items: [(name: String, isPrefix: Bool)] = []
            var prefixes: Set<ExactName> = []
            for key in contents.objects.keys.sorted() where key.rawValue.hasUTF8Prefix(prefix) {
                let rest = key.rawValue.utf8.dropFirst(prefix.utf8.count)
                if let delimiter, let slash = rest.firstIndex(of: delimiter.utf8.first!) {
                    let common = prefix + String(decoding: rest[...slash], as: UTF8.self)
                    if prefixes.insert(ExactName(common)).inserted { items.append((common, true)) }
                } else {
                    items.append((key.rawValue, false))
                }
            }
            if let marker { items = items.filter { ObjectKey(marker) < ObjectKey($0.name) } }
            let page = items.prefix(maxKeys)
            let truncated = items.count > maxKeys
            return ObjectListing(
                objects: page.filter { !$0.isPrefix }.map { item in
                    ObjectListing.Entry(key: ObjectKey(item.name), attributes: ObjectAttributes(size: Int64(contents.objects[ObjectKey(item.name)]!.count), etag: contents.etags[ObjectKey(item.name)], lastModified: nil))
                },
                commonPrefixes: page.filter(\.isPrefix).map(\.name),
                nextMarker: truncated ? page.last?.name : nil)
        }
    }

    func initiateUpload(_ key: ObjectKey, options: ObjectOptions) async throws -> UploadID {
        contents.withLock { contents in
            let id = UploadID("UPLOAD\(contents.nextUpload)")
            contents.nextUpload += 1
            contents.uploads[id] = Upload(key: key)
            contents.initiatedOptions[key] = options
            return id
        }
    }

    /// The ETag of stored bytes: their MD5, or (default SSE-KMS) something else.
    func etag(of bytes: [UInt8]) -> ETag { ETag(md5: Hash.md5(defaultKMS ? bytes + [0x6b] : bytes)) }

    func uploadPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, body: MemoryRegion, integrity: PartIntegrity,
                    customerKey: CustomerKey?) async throws -> PartReceipt {
        let bytes = Array(body.bytes)
        var checksum: Checksum?
        let verdict: IntegrityVerdict
        switch integrity {
        case .md5(let md5):
            guard md5 == Hash.md5(bytes) else { throw serviceError(.badDigest, "Content-MD5 does not match") }
            verdict = defaultKMS ? .acceptedByService : .etagMatchesMD5
        case .checksum(let sent):
            guard bytes.withUnsafeBytes({ Checksum(sent.algorithm, of: $0) }) == sent else { throw serviceError(.badDigest, "checksum does not match") }
            checksum = sent
            verdict = .checksumEchoed
        case .none:
            verdict = .unchecked
        }
        return try contents.withLock { contents in
            guard contents.uploads[uploadID] != nil else { throw serviceError(.noSuchUpload, "no upload \(uploadID)") }
            contents.uploads[uploadID]!.parts[number] = bytes
            contents.partUploads += 1
            contents.partIntegrity.append(integrity)
            return PartReceipt(number: number, etag: etag(of: bytes), size: Int64(bytes.count), checksum: checksum, verdict: verdict)
        }
    }

    func completeUpload(_ key: ObjectKey, uploadID: UploadID, parts: [PartReceipt]) async throws -> StoredObject {
        try contents.withLock { contents in
            contents.completeCalls += 1
            guard let upload = contents.uploads[uploadID] else { throw serviceError(.noSuchUpload, "no upload \(uploadID)") }
            guard zip(parts, parts.dropFirst()).allSatisfy({ $0.number < $1.number }) else { throw serviceError(.invalidPartOrder, "order") }
            var object: [UInt8] = []
            var md5s: [[UInt8]] = []
            for (index, part) in parts.enumerated() {
                guard let bytes = upload.parts[part.number], etag(of: bytes) == part.etag else {
                    throw serviceError(.invalidPart, "part \(part.number)")
                }
                if index < parts.count - 1, bytes.count < ProtocolLimits.minimumPartSize { throw serviceError(.entityTooSmall, "part \(part.number)") }
                object += bytes
                md5s.append(Hash.md5(bytes))
            }
            let checksums = parts.compactMap { part in part.checksum.map { (checksum: $0, size: part.size) } }
            let checksum = checksums.count == parts.count ? Checksum.combining(checksums) : nil
            if let checksum {
                guard object.withUnsafeBytes({ Checksum(checksum.algorithm, of: $0) }) == checksum else { throw serviceError(.badDigest, "object checksum") }
                contents.objectChecksums[key] = checksum
            }
            let etag = defaultKMS ? etag(of: object) : ETag.composite(partMD5s: md5s)
            contents.objects[key] = object
            contents.etags[key] = etag
            contents.written[key] = contents.initiatedOptions[key]
            contents.uploads[uploadID] = nil
            let verdict: IntegrityVerdict = checksum != nil ? .checksumEchoed : parts.allSatisfy { $0.verdict == .etagMatchesMD5 } ? .etagMatchesMD5 : .unchecked
            return StoredObject(etag: etag, checksum: checksum, verdict: verdict)
        }
    }

    func abortUpload(_ key: ObjectKey, uploadID: UploadID) async throws {
        try contents.withLock { contents in
            contents.abortCalls += 1
            guard contents.uploads.removeValue(forKey: uploadID) != nil else { throw serviceError(.noSuchUpload, "no upload \(uploadID)") }
        }
    }

    func putEmptyObject(_ key: ObjectKey, options: ObjectOptions) async throws -> ETag {
        contents.withLock { contents in
            contents.objects[key] = []
            let etag = ETag(md5: Hash.md5([UInt8]()))
            contents.etags[key] = etag
            contents.written[key] = options
            return etag
        }
    }

    func putObject(_ key: ObjectKey, bytes: [UInt8], options: ObjectOptions) async throws -> ETag {
        var options = options
        if !keepsMarkerMetadata && key.rawValue.hasSuffix("/") { options.metadata = [:] }
        return contents.withLock { contents in
            contents.objects[key] = bytes
            let etag = ETag(md5: Hash.md5(bytes))
            contents.etags[key] = etag
            contents.written[key] = options
            return etag
        }
    }

    func objectBytes(_ key: ObjectKey) async throws -> [UInt8]? { object(key.rawValue) }

    func copyObject(_ source: ObjectKey, to destination: ObjectKey, options: ObjectOptions) async throws -> ETag {
        try contents.withLock { contents in
            guard let bytes = contents.objects[source] else { throw serviceError(.noSuchKey, "no \(source)") }
            contents.copyCalls += 1
            contents.objects[destination] = bytes
            // A copy is a new single-part object, as on S3 and OBS: a multipart source's ETag
            // (`…-N`) becomes the MD5 of the bytes.
            let copied = etag(of: bytes)
            contents.etags[destination] = copied
            contents.written[destination] = options
            return copied
        }
    }

    func copyPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, source: ObjectKey, range: ClosedRange<Int64>) async throws -> ETag {
        try contents.withLock { contents in
            guard let bytes = contents.objects[source], range.upperBound < bytes.count else { throw serviceError(.invalidRange, "range") }
            guard contents.uploads[uploadID] != nil else { throw serviceError(.noSuchUpload, "no upload \(uploadID)") }
            let part = Array(bytes[Int(range.lowerBound)...Int(range.upperBound)])
            contents.uploads[uploadID]!.parts[number] = part
            contents.copyCalls += 1
            return ETag(md5: Hash.md5(part))
        }
    }

    func deleteObject(_ key: ObjectKey) async throws {
        _ = contents.withLock { $0.objects.removeValue(forKey: key) }
    }

    /// Stores an object as another client would (tests).
    func seed(_ key: String, _ bytes: [UInt8] = [], metadata: [String: String] = [:], contentType: String? = nil) {
        contents.withLock { contents in
            contents.objects[ObjectKey(key)] = bytes
            contents.etags[ObjectKey(key)] = ETag(md5: Hash.md5(bytes))
            var options = ObjectOptions()
            options.metadata = metadata
            options.contentType = contentType
            contents.written[ObjectKey(key)] = options
        }
    }

    // Test accessors.
    func object(_ key: String) -> [UInt8]? { contents.withLock { $0.objects[ObjectKey(key)] } }
    var uploadsInProgress: Int { contents.withLock { $0.uploads.count } }
    var completeCalls: Int { contents.withLock { $0.completeCalls } }
}

/// Wraps a store: fails chosen requests and can hold part uploads until released.
final class FaultInjectingStore: ObjectStore {
    /// `headAnswer`: a HEAD's answer, taken from the store before it waits (`hold(.headAnswer)`).
    enum Operation: Sendable { case initiate, uploadPart, complete, abort, head, headAnswer, list, putEmpty, put, copy, delete, read, modify }

    struct Rule: Sendable {
        var operation: Operation
        /// Fails the Nth matching request (1-based) or, when nil, every one.
        var nth: Int?
        var error: ServiceError
    }

    private struct State {
        var rules: [Rule] = []
        var counts: [Operation: Int] = [:]
        /// Operations whose requests wait until released, and the requests waiting.
        var holding: Set<Operation> = []
        /// Completes are carried out, and then answered with an error.
        var losingCompleteAnswers = false
        var held: [Operation: [CheckedContinuation<Void, Never>]] = [:]
        var partsInFlight = 0
        var maxPartsInFlight = 0
    }

    let inner: InMemoryStore
    /// Rules, counters and held requests.
    private let state = Mutex(State())

    init(_ inner: InMemoryStore = InMemoryStore()) { self.inner = inner }

    func fail(_ operation: Operation, nth: Int? = nil, code: ObsErrorCode = .internalError, status: Int? = nil) {
        let error = ServiceError(status: status ?? code.httpStatus, code: code, message: "injected", requestID: "INJECTED-\(code)")
        state.withLock { $0.rules.append(Rule(operation: operation, nth: nth, error: error)) }
    }

    /// Completes are carried out, but their answers are lost (an error is thrown instead).
    func loseCompleteAnswers() { state.withLock { $0.losingCompleteAnswers = true } }

    /// Requests of `operation` wait (asynchronously) until `release`.
    func hold(_ operation: Operation) { _ = state.withLock { $0.holding.insert(operation) } }

    func release(_ operation: Operation) {
        let held = state.withLock { state in
            state.holding.remove(operation)
            defer { state.held[operation] = [] }
            return state.held[operation] ?? []
        }
        for continuation in held { continuation.resume() }
    }

    func heldCount(_ operation: Operation) -> Int { state.withLock { $0.held[operation]?.count ?? 0 } }

    /// Part uploads wait (asynchronously) until `releaseParts`.
    func holdParts() { hold(.uploadPart) }
    func releaseParts() { release(.uploadPart) }
    var heldPartCount: Int { heldCount(.uploadPart) }

    fileprivate func waitIfHeld(_ operation: Operation) async {
        await withCheckedContinuation { continuation in
            let hold = state.withLock { state -> Bool in
                guard state.holding.contains(operation) else { return false }
                state.held[operation, default: []].append(continuation)
                return true
            }
            if !hold { continuation.resume() }
        }
    }
    var maxPartsInFlight: Int { state.withLock { $0.maxPartsInFlight } }

    private func check(_ operation: Operation) throws {
        let error = state.withLock { state -> ServiceError? in
            state.counts[operation, default: 0] += 1
            let count = state.counts[operation]!
            return state.rules.first { $0.operation == operation && ($0.nth == nil || $0.nth == count) }?.error
        }
        if let error { throw error }
    }

    func checkBucket() async throws { try await inner.checkBucket() }

    func headObject(_ key: ObjectKey) async throws -> ObjectAttributes? {
        await waitIfHeld(.head)
        try check(.head)
        let answer = try await inner.headObject(key)
        await waitIfHeld(.headAnswer)
        return answer
    }

    func listObjects(prefix: String, delimiter: String?, marker: String?, maxKeys: Int) async throws -> ObjectListing {
        try check(.list)
        return try await inner.listObjects(prefix: prefix, delimiter: delimiter, marker: marker, maxKeys: maxKeys)
    }

    func initiateUpload(_ key: ObjectKey, options: ObjectOptions) async throws -> UploadID {
        await waitIfHeld(.initiate)
        try check(.initiate)
        return try await inner.initiateUpload(key, options: options)
    }

    func uploadPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, body: MemoryRegion, integrity: PartIntegrity,
                    customerKey: CustomerKey?) async throws -> PartReceipt {
        state.withLock { state in
            state.partsInFlight += 1
            state.maxPartsInFlight = max(state.maxPartsInFlight, state.partsInFlight)
        }
        defer { state.withLock { $0.partsInFlight -= 1 } }
        await waitIfHeld(.uploadPart)
        try check(.uploadPart)
        return try await inner.uploadPart(key, uploadID: uploadID, number: number, body: body, integrity: integrity, customerKey: customerKey)
    }

    func completeUpload(_ key: ObjectKey, uploadID: UploadID, parts: [PartReceipt]) async throws -> StoredObject {
        try check(.complete)
        let stored = try await inner.completeUpload(key, uploadID: uploadID, parts: parts)
        await waitIfHeld(.complete)  // a held complete has stored the object; its answer waits
        if state.withLock({ $0.losingCompleteAnswers }) {
            throw ServiceError(status: 500, code: .internalError, message: "injected: the answer was lost", requestID: "LOST")
        }
        return stored
    }

    func abortUpload(_ key: ObjectKey, uploadID: UploadID) async throws {
        try check(.abort)
        try await inner.abortUpload(key, uploadID: uploadID)
    }

    func putEmptyObject(_ key: ObjectKey, options: ObjectOptions) async throws -> ETag {
        try check(.putEmpty)
        await waitIfHeld(.putEmpty)  // a held PUT reaches the store when released
        return try await inner.putEmptyObject(key, options: options)
    }

    func putObject(_ key: ObjectKey, bytes: [UInt8], options: ObjectOptions) async throws -> ETag {
        try check(.put)
        return try await inner.putObject(key, bytes: bytes, options: options)
    }

    func objectBytes(_ key: ObjectKey) async throws -> [UInt8]? { try await inner.objectBytes(key) }

    func copyObject(_ source: ObjectKey, to destination: ObjectKey, options: ObjectOptions) async throws -> ETag {
        try check(.copy)
        await waitIfHeld(.copy)
        return try await inner.copyObject(source, to: destination, options: options)
    }

    func copyPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, source: ObjectKey, range: ClosedRange<Int64>) async throws -> ETag {
        try check(.copy)
        return try await inner.copyPart(key, uploadID: uploadID, number: number, source: source, range: range)
    }

    func deleteObject(_ key: ObjectKey) async throws {
        await waitIfHeld(.delete)
        try check(.delete)
        try await inner.deleteObject(key)
    }
}

/// Ranged reads of the in-memory objects, pinned by ETag like the real store.
extension InMemoryStore: ObjectReader {
    func readRange(_ key: ObjectKey, range: Range<Int64>, ifMatch: ETag?, customerKey: CustomerKey?,
                   into destination: MemoryRegion) async throws -> Int {
        let (bytes, etag) = contents.withLock { ($0.objects[key], $0.etags[key]) }
        guard let bytes else { throw serviceError(.noSuchKey, "no \(key)") }
        if let ifMatch, ifMatch != etag { throw ObjectChangedError(key: key, expected: ifMatch, detail: "412 PreconditionFailed") }
        let slice = bytes[Int(range.lowerBound)..<min(Int(range.upperBound), bytes.count)]
        slice.withUnsafeBytes { destination.mutableBytes.copyMemory(from: $0) }
        return slice.count
    }
}

/// A parallel file system bucket in memory: native rename of files and directories.
extension InMemoryStore: FileSystemBucketStore {
    func replaceUserMetadataNatively(_ key: ObjectKey, with metadata: [String: String]) async throws {
        try contents.withLock { contents in
            guard contents.objects[key] != nil else { throw serviceError(.noSuchKey, "no \(key)") }
            contents.written[key, default: ObjectOptions()].metadata = metadata
        }
    }

    func renameNatively(_ source: ObjectKey, to destination: ObjectKey) async throws {
        try contents.withLock { contents in
            let moved = contents.objects.keys.filter { source.rawValue.hasSuffix("/") ? $0.rawValue.hasUTF8Prefix(source.rawValue) : $0 == source }
            guard !moved.isEmpty else { throw serviceError(.noSuchKey, "no \(source)") }
            contents.renameCalls += 1
            for key in moved {
                let target = ObjectKey(destination.rawValue + key.rawValue.droppingUTF8(first: source.rawValue.utf8.count))
                contents.objects[target] = contents.objects.removeValue(forKey: key)
                contents.etags[target] = contents.etags.removeValue(forKey: key)
                contents.written[target] = contents.written.removeValue(forKey: key)
            }
        }
    }

    func modifyNatively(_ key: ObjectKey, position: Int64, bytes: MemoryRegion) async throws -> ETag? {
        try contents.withLock { contents in
            guard var object = contents.objects[key], position <= object.count else { throw serviceError(.invalidArgument, "position") }
            let end = Int(position) + bytes.count
            if end > object.count { object += [UInt8](repeating: 0, count: end - object.count) }
            object.replaceSubrange(Int(position)..<end, with: Array(bytes.bytes))
            contents.modifyCalls += 1
            contents.objects[key] = object
            contents.etags[key] = ETag(md5: Hash.md5(object))
            return contents.etags[key]
        }
    }

    func truncateNatively(_ key: ObjectKey, length: Int64) async throws {
        try contents.withLock { contents in
            guard var object = contents.objects[key] else { throw serviceError(.noSuchKey, "no \(key)") }
            if Int(length) < object.count { object.removeSubrange(Int(length)...) } else { object += [UInt8](repeating: 0, count: Int(length) - object.count) }
            contents.objects[key] = object
            contents.etags[key] = ETag(md5: Hash.md5(object))
        }
    }
}

/// Compositions against the in-memory objects: copies pinned by the source's ETag.
extension InMemoryStore: ObjectComposer {
    func copyPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, source: ObjectKey, range: Range<Int64>,
                  sourceETag: ETag?, customerKey: CustomerKey?) async throws -> ETag {
        if let sourceETag, contents.withLock({ $0.etags[source] }) != sourceETag {
            throw ObjectChangedError(key: source, expected: sourceETag, detail: "412 PreconditionFailed")
        }
        return try await copyPart(key, uploadID: uploadID, number: number, source: source, range: range.lowerBound...(range.upperBound - 1))
    }
}

/// A store double around an InMemoryStore whose compositions go to it: reads and copies pass
/// through unless the double says otherwise.
protocol ComposesThroughInner: ObjectComposer {
    var inner: InMemoryStore { get }
}

extension ComposesThroughInner {
    func readRange(_ key: ObjectKey, range: Range<Int64>, ifMatch: ETag?, customerKey: CustomerKey?,
                   into destination: MemoryRegion) async throws -> Int {
        try await inner.readRange(key, range: range, ifMatch: ifMatch, customerKey: customerKey, into: destination)
    }

    func copyPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, source: ObjectKey, range: Range<Int64>,
                  sourceETag: ETag?, customerKey: CustomerKey?) async throws -> ETag {
        try await inner.copyPart(key, uploadID: uploadID, number: number, source: source, range: range,
                                 sourceETag: sourceETag, customerKey: customerKey)
    }
}

/// Compositions through the wrapper: copies count as `.copy`; reads pass through unchecked, and
/// wait while `.read` is held.
extension FaultInjectingStore: ComposesThroughInner {
    func readRange(_ key: ObjectKey, range: Range<Int64>, ifMatch: ETag?, customerKey: CustomerKey?,
                   into destination: MemoryRegion) async throws -> Int {
        await waitIfHeld(.read)
        return try await inner.readRange(key, range: range, ifMatch: ifMatch, customerKey: customerKey, into: destination)
    }

    func copyPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, source: ObjectKey, range: Range<Int64>,
                  sourceETag: ETag?, customerKey: CustomerKey?) async throws -> ETag {
        try check(.copy)
        return try await inner.copyPart(key, uploadID: uploadID, number: number, source: source, range: range,
                                        sourceETag: sourceETag, customerKey: customerKey)
    }
}

/// The inner store's parallel file system bucket, when it is one; in-place writes fail by the
/// `.modify` rules and wait while `.modify` is held (after the store changed the object: a
/// native change is seen at once).
extension FaultInjectingStore: FileSystemBucketStore {
    var isFileSystemBucket: Bool { inner.isFileSystemBucket }
    func renameNatively(_ source: ObjectKey, to destination: ObjectKey) async throws { try await inner.renameNatively(source, to: destination) }
    func modifyNatively(_ key: ObjectKey, position: Int64, bytes: MemoryRegion) async throws -> ETag? {
        try check(.modify)
        let etag = try await inner.modifyNatively(key, position: position, bytes: bytes)
        await waitIfHeld(.modify)
        return etag
    }
    func truncateNatively(_ key: ObjectKey, length: Int64) async throws { try await inner.truncateNatively(key, length: length) }
    func replaceUserMetadataNatively(_ key: ObjectKey, with metadata: [String: String]) async throws {
        try await inner.replaceUserMetadataNatively(key, with: metadata)
    }
}
