// The embedded obs-local server of mounts without url=: one per data directory, shared by every
// mount that names the same directory (`data_dir=`, else the default one).
//
// The first mount starts the server, which locks the directory (DataDirectoryLock), and becomes
// its owner: it writes DIR/server.json (mode 0600; the URL, its PID and the access key the server
// accepts, never the secret key). A later mount on the same directory finds the server there and
// joins it: it sends its requests to that URL with its own credentials, which must be the ones
// the owner started the server with (the same passwd_file= or environment, or none: the
// development keys). A directory held by a process that wrote no server.json (a standalone
// obs-local) cannot be joined: the mount fails, naming the process.
//
// Two lock files keep starting, joining and stopping from crossing:
// - DIR/startup.lock, exclusive, held by a mount while it starts or joins, and by an owner while
//   it stops; so a mount that holds it never sees a half-started or half-stopped server.
// - DIR/mounts.lock, shared by every joined mount for as long as it runs; an owner whose own
//   mount has ended takes it exclusive (waiting) before stopping the server: its process keeps
//   serving until the last joined mount is gone. A joiner takes it without waiting (it holds
//   startup.lock, which the stopping owner wants next); failing, it lets the owner finish and then
//   starts a server of its own.
// An owner killed outright (or, once its own mount has ended, sent SIGTERM) takes the server with
// it: joined mounts then fail with transport errors.
import FoundationEssentials
import Logging
import OBSLocalServer
import OBSProtocol
#if canImport(Glibc)
import Glibc
#endif

/// The embedded server a mount uses: one this process started, or one it joined.
final class EmbeddedServer {
    let endpoint: String
    let dataDirectory: String
    /// This process serves the others too, or uses another's server.
    private enum Role {
        case owner(OBSLocalServer)
        /// Released when the mount ends (or the process does).
        case joined(registration: FileLock)
    }
    private let role: Role

    var joined: Bool { if case .joined = role { true } else { false } }

    private init(endpoint: String, dataDirectory: String, role: Role) {
        self.endpoint = endpoint
        self.dataDirectory = dataDirectory
        self.role = role
    }

    /// What DIR/server.json holds.
    struct Address: Codable {
        var url: String
        var pid: Int32
        var accessKey: String
    }

    /// $XDG_DATA_HOME/obsmount when that is set, else /var/lib/obsmount for root and
    /// ~/.local/share/obsmount for other users.
    static func defaultDataDirectory() -> String {
        if let xdg = getenv("XDG_DATA_HOME").map({ String(cString: $0) }), !xdg.isEmpty { return xdg + "/obsmount" }
        if getuid() == 0 { return "/var/lib/obsmount" }
        return (getenv("HOME").map { String(cString: $0) } ?? "/tmp") + "/.local/share/obsmount"
    }

