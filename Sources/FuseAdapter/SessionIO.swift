// The session's reads and writes of /dev/fuse (libfuse's custom I/O): plain read(2) and
// writev(2), with one change to the answer to the kernel's INIT. libfuse 3.14 cannot ask for
// FUSE_HANDLE_KILLPRIV_V2 (it has no capability bit for it), so when the kernel offers it this
// adds it to INIT's answer. With it the kernel leaves dropping set-user-ID and set-group-ID bits
// to the filesystem (on write, truncate and chown, ObsFileSystem's `dropSetIDBits`) and stops
// asking for `security.capability` before every write into its page cache (`writeback_cache`).
import CFuse3
import Glibc
import Synchronization

/// The kernel's INIT request while its answer is not yet written: its ID and the flags it offers.
private let pendingInit = Mutex<(unique: UInt64, offered: UInt32)?>(nil)

private let headerSize = MemoryLayout<fuse_in_header>.size
private let initFlagsOffset = MemoryLayout<fuse_init_in>.offset(of: \fuse_init_in.flags)!
private let answerFlagsOffset = MemoryLayout<fuse_init_out>.offset(of: \fuse_init_out.flags)!
private let killPrivV2 = UInt32(FUSE_HANDLE_KILLPRIV_V2)

enum SessionIO {
    /// Installs the custom I/O on a mounted session (its /dev/fuse descriptor). False if libfuse
    /// refused it; the session then reads and writes the device itself.
    static func install(on session: OpaquePointer) -> Bool {
        var io = fuse_custom_io()
        io.read = { descriptor, buffer, length, _ in
            let count = read(descriptor, buffer, length)
            if let buffer, count >= headerSize + initFlagsOffset + 4 {
                let header = buffer.loadUnaligned(as: fuse_in_header.self)
                if header.opcode == FUSE_INIT.rawValue {
                    let offered = buffer.loadUnaligned(fromByteOffset: headerSize + initFlagsOffset, as: UInt32.self)
                    pendingInit.withLock { $0 = (header.unique, offered) }
                }
            }
            return count
        }
        io.writev = { descriptor, vectors, count, _ in
            if let vectors, count >= 2, let pending = pendingInit.withLock({ $0 }),
               let header = vectors[0].iov_base?.loadUnaligned(as: fuse_out_header.self), header.unique == pending.unique {
                pendingInit.withLock { $0 = nil }
                if header.error == 0, pending.offered & killPrivV2 != 0, vectors[1].iov_len >= answerFlagsOffset + 4, let answer = vectors[1].iov_base {
                    let flags = answer.loadUnaligned(fromByteOffset: answerFlagsOffset, as: UInt32.self)
                    answer.storeBytes(of: flags | killPrivV2, toByteOffset: answerFlagsOffset, as: UInt32.self)
                }
            }
            return writev(descriptor, vectors, count)
        }
        return fuse_session_custom_io(session, &io, fuse_session_fd(session)) == 0
    }
}
