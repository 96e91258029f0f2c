// When a `user.obs.*` change takes effect. A file being written carries its options into the
// upload; a change must end up on the final object or be refused, never dropped:
//
// | stage of the file | settable later (storage class, metadata, Content-Type/-Encoding, redirect, ACL, grants, tagging) | initiation-only (expires, sse*, object lock, persistent headers, encoding type) |
// |---|---|---|
// | upload initiated, no part sent | re-initiate: abort the upload, initiate again with the new options | re-initiate |
// | parts sent, not complete | recorded; sent after completion, before `close()` returns | refused: `EBUSY` |
// | complete (closed object) | sent at once | refused: `EPERM` |
//
// A value equal to the current one is accepted at every stage and changes nothing (so `cp -a` /
// `rsync -X` re-applying inherited values never fail).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import OBSProtocol

/// Where a file's object stands when one of its attributes changes.
public enum UploadStage: Sendable, Equatable {
    /// The multipart upload is initiated and no part has been sent.
    case beforeFirstPart
    /// At least one part has been sent; the upload is not complete.
    case partsSent
    /// The object exists (the file is closed, or was never written through this mount).
    case complete
}

/// The request that changes an attribute on an existing object.
public enum ObjectUpdateRequest: Sendable, Equatable, Hashable {
    /// `PUT ?metadata` with `x-obs-metadata-directive: REPLACE_NEW` and only `x-obs-storage-class`
    /// (the only directive that changes the class).
    case changeStorageClass
    /// `PUT ?metadata` with `REPLACE` and the complete descriptive set (every `x-obs-meta-*`,
    /// Content-Type, Content-Encoding, website redirect): `REPLACE` drops what is not sent, which
    /// is how a metadata entry is removed. S3 stores have no `PUT ?metadata` (SeaweedFS truncates
    /// the object): there, copy the object onto itself with `metadata-directive: REPLACE`.
    case replaceMetadata
    /// `PUT ?acl`: the canned `x-obs-acl` alone, or an `AccessControlPolicy` when grants are set.
    case putACL
    /// `PUT ?tagging` with a `Tagging` document (`DELETE ?tagging` when no tag is left).
    case putTagging
}

/// What the filesystem must do for an accepted change.
public enum ObjectAttributeUpdate: Sendable, Equatable {
    /// The value did not change.
    case unchanged
    /// Abort the upload (no part was sent) and initiate it again with the new options; the
    /// bytes buffered for the first part stay and are sent to the new upload.
    case reinitiate
    /// Send `request` after the upload completes, before `close()` returns; its failure fails `close()`.
    case afterCompletion(ObjectUpdateRequest)
    /// Send `request` now; its failure is the xattr call's failure.
    case immediately(ObjectUpdateRequest)
}

extension ObjectAttributeName {
    /// The request that changes this attribute on an existing object; nil when only the
    /// initiation (or PUT) of an object can set it.
    public var updateRequest: ObjectUpdateRequest? {
        switch self {
        case .storageClass: .changeStorageClass
        case .metadata, .contentType, .contentEncoding, .websiteRedirect: .replaceMetadata
        case .acl, .grant: .putACL
        case .tagging: .putTagging
        case .encryption, .kmsKeyID, .kmsBucketKey, .expires, .persistentHeader, .objectLockMode, .objectLockRetainUntil,
             .encodingType, .etag, .uploadID, .versionID, .size, .lastModified, .expiryDate: nil
        }
    }

    /// How a change of this attribute from `current` to `proposed` (both already checked by
    /// `apply`/`remove`) takes effect at `stage`; throws `EBUSY` or `EPERM` when it is too late.
    /// Before re-initiating, check `proposed` with `EffectiveOptions.check` (the paired rules).
    public func update(at stage: UploadStage, from current: ObjectOptions, to proposed: ObjectOptions) throws(ObjectAttributeError) -> ObjectAttributeUpdate {
        guard current != proposed else { return .unchanged }
        switch (stage, updateRequest) {
        case (.beforeFirstPart, _):
            return .reinitiate
        case (.partsSent, let request?):
            return .afterCompletion(request)
        case (.complete, let request?):
            return .immediately(request)
        case (.partsSent, nil):
            throw ObjectAttributeError(errno: EBUSY, attribute: description,
                                       message: "only the upload's initiation sets this, and parts of this file are already sent; the object keeps its value")
        case (.complete, nil) where self == .encodingType:
            throw ObjectAttributeError(errno: EPERM, attribute: description,
                                       message: "only affects the reply to the upload's initiation, and this object is complete")
        case (.complete, nil):
            throw ObjectAttributeError(errno: EPERM, attribute: description,
                                       message: "only set when an object is created; write the file again (for example cp to a new name) to change it")
        }
    }
}
