// The inode table: which inode has which name in which directory, and what is known of each.
//
// Design note
// - Identity is immutable: an `Inode` has a number and a kind for life. A name whose kind
//   changes, or whose object another client replaced (a different ETag, while this mount is not
//   writing it), gets a new inode; the old one stays valid for the kernel's references until
//   the kernel forgets it, detached from the tree (its calls answer ENOENT/ESTALE-like errors).
// - Location (parent, name) changes only by rename, which moves the inode as a local
//   filesystem does; the kernel's dentry for the new name keeps the same inode number.
// - Two kinds of state, two kinds of lock:
//   * the tree (`InodeTable.tree`): every inode's parent, name, kernel lookup count, whether it
//     is still linked, and each directory's children. One lock, held for dictionary operations
//     only, so that rename and unlink change two directories atomically;
//   * each inode's cached facts (`Inode.state`: size, ETag, POSIX metadata, their expiry, the
//     symlink target): its own lock, so `getattr` never waits for the tree or for another file.
//   Lock order: the tree lock, then at most one inode's state lock; neither is ever held across
//   an `await`, and no other lock (an upload session's) is taken under them.
// - The kernel's lookup count is kept per inode (lookup, create, mkdir, symlink, mknod and
//   readdirplus replies add one; forget subtracts); an inode leaves the table when it reaches 0.
//   Plain readdir creates no inodes (names not looked up yet are listed with the number their
//   lookup is to give them), so the table holds only what the kernel holds.
// - Numbers: a path's inode gets the path's own number (a hash), the same in every mount and
//   after the kernel forgot it, unless a live inode has that number (then a counter's).
import OBSHashing
import OBSProtocol
import Synchronization

/// What is known of one inode, valid until `expiry` (then the store is asked again).
struct InodeFacts: Sendable {
    var size: Int64
    var etag: ETag?
    /// Last-Modified from the store; the mtime when the metadata has none.
    var lastModified: FileTime
    var posix: PosixMetadata
    /// Whether `posix` was read from the object (HEAD) or written by this mount; false when only
    /// a listing's size and date are known.
    var posixLoaded: Bool
    var expiry: ContinuousClock.Instant

    static func unknown(expiry: ContinuousClock.Instant) -> InodeFacts {
        InodeFacts(size: 0, etag: nil, lastModified: .now(), posix: PosixMetadata(), posixLoaded: false, expiry: expiry)
    }
}

/// One inode: immutable identity, cached facts behind their own lock.
final class Inode: Sendable {
    let number: InodeNumber
    let kind: FileKind

    struct State: Sendable {
        var facts: InodeFacts
        /// A symlink's target, once read or written.
        var symlinkTarget: String?
        /// The options this mount last wrote the object with: what the store cannot report back
        /// (expires, persistent headers, SSE details) is read from here.
        var writtenOptions: ObjectOptions?
        /// Whether a directory has its own marker object (`name/`), where its metadata lives.
        var hasMarker: Bool = false
        /// The ETag of the version the last open for reading saw: while it is unchanged the
        /// kernel may keep the file's page cache between opens.
        var cachedETag: ETag?
        /// The ETag of the version this mount stored last (an upload completed, a composition):
        /// a descriptor still reading an older one moves on to it, as readers on a local disk
        /// read what the others wrote (`ObsFileSystem.read`).
        var storedHere: ETag?
        /// When this mount last changed what the store keeps no time for: the names in a
        /// directory (create, mkdir, symlink, mknod, unlink, rmdir, rename: its mtime and ctime,
        /// `namesChangedHere` too) or an inode's own name (rename: its ctime only). Kept in
        /// memory while the inode lives (a request per change would double the cost of a
        /// create); a later stored time wins.
        var changedHere: FileTime?
        var namesChangedHere: FileTime?
        /// Another client replaced the object and the name went to a new inode (`refresh`): an
        /// open of this one answers ESTALE, for the kernel to look the name up again.
        var replaced = false

