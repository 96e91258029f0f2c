// CRC checksums over ISA-L (PCLMUL/AVX code paths chosen at run time): CRC-64/ECMA as OBS uses it
// (`x-obs-checksum-crc64ecma`; reflected polynomial 0x42F0E1EBA9EA3693, initial value and final
// XOR all ones, i.e. CRC-64/XZ, the variant of the official OBS SDK's `util.Crc64`) and CRC-32C
// (Castagnoli, S3's `x-amz-checksum-crc32c`). The only file of the package that touches ISA-L.
//
// Combining: the CRC of A‖B follows from crc(A), crc(B) and |B| without reading the bytes again
// (multiplication by x^(8·|B|) modulo the polynomial in GF(2), as zlib's crc32_combine does),
// which is how a multipart object's value is made from its parts' values.
import CISAL

/// A CRC family the protocol uses.
public enum CRCAlgorithm: Sendable, Hashable, CaseIterable {
    /// CRC-64/ECMA-182, reflected (CRC-64/XZ): OBS's `crc64ecma`.
    case crc64ecma
    /// CRC-32C (Castagnoli): S3's `crc32c`.
    case crc32c

    /// The reflected generator polynomial.
    var reflectedPolynomial: UInt64 {
        switch self {
        case .crc64ecma: 0xC96C_5795_D787_0F42
        case .crc32c: 0x82F6_3B78
        }
    }

    var width: Int {
        switch self {
        case .crc64ecma: 64
        case .crc32c: 32
        }
    }
}

/// A CRC value of some bytes: the standard (finalised) value, continued with `update` and joined
/// with the CRC of following bytes by `combine`.
public struct CRC: Sendable, Hashable {
    public let algorithm: CRCAlgorithm
    /// The finalised CRC (CRC-32C in the low 32 bits).
    public private(set) var value: UInt64

    /// The CRC of no bytes (0 for both algorithms).
    public init(_ algorithm: CRCAlgorithm) {
        self.algorithm = algorithm
        value = 0
    }

    /// A CRC value received or stored.
    public init(_ algorithm: CRCAlgorithm, value: UInt64) {
        precondition(algorithm.width == 64 || value >> 32 == 0, "CRC-32C value out of range")
        self.algorithm = algorithm
        self.value = value
    }

    /// The CRC of `bytes`.
    public init(_ algorithm: CRCAlgorithm, of bytes: UnsafeRawBufferPointer) {
        self.init(algorithm)
        update(bytes)
    }

    /// The CRC of `bytes`.
    public init<Bytes: Sequence>(_ algorithm: CRCAlgorithm, of bytes: Bytes) where Bytes.Element == UInt8 {
        self.init(algorithm)
        let handled: Void? = bytes.withContiguousStorageIfAvailable { update(UnsafeRawBufferPointer($0)) }
        if handled == nil { Array(bytes).withUnsafeBytes { update($0) } }
    }

    /// Continues the CRC over `bytes` (what follows the bytes covered so far).
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        var remaining = bytes.count
        while remaining > 0 {
            // crc32_iscsi takes an Int32 length.
            let chunk = min(remaining, 1 << 30)
            let start = UnsafeMutablePointer(mutating: base)
            switch algorithm {
            case .crc64ecma:
                value = crc64_ecma_refl(value, start, UInt64(chunk))
            case .crc32c:
                // ISA-L's iSCSI CRC neither inverts the seed nor the result.
                value = UInt64(~crc32_iscsi(start, Int32(chunk), ~UInt32(value)))
            }
            base += chunk
            remaining -= chunk
        }
    }

    /// The CRC of the bytes covered by `self` followed by `length` bytes whose CRC is `next`.
    public func combined(with next: CRC, length: Int64) -> CRC {
        precondition(next.algorithm == algorithm && length >= 0)
        let shifted = algorithm.multiply(algorithm.powerOfX(bytes: UInt64(length)), value)
        return CRC(algorithm, value: shifted ^ next.value)
    }
}

extension CRCAlgorithm {
    /// x^0 in the reflected representation (the top bit).
    private var one: UInt64 { 1 << UInt64(width - 1) }

    /// a·b modulo the polynomial, both in the reflected representation.
    fileprivate func multiply(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var product: UInt64 = 0
        var b = b
        var bit = one
        while bit != 0 {
            if a & bit != 0 { product ^= b }
            b = b & 1 != 0 ? (b >> 1) ^ reflectedPolynomial : b >> 1
            bit >>= 1
        }
        return product
    }

    /// x^(8·bytes) modulo the polynomial, by squaring.
    fileprivate func powerOfX(bytes: UInt64) -> UInt64 {
        var result = one
        var square = one >> 8  // x^8
        var remaining = bytes
        while remaining != 0 {
            if remaining & 1 != 0 { result = multiply(result, square) }
            square = multiply(square, square)
            remaining >>= 1
        }
        return result
    }
}
