// A test double of ObjectComposer: objects and multipart uploads in memory with the rules the
// executor relies on (Content-MD5, minimum part size but for the last, copy-source-if-match,
// If-Match), bytes counted per direction, failures and opaque copy ETags on request.
import OBSClient
import OBSHashing
import OBSProtocol
import Synchronization
@testable import ObsFS

final class InMemoryComposer: ObjectComposer {
    enum Operation: Sendable { case uploadPart, copyPart, readRange, complete }

    struct State {
        var objects: [ObjectKey: (bytes: [UInt8], etag: ETag)] = [:]
        var uploads: [UploadID: (key: ObjectKey, parts: [PartNumber: (bytes: [UInt8], etag: ETag)])] = [:]
        var nextUpload = 1
        var versions = 0
        var bytesUploaded: Int64 = 0
        var bytesCopied: Int64 = 0
        var bytesRead: Int64 = 0
        var calls: [Operation: Int] = [:]
        var aborts = 0
        var inFlight = 0
        var maxInFlight = 0
        /// Fails the nth call (1-based) of an operation.
        var failures: [Operation: Int] = [:]
        /// Copied parts get tags that are not MD5s (as SeaweedFS answers).
        var opaqueCopyETags = false
        /// Completion answers this ETag instead of the composite one.
        var wrongCompletionETag: ETag?
    }

    let state = Mutex(State())
    let minimumPartSize: Int64
    let latency: Duration?

    init(minimumPartSize: Int64, latency: Duration? = nil) {
        self.minimumPartSize = minimumPartSize
        self.latency = latency
    }

    @discardableResult
    func put(_ key: String, _ bytes: [UInt8]) -> ETag {
        state.withLock { state in
            state.versions += 1
            let etag = ETag(md5: Hash.md5(bytes + [UInt8(truncatingIfNeeded: state.versions)]))
            state.objects[ObjectKey(key)] = (bytes, etag)
            return etag
        }
    }

    func object(_ key: String) -> (bytes: [UInt8], etag: ETag)? { state.withLock { $0.objects[ObjectKey(key)] } }
    var uploadsInProgress: Int { state.withLock { $0.uploads.count } }

    private func begin(_ operation: Operation) async throws {
        let fail = state.withLock { state -> Bool in
            state.calls[operation, default: 0] += 1
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
            return state.failures[operation] == state.calls[operation]
        }
        if let latency { try? await Task.sleep(for: latency) }
        if fail {
            state.withLock { $0.inFlight -= 1 }
            throw ServiceError(status: 500, code: .internalError, message: "injected", requestID: "INJECTED")
        }
    }

    private func end() { state.withLock { $0.inFlight -= 1 } }

    private func bytes(of key: ObjectKey, matching etag: ETag?, in state: State) throws -> [UInt8] {
        guard let object = state.objects[key] else { throw ServiceError(status: 404, code: .noSuchKey, message: "no \(key)") }
        if let etag, etag != object.etag { throw ObjectChangedError(key: key, expected: etag, detail: "PreconditionFailed (412) from the test double") }
        return object.bytes
    }

    func readRange(_ key: ObjectKey, range: Range<Int64>, ifMatch: ETag?, customerKey: CustomerKey?, into destination: MemoryRegion) async throws -> Int {
        try await begin(.readRange)
        defer { end() }
        let slice = try state.withLock { state in
            let slice = try bytes(of: key, matching: ifMatch, in: state)[Int(range.lowerBound)..<Int(range.upperBound)]
            state.bytesRead += Int64(slice.count)
            return slice
        }
        slice.withUnsafeBytes { destination.mutableBytes.copyMemory(from: $0) }
        return slice.count
    }

    func initiateUpload(_ key: ObjectKey, options: ObjectOptions) async throws -> UploadID {
        state.withLock { state in
            defer { state.nextUpload += 1 }
            let id = UploadID("U\(state.nextUpload)")
            state.uploads[id] = (key, [:])
            return id
        }
    }

