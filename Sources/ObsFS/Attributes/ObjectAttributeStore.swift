// Where `user.obs.*` attributes live when no upload holds them.
//
// - A closed object's attributes are the store's: `AttributeStore` reads them (HEAD, GET ?acl,
//   GET ?tagging) and changes them (modify-metadata or copy onto itself, the ACL and tagging APIs).
// - A directory's own attributes are kept in a hidden object in that directory,
//   `PREFIX/DIR/.obsmount-dir-attrs` (`PREFIX/.obsmount-dir-attrs` for the mount root), so they
//   survive remounts and are shared by every mount of the bucket. Its body is text: one
//   `user.obs.NAME: VALUE` line per attribute, the value percent-encoded (any UTF-8 survives).
//   An SSE-C key is never written there: `user.obs.sse: c` selects the key of the mount that
//   creates the file. The name is hidden from listings and lookups. A mount reads a directory's
//   object once, on first use, and keeps it in memory; its own changes write through. Changes
//   made by another mount are seen after a remount.
import Logging
import OBSProtocol
import Synchronization

/// What the store reports about an existing object, as attribute values.
public struct StoredObjectAttributes: Sendable, Equatable {
    /// Storage class, metadata, Content-Type and -Encoding, redirect, encryption, object lock.
    public var options: ObjectOptions
    /// ETag, size, last modification, version, expiry date.
    public var state: ObjectAttributeState

    public init(options: ObjectOptions, state: ObjectAttributeState) {
        self.options = options
        self.state = state
    }
}

/// A store that can read and change the attributes of existing objects, and hold small objects
/// (the directories' attributes). `OBSClientStore` is one; without it, closed objects show only
/// their ETag and size and directories have no attributes (`ENOTSUP`).
public protocol AttributeStore: ObjectStore {
    /// HEAD, as attributes; nil when the object does not exist. `customerKey` reads an SSE-C object.
    func objectAttributes(_ key: ObjectKey, customerKey: CustomerKey?) async throws -> StoredObjectAttributes?
    func objectACL(_ key: ObjectKey) async throws -> AccessControlPolicy
    func setObjectACL(_ key: ObjectKey, canned: CannedACL) async throws
    func setObjectACL(_ key: ObjectKey, policy: AccessControlPolicy) async throws
    func objectTags(_ key: ObjectKey) async throws -> [ObjectTag]
    /// Replaces the tags; an empty list removes them.
    func setObjectTags(_ key: ObjectKey, _ tags: [ObjectTag]) async throws
    /// Changes the storage class alone (`storageClassOnly`) or replaces the descriptive set
    /// (metadata, Content-Type, Content-Encoding, website redirect) with the one in `options`.
    func replaceMetadata(_ key: ObjectKey, with options: ObjectOptions, storageClassOnly: Bool) async throws
    /// True when `replaceMetadata` copies the object onto itself (the S3 dialects: the copy
    /// resets the ACL and the storage class unless sent, and keeps the tags); false when it
    /// modifies the metadata in place (OBS: `REPLACE` resets the tags unless sent, keeps the ACL).
    var replacesMetadataByCopy: Bool { get }
}

/// Canned ACLs and explicit grants as an object's `AccessControlPolicy` shows them.
enum ObjectACLMapping {
    /// The permissions Everyone gets from a canned ACL.
    static func everyonePermissions(_ acl: CannedACL?) -> [AccessControlPolicy.Permission] {
        switch acl {
        case .publicRead?, .publicReadDelivered?: [.read]
        case .publicReadWrite?, .publicReadWriteDelivered?: [.read, .write]
        case .private?, .bucketOwnerFullControl?, nil: []
        }
    }

    static let grantPermissions: [(GrantPermission, AccessControlPolicy.Permission)] = [
        (.read, .read), (.readACP, .readACP), (.writeACP, .writeACP), (.fullControl, .fullControl),
    ]

    /// Reads `acl` and the grants into `options` from a policy: Everyone's permissions name the
    /// canned ACL (`private` when Everyone has none); grants to accounts other than the owner
    /// are the `grant-*` lists.
    static func read(_ policy: AccessControlPolicy, into options: inout ObjectOptions) {
        let everyone = Set(policy.grants.filter { $0.grantee == .everyone }.map(\.permission))
        options.acl = everyone.contains(.write) ? .publicReadWrite : everyone.contains(.read) ? .publicRead : .private
        options.grants = [:]
        for grant in policy.grants {
            guard case .user(let id) = grant.grantee, id != policy.owner.id,
                  let permission = grantPermissions.first(where: { $0.1 == grant.permission })?.0 else { continue }
            options.grants[permission, default: []].append(id)
        }
    }

    /// The policy for `options` on an object owned by `owner`: the owner's full control, the
    /// canned ACL's grants to Everyone, then the explicit grants.
    static func policy(for options: ObjectOptions, owner: Owner) -> AccessControlPolicy {
        var grants = [AccessControlPolicy.Grant(grantee: .user(id: owner.id), permission: .fullControl)]
        grants += everyonePermissions(options.acl).map { AccessControlPolicy.Grant(grantee: .everyone, permission: $0) }
        for (grant, permission) in grantPermissions {
            grants += (options.grants[grant] ?? []).map { AccessControlPolicy.Grant(grantee: .user(id: $0), permission: permission) }
        }
        return AccessControlPolicy(owner: owner, grants: grants)
    }
}

