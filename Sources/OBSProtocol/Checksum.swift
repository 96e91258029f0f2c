// Integrity checksums beside Content-MD5: OBS's CRC-64/ECMA (`x-obs-checksum-crc64ecma`, a
// decimal integer, as the official SDK sends it; `x-amz-checksum-crc64ecma` in the S3 dialects)
// and S3's CRC-32C (`x-amz-checksum-crc32c`, base64 of the 4 big-endian bytes; the upload declares
// it on initiation with `x-amz-checksum-algorithm: CRC32C` and `x-amz-checksum-type: FULL_OBJECT`
// so the object's value is the CRC of all its bytes, combined from the parts). Shared by the client
// and obs-local.
import OBSHashing

/// A checksum a request can carry.
public enum ChecksumAlgorithm: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case crc64ecma
    case crc32c

    public var crc: CRCAlgorithm {
        switch self {
        case .crc64ecma: .crc64ecma
        case .crc32c: .crc32c
        }
    }

    public var description: String { rawValue }

    /// The header carrying the value in `dialect` (`x-obs-checksum-crc64ecma`, `x-amz-checksum-crc32c`).
    public func header(for dialect: Dialect) -> String { dialect.header("checksum-" + rawValue) }

    /// Headers an S3 initiation carries so that parts and the object carry this checksum
    /// (none for OBS, whose CRC-64 needs no declaration).
    public func initiationHeaders(for dialect: Dialect) -> HeaderFields {
        var headers = HeaderFields()
        guard dialect != .obs, self == .crc32c else { return headers }
        headers[dialect.header("checksum-algorithm")] = "CRC32C"
        headers[dialect.header("checksum-type")] = "FULL_OBJECT"
        return headers
    }
}

/// The checksum of a part's or an object's bytes.
public struct Checksum: Sendable, Hashable, CustomStringConvertible {
    public let crc: CRC

    public init(_ crc: CRC) { self.crc = crc }

    public var algorithm: ChecksumAlgorithm {
        switch crc.algorithm {
        case .crc64ecma: .crc64ecma
        case .crc32c: .crc32c
        }
    }

    /// The checksum of `bytes`.
    public init(_ algorithm: ChecksumAlgorithm, of bytes: UnsafeRawBufferPointer) {
        crc = CRC(algorithm.crc, of: bytes)
    }

    /// The value as a header carries it.
    public var headerValue: String {
        switch crc.algorithm {
        case .crc64ecma: String(crc.value)
        case .crc32c: Base64.encode((0..<4).reversed().map { UInt8(truncatingIfNeeded: crc.value >> (8 * $0)) })
        }
    }

    /// Parses a header value; nil when malformed.
    public init?(_ algorithm: ChecksumAlgorithm, headerValue: String) {
        switch algorithm {
        case .crc64ecma:
            guard let value = UInt64(headerValue) else { return nil }
            crc = CRC(.crc64ecma, value: value)
        case .crc32c:
            guard let bytes = Base64.decode(headerValue), bytes.count == 4 else { return nil }
            crc = CRC(.crc32c, value: bytes.reduce(0) { $0 << 8 | UInt64($1) })
        }
    }

    /// The header name and value in `dialect`.
    public func header(for dialect: Dialect) -> (name: String, value: String) { (algorithm.header(for: dialect), headerValue) }

    /// The checksum an object made of parts with these checksums and sizes has (no pass over the
    /// data); nil without parts or when their algorithms differ.
    public static func combining(_ parts: [(checksum: Checksum, size: Int64)]) -> Checksum? {
        guard let first = parts.first?.checksum.crc.algorithm, parts.allSatisfy({ $0.checksum.crc.algorithm == first }) else { return nil }
        let object = parts.reduce(CRC(first)) { $0.combined(with: $1.checksum.crc, length: $1.size) }
        return Checksum(object)
    }

    public var description: String { "\(algorithm)=\(headerValue)" }
}
