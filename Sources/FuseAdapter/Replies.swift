// How the adapter's answers reach the kernel. The `Dispatcher` (Dispatcher.swift) sends every
// reply, and packs every directory entry, through a `Replies`: `LibfuseReplies` calls libfuse's
// `fuse_reply_*` and `fuse_add_direntry*` in the mounted session; tests substitute one that
// records the replies and can refuse them, so the adapter's bookkeeping (a lookup or a handle
// given back when the kernel does not take the reply that carried it) runs without a kernel.
// With the session, its operations table, the Dispatcher and SessionIO.swift, this is the only
// code that hands libfuse a pointer (the Unmanaged pairings are listed in FuseSession.swift).
import CFuse3
import Dispatch
import Glibc
import ObsFS
import Synchronization

/// One request from the kernel, to be answered exactly once.
struct Request: @unchecked Sendable {
    // @unchecked: a fuse_req_t may be answered from any thread; each Request is answered once.
    let raw: fuse_req_t
    /// A lookup, whose ENOENT is answered as a negative entry.
    var isLookup = false
}

/// The replies of the low-level API, one function each. Those that hand the kernel something it
/// must give back (an entry's lookup, a file handle, readdirplus entries' lookups) say whether the
/// kernel took the reply: false when it did not (the request was interrupted, the mount is gone),
/// and the caller gives back what the reply carried.
protocol Replies: Sendable {
    func error(_ request: Request, _ errno: Int32)
    func none(_ request: Request)
    @discardableResult
    func entry(_ request: Request, _ entry: fuse_entry_param) -> Bool
    func create(_ request: Request, _ entry: fuse_entry_param, _ info: fuse_file_info) -> Bool
    func open(_ request: Request, _ info: fuse_file_info) -> Bool
    func attributes(_ request: Request, _ attributes: stat, timeout: Double)
    func written(_ request: Request, count: Int)
    @discardableResult
    func buffer(_ request: Request, _ bytes: UnsafeRawBufferPointer) -> Bool
    /// One reply gathered from `pieces`, in order (a read answered from its buffers).
    func gathered(_ request: Request, _ pieces: [UnsafeRawBufferPointer])
    func symlinkTarget(_ request: Request, _ target: String)
    func statistics(_ request: Request, _ numbers: statvfs)
    func extendedAttributeSize(_ request: Request, _ size: Int)

    /// Packs one readdir entry at the start of `buffer`; returns the bytes it needs, which is more
    /// than `buffer.count` when it did not fit (nothing is packed then).
    func packEntry(_ request: Request, into buffer: UnsafeMutableRawBufferPointer, name: String, attributes: stat, cookie: off_t) -> Int
    /// Packs one readdirplus entry (name and attributes) like `packEntry`.
    func packEntryPlus(_ request: Request, into buffer: UnsafeMutableRawBufferPointer, name: String, entry: fuse_entry_param, cookie: off_t) -> Int

    /// Not a reply: tells the kernel to forget the attributes it holds of `inode`, changed by
    /// something no reply carries attributes of (set-ID bits dropped by a write or an O_TRUNC open).
    func attributesChanged(_ inode: InodeNumber)
    /// Not a reply: tells the kernel to forget what it holds of `name` in `parent` (a missing
    /// name it remembers included). Sent later (`SessionForNotifications.sendLater`).
    func entryChanged(_ name: String, in parent: InodeNumber)
}

/// The replies of a mounted session: libfuse's functions (each returns 0 when the reply was sent).
struct LibfuseReplies: Replies {
    /// The session notifications go to: set once it is mounted, cleared before it is destroyed.
    let session = SessionForNotifications()

    func error(_ request: Request, _ errno: Int32) { fuse_reply_err(request.raw, errno) }

    func none(_ request: Request) { fuse_reply_none(request.raw) }

    func entry(_ request: Request, _ entry: fuse_entry_param) -> Bool {
        var entry = entry
        return fuse_reply_entry(request.raw, &entry) == 0
    }