        /// The object was copied (a rename, a metadata change copying it onto itself): the copy,
        /// with its own ETag, is the file's version from now on, and the version this mount
        /// stored when it was the one copied (readers moving on to it read the copy).
        mutating func noteCopy(_ copy: ETag) {
            if storedHere == facts.etag { storedHere = copy }
            facts.etag = copy
        }
    }

    /// The facts `getattr` answers from; short critical sections only.
    let state: Mutex<State>

    init(number: InodeNumber, kind: FileKind, facts: InodeFacts) {
        self.number = number
        self.kind = kind
        state = Mutex(State(facts: facts))
    }

    var facts: InodeFacts { state.withLock { $0.facts } }
}

/// The tree of inodes.
final class InodeTable: Sendable {
    struct Node {
        let inode: Inode
        var parent: InodeNumber
        var name: String
        var lookups: UInt64
        /// False once unlinked, replaced or detached: the kernel may still call with it.
        var linked: Bool
        /// A directory's children known to this mount (looked up, listed or created here);
        /// changed only through `setChild`, which keeps `subdirectories` counted.
        var children: [ExactName: InodeNumber] = [:]
        /// How many of `children` are directories: the link count is 2 more.
        var subdirectories = 0
        /// Until when `children` are all a directory has: set when this mount made it (mkdir),
        /// lost as soon as a child still linked leaves the table (the kernel forgot it).
        var childrenCompleteUntil: ContinuousClock.Instant?
    }

    private struct Tree {
        var nodes: [InodeNumber: Node] = [:]
        /// The next number to try when a path's own number is taken (`freeNumber`).
        var nextNumber: UInt64 = 2
    }

    /// The number a path's inode gets unless a live inode has it: the same in every mount and
    /// after the kernel forgot the inode, so that programs which compare inode numbers over time
    /// (`tar --listed-incremental`, git's index, `ls -i` beside `stat`) see the file unchanged.
    /// 63 bits of FNV-1a of the path, never the root's (1) nor FUSE's unknown inode (readdir).
    private let numbering: @Sendable (String) -> UInt64

    static func stableNumber(forPath path: String) -> UInt64 {
        let number = FNV1a.hash(path) & (UInt64.max >> 1)
        return number <= InodeNumber.root.rawValue || number == 0xffff_ffff ? number | (1 << 62) : number
    }

    /// Parent, name, lookup count, linked flag and children of every inode (see the design note).
    private let tree: Mutex<Tree>

    /// - Parameter numbering: a path's own inode number (tests give colliding ones).
    init(rootFacts: InodeFacts, numbering: @escaping @Sendable (String) -> UInt64 = InodeTable.stableNumber(forPath:)) {
        self.numbering = numbering
        var tree = Tree()
        tree.nodes[.root] = Node(inode: Inode(number: .root, kind: .directory, facts: rootFacts), parent: .root, name: "", lookups: 1, linked: true)
        self.tree = Mutex(tree)
    }

    func inode(_ number: InodeNumber) -> Inode? { tree.withLock { $0.nodes[number]?.inode } }

    /// This mount changed the names in `number`, a directory, now: its mtime and ctime.
    func noteNamesChanged(_ number: InodeNumber) {
        let now = FileTime.now()
        inode(number)?.state.withLock { state in
            state.changedHere = now
            state.namesChangedHere = now
        }
    }

    /// This mount changed `number` itself where the store keeps no time for it (its name by a
    /// rename, nothing by `chown(-1, -1)`), now: its ctime.
    func noteChangedItself(_ number: InodeNumber) {
        inode(number)?.state.withLock { $0.changedHere = .now() }
    }

    /// The inode if it is still linked into the tree.
    func linkedInode(_ number: InodeNumber) -> Inode? {
        tree.withLock { tree in tree.nodes[number].flatMap { $0.linked ? $0.inode : nil } }
    }

