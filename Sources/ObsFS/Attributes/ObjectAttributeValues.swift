// Reading and writing `user.obs.*` values in an `ObjectOptions` (one level: the mount's defaults,
// a directory's own values, or a file's options).
//
// Design: attributes whose value is an OBS header value (ACL, grants, storage class, Content-Type,
// expires, tagging, object lock, …) are parsed by `ObjectOptions(parsing:dialect:)` from a one-header
// request and written back by `ObjectOptions.headers(for:)`, so the xattr text is exactly the
// header text and there is one parser and one formatter. User metadata and persistent headers
// hold their plain UTF-8 value (the header encoding, percent or base64, is ObjectOptions' job).
// Every write is checked with `ObjectOptions.violations(now:)`; rules that pair two attributes
// (lock mode + date, bucket key + key id) are checked where the options are used
// (`EffectiveOptions.check`), so that either half may be set first.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import OBSProtocol

/// Read-only facts of a file or object that `user.obs.*` attributes show.
public struct ObjectAttributeState: Sendable, Equatable {
    /// The object's ETag (`user.obs.etag`).
    public var etag: ETag?
    /// The upload of a file being written (`user.obs.upload_id`).
    public var uploadID: UploadID?
    /// `user.obs.version-id`.
    public var versionID: VersionID?
    /// Bytes, `user.obs.size`.
    public var size: Int64?
    /// `user.obs.last-modified`.
    public var lastModified: Timestamp?
    /// When the store will delete the object (`expiryDate(fromExpiration:)` reads it from a reply).
    public var expiryDate: Timestamp?

    public init(etag: ETag? = nil, uploadID: UploadID? = nil, versionID: VersionID? = nil, size: Int64? = nil,
                lastModified: Timestamp? = nil, expiryDate: Timestamp? = nil) {
        self.etag = etag
        self.uploadID = uploadID
        self.versionID = versionID
        self.size = size
        self.lastModified = lastModified
        self.expiryDate = expiryDate
    }

    /// The date in an `x-obs-expiration` / `x-amz-expiration` reply header:
    /// `expiry-date="Sat, 21 Nov 2026 00:00:00 GMT"` (S3 adds `, rule-id="…"`); nil when absent or malformed.
    public static func expiryDate(fromExpiration header: String) -> Timestamp? {
        let field = "expiry-date=\""
        guard let start = header.firstRange(of: field)?.upperBound,
              let end = header[start...].firstIndex(of: "\"") else { return nil }
        return Timestamp(rfc1123: String(header[start..<end]))
    }
}

extension ObjectAttributeName {
    /// Sets this attribute in `options` from an xattr value: UTF-8, one trailing newline ignored.
    /// `mount` supplies the SSE-C key `user.obs.sse=c` selects; `now` judges dates.
    /// Throws `EPERM` for read-only names and `EINVAL` naming the rule for a bad value; `options`
    /// is unchanged when it throws.
    public func apply(_ value: [UInt8], to options: inout ObjectOptions, mount: UploadMountOptions, now: Timestamp) throws(ObjectAttributeError) {
        try apply(text: try ObjectAttributeName.text(of: value, for: self), to: &options, mount: mount, now: now)
    }

    /// Sets this attribute from text (the xattr value after decoding, or a mount option's value).
    func apply(text: String, to options: inout ObjectOptions, mount: UploadMountOptions, now: Timestamp) throws(ObjectAttributeError) {
        guard !isReadOnly else { throw ObjectAttributeError(errno: EPERM, attribute: description, message: readOnlyReason) }
        var candidate = options
        switch self {
        case .metadata(let name):
            candidate.metadata[name] = text
        case .persistentHeader(let name):
            candidate.persistentHeaders[name] = text
        case .encryption:
            candidate.encryption = try selectEncryption(text, current: options.encryption, mount: mount)
        case .kmsKeyID:
            let keyID = try headerText(text)
            candidate.encryption = .kms(keyID: keyID, bucketKeyEnabled: try currentKMS(options.encryption).bucketKeyEnabled)
        case .kmsBucketKey:
            guard let enabled = ["true": true, "false": false][text] else { throw .invalid(description, "must be true or false") }
            candidate.encryption = .kms(keyID: try currentKMS(options.encryption).keyID, bucketKeyEnabled: enabled)
        case .encodingType:
            guard let choice = KeyEncodingChoice(rawValue: text) else { throw .invalid(description, "must be url or none") }
            candidate.encodingType = choice
        case .contentType where String(text.split(separator: ";").first ?? "").trimmingSpaces.lowercased() == KeyNaming.directoryContentType:
            throw .invalid(description, "\(KeyNaming.directoryContentType) marks directories: a file of that type would show as a directory")
        default:
            let field = (name: headerName!, value: try headerText(text))
            let parsed: ObjectOptions
            do {
                parsed = try ObjectOptions(parsing: HeaderFields([field]), dialect: .obs)
            } catch {
                throw .invalid(description, error.violations.map(\.message).joined(separator: "; "))
            }
            copyField(from: parsed, to: &candidate)
        }
        try checkRules(candidate, now: now)
        options = candidate
    }