/// The directories' own attributes: loaded from their hidden objects on first use, cached for
/// the mount's lifetime, written through on change.
public final class DirectoryAttributes: Sendable {
    /// The hidden object's name in each directory.
    public static let objectName = ".obsmount-dir-attrs"
    static let header = "# obsmount directory attributes (mount-options/xattrs.md)"

    private let store: any ObjectStore
    private let prefix: String
    private let mount: UploadMountOptions
    private let logger: Logger
    /// Directory path ("" for the root) → its own options, for directories read or written so far
    /// (paths compared byte for byte: ExactName).
    private let cache = Mutex<[ExactName: ObjectOptions]>([:])
    /// Serialises read-modify-write of directory attributes (one change at a time per mount).
    private let changes = AsyncBudget(units: 1)

    init(store: any ObjectStore, prefix: String, mount: UploadMountOptions, logger: Logger) {
        self.store = store
        self.prefix = prefix
        self.mount = mount
        self.logger = logger
    }

    private func attributeStore() throws(FileSystemError) -> any AttributeStore {
        guard let store = store as? any AttributeStore else {
            throw FileSystemError(.notSupported, "this store keeps no directory attributes")
        }
        return store
    }

    private func objectKey(_ directory: String) -> ObjectKey {
        ObjectKey(prefix + (directory.isEmpty ? "" : directory + "/") + DirectoryAttributes.objectName)
    }

    /// The directory's own options (empty when it has none).
    public func options(of directory: String) async throws -> ObjectOptions {
        if let cached = cache.withLock({ $0[ExactName(directory)] }) { return cached }
        // A directory so deep that its hidden object's key would be too long has none.
        let key = objectKey(directory)
        guard let store = store as? any AttributeStore, KeyNaming.fits(key) else { return ObjectOptions() }
        let options = try await store.objectBytes(key).map { decode($0, directory: directory) } ?? ObjectOptions()
        return cache.withLock { cache in
            if let raced = cache[ExactName(directory)] { return raced }
            cache[ExactName(directory)] = options
            return options
        }
    }

    /// The options of every directory from the mount root down to `filePath`'s parent.
    public func chain(forFileAt filePath: String) async throws -> [ObjectOptions] {
        let components = filePath.pathComponents.dropLast()
        let directories = [""] + components.indices.map { components[...$0].joined(separator: "/") }
        return try await withThrowingTaskGroup(of: (Int, ObjectOptions).self) { group in
            for (index, directory) in directories.enumerated() {
                group.addTask { (index, try await self.options(of: directory)) }
            }
            var levels = [ObjectOptions](repeating: ObjectOptions(), count: directories.count)
            for try await (index, options) in group { levels[index] = options }
            return levels
        }
    }

    /// Changes the directory's options with `change` and stores the result (deleting the hidden
    /// object when nothing is left).
    public func modify(_ directory: String, _ change: @Sendable (inout ObjectOptions) throws -> Void) async throws {
        let store = try attributeStore()
        guard KeyNaming.fits(objectKey(directory)) else {
            throw FileSystemError(.nameTooLong, "directory '\(directory)' is too deep to hold attributes: the key of \(DirectoryAttributes.objectName) in it would be longer than \(KeyNaming.maximumNameLength) bytes")
        }
        await changes.acquire(1)
        defer { changes.release(1) }
        var options = try await self.options(of: directory)
        try change(&options)
        let key = objectKey(directory)
        if options == ObjectOptions() {
            try await store.deleteObject(key)
        } else {
            _ = try await store.putObject(key, bytes: encode(options), options: ObjectOptions())
        }
        cache.withLock { $0[ExactName(directory)] = options }
    }

    /// One `user.obs.NAME: VALUE` line per attribute set, values percent-encoded.
    func encode(_ options: ObjectOptions) -> [UInt8] {
        var text = DirectoryAttributes.header + "\n"
        for name in ObjectAttributeName.listNames(in: options, state: ObjectAttributeState()) {
            guard let value = try? name.value(in: options, state: ObjectAttributeState(), mount: mount) else { continue }
            text += "\(name): \(PercentEncoding.encode(String(decoding: value, as: UTF8.self), keepSlash: true))\n"
        }
        return Array(text.utf8)
    }

    /// Reads `encode`'s text; a line that no longer applies (an unknown name, a retain-until date
    /// now past, `sse: c` on a mount without a key file) is skipped with a log line.
    func decode(_ bytes: [UInt8], directory: String) -> ObjectOptions {
        var options = ObjectOptions()
        let now = Timestamp.now()
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let separator = line.firstRange(of: ": "),
                  let value = PercentEncoding.decode(String(line[separator.upperBound...])) else {
                logger.warning("directory '\(directory)': unreadable line in \(DirectoryAttributes.objectName): \(line)")
                continue
            }
            do {
                guard let name = try ObjectAttributeName.parse(String(line[..<separator.lowerBound])) else { continue }
                try name.apply(text: value, to: &options, mount: mount, now: now)
            } catch {
                logger.warning("directory '\(directory)': \(error); the value is ignored")
            }
        }
        return options
    }
}
