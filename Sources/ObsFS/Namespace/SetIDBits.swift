// Dropping set-user-ID and set-group-ID bits, as Linux's VFS does for local filesystems
// (`setattr_should_drop_suidgid`, `chown_common`): a write or truncate by a caller without
// CAP_FSETID (here: not root) drops S_ISUID, and S_ISGID when the group may execute or the
// caller is not in the file's group; a chown of anything but a directory (FIFOs, sockets and
// devices too) drops S_ISUID whoever asks, and S_ISGID when the group may execute (or, for a
// caller other than root, is not the caller's). obsmount does this
// itself because the FUSE adapter asks the kernel to leave it to the filesystem
// (FUSE_HANDLE_KILLPRIV_V2, FuseAdapter/SessionIO.swift); without that, writes through direct
// I/O dropped nothing. Only the caller's primary group is known, so a caller in the file's group
// through a supplementary group loses S_ISGID of a file the group may not execute (where
// Linux keeps it). The drop is a metadata change like chmod (FileSystem+Metadata.swift).
#if canImport(Glibc)
import Glibc
#endif

/// What changes a file, for the set-ID bits it drops.
public enum SetIDDroppingChange: Sendable {
    /// A write, a truncate, an open with O_TRUNC.
    case content
    /// A chown (owner or group).
    case owner
}

extension PosixMetadata {
    /// `permissions` (the 12 low mode bits) of a file of group `fileGroup` after `change` by
    /// `caller`.
    static func permissions(_ permissions: UInt32, ofGroup fileGroup: UInt32, after change: SetIDDroppingChange, by caller: Caller) -> UInt32 {
        let privileged = caller.uid == 0
        if change == .content && privileged { return permissions }
        var dropped: UInt32 = S_ISUID
        if permissions & S_IXGRP != 0 || (!privileged && caller.gid != fileGroup) { dropped |= S_ISGID }
        return permissions & ~dropped
    }
}

extension ObsFileSystem {
    /// The permissions `change` by `caller` leaves `inode`, or nil when it drops nothing.
    func permissionsAfterDroppingSetID(_ inode: Inode, _ change: SetIDDroppingChange, by caller: Caller) -> UInt32? {
        // Cheap first (a write asks this every time): mode bits without set-ID bits drop nothing.
        // Only contents are written or truncated; anything but a directory is chowned.
        let applies = change == .content ? inode.kind == .regular : inode.kind != .directory
        guard applies, (inode.facts.posix.permissions ?? 0) & (S_ISUID | S_ISGID) != 0 else { return nil }
        let shown = attributes(of: inode)
        let permissions = shown.mode & 0o7777
        guard permissions & (S_ISUID | S_ISGID) != 0 else { return nil }
        let kept = PosixMetadata.permissions(permissions, ofGroup: shown.gid, after: change, by: caller)
        return kept == permissions ? nil : kept
    }

    /// Whether a write by `caller` through `handle` drops set-ID bits: then the FUSE adapter
    /// calls `dropSetIDBits(writingThrough:caller:)` before it answers the write. Cheap for root.
    public func writeDropsSetIDBits(_ handle: FileHandleID, caller: Caller) -> Bool {
        guard caller.uid != 0, let file = try? openFile(handle) else { return false }
        return permissionsAfterDroppingSetID(file.inode, .content, by: caller) != nil
    }

    /// Drops the set-ID bits a write by `caller` through `handle` drops.
    public func dropSetIDBits(writingThrough handle: FileHandleID, caller: Caller) async throws {
        let inode = try openFile(handle).inode
        guard let path = table.path(of: inode.number) else { return }  // unlinked: no object to change
        try await dropSetIDBits(inode, path, .content, by: caller)
    }

    /// Drops the set-ID bits `change` by `caller` drops, in the stored metadata like a chmod.
    func dropSetIDBits(_ inode: Inode, _ path: String, _ change: SetIDDroppingChange, by caller: Caller) async throws {
        guard let kept = permissionsAfterDroppingSetID(inode, change, by: caller) else { return }
        logger.info("\(objectKey(path)): set-ID bits dropped by a \(change == .owner ? "chown" : "change") by uid \(caller.uid): mode \(String(kept, radix: 8))")
        try await changePosix(inode, path, entry: "mode") { $0.permissions = kept }
    }
}
