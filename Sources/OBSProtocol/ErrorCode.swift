// The service's error codes and the HTTP status each one is returned with.

/// An OBS/S3 error code (`<Error><Code>…</Code>`), open to codes this list does not name.
public struct ObsErrorCode: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }
    public var description: String { rawValue }

    public static let accessDenied: ObsErrorCode = "AccessDenied"
    public static let signatureDoesNotMatch: ObsErrorCode = "SignatureDoesNotMatch"
    public static let invalidAccessKeyId: ObsErrorCode = "InvalidAccessKeyId"
    public static let requestTimeTooSkewed: ObsErrorCode = "RequestTimeTooSkewed"
    public static let noSuchBucket: ObsErrorCode = "NoSuchBucket"
    public static let noSuchKey: ObsErrorCode = "NoSuchKey"
    public static let noSuchUpload: ObsErrorCode = "NoSuchUpload"
    public static let invalidPart: ObsErrorCode = "InvalidPart"
    public static let invalidPartOrder: ObsErrorCode = "InvalidPartOrder"
    public static let entityTooSmall: ObsErrorCode = "EntityTooSmall"
    public static let entityTooLarge: ObsErrorCode = "EntityTooLarge"
    public static let badDigest: ObsErrorCode = "BadDigest"
    public static let invalidDigest: ObsErrorCode = "InvalidDigest"
    public static let malformedXML: ObsErrorCode = "MalformedXML"
    public static let invalidArgument: ObsErrorCode = "InvalidArgument"
    public static let invalidRequest: ObsErrorCode = "InvalidRequest"
    public static let invalidRange: ObsErrorCode = "InvalidRange"
    public static let metadataTooLarge: ObsErrorCode = "MetadataTooLarge"
    public static let missingContentLength: ObsErrorCode = "MissingContentLength"
    public static let incompleteBody: ObsErrorCode = "IncompleteBody"
    public static let preconditionFailed: ObsErrorCode = "PreconditionFailed"
    public static let objectNotAppendable: ObsErrorCode = "ObjectNotAppendable"
    public static let positionNotEqualToLength: ObsErrorCode = "PositionNotEqualToLength"
    public static let bucketAlreadyExists: ObsErrorCode = "BucketAlreadyExists"
    public static let bucketAlreadyOwnedByYou: ObsErrorCode = "BucketAlreadyOwnedByYou"
    public static let bucketNotEmpty: ObsErrorCode = "BucketNotEmpty"
    public static let invalidBucketName: ObsErrorCode = "InvalidBucketName"
    public static let keyTooLong: ObsErrorCode = "KeyTooLongError"
    public static let methodNotAllowed: ObsErrorCode = "MethodNotAllowed"
    public static let notImplemented: ObsErrorCode = "NotImplemented"
    public static let requestHeaderSectionTooLarge: ObsErrorCode = "RequestHeaderSectionTooLarge"
    public static let internalError: ObsErrorCode = "InternalError"
    public static let serviceUnavailable: ObsErrorCode = "ServiceUnavailable"
    public static let slowDown: ObsErrorCode = "SlowDown"

    /// The HTTP status the service answers this code with (400 for codes it does not know).
    public var httpStatus: Int {
        switch self {
        case .accessDenied, .signatureDoesNotMatch, .invalidAccessKeyId, .requestTimeTooSkewed: 403
        case .noSuchBucket, .noSuchKey, .noSuchUpload: 404
        case .methodNotAllowed: 405
        case .bucketAlreadyExists, .bucketAlreadyOwnedByYou, .bucketNotEmpty, .objectNotAppendable, .positionNotEqualToLength: 409
        case .missingContentLength: 411
        case .preconditionFailed: 412
        case .invalidRange: 416
        case .internalError: 500
        case .notImplemented: 501
        case .serviceUnavailable, .slowDown: 503
        default: 400
        }
    }
}