    /// Starts the server on `dataDirectory`, or joins the one running there.
    static func startOrJoin(dataDirectory: String, bucket: BucketName, credentials: Credentials, logger: Logger) throws -> EmbeddedServer {
        makeDirectories(dataDirectory)
        let files = Files(directory: dataDirectory)
        let deadline = monotonicSeconds() + 30
        while true {
            let startup = try lock(files.startup, .exclusive, wait: true)!  // waiting: never nil
            defer { startup.release() }
            do {
                let server = try OBSLocalServer.start(ServerConfiguration(storage: .directory(dataDirectory), buckets: [bucket], credentials: [credentials]))
                do {
                    try files.writeAddress(Address(url: server.endpoint, pid: getpid(), accessKey: credentials.accessKey))
                } catch {
                    try? server.stop()
                    throw error
                }
                logger.notice("no url= given: started the embedded obs-local server at \(server.endpoint), data in \(dataDirectory)")
                return EmbeddedServer(endpoint: server.endpoint, dataDirectory: dataDirectory, role: .owner(server))
            } catch let inUse as DataDirectoryInUse {
                guard let holder = inUse.holder, let address = files.readAddress(), address.pid == holder else {
                    throw MountSetup.Failure(message: "\(inUse), which is not an obsmount's embedded server: stop it, or mount from it with url=", exitCode: 1)
                }
                guard address.accessKey == credentials.accessKey else {
                    throw MountSetup.Failure(message: "\(inUse), whose embedded server at \(address.url) accepts access key \(address.accessKey) only: mount with the credentials of the mount that started it", exitCode: 1)
                }
                guard let registration = try lock(files.mounts, .shared, wait: false) else {
                    // Its owner is stopping it (waiting for startup.lock): retry once it is gone.
                    guard monotonicSeconds() < deadline else { throw MountSetup.Failure(message: "\(inUse), which is stopping its embedded server", exitCode: 1) }
                    startup.release()
                    usleep(100_000)
                    continue
                }
                logger.notice("no url= given: using the embedded obs-local server of process \(holder) at \(address.url), data in \(dataDirectory)")
                return EmbeddedServer(endpoint: address.url, dataDirectory: dataDirectory, role: .joined(registration: registration))
            } catch let failure as MountSetup.Failure {
                throw failure
            } catch {
                throw MountSetup.Failure(message: "cannot start the embedded obs-local server (data dir \(dataDirectory)): \(error)", exitCode: 1)
            }
        }
    }

    /// Once this process's mount has ended. An owner waits until no joined mount remains, then
    /// stops the server (every request it answered is on disk); a joined mount leaves.
    func release(logger: Logger) {
        switch role {
        case .joined(let registration):
            registration.release()
        case .owner(let server):
            let files = Files(directory: dataDirectory)
            do {
                var mounts = try Self.lock(files.mounts, .exclusive, wait: false)
                if mounts == nil {
                    // The mount's signal handlers are of no use any more: SIGTERM and SIGINT end
                    // the process (and the server) at once.
                    signal(SIGTERM, SIG_DFL)
                    signal(SIGINT, SIG_DFL)
                    logger.notice("other mounts use the embedded obs-local server at \(endpoint): it serves until they are unmounted")
                    mounts = try Self.lock(files.mounts, .exclusive, wait: true)
                }
                defer { mounts?.release() }
                try stop(server, files: files)
            } catch {
                logger.warning("stopping the embedded obs-local server: \(error)")
            }
        }
    }

    private func stop(_ server: OBSLocalServer, files: Files) throws {
        let startup = try Self.lock(files.startup, .exclusive, wait: true)
        defer { startup?.release() }
        unlink(files.address)
        try server.stop()
    }

    private static func lock(_ path: String, _ mode: FileLock.Mode, wait: Bool) throws -> FileLock? {
        do {
            return try FileLock.acquire(path, mode, wait: wait)
        } catch {
            throw MountSetup.Failure(message: "cannot lock \(path): \(error)", exitCode: 1)
        }
    }

    /// The files of the data directory this type uses.
    private struct Files {
        let directory: String
        var startup: String { directory + "/startup.lock" }
        var mounts: String { directory + "/mounts.lock" }
        var address: String { directory + "/server.json" }

        func readAddress() -> Address? {
            guard let text = MountSetup.readSmallFile(address) else { return nil }
            return try? JSONDecoder().decode(Address.self, from: Data(text.utf8))
        }

        /// Written to a temporary file (mode 0600) renamed over server.json: a reader sees the
        /// old file or the new one.
        func writeAddress(_ value: Address) throws {
            let bytes = Array(try JSONEncoder().encode(value))
            let temporary = address + ".tmp"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw MountSetup.Failure(message: "cannot write \(temporary): \(String(cString: strerror(errno)))", exitCode: 1) }
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            let closed = close(fd)
            guard written == bytes.count, closed == 0, rename(temporary, address) == 0 else {
                unlink(temporary)
                throw MountSetup.Failure(message: "cannot write \(address): \(String(cString: strerror(errno)))", exitCode: 1)
            }
        }
    }

    private static func makeDirectories(_ path: String) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            mkdir(current, 0o700)
        }
    }

    private static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