    /// The path below the mount root ("" for the root); nil when the inode is unknown or no
    /// longer linked.
    func path(of number: InodeNumber) -> String? {
        tree.withLock { tree in Self.path(of: number, in: tree) }
    }

    private static func path(of number: InodeNumber, in tree: Tree) -> String? {
        var components: [String] = []
        var current = number
        while current != .root {
            guard let node = tree.nodes[current], node.linked else { return nil }
            components.append(node.name)
            current = node.parent
        }
        return components.reversed().joined(separator: "/")
    }

    /// `number` and the directories above it, up to the root (while linked).
    func ancestry(of number: InodeNumber) -> [InodeNumber] {
        tree.withLock { tree in
            var chain = [number]
            var current = number
            while current != .root, let node = tree.nodes[current], node.linked {
                current = node.parent
                chain.append(current)
            }
            return chain
        }
    }

    /// Parent and name of a linked inode.
    func location(of number: InodeNumber) -> (parent: InodeNumber, name: String)? {
        tree.withLock { tree in tree.nodes[number].flatMap { $0.linked ? ($0.parent, $0.name) : nil } }
    }

    /// The child inode now linked at `name` in `parent`.
    func child(_ parent: InodeNumber, _ name: String) -> Inode? {
        tree.withLock { tree in
            guard let number = tree.nodes[parent]?.children[ExactName(name)], let node = tree.nodes[number], node.linked else { return nil }
            return node.inode
        }
    }

    /// The children this mount knows of `directory`, by name.
    func knownChildren(_ directory: InodeNumber) -> [ExactName: Inode] {
        tree.withLock { tree in
            guard let node = tree.nodes[directory] else { return [:] }
            return node.children.compactMapValues { number in tree.nodes[number].flatMap { $0.linked ? $0.inode : nil } }
        }
    }

    /// Records that the children of `directory` in the table are all it has, for `duration`
    /// (it was just made by this mount).
    func holdEveryChild(of directory: InodeNumber, for duration: Duration) {
        guard duration > .zero else { return }
        tree.withLock { $0.nodes[directory]?.childrenCompleteUntil = .now + duration }
    }

    /// Ends what `holdEveryChild` recorded: a listing showed a name the table does not hold.
    func forgetEveryChild(of directory: InodeNumber) {
        tree.withLock { $0.nodes[directory]?.childrenCompleteUntil = nil }
    }

    /// Whether `holdEveryChild` of `directory` has run out without being ended: a listing may
    /// renew it (`renewEveryChild`).
    func holdOfEveryChildLapsed(_ directory: InodeNumber) -> Bool {
        tree.withLock { tree in tree.nodes[directory]?.childrenCompleteUntil.map { $0 <= .now } ?? false }
    }

    /// Renews `holdEveryChild` of `directory` for `duration` from `listedAt`, when a complete
    /// listing of it sent then shows only names the table holds (or `alsoKnown`, names it keeps
    /// hidden); else ends it. Returns whether it was renewed.
    func renewEveryChild(of directory: InodeNumber, listed: [String], alsoKnown: Set<ExactName>, complete: Bool,
                         listedAt: ContinuousClock.Instant, for duration: Duration) -> Bool {
        tree.withLock { tree in
            guard let node = tree.nodes[directory], node.childrenCompleteUntil != nil else { return false }
            let holdsAll = complete && listed.allSatisfy { name in
                let exact = ExactName(name)
                return alsoKnown.contains(exact) || node.children[exact].flatMap { tree.nodes[$0]?.linked } == true
            }
            tree.nodes[directory]?.childrenCompleteUntil = holdsAll ? listedAt + duration : nil
            return holdsAll
        }
    }

