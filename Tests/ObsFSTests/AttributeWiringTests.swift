// The `user.obs.*` calls of ObsFileSystem over an in-memory store that keeps object attributes:
// directories (hidden object, inheritance, remount), files being written (re-initiation, changes
// after completion, refusals), closed objects.
#if canImport(Glibc)
import Glibc
#endif
import OBSClient
import OBSHashing
import OBSProtocol
import Synchronization
import Testing
@testable import ObsFS

/// InMemoryStore plus the attributes of completed objects and a log of attribute requests.
final class AttributeKeepingStore: AttributeStore {
    let inner = InMemoryStore()
    struct Kept {
        var options: [ObjectKey: ObjectOptions] = [:]
        var requests: [String] = []
        var failMetadataChanges = false
        var heads = 0
        /// GET ?acl and GET ?tagging requests.
        var aclReads = 0
        var tagReads = 0
        /// `replaceMetadata` is a copy onto itself (the S3 dialects) rather than OBS's `PUT ?metadata`.
        var replacesByCopy = false
        /// Zero-byte PUTs wait for it while set (`emptyPutsWaiting` counts them).
        var emptyPutGate: OneShot<Void>?
        var emptyPutsWaiting = 0
    }
    /// Attributes per key, the requests made, and the injected failure.
    let kept = Mutex(Kept())
    static let owner = Owner(id: "owner-id")

