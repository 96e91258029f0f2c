// obs-local: a local OBS-compatible server for demos, tests and benchmarks.
//
//   obs-local --listen 127.0.0.1:PORT --data-dir DIR [--bucket NAME]... [--pfs-bucket NAME]...
//             [--access-key AK --secret-key SK]
//             [--memory] [--request-log FILE] [--clock-offset SECONDS]
//
// Prints `obs-local listening on http://127.0.0.1:PORT` once it accepts connections (port 0 picks a
// free one). Stops cleanly on SIGTERM and SIGINT. A usage error (a malformed --listen, an unusable
// --data-dir, an unknown option) is one line on stderr and exit status 2, and so is a --data-dir
// that another server holds (DataDirectoryLock: the line names the directory and the holder's
// PID). The secret key may also come from the environment variable OBS_LOCAL_SECRET_KEY, which
// keeps it out of `ps` output.
import ArgumentParser
import BuildInfo
import Dispatch
import OBSLocalServer
import OBSProtocol
#if canImport(Glibc)
import Glibc
#endif

struct ObsLocal: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "obs-local",
        abstract: "A local OBS-compatible object server (OBS, S3 V2 and V4 signatures).",
        version: "obs-local \(BuildInfo.versionLine)")

    @Option(name: .long, help: "Address and port to listen on (port 0 picks a free port).")
    var listen = "127.0.0.1:9000"

    @Option(name: .customLong("data-dir"), help: "Directory for objects and uploads (kept across restarts).")
    var dataDirectory: String?

    @Flag(name: .long, help: "Keep everything in memory instead of a data directory.")
    var memory = false

    @Option(name: .customLong("bucket"), help: "A bucket to create at start (repeatable).")
    var buckets: [String] = []

    @Option(name: .customLong("pfs-bucket"),
            help: "A parallel file system bucket to create at start (rename, modify, truncate; repeatable).")
    var fileSystemBuckets: [String] = []

    @Option(name: .customLong("access-key"), help: "Access key to accept (with --secret-key).")
    var accessKey: String?

    @Option(name: .customLong("secret-key"), help: "Secret key (or set OBS_LOCAL_SECRET_KEY).")
    var secretKey: String?

    @Option(name: .customLong("request-log"), help: "Append a JSON line per request to this file.")
    var requestLog: String?

    @Option(name: .customLong("clock-offset"),
            help: "Seconds added to the clock (for replaying recorded requests in tests; also OBS_LOCAL_CLOCK_OFFSET).")
    var clockOffset: Int64?

    /// Usage errors (these and ArgumentParser's own) print one line and exit with status 2.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                printErrorLine(message(for: error))
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }

    /// `obs-local: MESSAGE` on stderr.
    private static func printErrorLine(_ message: String) {
        let line = "obs-local: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    mutating func validate() throws {
        _ = try listenAddress()
        if dataDirectory == nil && !memory { throw ValidationError("give --data-dir DIR or --memory") }
        if dataDirectory != nil && memory { throw ValidationError("--data-dir and --memory exclude each other") }
        if let dataDirectory { try ObsLocal.validateDataDirectory(dataDirectory) }
        let secret = secretKey ?? getenv("OBS_LOCAL_SECRET_KEY").map { String(cString: $0) }
        if (accessKey == nil) != (secret == nil) { throw ValidationError("--access-key and --secret-key go together") }
    }

    /// `--listen` split into host and port.
    private func listenAddress() throws -> (host: String, port: Int) {
        guard let colon = listen.lastIndex(of: ":"), colon != listen.startIndex,
              let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("--listen must be HOST:PORT with a port from 0 to 65535, not '\(listen)'")
        }
        return (String(listen[..<colon]), port)
    }

    /// The data directory is created when missing: it must be a writable directory, or its
    /// nearest existing ancestor must be.
    private static func validateDataDirectory(_ path: String) throws {
        guard !path.isEmpty else { throw ValidationError("--data-dir must not be empty") }
        var candidate = path
        var info = stat()
        while stat(candidate, &info) != 0 {
            guard errno == ENOENT else {
                throw ValidationError("--data-dir \(path): cannot use it (\(String(cString: strerror(errno))))")
            }
            if let slash = candidate.lastIndex(of: "/") {
                candidate = slash == candidate.startIndex ? "/" : String(candidate[..<slash])
            } else {
                candidate = "."
            }
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw ValidationError("--data-dir \(path): \(candidate) is not a directory")
        }
        guard access(candidate, W_OK | X_OK) == 0 else {
            throw ValidationError("--data-dir \(path): \(candidate) is not writable")
        }
    }

    func run() throws {
        let (host, port) = try listenAddress()
        var configuration = ServerConfiguration(host: host, port: port)
        configuration.storage = memory ? .memory : .directory(dataDirectory!)
        configuration.buckets = buckets.map(BucketName.init)
        configuration.fileSystemBuckets = fileSystemBuckets.map(BucketName.init)
        configuration.requestLogPath = requestLog
        configuration.clockOffsetSeconds = clockOffset ?? getenv("OBS_LOCAL_CLOCK_OFFSET").flatMap { Int64(String(cString: $0)) } ?? 0
        let secret = secretKey ?? getenv("OBS_LOCAL_SECRET_KEY").map { String(cString: $0) }
        if let accessKey, let secret {
            configuration.credentials = [Credentials(accessKey: accessKey, secretKey: secret)]
        }
        // SIGTERM and SIGINT are blocked in every thread (the server's threads inherit the mask)
        // and taken by `sigwait`: one sent at any moment, even right after the ready line, stays
        // pending until then and stops the server cleanly.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
        let server: OBSLocalServer
        do {
            server = try OBSLocalServer.start(configuration)
        } catch let inUse as DataDirectoryInUse {
            ObsLocal.printErrorLine("\(inUse)")
            throw ExitCode(2)
        }
        if accessKey == nil {
            let development = ServerConfiguration.developmentCredentials
            // The development keys are public by design; user-supplied secrets are never printed.
            development.secretKey.withBytes { secret in
                print("obs-local development keys: access key \(development.accessKey), secret key \(String(decoding: secret, as: UTF8.self))")
            }
        }
        let waitedSignals = stopSignals
        DispatchQueue.global().async {
            var waited = waitedSignals
            var received: Int32 = 0
            sigwait(&waited, &received)
            try? server.stop()
        }
        print("obs-local listening on \(server.endpoint)")
        fflush(nil)
        try server.waitUntilClosed()
        try server.stop()
    }
}

ObsLocal.main()
