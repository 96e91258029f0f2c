// The OBS client as an AttributeStore: object attributes read from HEAD, ACL and tagging
// replies, and changed with the request each dialect has (ObjectAttributeStore.swift).
import OBSClient
import OBSHashing
import OBSProtocol

extension OBSClientStore: AttributeStore {
    public func objectAttributes(_ key: ObjectKey, customerKey: CustomerKey?) async throws -> StoredObjectAttributes? {
        guard let info = try await head(key, customerKey: customerKey) else { return nil }
        let dialect = client.dialect
        var options = ObjectOptions()
        options.storageClass = info.storageClass
        options.metadata = info.metadata
        options.contentType = info.contentType
        options.contentEncoding = info.headers["Content-Encoding"]
        options.websiteRedirectLocation = info.websiteRedirectLocation
        options.encryption = OBSClientStore.encryption(in: info.headers, dialect: dialect)
        options.objectLockMode = info.headers[dialect.header("object-lock-mode")].flatMap(ObjectLockMode.init(rawValue:))
        options.objectLockRetainUntil = info.headers[dialect.header("object-lock-retain-until-date")].flatMap { Timestamp(iso8601: $0) }
        let state = ObjectAttributeState(etag: info.etag, versionID: info.versionID, size: info.contentLength, lastModified: info.lastModified,
                                         expiryDate: info.expiration.flatMap(ObjectAttributeState.expiryDate(fromExpiration:)))
        return StoredObjectAttributes(options: options, state: state)
    }

    /// The encryption a reply reports. SSE-C shows as a key of which only the MD5 is known
    /// (enough for `user.obs.sse` to read `c`; it is never sent).
    private static func encryption(in headers: HeaderFields, dialect: Dialect) -> ServerSideEncryption? {
        if let md5 = headers[dialect.header("server-side-encryption-customer-key-MD5")] {
            return .customer(CustomerKey(key: SecretBytes([]), keyMD5: Base64.decode(md5) ?? []))
        }
        switch headers[dialect.header("server-side-encryption")] {
        case "kms", "aws:kms":
            let keyHeader = dialect == .obs ? "server-side-encryption-kms-key-id" : "server-side-encryption-aws-kms-key-id"
            return .kms(keyID: headers[dialect.header(keyHeader)], bucketKeyEnabled: false)
        case "AES256": return .obs
        default: return nil
        }
    }

    public func objectACL(_ key: ObjectKey) async throws -> AccessControlPolicy {
        try await client.objectACL(bucket: bucket, key: key)
    }

    public func setObjectACL(_ key: ObjectKey, canned: CannedACL) async throws {
        try await client.setObjectACL(bucket: bucket, key: key, canned: canned)
    }

    public func setObjectACL(_ key: ObjectKey, policy: AccessControlPolicy) async throws {
        try await client.setObjectACL(bucket: bucket, key: key, policy: policy)
    }

    public func objectTags(_ key: ObjectKey) async throws -> [ObjectTag] {
        try await client.objectTagging(bucket: bucket, key: key).tags.map { ObjectTag(key: $0.key, value: $0.value) }
    }

    public func setObjectTags(_ key: ObjectKey, _ tags: [ObjectTag]) async throws {
        if tags.isEmpty {
            try await client.deleteObjectTagging(bucket: bucket, key: key)
        } else {
            try await client.setObjectTagging(bucket: bucket, key: key, tagging: Tagging(tags: tags.map { Tagging.Tag(key: $0.key, value: $0.value ?? "") }))
        }
    }

    /// OBS: `PUT ?metadata` (`REPLACE_NEW` with the class alone, or `REPLACE` with the
    /// descriptive set and the tags, which `REPLACE` would otherwise drop). S3 dialects have no
    /// such request (SeaweedFS truncates the object): the object is copied onto itself with
    /// `REPLACE` and everything a copy resets (class, ACL and grants, KMS/OBS encryption).
    public var replacesMetadataByCopy: Bool { client.dialect != .obs }

    public func replaceMetadata(_ key: ObjectKey, with options: ObjectOptions, storageClassOnly: Bool) async throws {
        var sent = ObjectOptions()
        sent.storageClass = options.storageClass
        if client.dialect == .obs && storageClassOnly {
            try await client.modifyMetadata(bucket: bucket, key: key, directive: .replaceNew, options: sent)
            return
        }
        sent.metadata = options.metadata
        sent.contentType = options.contentType
        sent.contentEncoding = options.contentEncoding
        sent.websiteRedirectLocation = options.websiteRedirectLocation
        if client.dialect == .obs {
            sent.storageClass = nil
            sent.tags = options.tags
            try await client.modifyMetadata(bucket: bucket, key: key, directive: .replace, options: sent)
            return
        }
        sent.acl = options.acl
        sent.grants = options.grants
        switch options.encryption {
        case .kms?, .obs?: sent.encryption = options.encryption
        case .customer?, nil: break
        }
        _ = try await client.copyObject(from: bucket, key, to: bucket, key, metadata: .replace(sent))
    }
}