    func checkBucket() async throws {}
    func headObject(_ key: ObjectKey) async throws -> ObjectAttributes? {
        guard var head = try await inner.headObject(key) else { return nil }
        if let options = kept.withLock({ $0.options[key] }) {
            head.metadata = options.metadata
            head.contentType = options.contentType
        }
        return head
    }
    func listObjects(prefix: String, delimiter: String?, marker: String?, maxKeys: Int) async throws -> ObjectListing {
        try await inner.listObjects(prefix: prefix, delimiter: delimiter, marker: marker, maxKeys: maxKeys)
    }
    func initiateUpload(_ key: ObjectKey, options: ObjectOptions) async throws -> UploadID { try await inner.initiateUpload(key, options: options) }
    func uploadPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, body: MemoryRegion, integrity: PartIntegrity,
                    customerKey: CustomerKey?) async throws -> PartReceipt {
        try await inner.uploadPart(key, uploadID: uploadID, number: number, body: body, integrity: integrity, customerKey: customerKey)
    }
    func completeUpload(_ key: ObjectKey, uploadID: UploadID, parts: [PartReceipt]) async throws -> StoredObject {
        let stored = try await inner.completeUpload(key, uploadID: uploadID, parts: parts)
        let options = inner.contents.withLock { $0.initiatedOptions[key] } ?? ObjectOptions()
        kept.withLock { $0.options[key] = options }
        return stored
    }
    func abortUpload(_ key: ObjectKey, uploadID: UploadID) async throws { try await inner.abortUpload(key, uploadID: uploadID) }
    func putEmptyObject(_ key: ObjectKey, options: ObjectOptions) async throws -> ETag {
        if let gate = kept.withLock({ kept in kept.emptyPutGate.map { kept.emptyPutsWaiting += 1; return $0 } }) { await gate.value }
        kept.withLock { $0.options[key] = options }
        return try await inner.putEmptyObject(key, options: options)
    }
    func deleteObject(_ key: ObjectKey) async throws { try await inner.deleteObject(key) }

    func objectAttributes(_ key: ObjectKey, customerKey: CustomerKey?) async throws -> StoredObjectAttributes? {
        guard let head = try await inner.headObject(key) else { return nil }
        var options = kept.withLock { kept in
            kept.heads += 1
            return kept.options[key] ?? ObjectOptions()
        }
        // What a HEAD reply cannot show.
        options.acl = nil
        options.grants = [:]
        options.tags = []
        options.expiresDays = nil
        options.persistentHeaders = [:]
        return StoredObjectAttributes(options: options, state: ObjectAttributeState(etag: head.etag, size: head.size))
    }
    func objectACL(_ key: ObjectKey) async throws -> AccessControlPolicy {
        let options = kept.withLock { kept in
            kept.aclReads += 1
            return kept.options[key]
        }
        return ObjectACLMapping.policy(for: options ?? ObjectOptions(), owner: AttributeKeepingStore.owner)
    }
    func setObjectACL(_ key: ObjectKey, canned: CannedACL) async throws {
        kept.withLock {
            $0.requests.append("acl \(canned.rawValue)")
            $0.options[key, default: ObjectOptions()].acl = canned
            $0.options[key, default: ObjectOptions()].grants = [:]
        }
    }
    func setObjectACL(_ key: ObjectKey, policy: AccessControlPolicy) async throws {
        kept.withLock {
            $0.requests.append("acl policy")
            ObjectACLMapping.read(policy, into: &$0.options[key, default: ObjectOptions()])
        }
    }
    func objectTags(_ key: ObjectKey) async throws -> [ObjectTag] {
        kept.withLock { kept in
            kept.tagReads += 1
            return kept.options[key]?.tags ?? []
        }
    }
    var replacesMetadataByCopy: Bool { kept.withLock { $0.replacesByCopy } }
    func setObjectTags(_ key: ObjectKey, _ tags: [ObjectTag]) async throws {
        kept.withLock {
            $0.requests.append("tags")
            $0.options[key, default: ObjectOptions()].tags = tags
        }
    }
    func replaceMetadata(_ key: ObjectKey, with options: ObjectOptions, storageClassOnly: Bool) async throws {
        try kept.withLock { kept in
            kept.requests.append(storageClassOnly ? "storage class" : "metadata")
            guard !kept.failMetadataChanges else { throw ServiceError(status: 500, code: .internalError, message: "injected", requestID: "R1") }
            var stored = kept.options[key] ?? ObjectOptions()
            stored.storageClass = options.storageClass
            if !storageClassOnly {
                stored.metadata = options.metadata
                stored.contentType = options.contentType
                stored.contentEncoding = options.contentEncoding
                stored.websiteRedirectLocation = options.websiteRedirectLocation
            }
            kept.options[key] = stored
        }
    }
    func objectBytes(_ key: ObjectKey) async throws -> [UInt8]? { inner.object(key.rawValue) }
    func putObject(_ key: ObjectKey, bytes: [UInt8], options: ObjectOptions) async throws -> ETag {
        kept.withLock { $0.options[key] = options }
        return try await inner.putObject(key, bytes: bytes, options: options)
    }
    func copyObject(_ source: ObjectKey, to destination: ObjectKey, options: ObjectOptions) async throws -> ETag {
        kept.withLock { $0.options[destination] = options }
        return try await inner.copyObject(source, to: destination, options: options)
    }
    func copyPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, source: ObjectKey, range: ClosedRange<Int64>) async throws -> ETag {
        try await inner.copyPart(key, uploadID: uploadID, number: number, source: source, range: range)
    }

    func options(_ key: String) -> ObjectOptions? { kept.withLock { $0.options[ObjectKey(key)] } }
    var requests: [String] { kept.withLock { $0.requests } }
}

/// Compositions (truncates, appends) through the inner store.
extension AttributeKeepingStore: ComposesThroughInner {}

struct AttributeWiringTests {
    /// Sequential 8 KiB writes of `bytes` from `offset`.
    func writeAt(_ fs: ObsFileSystem, _ handle: FileHandleID, _ bytes: [UInt8], offset: Int) async throws {
        for start in stride(from: 0, to: bytes.count, by: 8192) {
            _ = try await write(fs, handle, at: Int64(offset + start), Array(bytes[start..<min(start + 8192, bytes.count)])).get()
        }
    }

    func set(_ fs: ObsFileSystem, _ inode: InodeNumber, _ name: String, _ value: String) async throws {
        try await fs.setxattr(inode, name: "user.obs." + name, value: Array(value.utf8))
    }

    func text(_ fs: ObsFileSystem, _ inode: InodeNumber, _ name: String) async throws -> String {
        String(decoding: try await fs.getxattr(inode, name: "user.obs." + name), as: UTF8.self)
    }

