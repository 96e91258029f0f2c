// Errors the filesystem answers with, and the one place where store errors become errno values.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import OBSClient
import OBSProtocol

/// A POSIX error number as the kernel receives it.
public struct Errno: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    public static let noEntry = Errno(ENOENT)
    public static let io = Errno(EIO)
    public static let accessDenied = Errno(EACCES)
    public static let busy = Errno(EBUSY)
    public static let fileTooBig = Errno(EFBIG)
    public static let noSpace = Errno(ENOSPC)
    public static let illegalSeek = Errno(ESPIPE)
    public static let notSupported = Errno(EOPNOTSUPP)
    public static let readOnlyFileSystem = Errno(EROFS)
    public static let noAttribute = Errno(ENODATA)
    public static let range = Errno(ERANGE)
    public static let invalidArgument = Errno(EINVAL)
    public static let badFileHandle = Errno(EBADF)
    public static let nameTooLong = Errno(ENAMETOOLONG)
    public static let illegalByteSequence = Errno(EILSEQ)
    public static let isDirectory = Errno(EISDIR)
    public static let notDirectory = Errno(ENOTDIR)
    /// `setxattr` with XATTR_CREATE on a set attribute.
    public static let exists = Errno(EEXIST)
    /// Writing a read-only or too-late `user.obs.*` attribute.
    public static let notPermitted = Errno(EPERM)
    public static let notEmpty = Errno(ENOTEMPTY)
    /// An open of a file another client replaced while this mount's descriptors read the old
    /// version: the kernel looks the name up again and opens the new one.
    public static let stale = Errno(ESTALE)
    /// An extended attribute value too large for object metadata.
    public static let tooBig = Errno(E2BIG)
    /// `RENAME_EXCHANGE`, hard links.
    public static let crossDevice = Errno(EXDEV)
    /// A writable open beyond what `memory_budget=` holds part buffers for.
    public static let outOfMemory = Errno(ENOMEM)
    /// A FUSE interrupt ended the wait (the calling process got a signal).
    public static let interrupted = Errno(EINTR)

    /// `EIO (5)`.
    public var description: String {
        let names: [Int32: String] = [
            ENOENT: "ENOENT", EIO: "EIO", EACCES: "EACCES", EBUSY: "EBUSY", EFBIG: "EFBIG", ENOSPC: "ENOSPC",
            ESPIPE: "ESPIPE", EOPNOTSUPP: "EOPNOTSUPP", EROFS: "EROFS", ENODATA: "ENODATA", ERANGE: "ERANGE",
            EINVAL: "EINVAL", EBADF: "EBADF", ENAMETOOLONG: "ENAMETOOLONG", EISDIR: "EISDIR", ENOTDIR: "ENOTDIR",
            EEXIST: "EEXIST", EPERM: "EPERM", ENOTEMPTY: "ENOTEMPTY", E2BIG: "E2BIG", EXDEV: "EXDEV", ENOMEM: "ENOMEM",
            EINTR: "EINTR",
        ]
        return "\(names[rawValue] ?? "errno") (\(rawValue))"
    }
}

/// A failed filesystem operation: the errno the caller gets and the reason the log gets.
public struct FileSystemError: Error, Sendable, CustomStringConvertible {
    public let errno: Errno
    public let reason: String

    public init(_ errno: Errno, _ reason: String) {
        self.errno = errno
        self.reason = reason
    }

    /// Wraps an error thrown by the object store, with what the filesystem was doing.
    public init(doing action: String, _ error: any Error) {
        if let error = error as? FileSystemError {
            self.init(error.errno, "\(action): \(error.reason)")
        } else {
            self.init(ErrnoMapping.errno(for: error), "\(action): \(error)")
        }
    }

    public var description: String { "\(errno): \(reason)" }
}

/// A directory rename by copies that failed once it had begun: the target may hold part of the
/// source now (stopped during its copies or deletes), and running the rename again completes it.
/// The errno is the failure's.
public struct PartialRenameError: Error, Sendable, CustomStringConvertible {
    public let failure: FileSystemError

    public var description: String { failure.description }
}

/// The only mapping from object-store errors to errno values.
///
/// | store error | errno |
/// |---|---|
/// | `AccessDenied`, `InvalidAccessKeyId`, `SignatureDoesNotMatch`, `RequestTimeTooSkewed` | `EACCES` |
/// | `NoSuchBucket`, `NoSuchKey` | `ENOENT` |
/// | `EntityTooLarge` | `EFBIG` |
/// | `KeyTooLongError` (a parallel file system bucket's native rename to a key past 1,024 bytes) | `ENAMETOOLONG` |
/// | `InsufficientStorage`, `QuotaExceeded` | `ENOSPC` |
/// | a `FileSystemError` | its own errno |
/// | `OBSClientError.service(e)` | as `e` |
/// | anything else (other service errors, transport errors) | `EIO` |
public enum ErrnoMapping {
    public static func errno(for error: any Error) -> Errno {
        if let error = error as? FileSystemError { return error.errno }
        if let error = error as? PartialRenameError { return error.failure.errno }
        if let error = error as? OBSClientError, case .service(let service) = error { return errno(for: service) }
        guard let service = error as? ServiceError else { return .io }
        switch service.code {
        case .accessDenied, .invalidAccessKeyId, .signatureDoesNotMatch, .requestTimeTooSkewed: return .accessDenied
        case .noSuchBucket, .noSuchKey: return .noEntry
        case .entityTooLarge: return .fileTooBig
        case .keyTooLong: return .nameTooLong
        case "InsufficientStorage", "QuotaExceeded": return .noSpace
        default: return .io
        }
    }
}
