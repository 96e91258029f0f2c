// A `Replies` in place of the kernel: it records what the Dispatcher answers and, once told to,
// refuses the replies that hand the kernel something (as libfuse does when the request was
// interrupted), so the tests see what the adapter gives back. It never touches libfuse.
import CFuse3
import Glibc
import ObsFS
import Synchronization
@testable import FuseAdapter

final class RecordingReplies: Replies {
    enum Reply: Equatable {
        case error(Int32)
        case none
        case entry(inode: UInt64)
        case create(inode: UInt64, handle: UInt64)
        case open(handle: UInt64)
        case attributes(inode: UInt64)
        case written(Int)
        case buffer(count: Int)
        case symlinkTarget(String)
        case statistics
        case extendedAttributeSize(Int)
        /// Not a reply: the kernel told to forget the attributes of an inode.
        case attributesChanged(inode: UInt64)
        /// Not a reply: the kernel told to forget a name of a directory.
        case entryChanged(name: String, parent: UInt64)

        /// The inode an entry or create reply handed the kernel.
        var inode: InodeNumber? {
            switch self {
            case .entry(let inode), .create(let inode, _): InodeNumber(inode)
            default: nil
            }
        }

        /// The file handle a create or open reply handed the kernel.
        var handle: FileHandleID? {
            switch self {
            case .create(_, let handle), .open(let handle): FileHandleID(handle)
            default: nil
            }
        }
    }

    /// Bytes each packed directory entry takes here, so that a test decides how many fit.
    static let packedEntrySize = 64

    private struct Record {
        var replies: [Reply] = []
        var packedNames: [String] = []
        var refusing = false
    }

    /// What was answered so far and whether replies are taken.
    private let record = Mutex(Record())

    /// Every reply, taken or refused, in order.
    var sent: [Reply] { record.withLock { $0.replies } }
    /// The names packed into directory replies, in order.
    var packedNames: [String] { record.withLock { $0.packedNames } }

    /// From now on the replies that say whether the kernel took them are refused.
    func refuse() { record.withLock { $0.refusing = true } }

    /// A request as the Dispatcher sees one: the handle is a token that only this recorder
    /// receives, never libfuse.
    static func request(isLookup: Bool = false) -> Request { Request(raw: OpaquePointer(bitPattern: 0x1)!, isLookup: isLookup) }

    /// Records `reply`; whether the kernel took it.
    @discardableResult
    private func send(_ reply: Reply) -> Bool {
        record.withLock { record in
            record.replies.append(reply)
            return !record.refusing
        }
    }

    private func pack(_ name: String, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        if buffer.count >= Self.packedEntrySize { record.withLock { $0.packedNames.append(name) } }
        return Self.packedEntrySize
    }

    func error(_ request: Request, _ errno: Int32) { send(.error(errno)) }
    func none(_ request: Request) { send(.none) }
    func entry(_ request: Request, _ entry: fuse_entry_param) -> Bool { send(.entry(inode: entry.ino)) }
    func create(_ request: Request, _ entry: fuse_entry_param, _ info: fuse_file_info) -> Bool { send(.create(inode: entry.ino, handle: info.fh)) }
    func open(_ request: Request, _ info: fuse_file_info) -> Bool { send(.open(handle: info.fh)) }
    func attributes(_ request: Request, _ attributes: stat, timeout: Double) { send(.attributes(inode: UInt64(attributes.st_ino))) }
    func written(_ request: Request, count: Int) { send(.written(count)) }
    func buffer(_ request: Request, _ bytes: UnsafeRawBufferPointer) -> Bool { send(.buffer(count: bytes.count)) }
    func gathered(_ request: Request, _ pieces: [UnsafeRawBufferPointer]) { _ = send(.buffer(count: pieces.reduce(0) { $0 + $1.count })) }
    func symlinkTarget(_ request: Request, _ target: String) { send(.symlinkTarget(target)) }
    func statistics(_ request: Request, _ numbers: statvfs) { send(.statistics) }
    func extendedAttributeSize(_ request: Request, _ size: Int) { send(.extendedAttributeSize(size)) }

    func attributesChanged(_ inode: InodeNumber) { send(.attributesChanged(inode: inode.rawValue)) }
    func entryChanged(_ name: String, in parent: InodeNumber) { send(.entryChanged(name: name, parent: parent.rawValue)) }

    func packEntry(_ request: Request, into buffer: UnsafeMutableRawBufferPointer, name: String, attributes: stat, cookie: off_t) -> Int {
        pack(name, into: buffer)
    }

    func packEntryPlus(_ request: Request, into buffer: UnsafeMutableRawBufferPointer, name: String, entry: fuse_entry_param, cookie: off_t) -> Int {
        pack(name, into: buffer)
    }
}