    @Test func directoryAttributesPersistInAHiddenObjectAndAreInherited() async throws {
        let store = AttributeKeepingStore()
        store.inner.contents.withLock { $0.objects[ObjectKey("p/a/b/seed")] = [] }
        let fs = makeFileSystem(store, prefix: "p/")
        let a = try await fs.lookup(parent: .root, name: "a")
        let b = try await fs.lookup(parent: a.inode, name: "b")
        try await set(fs, .root, "meta.level", "root")
        try await set(fs, .root, "meta.owner", "ops")
        try await set(fs, a.inode, "storage-class", "COLD")
        try await set(fs, b.inode, "meta.level", "b")
        #expect(store.inner.object("p/a/.obsmount-dir-attrs") != nil)
        #expect(try await fs.listxattr(a.inode) == ["user.obs.storage-class"])

        // A new mount of the same store reads them back.
        let remounted = makeFileSystem(store, prefix: "p/")
        let a2 = try await remounted.lookup(parent: .root, name: "a")
        let b2 = try await remounted.lookup(parent: a2.inode, name: "b")
        #expect(try await text(remounted, b2.inode, "meta.level") == "b")
        let (_, handle) = try await remounted.create(parent: b2.inode, name: "f.txt")
        let initiated = store.inner.contents.withLock { $0.initiatedOptions[ObjectKey("p/a/b/f.txt")] }
        #expect(userMetadata(initiated?.metadata) == ["level": "b", "owner": "ops"])
        #expect(initiated?.storageClass == .cold)
        #expect(initiated?.contentType == "text/plain")
        await remounted.release(handle)

        // Hidden from listings and lookups; removing the last value deletes the object.
        let listing = try remounted.openDirectory(a2.inode)
        #expect(try await remounted.readDirectory(listing, from: 0).map(\.name).contains(".obsmount-dir-attrs") == false)
        #expect(await errno { _ = try await remounted.lookup(parent: a2.inode, name: ".obsmount-dir-attrs") } == .noEntry)
        try await remounted.removexattr(a2.inode, name: "user.obs.storage-class")
        #expect(store.inner.object("p/a/.obsmount-dir-attrs") == nil)
    }

    @Test func aNameStartingWithACombiningMarkInheritsItsDirectorysAttributes() async throws {
        // "a/\u{301}f" split at Characters is one component ("/\u{301}" is one Character): the
        // file inherited from the root only.
        let store = AttributeKeepingStore()
        store.inner.contents.withLock { $0.objects[ObjectKey("a/seed")] = [] }
        let fs = makeFileSystem(store)
        let a = try await fs.lookup(parent: .root, name: "a")
        try await set(fs, a.inode, "storage-class", "COLD")
        let (_, handle) = try await fs.create(parent: a.inode, name: "\u{301}f.txt")
        let initiated = store.inner.contents.withLock { $0.initiatedOptions[ObjectKey("a/\u{301}f.txt")] }
        #expect(initiated?.storageClass == .cold)
        #expect(initiated?.contentType == "text/plain")
        await fs.release(handle)
    }

    @Test func directoriesWhoseNamesAreCanonicallyEquivalentKeepTheirOwnAttributes() async throws {
        // Keyed by `String`, the cache gave the NFD directory the NFC one's storage class.
        let store = AttributeKeepingStore()
        let fs = makeFileSystem(store)
        let composed = try await fs.mkdir(parent: .root, name: "caf\u{E9}", mode: 0o755, caller: testCaller).inode
        let decomposed = try await fs.mkdir(parent: .root, name: "cafe\u{301}", mode: 0o755, caller: testCaller).inode
        try await set(fs, composed, "storage-class", "COLD")
        let (_, handle) = try await fs.create(parent: decomposed, name: "f")
        #expect(store.inner.contents.withLock { $0.initiatedOptions[ObjectKey("cafe\u{301}/f")] }?.storageClass == nil)
        await fs.release(handle)
    }

