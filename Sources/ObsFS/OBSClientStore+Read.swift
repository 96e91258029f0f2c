// The read engine's ranged GET over the OBS client: Range, If-Match and the SSE-C key on one
// GetObject straight into the pool buffer; a 412 becomes ObjectChangedError.
import OBSClient
import OBSProtocol

extension OBSClientStore: ObjectReader {
    public func readRange(_ key: ObjectKey, range: Range<Int64>, ifMatch: ETag?, customerKey: CustomerKey?,
                          into destination: MemoryRegion) async throws -> Int {
        precondition(!range.isEmpty && destination.count >= range.count, "a ranged GET needs a non-empty range that fits its buffer")
        return try await pinned(to: ifMatch, of: key) { () async throws(OBSClientError) in
            try await client.getObject(bucket: bucket, key: key, range: range.lowerBound...(range.upperBound - 1), into: destination,
                                       customerKey: customerKey, ifMatch: ifMatch).byteCount
        }
    }

    /// Runs a request conditional on `key` still having `etag`; the store's 412 becomes
    /// `ObjectChangedError`.
    func pinned<Value>(to etag: ETag?, of key: ObjectKey, _ request: () async throws(OBSClientError) -> Value) async throws -> Value {
        do {
            return try await request()
        } catch {
            guard error.isPreconditionFailed, let etag else { throw error }
            throw ObjectChangedError(key: key, expected: etag, detail: error.description)
        }
    }
}
