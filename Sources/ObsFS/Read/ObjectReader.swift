// What the read engine needs from an object store: one ranged GET into caller memory, pinned to
// the ETag the file was opened with. OBSClientStore implements it (OBSClientStore+Read.swift);
// tests use an in-memory reader.
import OBSProtocol

/// Ranged reads of objects. Every call may be made from any task, concurrently.
public protocol ObjectReader: Sendable {
    /// Reads the bytes `range` (non-empty, within the object) of `key` into the start of
    /// `destination` (at least `range.count` bytes) and returns how many arrived. `ifMatch` pins
    /// the read to that version: when the object's ETag differs the call throws
    /// `ObjectChangedError` and writes nothing. `customerKey` reads an SSE-C object.
    func readRange(_ key: ObjectKey, range: Range<Int64>, ifMatch: ETag?, customerKey: CustomerKey?,
                   into destination: MemoryRegion) async throws -> Int
}

/// The object was replaced (or deleted and recreated) since the file was opened: its ETag no
/// longer matches. The read fails (EIO, through ErrnoMapping's default) rather than mixing bytes
/// of two versions.
public struct ObjectChangedError: Error, Sendable, CustomStringConvertible {
    public let key: ObjectKey
    /// The ETag seen at open, sent as If-Match.
    public let expected: ETag
    /// The store's answer (code, message, request ID), for the log.
    public let detail: String

    public init(key: ObjectKey, expected: ETag, detail: String) {
        self.key = key
        self.expected = expected
        self.detail = detail
    }

    public var description: String {
        "\(key) changed on the store since it was opened (If-Match \(expected) failed: \(detail))"
    }
}
