// Hashing over OpenSSL's libcrypto: streaming MD5 and SHA-256, one-shot HMAC-SHA1 and
// HMAC-SHA256. The only file of the package that touches libcrypto's pointers.
import COpenSSL

/// The digest algorithms the OBS protocol needs.
public enum DigestAlgorithm: Sendable {
    case md5, sha1, sha256

    /// The algorithm fetched from the default provider once: `EVP_sha256()` and friends make
    /// every `EVP_DigestInit_ex` fetch it again by name.
    var evp: OpaquePointer {
        switch self {
        case .md5: Self.md5Implementation
        case .sha1: Self.sha1Implementation
        case .sha256: Self.sha256Implementation
        }
    }

    // nonisolated(unsafe): set once (lazily, atomically), then only read; an EVP_MD is immutable
    // and libcrypto allows using one from any thread.
    private nonisolated(unsafe) static let md5Implementation = fetched("MD5", fallback: EVP_md5())
    private nonisolated(unsafe) static let sha1Implementation = fetched("SHA1", fallback: EVP_sha1())
    private nonisolated(unsafe) static let sha256Implementation = fetched("SHA256", fallback: EVP_sha256())

    /// Kept for the life of the process (never freed).
    private static func fetched(_ name: String, fallback: OpaquePointer?) -> OpaquePointer {
        guard let implementation = EVP_MD_fetch(nil, name, nil) ?? fallback else { fatalError("no \(name) in libcrypto") }
        return implementation
    }

    /// Length of the digest in bytes.
    public var byteCount: Int {
        switch self {
        case .md5: 16
        case .sha1: 20
        case .sha256: 32
        }
    }
}

/// A streaming message digest. Feed bytes with `update`, read the result once with `finalize`.
///
/// Not thread-safe: one owner at a time (the upload path keeps one per part buffer).
public final class StreamingDigest {
    /// The owned `EVP_MD_CTX`, freed in `deinit`.
    private let context: OpaquePointer
    public let algorithm: DigestAlgorithm

    public init(_ algorithm: DigestAlgorithm) {
        context = Self.newContext(algorithm)
        self.algorithm = algorithm
    }

    /// A new context, initialised for `algorithm`.
    static func newContext(_ algorithm: DigestAlgorithm) -> OpaquePointer {
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        guard EVP_DigestInit_ex(context, algorithm.evp, nil) == 1 else { fatalError("EVP_DigestInit_ex failed") }
        return context
    }

    deinit { EVP_MD_CTX_free(context) }

    /// Starts a new digest, discarding what was fed so far.
    public func reset() {
        guard EVP_DigestInit_ex(context, algorithm.evp, nil) == 1 else { fatalError("EVP_DigestInit_ex failed") }
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        guard EVP_DigestUpdate(context, base, bytes.count) == 1 else { fatalError("EVP_DigestUpdate failed") }
    }

    public func update<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let handled: Void? = bytes.withContiguousStorageIfAvailable { update(UnsafeRawBufferPointer($0)) }
        if handled == nil { Array(bytes).withUnsafeBytes { update($0) } }
    }

    /// The digest of everything fed since the last reset; the digest is reset afterwards.
    public func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: algorithm.byteCount)
        var length: UInt32 = 0
        out.withUnsafeMutableBufferPointer { buffer in
            guard EVP_DigestFinal_ex(context, buffer.baseAddress, &length) == 1 else { fatalError("EVP_DigestFinal_ex failed") }
        }
        reset()
        return out
    }
}

/// One-shot digests and HMACs.
public enum Hash {
    public static func digest<Bytes: Sequence>(_ algorithm: DigestAlgorithm, _ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        let digest = StreamingDigest(algorithm)
        digest.update(bytes)
        return digest.finalize()
    }

    public static func md5<Bytes: Sequence>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 { digest(.md5, bytes) }
    public static func sha256<Bytes: Sequence>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 { digest(.sha256, bytes) }

