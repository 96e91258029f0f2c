// The session's reads and writes of /dev/fuse (libfuse's custom I/O): plain read(2) and
// writev(2), with one change to the answer to the kernel's INIT. libfuse 3.14 (Debian 12) knows
// the protocol up to 7.31 and cannot ask for two later capabilities obsmount relies on, so when
// the kernel offers them this adds them to INIT's answer:
// - FUSE_HANDLE_KILLPRIV_V2 (7.33): the kernel leaves dropping set-user-ID and set-group-ID bits
//   to the filesystem (on write, truncate and chown: ObsFS's Namespace/SetIDBits.swift) and stops
//   asking for `security.capability` before every write into its page cache (`writeback_cache`);
// - FUSE_DIRECT_IO_ALLOW_MMAP (7.39, Linux 6.6): files opened for direct I/O may be mapped shared
//   and writable (sqlite's WAL mode); the kernel writes the mapped pages back as ordinary writes.
// The kernel reads the flags of the answer whatever minor version libfuse announces.
import CFuse3
import Glibc
import Synchronization

/// The ID of the kernel's INIT request while its answer is not yet written; 0 otherwise (the
/// kernel gives no request that ID: it marks notifications). Every answer reads it, so it is
/// one atomic load, not a lock.
private let pendingInitUnique = Atomic<UInt64>(0)
/// The flags that INIT offers (`flags`, and `flags2` shifted up 32 bits when it sends them);
/// stored before `pendingInitUnique`.
private let offeredByKernel = Atomic<UInt64>(0)

private let headerSize = MemoryLayout<fuse_in_header>.size
private let offeredFlagsOffset = MemoryLayout<fuse_init_in>.offset(of: \fuse_init_in.flags)!
private let offeredFlags2Offset = MemoryLayout<fuse_init_in>.offset(of: \fuse_init_in.flags2)!
private let answerFlagsOffset = MemoryLayout<fuse_init_out>.offset(of: \fuse_init_out.flags)!
private let answerFlags2Offset = MemoryLayout<fuse_init_out>.offset(of: \fuse_init_out.flags2)!
private let extendedInit = UInt64(FUSE_INIT_EXT)
private let killPrivV2 = UInt64(FUSE_HANDLE_KILLPRIV_V2)
/// Not in Debian 12's linux/fuse.h (7.38): bit 36 of Linux 6.6's `FUSE_DIRECT_IO_ALLOW_MMAP`.
private let directIOAllowMmap = UInt64(1) << 36
private let added = killPrivV2 | directIOAllowMmap

enum SessionIO {
    /// Installs the custom I/O on a mounted session (its /dev/fuse descriptor). False if libfuse
    /// refused it; the session then reads and writes the device itself.
    static func install(on session: OpaquePointer) -> Bool {
        var io = fuse_custom_io()
        io.read = { descriptor, buffer, length, _ in
            let count = read(descriptor, buffer, length)
            if let buffer, count > 0 { SessionIO.noteRequest(UnsafeRawPointer(buffer), count: count) }
            return count
        }
        io.writev = { descriptor, vectors, count, _ in
            if let vectors { SessionIO.amendAnswer(vectors, count: Int(count)) }
            return writev(descriptor, vectors, count)
        }
        return fuse_session_custom_io(session, &io, fuse_session_fd(session)) == 0
    }

    /// Notes the flags the kernel offers when the request read into `buffer` is its INIT.
    static func noteRequest(_ buffer: UnsafeRawPointer, count: Int) {
        guard count >= headerSize + offeredFlagsOffset + 4 else { return }
        let header = buffer.loadUnaligned(as: fuse_in_header.self)
        guard header.opcode == FUSE_INIT.rawValue else { return }
        var offered = UInt64(buffer.loadUnaligned(fromByteOffset: headerSize + offeredFlagsOffset, as: UInt32.self))
        if offered & extendedInit != 0, count >= headerSize + offeredFlags2Offset + 4 {
            offered |= UInt64(buffer.loadUnaligned(fromByteOffset: headerSize + offeredFlags2Offset, as: UInt32.self)) << 32
        }
        offeredByKernel.store(offered, ordering: .relaxed)
        pendingInitUnique.store(header.unique, ordering: .releasing)
    }

    /// Adds the capabilities the kernel offered to the answer in `vectors` when it is the
    /// successful answer to the INIT noted (header, then `fuse_init_out`).
    static func amendAnswer(_ vectors: UnsafeMutablePointer<iovec>, count: Int) {
        let unique = pendingInitUnique.load(ordering: .acquiring)
        guard unique != 0, count >= 2, let header = vectors[0].iov_base?.loadUnaligned(as: fuse_out_header.self), header.unique == unique,
              pendingInitUnique.compareExchange(expected: unique, desired: 0, ordering: .acquiringAndReleasing).exchanged else { return }
        let offered = offeredByKernel.load(ordering: .relaxed)
        guard header.error == 0, let answer = vectors[1].iov_base, vectors[1].iov_len >= answerFlagsOffset + 4 else { return }
        var flags = UInt64(answer.loadUnaligned(fromByteOffset: answerFlagsOffset, as: UInt32.self))
        let hasFlags2 = flags & extendedInit != 0 && vectors[1].iov_len >= answerFlags2Offset + 4
        if hasFlags2 { flags |= UInt64(answer.loadUnaligned(fromByteOffset: answerFlags2Offset, as: UInt32.self)) << 32 }
        flags |= offered & added & (hasFlags2 ? ~0 : 0xFFFF_FFFF)
        answer.storeBytes(of: UInt32(truncatingIfNeeded: flags), toByteOffset: answerFlagsOffset, as: UInt32.self)
        if hasFlags2 { answer.storeBytes(of: UInt32(truncatingIfNeeded: flags >> 32), toByteOffset: answerFlags2Offset, as: UInt32.self) }
    }
}
