// The mount options of the read path (`read_ahead=`, `read_memory_budget=`,
// `kernel_read_ahead=`, `open_revalidate=`), documented in mount-options/README.md. MountOptions
// hands them here.
import OBSProtocol

/// The read options of a mount, with their defaults.
public struct ReadMountOptions: Sendable, Equatable {
    /// `read_ahead=`: the largest prefetch window of one sequentially read file.
    public var readAhead: Int64 = 64 << 20
    /// `read_memory_budget=`: bytes of read buffers for the whole mount.
    public var memoryBudget: Int64 = 256 << 20
    /// `kernel_read_ahead=`: the kernel's readahead for the mount (its `read_ahead_kb`), which
    /// is also the size of the read requests it sends; nil (`0`): left as the kernel sets it
    /// (128 KiB). The default, 1 MiB, is one request of `max_write`'s size: an eighth of the
    /// requests (measured in mount-options/README.md).
    public var kernelReadAhead: Int64? = 1 << 20
    /// `open_revalidate=` (seconds): an open for reading asks the store again (one HEAD) when
    /// what the mount knows of the file is older than this, so that a file another client
    /// replaced meanwhile is read in its new version (close-to-open, as on NFS) instead of
    /// failing with EIO until `attr_timeout=` passes. At or above `attr_timeout=`: only
    /// expired attributes are asked for again.
    public var openRevalidation: Duration = .seconds(1)

    public init() {}

    /// The smallest window: one first prefetch GET.
    static let minimumReadAhead: Int64 = 1 << 20

    /// Applies `name=value` when it is a read option; false when it is not one.
    mutating func apply(name: String, value: String?, option: String) throws(MountOptionError) -> Bool {
        switch name {
        case "read_ahead":
            let size = try MountOptions.size(try Self.required(value, option), option)
            guard size >= Self.minimumReadAhead, size <= 1 << 30 else { throw MountOptionError(option: option, reason: "must be between 1M and 1G") }
            readAhead = size
        case "read_memory_budget":
            let size = try MountOptions.size(try Self.required(value, option), option)
            guard size >= 4 * Self.minimumReadAhead, size <= 1 << 40 else { throw MountOptionError(option: option, reason: "must be between 4M and 1T") }
            memoryBudget = size
        case "kernel_read_ahead":
            let size = try MountOptions.size(try Self.required(value, option), option)
            guard size == 0 || (size >= 4 << 10 && size <= 64 << 20) else { throw MountOptionError(option: option, reason: "must be 0 or between 4K and 64M") }
            kernelReadAhead = size == 0 ? nil : size
        case "open_revalidate":
            openRevalidation = try MountOptions.seconds(option, try Self.required(value, option))
        default:
            return false
        }
        return true
    }

    /// The rule between the two options: a full window fits in the pool's retained share.
    func check() throws(MountOptionError) {
        guard memoryBudget >= 2 * readAhead else {
            throw MountOptionError(option: "read_memory_budget=\(memoryBudget)", reason: "must be at least twice read_ahead (\(readAhead) bytes)")
        }
    }

    /// The settings every read stream of the mount uses.
    public var settings: ReadSettings { ReadSettings(readAhead: readAhead) }

    /// The mount's one read buffer pool.
    public func makePool() -> ReadBufferPool { ReadBufferPool(capacity: Int(memoryBudget)) }

    private static func required(_ value: String?, _ option: String) throws(MountOptionError) -> String {
        guard let value, !value.isEmpty else { throw MountOptionError(option: option, reason: "needs a value") }
        return value
    }
}
