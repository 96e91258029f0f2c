// The CRC checksums obs-local keeps for every body it receives (CRC-64/ECMA and CRC-32C, computed
// with ISA-L as the bytes stream in, beside the MD5): verified against the request's checksum
// headers (BadDigest on a mismatch, as OBS and S3 answer), echoed on UploadPart and PutObject,
// combined from the parts' values on completion (no pass over the data) and returned on HEAD/GET.
// `x-obs-checksum-crc64ecma` in the OBS dialect, `x-amz-checksum-crc64ecma` and
// `x-amz-checksum-crc32c` in the S3 dialects (OBS defines no CRC-32C).
import OBSHashing
import OBSProtocol

struct StoredChecksums: Codable, Sendable, Equatable {
    var crc64ecma: UInt64
    var crc32c: UInt64

    init(crc64ecma: CRC, crc32c: CRC) {
        self.crc64ecma = crc64ecma.value
        self.crc32c = crc32c.value
    }

    func checksum(_ algorithm: ChecksumAlgorithm) -> Checksum {
        switch algorithm {
        case .crc64ecma: Checksum(CRC(.crc64ecma, value: crc64ecma))
        case .crc32c: Checksum(CRC(.crc32c, value: crc32c))
        }
    }

    /// The checksums of the bytes of `self` followed by `length` bytes with `next`'s checksums.
    func followed(by next: StoredChecksums, length: Int64) -> StoredChecksums {
        StoredChecksums(crc64ecma: checksum(.crc64ecma).crc.combined(with: next.checksum(.crc64ecma).crc, length: length),
                        crc32c: checksum(.crc32c).crc.combined(with: next.checksum(.crc32c).crc, length: length))
    }

    /// The checksums of parts joined in order; nil when a part has none (stored before checksums were kept).
    static func combining(_ parts: [(checksums: StoredChecksums?, size: Int64)]) -> StoredChecksums? {
        var object = StoredChecksums(crc64ecma: CRC(.crc64ecma), crc32c: CRC(.crc32c))
        for part in parts {
            guard let checksums = part.checksums else { return nil }
            object = object.followed(by: checksums, length: part.size)
        }
        return object
    }

    /// The algorithms a dialect has headers for.
    static func algorithms(in dialect: Dialect) -> [ChecksumAlgorithm] { dialect == .obs ? [.crc64ecma] : ChecksumAlgorithm.allCases }

    /// Checks the request's checksum headers against these values: InvalidDigest when a header
    /// is malformed, BadDigest when it differs. Returns the headers that were checked, to echo.
    func verify(_ headers: HeaderFields, dialect: Dialect) throws(OBSLocalError) -> [(String, String)] {
        var checked: [(String, String)] = []
        for algorithm in Self.algorithms(in: dialect) {
            let name = algorithm.header(for: dialect)
            guard let text = headers[name] else { continue }
            guard let sent = Checksum(algorithm, headerValue: text) else {
                throw OBSLocalError(.invalidDigest, "The \(name) you specified was invalid.")
            }
            guard sent == checksum(algorithm) else {
                throw OBSLocalError(.badDigest, "The \(name) you specified did not match what we received.")
            }
            checked.append((name, sent.headerValue))
        }
        return checked
    }

    /// The headers HEAD and GET return.
    func headers(for dialect: Dialect) -> [(String, String)] {
        Self.algorithms(in: dialect).map { (algorithm: ChecksumAlgorithm) in
            let header = checksum(algorithm).header(for: dialect)
            return (header.name, header.value)
        }
    }
}
