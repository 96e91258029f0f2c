// One open directory: its entries, fetched a page at a time as readdir asks for them.
import OBSProtocol

/// The listing behind one opendir. Entry i has cookie i + 1, so a readdir resuming at any
/// cookie the kernel got continues exactly after that entry, however pages fall.
actor DirectoryStream {
    private let store: any ObjectStore
    private let listPrefix: String
    private let pageSize: Int
    private let filesBeingWritten: [String]
    private let inodeOf: @Sendable (String) -> InodeNumber?
    private var entries: [DirectoryEntry]
    private var seen: Set<String> = []
    private var marker: String?
    private var exhausted = false

    /// Names whose inode is not known yet (never looked up) are listed with this placeholder;
    /// the kernel takes the real one from the lookup that follows. Never 0 (readdir skips 0).
    static let unknownInode = InodeNumber(UInt64(UInt32.max))

    init(store: any ObjectStore, listPrefix: String, pageSize: Int, selfInode: InodeNumber, parentInode: InodeNumber,
         filesBeingWritten: [String], inodeOf: @escaping @Sendable (String) -> InodeNumber?) {
        self.store = store
        self.listPrefix = listPrefix
        self.pageSize = pageSize
        self.filesBeingWritten = filesBeingWritten
        self.inodeOf = inodeOf
        entries = [
            DirectoryEntry(name: ".", inode: selfInode, kind: .directory, cookie: 1),
            DirectoryEntry(name: "..", inode: parentInode, kind: .directory, cookie: 2),
        ]
    }

    func entries(from offset: Int) async throws -> [DirectoryEntry] {
        while entries.count <= offset && !exhausted { try await fetchPage() }
        guard offset < entries.count else { return [] }
        return Array(entries[max(offset, 0)...])
    }

    private func fetchPage() async throws {
        let page = try await store.listObjects(prefix: listPrefix, delimiter: "/", marker: marker, maxKeys: pageSize)
        for object in page.objects {
            add(String(object.key.rawValue.dropFirst(listPrefix.count)), .regular)
        }
        for prefix in page.commonPrefixes {
            add(String(prefix.dropFirst(listPrefix.count).dropLast()), .directory)
        }
        marker = page.nextMarker
        if marker == nil {
            exhausted = true
            for name in filesBeingWritten { add(name, .regular) }
        }
    }

    /// Appends a name once; the directory marker itself ("" after the prefix) and the hidden
    /// object of directory attributes are skipped.
    private func add(_ name: String, _ kind: FileKind) {
        guard !name.isEmpty, name != DirectoryAttributes.objectName, !seen.contains(name) else { return }
        seen.insert(name)
        entries.append(DirectoryEntry(name: name, inode: inodeOf(name) ?? DirectoryStream.unknownInode, kind: kind,
                                      cookie: Int64(entries.count + 1)))
    }
}
