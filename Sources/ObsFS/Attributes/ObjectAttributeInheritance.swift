// Inheritance of upload options: mount defaults, then each directory from the mount root down
// to the file's parent, then the file's own attributes. A nearer level's value wins; maps
// (metadata, persistent headers, tags, grants) merge per key, so a directory adding
// `user.obs.meta.project` keeps the mount's `meta.owner`. A file's options are resolved once,
// when it is created; later changes to a directory apply to files created after them.

import OBSProtocol

/// The options a new object is created with.
public enum EffectiveOptions {
    /// Merges the levels, farthest first: `mountDefaults`, `directoryChain` (root → nearest), `file`.
    /// Single values: the nearest level that sets one wins. Metadata and persistent headers: per
    /// name. Tags: per tag key (order: first appearance). Grants: per permission (the ID list of
    /// the nearest level that grants that permission). Encryption is one value: the nearest level
    /// that sets `user.obs.sse` (or a KMS key id or bucket key) sets all of it.
    public static func resolve(mountDefaults: ObjectOptions, directoryChain: [ObjectOptions], file: ObjectOptions) -> ObjectOptions {
        ([mountDefaults] + directoryChain + [file]).reduce(into: ObjectOptions()) { merged, level in merged.overlay(level) }
    }

    /// `resolve`, plus the Content-Type inferred from `fileName` when no level sets one and the
    /// mount infers types (`application/octet-stream` for an unknown extension).
    public static func forNewFile(named fileName: String, mount: UploadMountOptions, directoryChain: [ObjectOptions], file: ObjectOptions) -> ObjectOptions {
        var options = resolve(mountDefaults: mount.defaults, directoryChain: directoryChain, file: file)
        if options.contentType == nil {
            options.contentType = mount.inferredContentType(forFileName: fileName)
        }
        return options
    }

    /// Every rule, the paired ones included, on options about to be sent: `EINVAL` naming the
    /// attribute (or pattern such as `user.obs.meta.*`) of the first broken rule.
    public static func check(_ options: ObjectOptions, now: Timestamp) throws(ObjectAttributeError) {
        if let violation = options.violations(now: now).first {
            throw .invalid(ObjectAttributeName.label(for: violation.parameter), violation.message)
        }
    }
}

extension ObjectOptions {
    /// Overrides these options with the values `level` sets.
    fileprivate mutating func overlay(_ level: ObjectOptions) {
        acl = level.acl ?? acl
        grants.merge(level.grants) { _, nearer in nearer }
        storageClass = level.storageClass ?? storageClass
        metadata.merge(level.metadata) { _, nearer in nearer }
        contentType = level.contentType ?? contentType
        contentEncoding = level.contentEncoding ?? contentEncoding
        websiteRedirectLocation = level.websiteRedirectLocation ?? websiteRedirectLocation
        encryption = level.encryption ?? encryption
        expiresDays = level.expiresDays ?? expiresDays
        for tag in level.tags {
            if let index = tags.firstIndex(where: { $0.key == tag.key }) { tags[index] = tag } else { tags.append(tag) }
        }
        persistentHeaders.merge(level.persistentHeaders) { _, nearer in nearer }
        objectLockMode = level.objectLockMode ?? objectLockMode
        objectLockRetainUntil = level.objectLockRetainUntil ?? objectLockRetainUntil
        encodingType = level.encodingType ?? encodingType
    }
}

extension UploadMountOptions {
    /// The Content-Type the mount gives a file of this name that nothing sets one for; nil when
    /// it infers none (`content_type_inference=off`).
    public func inferredContentType(forFileName fileName: String) -> String? {
        contentTypeInference ? contentTypes.contentType(forFileName: fileName) : nil
    }
}