    func uploadPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, body: MemoryRegion, integrity: PartIntegrity,
                    customerKey: CustomerKey?) async throws -> PartReceipt {
        try await begin(.uploadPart)
        defer { end() }
        let bytes = Array(body.bytes)
        guard case .md5(let contentMD5) = integrity, Hash.md5(bytes) == contentMD5 else {
            throw ServiceError(status: 400, code: .badDigest, message: "Content-MD5 missing or wrong")
        }
        return try state.withLock { state in
            guard state.uploads[uploadID] != nil else { throw ServiceError(status: 404, code: .noSuchUpload, message: "\(uploadID)") }
            let etag = ETag(md5: contentMD5)
            state.uploads[uploadID]!.parts[number] = (bytes, etag)
            state.bytesUploaded += Int64(bytes.count)
            return PartReceipt(number: number, etag: etag, size: Int64(bytes.count), verdict: .etagMatchesMD5)
        }
    }

    func copyPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, source: ObjectKey, range: Range<Int64>, sourceETag: ETag?,
                  customerKey: CustomerKey?) async throws -> ETag {
        try await begin(.copyPart)
        defer { end() }
        return try state.withLock { state in
            let copied = Array(try bytes(of: source, matching: sourceETag, in: state)[Int(range.lowerBound)..<Int(range.upperBound)])
            guard state.uploads[uploadID] != nil else { throw ServiceError(status: 404, code: .noSuchUpload, message: "\(uploadID)") }
            let etag = state.opaqueCopyETags ? ETag("copy-\(uploadID.rawValue)-\(number)") : ETag(md5: Hash.md5(copied))
            state.uploads[uploadID]!.parts[number] = (copied, etag)
            state.bytesCopied += Int64(copied.count)
            return etag
        }
    }

    func completeUpload(_ key: ObjectKey, uploadID: UploadID, parts: [PartReceipt]) async throws -> StoredObject {
        try await begin(.complete)
        defer { end() }
        return try state.withLock { state in
            guard let upload = state.uploads[uploadID] else { throw ServiceError(status: 404, code: .noSuchUpload, message: "\(uploadID)") }
            var object: [UInt8] = []
            for (index, part) in parts.enumerated() {
                guard let stored = upload.parts[part.number], stored.etag == part.etag else {
                    throw ServiceError(status: 400, code: .invalidPart, message: "part \(part.number)")
                }
                if index < parts.count - 1, Int64(stored.bytes.count) < minimumPartSize {
                    throw ServiceError(status: 400, code: .entityTooSmall, message: "part \(part.number) is \(stored.bytes.count) bytes")
                }
                object += stored.bytes
            }
            let md5s = parts.compactMap(\.etag.md5Bytes)
            let etag = state.wrongCompletionETag ?? (md5s.count == parts.count ? ETag.composite(partMD5s: md5s) : ETag("opaque-\(parts.count)"))
            state.objects[key] = (object, etag)
            state.uploads[uploadID] = nil
            return StoredObject(etag: etag)
        }
    }

    func abortUpload(_ key: ObjectKey, uploadID: UploadID) async throws {
        state.withLock { state in
            state.aborts += 1
            state.uploads[uploadID] = nil
        }
    }

    func putEmptyObject(_ key: ObjectKey, options: ObjectOptions) async throws -> ETag {
        state.withLock { state in
            let etag = ETag(md5: Hash.md5([UInt8]()))
            state.objects[key] = ([], etag)
            return etag
        }
    }
}

/// The new object's bytes as the changes leave them; the executor copies changed ranges out.
struct NewContent: ChangedBytes {
    let bytes: [UInt8]

    func copyBytes(_ range: Range<Int64>, into destination: UnsafeMutableRawBufferPointer) {
        bytes[Int(range.lowerBound)..<Int(range.upperBound)].withUnsafeBytes { destination.copyMemory(from: $0) }
    }
}
