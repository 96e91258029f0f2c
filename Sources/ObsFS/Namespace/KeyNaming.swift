// How keys become names, and names keys. One set of rules for lookup and readdir:
//
// - A directory `d` is any of: a marker object `d/` (the OBS console's, obsfs's and s3fs's
//   convention; obsmount's mkdir writes one), keys under the prefix `d/` (no marker needed),
//   s3fs's older formats: an object `d` with Content-Type `application/x-directory`, or an
//   object `d_$folder$`.
// - A file `f` is an object `f` (a symlink is a file whose metadata mode has `S_IFLNK`).
// - When a file and a directory have the same name, the directory wins: the file is not shown
//   (one warning in the log). Lookup and readdir apply the same rule.
// - Keys that cannot be names are skipped with one log line: empty segments (`a//b`), `.`, `..`,
//   names with NUL, names over 1,024 bytes. The hidden object of directory attributes
//   (`.obsmount-dir-attrs`) and, in the root of a whole bucket, the root's marker
//   (`.obsmount-root`) are never shown.
// - New names (create, mkdir, symlink, mknod, rename's target) follow Linux's NAME_MAX: at most
//   255 bytes (what statfs reports), and the whole key at most 1,024 bytes (the store's limit);
//   longer ones answer ENAMETOOLONG. Longer names that other tools stored stay reachable.
import OBSProtocol

/// The naming rules; no state.
enum KeyNaming {
    static let directoryContentType = "application/x-directory"
    static let folderSuffix = "_$folder$"
    /// The marker of a whole bucket's root (no key can be the root: its mode, owner and times
    /// are kept on this hidden object).
    static let bucketRootMarkerName = ".obsmount-root"
    /// The record a directory rename by copies keeps in its target while it runs: the source's
    /// key prefix (FileSystem+Rename.swift, `checkResumable`).
    static let renameRecordName = ".obsmount-rename"

    /// Names of objects obsmount keeps for itself in the directory listed as `listPrefix`:
    /// never shown, never made by a program.
    static func isHidden(_ name: String, under listPrefix: String) -> Bool {
        name == DirectoryAttributes.objectName || name == renameRecordName || (listPrefix.isEmpty && name == bucketRootMarkerName)
    }
    /// The longest key the stores take, and the longest stored name this mount shows.
    static let maximumNameLength = 1024
    /// The longest name this mount creates (Linux's NAME_MAX).
    static let maximumNewNameLength = 255

    /// Whether the stores take `key`: a derived key (`d_$folder$`, a directory's hidden
    /// attributes object) longer than that cannot exist, and a request for it would be refused.
    static func fits(_ key: ObjectKey) -> Bool { key.rawValue.utf8.count <= maximumNameLength }

    /// Why a name cannot be used, or nil.
    static func problem(with name: String) -> String? {
        if name.isEmpty { return "empty name" }
        if name == "." || name == ".." { return "'\(name)' cannot be a file name" }
        if name.utf8.contains(0) { return "NUL in the name" }
        if name.utf8.contains(UInt8(ascii: "/")) { return "'/' in the name" }
        if name.utf8.count > maximumNameLength { return "name longer than \(maximumNameLength) bytes" }
        return nil
    }

    /// What one entry of a delimited listing under `listPrefix` names.
    enum ListedName: Equatable {
        case file(String)
        case directory(String)
        /// The directory's own marker (`listPrefix` itself) or a hidden object (`isHidden`).
        case hidden
        case unusable(String, reason: String)
    }

    static func classify(objectKey key: String, under listPrefix: String, contentType: String? = nil) -> ListedName {
        let name = key.droppingUTF8(first: listPrefix.utf8.count)
        if name.isEmpty || isHidden(name, under: listPrefix) { return .hidden }
        if name.utf8.count > folderSuffix.utf8.count, name.hasUTF8Suffix(folderSuffix) {
            let directory = name.droppingUTF8(last: folderSuffix.utf8.count)
            if let reason = problem(with: directory) { return .unusable(key, reason: reason) }
            return .directory(directory)
        }
        if let reason = problem(with: name) { return .unusable(key, reason: reason) }
        return contentType == directoryContentType ? .directory(name) : .file(name)
    }

    static func classify(commonPrefix prefix: String, under listPrefix: String) -> ListedName {
        let name = prefix.droppingUTF8(first: listPrefix.utf8.count).droppingUTF8(last: 1)
        if let reason = problem(with: name) { return .unusable(prefix, reason: reason) }
        return .directory(name)
    }
}
