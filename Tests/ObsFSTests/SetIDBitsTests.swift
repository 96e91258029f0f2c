// Set-user-ID and set-group-ID bits dropped by writes, truncates, O_TRUNC opens and chowns, as
// Linux drops them on a local filesystem (Sources/ObsFS/Namespace/SetIDBits.swift).
#if canImport(Glibc)
import Glibc
#endif
import OBSProtocol
import Testing
@testable import ObsFS

struct SetIDBitsTests {
    let root = Caller(uid: 0, gid: 0, umask: 0o022)
    let user = Caller(uid: 1000, gid: 100, umask: 0o022)

    @Test func linuxRule() {
        func after(_ permissions: UInt32, group: UInt32 = 100, _ change: SetIDDroppingChange, _ caller: Caller) -> UInt32 {
            PosixMetadata.permissions(permissions, ofGroup: group, after: change, by: caller)
        }
        // Writes and truncates: root keeps everything; others drop S_ISUID, and S_ISGID when the
        // group may execute or is not theirs.
        #expect(after(0o6777, .content, root) == 0o6777)
        #expect(after(0o6777, .content, user) == 0o0777)
        #expect(after(0o4755, .content, user) == 0o0755)
        #expect(after(0o2755, .content, user) == 0o0755)
        #expect(after(0o2744, .content, user) == 0o2744)
        #expect(after(0o2744, group: 5, .content, user) == 0o0744)
        // Chown: S_ISUID whoever asks; S_ISGID when the group may execute.
        #expect(after(0o6755, .owner, root) == 0o0755)
        #expect(after(0o2744, group: 5, .owner, root) == 0o2744)
        #expect(after(0o2744, group: 5, .owner, user) == 0o0744)
        #expect(after(0o0755, .owner, user) == 0o0755)
    }

    /// A mount over a fresh store holding a closed file `name` owned by `user` with `permissions`.
    func closedFile(_ name: String, _ permissions: UInt32) async throws -> (AttributeKeepingStore, ObsFileSystem, FileAttributes) {
        let store = AttributeKeepingStore()
        let fs = makeFileSystem(store)
        let (created, handle) = try await fs.create(parent: .root, name: name)
        _ = try await write(fs, handle, at: 0, [1, 2, 3]).get()
        try await close(fs, handle)
        let file = try await fs.setattr(created.inode, AttributeChanges(permissions: permissions, uid: user.uid, gid: user.gid))
        return (store, fs, file)
    }

    func storedMode(_ store: AttributeKeepingStore, _ name: String) -> String? { store.options(name)?.metadata["mode"] }

    /// close(): the opener's flush, then the release.
    func close(_ fs: ObsFileSystem, _ handle: FileHandleID) async throws {
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
    }

    @Test func truncateAndChownDropThemInTheStoredMetadata() async throws {
        let (store, fs, file) = try await closedFile("f", 0o6777)
        // Root truncates: kept. Another user truncates: dropped, in the object too.
        #expect(try await fs.setattr(file.inode, AttributeChanges(size: 1), by: root).mode & 0o7777 == 0o6777)
        #expect(try await fs.setattr(file.inode, AttributeChanges(size: 2), by: user).mode & 0o7777 == 0o0777)
        #expect(storedMode(store, "f") == String(UInt32(S_IFREG) | 0o777))
        // Chown by root drops S_ISUID (and S_ISGID, the group may execute); an explicit mode wins.
        _ = try await fs.setattr(file.inode, AttributeChanges(permissions: 0o6755), by: root)
        #expect(try await fs.setattr(file.inode, AttributeChanges(uid: 2000), by: root).mode & 0o7777 == 0o0755)
        #expect(storedMode(store, "f") == String(UInt32(S_IFREG) | 0o755))
        #expect(try await fs.setattr(file.inode, AttributeChanges(permissions: 0o4755, gid: 7), by: root).mode & 0o7777 == 0o4755)
        // Without a caller (calls from within obsmount) nothing is dropped.
        #expect(try await fs.setattr(file.inode, AttributeChanges(size: 0)).mode & 0o7777 == 0o4755)
    }

    @Test func aChownDropsThemOnEverythingButDirectories() async throws {
        // pjdfstest chown/00: FIFOs, sockets and devices lose them as regular files do.
        let store = AttributeKeepingStore()
        let fs = makeFileSystem(store)
        for (name, type) in [("fifo", S_IFIFO), ("socket", S_IFSOCK), ("device", S_IFCHR)] {
            let made = try await fs.mknod(parent: .root, name: name, mode: UInt32(type) | 0o644, device: 0x0102, caller: testCaller)
            _ = try await fs.setattr(made.inode, AttributeChanges(permissions: 0o6555), by: root)
            #expect(try await fs.setattr(made.inode, AttributeChanges(uid: 2000), by: root).mode & 0o7777 == 0o0555, "\(name)")
            #expect(storedMode(store, name) == String(UInt32(type) | 0o555), "\(name)")
        }
        let directory = try await fs.mkdir(parent: .root, name: "dir", mode: 0o755, caller: testCaller)
        _ = try await fs.setattr(directory.inode, AttributeChanges(permissions: 0o6755), by: root)
        #expect(try await fs.setattr(directory.inode, AttributeChanges(uid: 2000), by: root).mode & 0o7777 == 0o6755)
    }

    @Test func writesOfOtherUsersDropThemBeforeTheyAreAnswered() async throws {
        let (store, fs, file) = try await closedFile("w", 0o4755)
        let opened = try await fs.open(file.inode, flags: O_WRONLY | O_APPEND, by: user)
        #expect(!opened.changedAttributes)
        #expect(!fs.writeDropsSetIDBits(opened.handle, caller: root))
        #expect(fs.writeDropsSetIDBits(opened.handle, caller: user))
        try await fs.dropSetIDBits(writingThrough: opened.handle, caller: user)
        #expect(try await fs.getattr(file.inode).mode & 0o7777 == 0o0755)
        #expect(!fs.writeDropsSetIDBits(opened.handle, caller: user))
        _ = try await write(fs, opened.handle, at: 3, [4]).get()
        try await close(fs, opened.handle)
        #expect(store.inner.object("w") == [1, 2, 3, 4])
        #expect(storedMode(store, "w") == String(UInt32(S_IFREG) | 0o755))
    }

    @Test func anOpenWithOTruncDropsThemInTheNewUpload() async throws {
        let (store, fs, file) = try await closedFile("t", 0o6775)
        let byRoot = try await fs.open(file.inode, flags: O_WRONLY | O_TRUNC, by: root)
        #expect(!byRoot.changedAttributes)
        try await close(fs, byRoot.handle)
        #expect(storedMode(store, "t") == String(UInt32(S_IFREG) | 0o6775))
        let byUser = try await fs.open(file.inode, flags: O_WRONLY | O_TRUNC, by: user)
        #expect(byUser.changedAttributes)
        #expect(try await fs.getattr(file.inode).mode & 0o7777 == 0o0775)
        try await close(fs, byUser.handle)
        #expect(storedMode(store, "t") == String(UInt32(S_IFREG) | 0o775))
    }
}