    func create(_ request: Request, _ entry: fuse_entry_param, _ info: fuse_file_info) -> Bool {
        var entry = entry
        var info = info
        return fuse_reply_create(request.raw, &entry, &info) == 0
    }

    func open(_ request: Request, _ info: fuse_file_info) -> Bool {
        var info = info
        return fuse_reply_open(request.raw, &info) == 0
    }

    func attributes(_ request: Request, _ attributes: stat, timeout: Double) {
        var attributes = attributes
        fuse_reply_attr(request.raw, &attributes, timeout)
    }

    func written(_ request: Request, count: Int) { fuse_reply_write(request.raw, count) }

    func buffer(_ request: Request, _ bytes: UnsafeRawBufferPointer) -> Bool {
        fuse_reply_buf(request.raw, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count) == 0
    }

    func gathered(_ request: Request, _ pieces: [UnsafeRawBufferPointer]) {
        var vectors = pieces.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        fuse_reply_iov(request.raw, &vectors, Int32(vectors.count))
    }

    func symlinkTarget(_ request: Request, _ target: String) { fuse_reply_readlink(request.raw, target) }

    func statistics(_ request: Request, _ numbers: statvfs) {
        var numbers = numbers
        fuse_reply_statfs(request.raw, &numbers)
    }

    func extendedAttributeSize(_ request: Request, _ size: Int) { fuse_reply_xattr(request.raw, size) }

    func packEntry(_ request: Request, into buffer: UnsafeMutableRawBufferPointer, name: String, attributes: stat, cookie: off_t) -> Int {
        var attributes = attributes
        return fuse_add_direntry(request.raw, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count, name, &attributes, cookie)
    }

    func packEntryPlus(_ request: Request, into buffer: UnsafeMutableRawBufferPointer, name: String, entry: fuse_entry_param, cookie: off_t) -> Int {
        var entry = entry
        return fuse_add_direntry_plus(request.raw, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count, name, &entry, cookie)
    }

    func attributesChanged(_ inode: InodeNumber) {
        // A negative offset: the attributes only, not cached pages.
        session.withSession { fuse_lowlevel_notify_inval_inode($0, fuse_ino_t(inode.rawValue), -1, 0) }
    }

    func entryChanged(_ name: String, in parent: InodeNumber) {
        session.sendLater { session in
            _ = name.withCString { fuse_lowlevel_notify_inval_entry(session, fuse_ino_t(parent.rawValue), $0, strlen($0)) }
        }
    }
}

/// The `struct fuse_session *` notifications are sent on, while it exists.
final class SessionForNotifications: Sendable {
    /// The pointer's bits (0: none). Held while a notification is sent, so that `clear` (before
    /// `fuse_session_destroy`) waits for it.
    private let bits = Mutex<Int>(0)
    /// The thread of notifications that may wait in the kernel for a directory's lock (`sendLater`).
    private let waitingNotifications = DispatchQueue(label: "obsmount.entry-notifications")

    func set(_ session: OpaquePointer) { bits.withLock { $0 = Int(bitPattern: session) } }

    /// No notification is sent any more; returns once none is being sent.
    func clear() {
        bits.withLock { $0 = 0 }
        waitingNotifications.sync {}
    }

    func withSession(_ body: (OpaquePointer) -> Void) {
        bits.withLock { bits in if let session = OpaquePointer(bitPattern: bits) { body(session) } }
    }

    /// Sends a notification the kernel answers only once it has a directory's lock, which the
    /// operation being answered, and lookups in that directory waiting for answers from the
    /// task pool, may hold meanwhile: later, on a thread of its own, without `bits` held (the
    /// queue's `sync` in `clear` waits for it instead). Sent on a pool thread and holding `bits`,
    /// it blocked both pool threads of a 2-core machine (one in it, one waiting for `bits`), and
    /// the mount hung.
    func sendLater(_ body: @escaping @Sendable (OpaquePointer) -> Void) {
        waitingNotifications.async {
            guard let session = OpaquePointer(bitPattern: self.bits.withLock { $0 }) else { return }
            body(session)
        }
    }
}
