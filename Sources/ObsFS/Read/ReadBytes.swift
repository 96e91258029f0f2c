// What a read returns: the bytes as slices of the read buffers they were fetched into, in order,
// so the FUSE reply is written to the kernel straight from those buffers (a scattered reply)
// instead of being copied into a new array per read first. Holding a `ReadBytes` keeps its
// buffers out of the pool; the reply drops it at once.
public struct ReadBytes: Sendable {
    private enum Piece: Sendable {
        /// `range` of a pool buffer.
        case buffer(ReadBuffer, Range<Int>)
        /// Bytes assembled elsewhere (changes overlaid on the base).
        case bytes(AssembledBytes)
    }

    private var pieces: [Piece] = []
    /// Bytes in all pieces.
    public private(set) var count = 0

    /// No bytes: the end of the file.
    public init() {}

    init(_ bytes: [UInt8]) {
        if !bytes.isEmpty { pieces = [.bytes(AssembledBytes(bytes))] }
        count = bytes.count
    }

    /// Appends `range` of `buffer`'s bytes.
    mutating func append(_ buffer: ReadBuffer, _ range: Range<Int>) {
        guard !range.isEmpty else { return }
        pieces.append(.buffer(buffer, range))
        count += range.count
    }

    /// Calls `body` with the pieces in order, valid only during the call.
    public func withPieces<Result>(_ body: ([UnsafeRawBufferPointer]) throws -> Result) rethrows -> Result {
        try withExtendedLifetime(pieces) {
            try body(pieces.map { piece in
                switch piece {
                case .buffer(let buffer, let range): UnsafeRawBufferPointer(rebasing: buffer.rawBytes[range])
                case .bytes(let bytes): UnsafeRawBufferPointer(bytes.raw)
                }
            })
        }
    }

    /// The bytes in one array.
    public func gathered() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        for piece in pieces {
            switch piece {
            case .buffer(let buffer, let range): bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer.rawBytes[range]))
            case .bytes(let more): bytes.append(contentsOf: UnsafeRawBufferPointer(more.raw))
            }
        }
        return bytes
    }
}

/// Bytes of a read assembled in an array, moved to memory whose address stays valid while a
/// reply is sent from it.
private final class AssembledBytes: @unchecked Sendable {
    // @unchecked: written once in init, only read afterwards.
    let raw: UnsafeMutableRawBufferPointer

    init(_ bytes: [UInt8]) {
        raw = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
        bytes.withUnsafeBytes { raw.copyMemory(from: $0) }
    }

    deinit { raw.deallocate() }
}