    @Test func aChangeBeforeTheFirstPartReinitiatesAndKeepsTheBytes() async throws {
        let store = AttributeKeepingStore()
        let fs = makeFileSystem(store)
        let (attributes, handle) = try await fs.create(parent: .root, name: "f.bin")
        let first = try await text(fs, attributes.inode, "upload_id")
        let data = pattern(Int(minimumPart) * 2 + 77)
        _ = try await write(fs, handle, at: 0, Array(data[..<1000])).get()
        try await set(fs, attributes.inode, "expires", "7")
        #expect(try await text(fs, attributes.inode, "upload_id") != first)
        #expect(store.inner.uploadsInProgress == 1)
        try await writeAt(fs, handle, Array(data[1000...]), offset: 1000)
        try await fs.flush(handle, writer: WriterIdentity(7))
        #expect(store.inner.object("f.bin") == data)
        #expect(store.options("f.bin")?.expiresDays == 7)
        await fs.release(handle)
    }

    @Test func changesAfterPartsAreSentAfterCompletionAndInitiationOnlyOnesAreRefused() async throws {
        let store = AttributeKeepingStore()
        let fs = makeFileSystem(store)
        let (attributes, handle) = try await fs.create(parent: .root, name: "f.bin")
        let data = pattern(Int(minimumPart) * 3)
        try await writeAll(fs, handle, Array(data[..<(Int(minimumPart) * 2)]), chunk: 8192)
        try await set(fs, attributes.inode, "meta.state", "done")
        try await set(fs, attributes.inode, "acl", "public-read")
        #expect(await errno { try await set(fs, attributes.inode, "expires", "3") } == .busy)
        #expect(await errno { try await set(fs, attributes.inode, "etag", "x") } == .notPermitted)
        #expect(try await text(fs, attributes.inode, "meta.state") == "done")
        #expect(store.requests.isEmpty)
        try await writeAt(fs, handle, Array(data[(Int(minimumPart) * 2)...]), offset: Int(minimumPart) * 2)
        try await fs.flush(handle, writer: WriterIdentity(7))
        #expect(store.requests == ["metadata", "acl public-read"])
        #expect(store.options("f.bin")?.metadata["state"] == "done")
        await fs.release(handle)
        // Closed: read back from the store, changed at once, initiation-only refused.
        #expect(try await text(fs, attributes.inode, "acl") == "public-read")
        try await set(fs, attributes.inode, "storage-class", "WARM")
        try await fs.removexattr(attributes.inode, name: "user.obs.meta.state")
        #expect(store.options("f.bin")?.storageClass == .warm)
        #expect(userMetadata(store.options("f.bin")?.metadata) == [:])
        #expect(await errno { try await set(fs, attributes.inode, "expires", "3") } == .notPermitted)
        // Names outside user.* are answered without a request.
        let heads = store.kept.withLock { $0.heads }
        #expect(await errno { _ = try await fs.getxattr(attributes.inode, name: "security.selinux") } == .notSupported)
        #expect(store.kept.withLock { $0.heads } == heads)
        // The same value again changes nothing and sends nothing.
        let sent = store.requests.count
        try await set(fs, attributes.inode, "storage-class", "WARM")
        #expect(store.requests.count == sent)
    }

    @Test func aModeChangeOfAClosedFileReadsOnlyWhatItsRequestMustSendAgain() async throws {
        // OBS's PUT ?metadata resets the tags unless sent and keeps the ACL; a copy onto itself
        // (the S3 dialects) resets the ACL and keeps the tags. The three reads were sent one
        // after the other, all of them whatever the store.
        for byCopy in [false, true] {
            let store = AttributeKeepingStore()
            store.kept.withLock { $0.replacesByCopy = byCopy }
            let fs = makeFileSystem(store)
            let (attributes, handle) = try await fs.create(parent: .root, name: "f.bin")
            try await writeAll(fs, handle, pattern(100), chunk: 100)
            try await fs.flush(handle, writer: WriterIdentity(7))
            await fs.release(handle)
            let reads = { store.kept.withLock { [$0.heads, $0.aclReads, $0.tagReads] } }
            let before = reads()
            _ = try await fs.setattr(attributes.inode, AttributeChanges(permissions: 0o600))
            #expect(zip(reads(), before).map { $0 - $1 } == (byCopy ? [1, 1, 0] : [1, 0, 1]))
            #expect(store.requests.last == "metadata")
            #expect(store.options("f.bin")?.metadata["mode"] == String(UInt32(S_IFREG) | 0o600))
        }
    }