    /// Whether `name` is missing from `directory` without asking the store: the table's
    /// children of `directory` are all it has (`holdEveryChild`) and none is linked as `name`.
    func knowsMissing(_ directory: InodeNumber, _ name: String) -> Bool {
        tree.withLock { tree in
            guard let node = tree.nodes[directory], let until = node.childrenCompleteUntil, until > .now else { return false }
            guard let child = node.children[ExactName(name)] else { return true }
            return tree.nodes[child]?.linked != true
        }
    }

    /// The inode for `name` in `parent` as an entry reply gives it to the kernel (lookup count
    /// + 1): the linked child when it has `kind` and `isCurrent` accepts it,
    /// else a new inode with `facts` that replaces it (the old one is detached).
    func entry(parent: InodeNumber, name: String, kind: FileKind, facts: InodeFacts,
               isCurrent: (Inode) -> Bool = { _ in true }) -> (inode: Inode, isNew: Bool)? {
        tree.withLock { tree -> (Inode, Bool)? in
            // Reads the parent in place: a copy of its node kept alive here would make the write
            // to its children below copy the whole dictionary (quadratic over a listing).
            let parentState = tree.nodes[parent].map { (usable: $0.linked && $0.inode.kind == .directory, child: $0.children[ExactName(name)]) }
            guard let parentState, parentState.usable else { return nil }
            if let existing = parentState.child, var node = tree.nodes[existing], node.linked {
                if node.inode.kind == kind && isCurrent(node.inode) {
                    node.lookups += 1
                    tree.nodes[existing] = node
                    return (node.inode, false)
                }
                Self.detach(existing, in: &tree)
            }
            let number = Self.freeNumber(numbering(Self.childPath(of: parent, name, in: tree)), in: &tree)
            let inode = Inode(number: number, kind: kind, facts: facts)
            tree.nodes[number] = Node(inode: inode, parent: parent, name: name, lookups: 1, linked: true)
            Self.setChild(name, of: parent, to: number, in: &tree)
            return (inode, true)
        }
    }

    /// The kernel dropped `count` references.
    func forget(_ number: InodeNumber, count: UInt64) {
        tree.withLock { tree in
            guard number != .root, var node = tree.nodes[number] else { return }
            node.lookups -= min(count, node.lookups)
            tree.nodes[number] = node
            Self.dropIfUnused(number, in: &tree)
        }
    }

    /// Removes `name` from `parent` (unlink, rmdir): the inode stays for the kernel's references.
    @discardableResult
    func unlink(_ parent: InodeNumber, _ name: String) -> Inode? {
        tree.withLock { tree in
            guard let number = tree.nodes[parent]?.children[ExactName(name)] else { return nil }
            let inode = tree.nodes[number]?.inode
            Self.detach(number, in: &tree)
            return inode
        }
    }

    /// Moves the child `name` of `parent` to `newName` in `newParent`; a child there is detached
    /// (it was replaced). False when the source is not linked.
    func move(_ parent: InodeNumber, _ name: String, to newParent: InodeNumber, _ newName: String) -> Bool {
        tree.withLock { tree in
            let moved = tree.nodes[parent]?.children[ExactName(name)]
            // The replaced file loses its name even when the moved one was never looked up.
            if let replaced = tree.nodes[newParent]?.children[ExactName(newName)], replaced != moved { Self.detach(replaced, in: &tree) }
            guard let number = moved, tree.nodes[number]?.linked == true, tree.nodes[newParent]?.linked == true else { return false }
            Self.setChild(name, of: parent, to: nil, in: &tree)
            tree.nodes[number]?.parent = newParent
            tree.nodes[number]?.name = newName
            Self.setChild(newName, of: newParent, to: number, in: &tree)
            return true
        }
    }

    /// Forgets every child of `directory` (after the whole directory was renamed or its
    /// listing changed under it): they are found again by lookup.
    func detachChildren(_ directory: InodeNumber) {
        tree.withLock { tree in
            for number in tree.nodes[directory]?.children.values.map({ $0 }) ?? [] { Self.detach(number, in: &tree) }
            tree.nodes[directory]?.childrenCompleteUntil = nil
        }
    }

