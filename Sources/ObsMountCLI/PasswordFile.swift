// `passwd_file=`: one line `AK:SK` or `AK:SK:TOKEN`, mode 600. Read at mount, and read again when
// the service refuses a request (HTTP 403) and the file has changed since (another inode, size or
// modification time): keys rotated, or fresh temporary credentials written there by an agent,
// are used from then on without a remount (OBSClientConfiguration.renewedCredentials).
import Logging
import OBSHashing
import OBSProtocol
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The credentials of one `passwd_file=`, renewed when the file changes.
final class PasswordFile: Sendable {
    let path: String
    private let logger: Logger
    /// What the file was when last read (inode, size, modification time in nanoseconds);
    /// guarded, so that concurrent refusals read a changed file once.
    private let lastRead: Mutex<[Int64]>

    /// Reads `path` for the mount (errors name the file, exit status 1).
    init(path: String, logger: Logger) throws(MountSetup.Failure) {
        self.path = path
        self.logger = logger
        let (credentials, identity) = try Self.read(path)
        lastRead = Mutex(identity)
        initial = credentials
    }

    /// The credentials read at mount.
    let initial: Credentials

    /// The file's credentials when it changed since it was last read; nil when it did not, or
    /// when what it holds now cannot be used (a warning says why; the old credentials stay).
    func renewed() -> Credentials? {
        let read = lastRead.withLock { last -> Result<Credentials, MountSetup.Failure>? in
            guard let identity = Self.identity(path), identity != last else { return nil }
            last = identity
            do throws(MountSetup.Failure) {
                return .success(try Self.read(path).0)
            } catch {
                return .failure(error)
            }
        }
        switch read {
        case nil: return nil
        case .success(let credentials)?:
            logger.notice("passwd_file \(path) changed: renewed credentials (access key \(credentials.accessKey))")
            return credentials
        case .failure(let failure)?:
            logger.warning("passwd_file changed but cannot be used (the credentials in use stay): \(failure.message)")
            return nil
        }
    }

    /// The file's inode, size and modification time, nil when it cannot be examined.
    private static func identity(_ path: String) -> [Int64]? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return identity(status)
    }

    private static func identity(_ status: stat) -> [Int64] {
        [Int64(status.st_ino), Int64(status.st_size), Int64(status.st_mtim.tv_sec) * 1_000_000_000 + Int64(status.st_mtim.tv_nsec)]
    }

    /// The credentials in `path` (mode must deny group and others) and the file's identity.
    static func read(_ path: String) throws(MountSetup.Failure) -> (Credentials, [Int64]) {
        var status = stat()
        guard stat(path, &status) == 0 else { throw MountSetup.Failure(message: "passwd_file \(path): cannot read it", exitCode: 1) }
        let identity = identity(status)
        guard status.st_mode & 0o077 == 0 else {
            throw MountSetup.Failure(message: "passwd_file \(path) is readable by group or others (chmod 600 it)", exitCode: 1)
        }
        guard let text = MountSetup.readSmallFile(path) else { throw MountSetup.Failure(message: "passwd_file \(path): cannot read it", exitCode: 1) }
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard fields.count >= 2, !fields[0].isEmpty, !fields[1].isEmpty else {
            throw MountSetup.Failure(message: "passwd_file \(path): expected one line AK:SK or AK:SK:TOKEN", exitCode: 1)
        }
        return (Credentials(accessKey: fields[0], secretKey: fields[1], securityToken: fields.count == 3 ? fields[2] : nil), identity)
    }
}
