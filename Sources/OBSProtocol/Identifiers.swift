// Typed values of the object-store protocol. No bare strings or ints cross module boundaries
import OBSHashing
// for these.

/// A bucket name as it appears in the URL.
public struct BucketName: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

/// Text compared by its UTF-8 bytes. `String`'s own `==` and hash are Unicode canonical
/// equivalence ("café" with U+00E9 equals "cafe" followed by U+0301), but object keys and Linux
/// file names are byte strings: the two spellings are two keys, two files.
extension String {
    public func hasSameUTF8(as other: String) -> Bool { utf8.elementsEqual(other.utf8) }

    public func hashUTF8(into hasher: inout Hasher) {
        var text = self
        text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        hasher.combine(utf8.count)
    }

    /// The order object stores list keys in.
    public func precedesInUTF8(_ other: String) -> Bool { utf8.lexicographicallyPrecedes(other.utf8) }
}

/// An object key (UTF-8, unencoded), equal to another only byte for byte.
public struct ObjectKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
    public static func == (lhs: ObjectKey, rhs: ObjectKey) -> Bool { lhs.rawValue.hasSameUTF8(as: rhs.rawValue) }
    public func hash(into hasher: inout Hasher) { rawValue.hashUTF8(into: &hasher) }
    public static func < (lhs: ObjectKey, rhs: ObjectKey) -> Bool {
        lhs.rawValue.precedesInUTF8(rhs.rawValue)
    }
}

/// A multipart upload's ID, as the server issued it.
public struct UploadID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

/// An object version ID.
public struct VersionID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

/// An entity tag, stored without the surrounding quotes (`d41d8cd9…` or `abc…-3`).
public struct ETag: Hashable, Sendable, CustomStringConvertible {
    public let value: String

    /// Accepts the tag quoted (as in headers and XML) or bare.
    public init(_ text: String) {
        // On UTF-8 bytes (only ASCII ones are dropped): tags are read from every HEAD reply.
        let entity = "&quot;".utf8, quote = UInt8(ascii: "\"")
        var bytes = Substring(text).utf8
        if bytes.starts(with: entity) { bytes = bytes.dropFirst(entity.count) }
        if bytes.count >= entity.count, bytes.suffix(entity.count).elementsEqual(entity) { bytes = bytes.dropLast(entity.count) }
        if bytes.first == quote { bytes = bytes.dropFirst() }
        if bytes.last == quote { bytes = bytes.dropLast() }
        value = String(Substring(bytes))
    }

    /// The tag with its quotes, as sent in headers and in CompleteMultipartUpload.
    public var quoted: String { "\"\(value)\"" }
    public var description: String { quoted }

    /// The ETag of a single-part object or of one part: hex of the MD5 of its bytes.
    public init(md5: [UInt8]) { self.init(md5.hexString) }

    /// The composite ETag of a completed multipart upload: `hex(MD5(M1‖…‖Mn))-n`,
    /// where Mi is the binary MD5 of part i.
    public static func composite(partMD5s: [[UInt8]]) -> ETag {
        ETag(Hash.md5(partMD5s.joined()).hexString + "-\(partMD5s.count)")
    }

    /// The binary MD5 this tag encodes, when it is a plain 32-hex-digit tag.
    public var md5Bytes: [UInt8]? {
        let utf8 = Array(value.utf8)
        guard utf8.count == 32 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(16)
        var index = 0
        while index < 32 {
            guard let hi = hexValue(utf8[index]), let lo = hexValue(utf8[index + 1]) else { return nil }
            out.append(hi << 4 | lo)
            index += 2
        }
        return out
    }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// A part number of a multipart upload: 1 to 10,000.
public struct PartNumber: Hashable, Sendable, Comparable, CustomStringConvertible {
    public static let range: ClosedRange<Int> = 1...10_000
    public static let first = PartNumber(unchecked: 1)
    public static let last = PartNumber(unchecked: 10_000)

    public let rawValue: Int

    /// Nil when outside 1...10,000.
    public init?(_ rawValue: Int) {
        guard PartNumber.range.contains(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    private init(unchecked: Int) { rawValue = unchecked }

    /// The next part number, nil after 10,000.
    public var next: PartNumber? { PartNumber(rawValue + 1) }
    public var description: String { String(rawValue) }
    public static func < (lhs: PartNumber, rhs: PartNumber) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Protocol limits shared by client, filesystem and server.
public enum ProtocolLimits {
    /// Smallest size of every part but the last, in OBS (the smallest of any dialect).
    public static let minimumPartSize: Int64 = 100 * 1024
    /// Smallest size of every part but the last on S3-compatible stores (V2/V4 requests).
    public static let s3MinimumPartSize: Int64 = 5 * 1024 * 1024
    /// The smallest part (but the last) a store speaking `dialect` accepts.
    public static func minimumPartSize(for dialect: Dialect) -> Int64 {
        dialect == .obs ? minimumPartSize : s3MinimumPartSize
    }
    /// Largest part, and largest single PUT or append.
    public static let maximumPartSize: Int64 = 5 * 1024 * 1024 * 1024
    /// Largest assembled object (48.8 TB).
    public static let maximumObjectSize: Int64 = 48_800_000_000_000
    /// Largest object of a parallel file system bucket after a modify or truncate (50 TiB).
    public static let maximumFileSystemObjectSize: Int64 = 54_975_581_388_800
    /// User metadata plus persistent headers.
    public static let maximumMetadataBytes = 8 * 1024
    /// What `entries` count against `maximumMetadataBytes`: their names and values in UTF-8.
    public static func metadataBytes(_ entries: [String: String]) -> Int {
        entries.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
    }
    /// Website redirect location.
    public static let maximumRedirectBytes = 2 * 1024
    /// Grants in one ACL.
    public static let maximumGrants = 100
}
