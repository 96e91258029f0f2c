// Caller-owned memory that request bodies are sent from and response bodies are written into,
// without an intermediate copy.

/// An object owning a fixed region of raw memory, valid for as long as the object lives.
/// A transfer keeps a strong reference to the owner until it has finished with the bytes;
/// the owner must not change or free the region while a transfer holds it.
public protocol RawMemoryOwner: AnyObject, Sendable {
    var rawBytes: UnsafeMutableRawBufferPointer { get }
}

/// A byte range of an owner's memory.
public struct MemoryRegion: Sendable {
    public let owner: any RawMemoryOwner
    public let range: Range<Int>

    public init(owner: any RawMemoryOwner, range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= owner.rawBytes.count, "region outside its owner's memory")
        self.owner = owner
        self.range = range
    }

    public init(owner: any RawMemoryOwner) { self.init(owner: owner, range: 0..<owner.rawBytes.count) }

    public var count: Int { range.count }
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: owner.rawBytes[range]) }
    public var mutableBytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: owner.rawBytes[range]) }
}

/// Heap memory, page-aligned, freed when the last reference goes.
public final class AlignedMemory: RawMemoryOwner, @unchecked Sendable {
    // @unchecked: the pointer never changes after init; callers coordinate access to the bytes
    // (one writer, and no writer while a transfer reads them).
    public let rawBytes: UnsafeMutableRawBufferPointer

    public init(byteCount: Int, alignment: Int = 4096) {
        rawBytes = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: alignment)
    }

    public convenience init(copying bytes: some Collection<UInt8>) {
        self.init(byteCount: bytes.count)
        _ = UnsafeMutableRawBufferPointer(rebasing: rawBytes[...]).initializeMemory(as: UInt8.self, from: bytes)
    }

    deinit { rawBytes.deallocate() }
}