    /// HMAC of `message` under `key` (`.sha1` for OBS/V2 signatures, `.sha256` for V4).
    public static func hmac(_ algorithm: DigestAlgorithm, key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: algorithm.byteCount)
        var length: UInt32 = 0
        key.withUnsafeBytes { keyBytes in
            message.withUnsafeBytes { messageBytes in
                out.withUnsafeMutableBufferPointer { outBuffer in
                    let result = HMAC(algorithm.evp, keyBytes.baseAddress, Int32(keyBytes.count),
                                      messageBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), messageBytes.count,
                                      outBuffer.baseAddress, &length)
                    precondition(result != nil, "HMAC failed")
                }
            }
        }
        return out
    }

    public static func hmac(_ algorithm: DigestAlgorithm, key: [UInt8], message: String) -> [UInt8] {
        hmac(algorithm, key: key, message: Array(message.utf8))
    }
}

/// An HMAC key prepared once for many messages (a signer's secret): the digest states after
/// the inner and the outer padded key, copied for each message. OpenSSL's one-shot `HMAC()`
/// fetches the algorithm, builds a context and hashes the padded key again on every call.
/// Safe to share: `authenticate` only reads the prepared states. They are freed (and cleansed by
/// OpenSSL) with the key; the padded key bytes are zeroed at once.
public final class HMACKey: @unchecked Sendable {
    // @unchecked: the two contexts are written in init only; `authenticate` copies them.
    private let inner: OpaquePointer
    private let outer: OpaquePointer
    public let algorithm: DigestAlgorithm

    /// The block size of the three digests (RFC 2104's B).
    private static let blockSize = 64

    public init(_ algorithm: DigestAlgorithm, key: [UInt8]) {
        self.algorithm = algorithm
        var block = key.count > Self.blockSize ? Hash.digest(algorithm, key) : key
        block += [UInt8](repeating: 0, count: Self.blockSize - block.count)
        defer { zeroize(&block) }
        func prepared(_ pad: UInt8) -> OpaquePointer {
            var padded = block.map { $0 ^ pad }
            defer { zeroize(&padded) }
            let context = StreamingDigest.newContext(algorithm)
            padded.withUnsafeBytes { _ = EVP_DigestUpdate(context, $0.baseAddress, $0.count) }
            return context
        }
        inner = prepared(0x36)
        outer = prepared(0x5c)
    }

    deinit {
        EVP_MD_CTX_free(inner)
        EVP_MD_CTX_free(outer)
    }

    /// HMAC of `message` under this key.
    public func authenticate<Bytes: Sequence>(_ message: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        defer { EVP_MD_CTX_free(context) }
        var out = [UInt8](repeating: 0, count: algorithm.byteCount)
        var length: UInt32 = 0
        guard EVP_MD_CTX_copy_ex(context, inner) == 1 else { fatalError("EVP_MD_CTX_copy_ex failed") }
        let handled: Void? = message.withContiguousStorageIfAvailable { _ = EVP_DigestUpdate(context, $0.baseAddress, $0.count) }
        if handled == nil { Array(message).withUnsafeBytes { _ = EVP_DigestUpdate(context, $0.baseAddress, $0.count) } }
        out.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        guard EVP_MD_CTX_copy_ex(context, outer) == 1 else { fatalError("EVP_MD_CTX_copy_ex failed") }
        out.withUnsafeBytes { _ = EVP_DigestUpdate(context, $0.baseAddress, $0.count) }
        out.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        return out
    }
}

/// Overwrites key material in place (OPENSSL_cleanse cannot be optimised away).
public func zeroize(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { raw in
        if let base = raw.baseAddress { OPENSSL_cleanse(base, raw.count) }
    }
}

/// Secret bytes (a secret key, an SSE-C key) that are zeroed when the last reference goes away
/// and never printed.
public final class SecretBytes: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    // Immutable after init; zeroed once in deinit when no one can read it any more.
    private nonisolated(unsafe) var storage: [UInt8]

    public init(_ bytes: [UInt8]) { storage = bytes }
    public convenience init(_ string: String) { self.init(Array(string.utf8)) }

    deinit { zeroize(&storage) }

    /// Calls `body` with the secret; the caller must not keep copies beyond the call.
    public func withBytes<R>(_ body: ([UInt8]) throws -> R) rethrows -> R { try body(storage) }

    public var count: Int { storage.count }
    public var description: String { "<redacted \(storage.count) bytes>" }
    public var debugDescription: String { description }
}

extension Sequence where Element == UInt8 {
    /// Lower-case hexadecimal.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
