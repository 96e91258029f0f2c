// Typed identifiers the filesystem hands to the kernel.

/// A FUSE inode number. 1 is the mount's root directory.
public struct InodeNumber: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static let root = InodeNumber(1)
    public var description: String { "inode \(rawValue)" }
    public static func < (lhs: InodeNumber, rhs: InodeNumber) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The handle of an open file (FUSE `fh`), issued by `open`/`create`.
public struct FileHandleID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "fh \(rawValue)" }
}

/// The handle of an open directory (FUSE `fh` of opendir).
public struct DirectoryHandleID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "dir handle \(rawValue)" }
}

/// The process (for the kernel: the thread) a request came from; `unknown` when the kernel did
/// not say. The process that opened a file is the one whose close completes it.
public struct ProcessID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(_ rawValue: Int32) { self.rawValue = rawValue }
    public static let unknown = ProcessID(0)
    public var description: String { "pid \(rawValue)" }
}

/// Who issued a write or a flush: the kernel's lock owner, one value per file-descriptor table
/// (a process, or threads sharing descriptors). `unknown` when the kernel did not say.
public struct WriterIdentity: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static let unknown = WriterIdentity(0)
    public var description: String { "owner \(String(rawValue, radix: 16))" }
}