    @Test func aFailedChangeAfterCompletionFailsClose() async throws {
        let store = AttributeKeepingStore()
        let fs = makeFileSystem(store)
        let (attributes, handle) = try await fs.create(parent: .root, name: "f.bin")
        try await writeAll(fs, handle, pattern(Int(minimumPart) + 10), chunk: 8192)
        try await set(fs, attributes.inode, "meta.k", "v")
        store.kept.withLock { $0.failMetadataChanges = true }
        #expect(await errno { try await fs.flush(handle, writer: WriterIdentity(7)) } == .io)
        await fs.release(handle)
    }

    @Test func halfAPairWaitsForItsOtherHalfAndCloseFailsWithoutIt() async throws {
        let store = AttributeKeepingStore()
        let fs = makeFileSystem(store)
        let (attributes, handle) = try await fs.create(parent: .root, name: "f.bin")
        let first = try await text(fs, attributes.inode, "upload_id")
        try await set(fs, attributes.inode, "object-lock-mode", "COMPLIANCE")
        #expect(try await text(fs, attributes.inode, "upload_id") == first)
        try await writeAll(fs, handle, pattern(Int(minimumPart) * 2), chunk: 8192)
        #expect(await errno { try await fs.flush(handle, writer: WriterIdentity(7)) } == .invalidArgument)
        await fs.release(handle)
    }

    @Test func aDirectoryPairIsCheckedWhenAFileIsCreated() async throws {
        let store = AttributeKeepingStore()
        let fs = makeFileSystem(store)
        try await set(fs, .root, "sse-kms-bucket-key", "true")
        #expect(await errno { _ = try await fs.create(parent: .root, name: "f") } == .invalidArgument)
        try await set(fs, .root, "sse-kms-key-id", "k1")
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        #expect(store.inner.contents.withLock { $0.initiatedOptions[ObjectKey("f")] }?.encryption == .kms(keyID: "k1", bucketKeyEnabled: true))
        await fs.release(handle)
    }

    @Test func anSSECKeyNeverReachesTheDirectoryObject() async throws {
        let store = AttributeKeepingStore()
        let key = CustomerKey(key: SecretBytes(pattern(32, seed: 9)))
        var upload = UploadMountOptions()
        upload.customerKey = key
        let fs = makeFileSystem(store, uploadOptions: upload)
        try await set(fs, .root, "sse", "c")
        let stored = String(decoding: store.inner.object(".obsmount-dir-attrs") ?? [], as: UTF8.self)
        #expect(stored.contains("user.obs.sse: c\n"))
        #expect(!stored.contains(key.key.withBytes { Base64.encode($0) }))
        let (_, handle) = try await fs.create(parent: .root, name: "secret.bin")
        #expect(store.inner.contents.withLock { $0.initiatedOptions[ObjectKey("secret.bin")] }?.encryption == .customer(key))
        #expect(try await text(fs, .root, "sse") == "c")
        await fs.release(handle)
    }

    @Test func createAndReplaceFlags() async throws {
        let fs = makeFileSystem(AttributeKeepingStore())
        let value = Array("COLD".utf8)
        #expect(await errno { try await fs.setxattr(.root, name: "user.obs.storage-class", value: value, flags: ObsFileSystem.replaceOnly) } == .noAttribute)
        try await fs.setxattr(.root, name: "user.obs.storage-class", value: value, flags: ObsFileSystem.createOnly)
        #expect(await errno { try await fs.setxattr(.root, name: "user.obs.storage-class", value: value, flags: ObsFileSystem.createOnly) } == .exists)
        try await fs.setxattr(.root, name: "user.obs.storage-class", value: Array("WARM".utf8), flags: ObsFileSystem.replaceOnly)
        #expect(try await text(fs, .root, "storage-class") == "WARM")
    }

