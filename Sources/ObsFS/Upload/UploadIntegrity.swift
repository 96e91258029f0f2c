// `checksum=`: what each part of an upload carries to prove its bytes, computed per part when the
// part is sealed, outside the session's lock, in the part's own upload task (so parts of one file
// hash in parallel across cores). The store decides from the answer what that proved
// (OBSClient/Integrity.swift); the session keeps the verdict and never re-checks it.
import OBSClient
import OBSHashing
import OBSProtocol

/// How parts prove their bytes to the store.
public enum UploadIntegrity: String, Sendable, CaseIterable, CustomStringConvertible {
    /// CRC-64/ECMA per part and for the object (OBS's `x-obs-checksum-crc64ecma`), hardware speed.
    case crc64
    /// CRC-32C per part and for the object (S3's `x-amz-checksum-crc32c`), hardware speed.
    case crc32c
    /// Content-MD5 per part; the part ETags and the object's composite ETag are checked.
    case md5
    /// Nothing beyond TCP's and TLS's own checks.
    case none

    /// The strongest check the dialect's endpoints support: CRC-64 on OBS, CRC-32C on S3.
    public static func strongest(for dialect: Dialect) -> UploadIntegrity { dialect == .obs ? .crc64 : .crc32c }

    /// Whether endpoints of `dialect` accept it (OBS defines no CRC-32C).
    public func isSupported(by dialect: Dialect) -> Bool { !(self == .crc32c && dialect == .obs) }

    /// The checksum header the parts carry, if any.
    public var checksumAlgorithm: ChecksumAlgorithm? {
        switch self {
        case .crc64: .crc64ecma
        case .crc32c: .crc32c
        case .md5, .none: nil
        }
    }

    public var description: String { rawValue }

    /// The proof of a sealed part's bytes: one pass over them (none for `.none`).
    func proof(of bytes: UnsafeRawBufferPointer) -> PartIntegrity {
        if let algorithm = checksumAlgorithm { return .checksum(Checksum(algorithm, of: bytes)) }
        guard self == .md5 else { return .none }
        let digest = StreamingDigest(.md5)
        digest.update(bytes)
        return .md5(digest.finalize())
    }
}