    /// The link count `stat` shows: 0 once unlinked; a directory's is 2 (its name and its `.`)
    /// plus one per subdirectory this mount knows (each one's `..`), as on a local disk as far as
    /// this mount has looked (subdirectories not looked up or listed yet are not counted).
    func linkCount(of inode: Inode) -> UInt32 {
        tree.withLock { tree in
            guard let node = tree.nodes[inode.number], node.linked else { return 0 }
            return inode.kind == .directory ? 2 + UInt32(node.subdirectories) : 1
        }
    }

    /// Number of inodes in the table (tests and status).
    var count: Int { tree.withLock { $0.nodes.count } }

    private static func detach(_ number: InodeNumber, in tree: inout Tree) {
        guard var node = tree.nodes[number], number != .root else { return }
        if tree.nodes[node.parent]?.children[ExactName(node.name)] == number { setChild(node.name, of: node.parent, to: nil, in: &tree) }
        node.linked = false
        tree.nodes[number] = node
        // A detached directory's children can no longer be reached by path either.
        for child in node.children.values { detach(child, in: &tree) }
        tree.nodes[number]?.children = [:]
        tree.nodes[number]?.subdirectories = 0
        dropIfUnused(number, in: &tree)
    }

    /// Sets (or with nil removes) `parent`'s child `name`, counting the directories among them.
    /// Every node involved is still in the table.
    private static func setChild(_ name: String, of parent: InodeNumber, to number: InodeNumber?, in tree: inout Tree) {
        let key = ExactName(name)
        if let old = tree.nodes[parent]?.children[key], tree.nodes[old]?.inode.kind == .directory { tree.nodes[parent]?.subdirectories -= 1 }
        tree.nodes[parent]?.children[key] = number
        if let number, tree.nodes[number]?.inode.kind == .directory { tree.nodes[parent]?.subdirectories += 1 }
    }

    /// `wanted` (a path's own number) when no live inode has it, else the next free one of a
    /// counter: two live inodes never share a number (a replaced file's new inode beside the old
    /// one its readers hold, a rare collision of two paths' numbers).
    private static func freeNumber(_ wanted: UInt64, in tree: inout Tree) -> InodeNumber {
        if tree.nodes[InodeNumber(wanted)] == nil { return InodeNumber(wanted) }
        while tree.nodes[InodeNumber(tree.nextNumber)] != nil || tree.nextNumber == 0xffff_ffff { tree.nextNumber += 1 }
        defer { tree.nextNumber += 1 }
        return InodeNumber(tree.nextNumber)
    }

    private static func childPath(of parent: InodeNumber, _ name: String, in tree: Tree) -> String {
        childPath(path(of: parent, in: tree) ?? "", name)
    }

    /// The path of `name` in the directory at `parentPath` ("" for the root).
    static func childPath(_ parentPath: String, _ name: String) -> String { parentPath.isEmpty ? name : parentPath + "/" + name }

    /// The number the lookup of `name` in the directory at `parentPath` is to give it (unless a
    /// live inode has that number): a listing's `d_ino` for a name the table does not hold.
    func expectedNumber(of name: String, below parentPath: String) -> InodeNumber {
        InodeNumber(numbering(Self.childPath(parentPath, name)))
    }

    /// An inode leaves the table when the kernel holds no reference to it.
    private static func dropIfUnused(_ number: InodeNumber, in tree: inout Tree) {
        guard number != .root, let node = tree.nodes[number], node.lookups == 0 else { return }
        if tree.nodes[node.parent]?.children[ExactName(node.name)] == number {
            // A name that still exists leaves the children: they are no longer all there is.
            setChild(node.name, of: node.parent, to: nil, in: &tree)
            tree.nodes[node.parent]?.childrenCompleteUntil = nil
        }
        tree.nodes[number] = nil
    }
}