    @Test func namesOutsideTheNamespaceAndStoresWithoutAttributes() async throws {
        let fs = makeFileSystem(InMemoryStore())
        #expect(await errno { try await fs.setxattr(.root, name: "trusted.other", value: [1]) } == .notSupported)
        #expect(await errno { try await fs.setxattr(.root, name: "user.obs.bogus", value: [1]) } == .notSupported)
        #expect(await errno { try await fs.setxattr(.root, name: "user.obs.meta.k", value: [1]) } == .notSupported)
        #expect(await errno { _ = try await fs.getxattr(.root, name: "user.other") } == .noAttribute)
    }
}

extension AttributeWiringTests {
    /// A forked child's exit flushes the still-empty file (its zero-byte object is written) while
    /// the parent changes the mode through its descriptor (stress-ng's access): the change waits
    /// for that PUT, not for the file's release, which the parent sends only after the change
    /// (it hung there, and every chmod of the mount behind it).
    @Test func aFileListsTheSameNamesWhileWrittenStoredAndReleased() async throws {
        // The list showed the upload's names while the file was written, then also the store's
        // defaults (ACL private, storage class STANDARD) once stored: for a file stored empty
        // that happened between its close and its release, and listxattr's size probe then
        // failed with ERANGE (fsstress, CPython's test_os).
        let local = try LocalOBS()
        defer { local.stop() }
        let fs = makeFileSystem(local.store)
        for bytes in [[], pattern(1000)] {
            let (created, handle) = try await fs.create(parent: .root, name: "f\(bytes.count).txt")
            if !bytes.isEmpty { #expect(try await write(fs, handle, at: 0, bytes).get() == bytes.count) }
            #expect(try await fs.listxattr(created.inode) == [])
            try await fs.flush(handle, writer: WriterIdentity(7))
            #expect(try await fs.listxattr(created.inode) == [])
            await fs.release(handle)
            #expect(try await fs.listxattr(created.inode) == [])
            // The defaults and the inferred type are read by name; other values are listed.
            #expect(try await text(fs, created.inode, "acl") == "private")
            #expect(try await text(fs, created.inode, "storage-class") == "STANDARD")
            #expect(try await text(fs, created.inode, "content-type") == "text/plain")
            try await set(fs, created.inode, "storage-class", "WARM")
            try await set(fs, created.inode, "acl", "public-read")
            #expect(try await fs.listxattr(created.inode) == ["user.obs.acl", "user.obs.storage-class"])
            try await set(fs, created.inode, "content-type", "text/x-log")
            #expect(try await fs.listxattr(created.inode) == ["user.obs.acl", "user.obs.content-type", "user.obs.storage-class"])
        }
        await fs.shutdown()
    }

    @Test func aModeChangeWhileTheEmptyObjectIsWrittenWaitsOnlyForThatWrite() async throws {
        let store = AttributeKeepingStore()
        let fs = makeFileSystem(store)
        let parent = ProcessID(100)
        let (created, handle) = try await fs.create(parent: .root, name: "e", mode: 0o600, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: parent))
        let gate = OneShot<Void>()
        store.kept.withLock { $0.emptyPutGate = gate }
        let childExit = Task { try await fs.flush(handle, writer: WriterIdentity(21), process: ProcessID(121)) }
        #expect(try await eventually { store.kept.withLock { $0.emptyPutsWaiting } == 1 })
        let changed = Mutex(false)
        let chmod = Task {
            defer { changed.withLock { $0 = true } }
            return try await fs.setattr(created.inode, AttributeChanges(permissions: 0o644))
        }
        try await Task.sleep(for: .milliseconds(20))
        store.kept.withLock { $0.emptyPutGate = nil }
        gate.fulfill(())
        try await childExit.value
        #expect(try await eventually { changed.withLock { $0 } })  // before the release below
        await fs.release(handle)
        #expect(try await chmod.value.mode & 0o777 == 0o644)
        #expect(store.kept.withLock { $0.options[ObjectKey("e")]?.metadata["mode"] }.flatMap { UInt32($0) }.map { $0 & 0o777 } == 0o644)
    }
}
