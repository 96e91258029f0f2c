// A rename of files open for changes (ModifySession.swift). The rename retires every such
// session below the paths it moves or replaces, so that nothing is composed under the old name
// while the objects move; writes through a retired session wait for the rename's end. Then:
// - a session of the moved file (or of a file below the moved directory) is replaced by one over
//   the object under its new name, and the writes held, and every later write through the
//   descriptor, change the renamed file;
// - a session of the replaced target takes writes again; its file lost its name, so its changes
//   are dropped at the last close, as a local filesystem drops them (`commit`).
// The files a rename moves (the file, or the files below the directory) may be open for writing
// by programs that go on writing (`mv log log.1` beside the logger, `(echo foo; mv f f.new) > f`,
// `mv build build.old` during the build): the rename first stores what their descriptors hold (a
// file being streamed is completed as it stands and its writers go on as changes,
// `FileSystem+Rename.swift`; changes not stored yet are composed, `storeRetiredChanges`), and
// their sessions are retired whatever they hold; their writes wait while the objects are copied.
// The same holds for a replaced target open for writing: what it holds is stored first (then
// overwritten by the copy), and what its descriptors write after the rename is dropped at their
// last close.
import OBSProtocol

extension ObsFileSystem {
    /// The sessions a rename retired.
    struct RetiredChanges {
        /// Sessions of moved files, with the handles that hold each.
        var moved: [(session: ModifySession, handles: [FileHandleID])] = []
        /// Sessions of the file (or files below the directory) the rename replaces, with their
        /// handles.
        var replaced: [(session: ModifySession, handles: [FileHandleID])] = []
    }

    /// Retires the sessions changing `sourcePath`, `targetPath` or files below them, whatever
    /// they hold (the caller stores it, `storeRetiredChanges`); EBUSY (and none retired) when
    /// one failed a composition before (its file takes no change any more).
    func retireChanges(moving sourcePath: String, replacing targetPath: String) throws -> RetiredChanges {
        let open = openFiles.withLock { files in
            files.files.compactMap { handle, file in file.modify.map { (handle: handle, number: file.inode.number, session: $0) } }
        }
        var groups: [(session: ModifySession, handles: [FileHandleID], moved: Bool, path: String)] = []
        for (handle, number, session) in open {
            guard let path = table.path(of: number) else { continue }
            let moved = path.isPath(atOrBeneath: sourcePath)
            guard moved || path.isPath(atOrBeneath: targetPath) else { continue }
            if let index = groups.firstIndex(where: { $0.session === session }) {
                groups[index].handles.append(handle)
            } else {
                groups.append((session, [handle], moved, path))
            }
        }
        var retired = RetiredChanges()
        for group in groups {
            guard group.session.retire() else {
                unretire(retired)
                throw FileSystemError(.busy, "\(group.path): an earlier composition of its changes failed; rename it after it is closed")
            }
            if group.moved { retired.moved.append((group.session, group.handles)) } else { retired.replaced.append((group.session, group.handles)) }
        }
        return retired
    }

    /// The rename failed: every retired session takes writes again, under the name it kept.
    func unretire(_ retired: RetiredChanges) {
        for (session, _) in retired.moved + retired.replaced { session.unretire() }
    }

    /// Stores the changes the retired sessions hold (a composition under the old names, as a
    /// close would make), before the rename copies: the moved files' go with them; the replaced
    /// files' are overwritten by the copy, as a local filesystem loses what a replaced file held
    /// at its last close, but stay stored if the rename fails, and no composition of them can
    /// land after the copy.
    func storeRetiredChanges(_ retired: RetiredChanges) async throws {
        for (session, handles) in retired.moved + retired.replaced where session.holdsChanges {
            guard let file = openFiles.withLock({ files in handles.compactMap { files.files[$0]?.inode }.first }) else { continue }
            try await commit(session, file)
        }
    }

    /// After the table moved the names: each moved session is replaced by one over the object
    /// under its new name (its ETag as the store answers it now: a copy may have a new one); the
    /// writes it held go on through that one.
    func followRename(_ retired: RetiredChanges) async {
        for (session, _) in retired.replaced { session.unretire() }
        for (old, handles) in retired.moved {
            defer { old.renameEnded() }
            guard let number = openFiles.withLock({ files in handles.compactMap { files.files[$0]?.inode.number }.first }),
                  let path = table.path(of: number) else { continue }  // released meanwhile
            let key = objectKey(path)
            do {
                guard let object = try await store.headObject(key) else { throw FileSystemError(.noEntry, "\(key) is gone") }
                // What the copy holds: the rename may have given it another Content-Type.
                let fresh = try makeModifySession(key: key, etag: object.etag, size: object.size, written: Self.options(old.options, holding: object))
                let swapped = openFiles.withLock { files in
                    var swapped = false
                    for handle in handles where files.files[handle]?.modify === old {
                        files.files[handle]?.modify = fresh
                        swapped = true
                    }
                    return swapped
                }
                (swapped ? old : fresh).close()
            } catch {
                logger.error("\(key): renamed while its descriptor awaits its release; writes through it answer EBUSY: \(error)")
            }
        }
    }
}