    /// Removes this attribute from `options` (`setfattr -x`): `EPERM` for read-only names,
    /// `ENODATA` when it is not set.
    public func remove(from options: inout ObjectOptions) throws(ObjectAttributeError) {
        guard !isReadOnly else { throw ObjectAttributeError(errno: EPERM, attribute: description, message: readOnlyReason) }
        guard isSet(in: options) else { throw noAttribute }
        switch self {
        case .metadata(let name): options.metadata[name] = nil
        case .persistentHeader(let name): options.persistentHeaders[name] = nil
        case .encryption: options.encryption = nil
        case .kmsKeyID:
            if case .kms(_, let bucketKey) = options.encryption { options.encryption = .kms(keyID: nil, bucketKeyEnabled: bucketKey) }
        case .kmsBucketKey:
            if case .kms(let keyID, _) = options.encryption { options.encryption = .kms(keyID: keyID, bucketKeyEnabled: false) }
        case .encodingType: options.encodingType = nil
        default: copyField(from: ObjectOptions(), to: &options)
        }
    }

    /// The xattr value (UTF-8, no trailing newline); `ENODATA` when the attribute is not set.
    /// `user.obs.sse` reads `kms`, `obs` or `c`: an SSE-C key is never shown.
    public func value(in options: ObjectOptions, state: ObjectAttributeState, mount: UploadMountOptions) throws(ObjectAttributeError) -> [UInt8] {
        guard let text = text(in: options, state: state, mount: mount) else { throw noAttribute }
        return Array(text.utf8)
    }

    /// The names `listxattr` shows, sorted: every upload attribute set in `options` and every
    /// read-only fact `state` holds (`user.obs.encoding-type` only when set: the mount's choice it
    /// reads otherwise is not the file's own value).
    public static func listNames(in options: ObjectOptions, state: ObjectAttributeState) -> [ObjectAttributeName] {
        let named = options.metadata.keys.sorted().map { ObjectAttributeName.metadata($0) }
            + options.persistentHeaders.keys.sorted().map { ObjectAttributeName.persistentHeader($0) }
        return (Array(ObjectAttributeName.fixedNames.values) + named).filter { $0.ownText(in: options, state: state) != nil }
            .sorted { $0.description < $1.description }
    }

    /// Whether `options` sets this attribute (`XATTR_CREATE`, `XATTR_REPLACE`, `setfattr -x`).
    func isSet(in options: ObjectOptions) -> Bool { ownText(in: options, state: ObjectAttributeState()) != nil }

    // MARK: Details

    private var readOnlyReason: String { "read-only: reported by the object store" }

    private var noAttribute: ObjectAttributeError { ObjectAttributeError(errno: ENODATA, attribute: description, message: "not set") }

    /// The value a reader sees: the own value, or for `user.obs.encoding-type` the mount's choice.
    private func text(in options: ObjectOptions, state: ObjectAttributeState, mount: UploadMountOptions) -> String? {
        if self == .encodingType && options.encodingType == nil {
            return KeyEncodingChoice(mount.keyEncoding).rawValue
        }
        return ownText(in: options, state: state)
    }

    /// The value `options` and `state` hold themselves; nil when unset.
    private func ownText(in options: ObjectOptions, state: ObjectAttributeState) -> String? {
        switch self {
        case .metadata(let name): return options.metadata[name]
        case .persistentHeader(let name): return options.persistentHeaders[name]
        case .encryption:
            switch options.encryption {
            case .kms: return "kms"
            case .obs: return "obs"
            case .customer: return "c"
            case nil: return nil
            }
        case .kmsKeyID:
            if case .kms(let keyID?, _) = options.encryption { return keyID }
            return nil
        case .kmsBucketKey:
            if case .kms(_, true) = options.encryption { return "true" }
            return nil
        case .encodingType: return options.encodingType?.rawValue
        case .etag: return state.etag?.value
        case .uploadID: return state.uploadID?.rawValue
        case .versionID: return state.versionID?.rawValue
        case .size: return state.size.map { String($0) }
        case .lastModified: return state.lastModified?.iso8601
        case .expiryDate: return state.expiryDate?.iso8601
        default: return options.headers(for: .obs)[headerName!]
        }
    }

    /// The OBS header whose value is this attribute's value.
    private var headerName: String? {
        let obs = Dialect.obs
        switch self {
        case .acl: return obs.header("acl")
        case .grant(let permission): return obs.header(permission.rawValue)
        case .storageClass: return obs.header("storage-class")
        case .contentType: return "Content-Type"
        case .contentEncoding: return "Content-Encoding"
        case .websiteRedirect: return obs.header("website-redirect-location")
        case .expires: return ObjectOptions.expiresHeader
        case .tagging: return obs.header("tagging")
        case .objectLockMode: return obs.header("object-lock-mode")
        case .objectLockRetainUntil: return obs.header("object-lock-retain-until-date")
        default: return nil
        }
    }

    /// Copies this attribute's field (an attribute with a `headerName`).
    private func copyField(from source: ObjectOptions, to target: inout ObjectOptions) {
        switch self {
        case .acl: target.acl = source.acl
        case .grant(let permission): target.grants[permission] = source.grants[permission]
        case .storageClass: target.storageClass = source.storageClass
        case .contentType: target.contentType = source.contentType
        case .contentEncoding: target.contentEncoding = source.contentEncoding
        case .websiteRedirect: target.websiteRedirectLocation = source.websiteRedirectLocation
        case .expires: target.expiresDays = source.expiresDays
        case .tagging: target.tags = source.tags
        case .objectLockMode: target.objectLockMode = source.objectLockMode
        case .objectLockRetainUntil: target.objectLockRetainUntil = source.objectLockRetainUntil
        default: preconditionFailure("\(self) is not a header attribute")
        }
    }

    /// A value sent as a header as it is: printable ASCII, not empty.
    private func headerText(_ text: String) throws(ObjectAttributeError) -> String {
        guard !text.isEmpty else { throw .invalid(description, "empty value; remove the attribute (setfattr -x) instead") }
        guard text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else {
            throw .invalid(description, "must be printable ASCII (it is sent as an HTTP header value)")
        }
        return text
    }

    private func selectEncryption(_ text: String, current: ServerSideEncryption?, mount: UploadMountOptions) throws(ObjectAttributeError) -> ServerSideEncryption {
        switch text {
        case "kms":
            if case .kms = current { return current! }
            return .kms(keyID: nil, bucketKeyEnabled: false)
        case "obs":
            return .obs
        case "c":
            guard let key = mount.customerKey else {
                throw .invalid(description, "sse=c needs the mount option sse_c_key_file= (SSE-C keys never travel through xattrs)")
            }
            return .customer(key)
        default:
            throw .invalid(description, "must be kms, obs or c")
        }
    }

    /// The KMS settings a key-id or bucket-key write extends: the current ones, or none (which
    /// selects SSE-KMS); another encryption is refused.
    private func currentKMS(_ current: ServerSideEncryption?) throws(ObjectAttributeError) -> (keyID: String?, bucketKeyEnabled: Bool) {
        switch current {
        case .kms(let keyID, let bucketKeyEnabled): return (keyID, bucketKeyEnabled)
        case nil: return (nil, false)
        case .obs: throw .invalid(description, "applies to SSE-KMS only; user.obs.sse is obs")
        case .customer: throw .invalid(description, "applies to SSE-KMS only; user.obs.sse is c")
        }
    }

    /// The rules `candidate` breaks that concern this attribute. The partner of a paired rule
    /// is filled in with a valid stand-in first, so only the value's own rules apply here.
    private func checkRules(_ candidate: ObjectOptions, now: Timestamp) throws(ObjectAttributeError) {
        var probe = candidate
        switch (probe.objectLockMode, probe.objectLockRetainUntil) {
        case (.some, nil): probe.objectLockRetainUntil = now.adding(seconds: 86_400)
        case (nil, .some): probe.objectLockMode = .compliance
        default: break
        }
        if case .kms(nil, true) = probe.encryption { probe.encryption = .kms(keyID: "stand-in", bucketKeyEnabled: true) }
        if let violation = probe.violations(now: now).first(where: { parameters.contains($0.parameter) }) {
            throw .invalid(description, violation.message)
        }
    }

    /// An xattr value as text: UTF-8, with one trailing newline removed (so `echo`-produced
    /// values work; a value cannot end with a newline).
    static func text(of value: [UInt8], for name: ObjectAttributeName) throws(ObjectAttributeError) -> String {
        let bytes = value.last == UInt8(ascii: "\n") ? value.dropLast() : value[...]
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .invalid(name.description, "the value is not UTF-8") }
        return text
    }
}
