// Everything between parsed options and a mounted session: credentials, the embedded server
// when no url= is given, the client, the one-request check of bucket and credentials, the
// filesystem core and the FUSE session.
import CurlTransport
import FuseAdapter
import Logging
import OBSClient
import OBSHashing
import OBSLocalServer
import OBSProtocol
import ObsFS
#if canImport(Glibc)
import Glibc
#endif

/// A mounted filesystem and what keeps it served.
struct MountSetup {
    let session: FuseSession
    /// The embedded server, when this process started one. It serves until `stopEmbeddedServer`
    /// (every request it answered is already on disk).
    let embeddedServer: OBSLocalServer?
    /// The store, with the upload journal and its background aborts (MountSetup+Journal.swift).
    let store: OBSClientStore

    /// Stops the embedded server, once the session has ended (unmounted, uploads finished).
    func stopEmbeddedServer(logger: Logger) {
        do {
            try embeddedServer?.stop()
        } catch {
            logger.warning("stopping the embedded obs-local server: \(error)")
        }
    }

    /// Why the mount cannot be set up: one line and the exit status.
    struct Failure: Error {
        let message: String
        let exitCode: Int32
    }

    static func prepare(source: MountSource, options: MountOptions, mountpoint: String, debug: Bool, logger: Logger) async throws -> MountSetup {
        var embeddedServer: OBSLocalServer?
        let endpointURL: String
        let credentials: Credentials
        if let url = options.endpoint {
            endpointURL = url
            credentials = try loadCredentials(options)
        } else {
            credentials = (try? loadCredentials(options)) ?? ServerConfiguration.developmentCredentials
            let server = try startEmbeddedServer(bucket: source.bucket, credentials: credentials, logger: logger)
            embeddedServer = server
            endpointURL = server.endpoint
        }
        var mounted = false
        // A mount that fails after the embedded server started stops it again.
        defer { if !mounted { try? embeddedServer?.stop() } }
        guard let endpoint = Endpoint(endpointURL) else { throw Failure(message: "cannot parse url=\(endpointURL)", exitCode: 2) }

        let client = try makeClient(endpoint: endpoint, credentials: credentials, options: options, debug: debug, logger: logger)
        let journal = try openUploadJournal(source: source, options: options, logger: logger)
        let store = OBSClientStore(client: client, bucket: source.bucket, customerKey: options.upload.customerKey, journal: journal, logger: logger)
        do {
            // The check answers at once (a few quick retries), not after retry_timeout=.
            try await OBSClientStore(client: client.retrying(RetryPolicy()), bucket: source.bucket).checkBucket()
        } catch {
            journal.close()
            throw Failure(message: diagnose(error, bucket: source.bucket, endpoint: endpointURL), exitCode: 1)
        }
        abortOrphanedUploads(store, source: source, logger: logger)

        let schedule = PartSizeSchedule(initialPartSize: options.partSize, maximumPartSize: options.memoryBudget / 2)
        let settings = UploadSettings(schedule: schedule, parallel: options.parallel, pool: PartBufferPool(capacity: options.memoryBudget, warmBuffersPerSize: options.parallel + 1))
        let fileSystem = ObsFileSystem(
            configuration: FileSystemConfiguration(bucket: source.bucket, prefix: source.prefix, upload: settings, uploadOptions: options.upload,
                                                   readOnly: options.readOnly,
                                                   ownerUID: options.uid ?? getuid(), ownerGID: options.gid ?? getgid(), umask: options.umask,
                                                   attributeTimeout: options.attributeTimeout, negativeTimeout: options.negativeTimeout),
            store: store, logger: logger)
        var fuseOptions = ["fsname=obs:\(source.bucket)", "subtype=obsmount", "default_permissions"]
        if options.allowOther { fuseOptions.append("allow_other") }
        if options.readOnly { fuseOptions.append("ro") }
        let session: FuseSession
        do {
            session = try FuseSession(fileSystem: fileSystem, mountpoint: mountpoint, options: fuseOptions, debug: debug, logger: logger)
        } catch {
            store.backgroundAborts?.stop()
            journal.close()
            throw Failure(message: "\(error)", exitCode: 1)
        }
        logger.notice("mounted \(source) of \(endpointURL) (\(options.dialect)) on \(mountpoint): part_size \(options.partSize), parallel \(options.parallel), memory_budget \(options.memoryBudget), retry_timeout \(options.retryTimeout), largest file \(schedule.reach) bytes")
        mounted = true
        return MountSetup(session: session, embeddedServer: embeddedServer, store: store)
    }

    /// The client of the endpoint as the options say (also `obsmount uploads`'s).
    static func makeClient(endpoint: Endpoint, credentials: Credentials, options: MountOptions, debug: Bool, logger: Logger) throws -> OBSClient {
        var transport = TransportConfiguration()
        transport.caFile = options.caFile
        transport.maxConcurrentTransfers = max(16, options.parallel * 4)
        var clientLogger = logger
        clientLogger.logLevel = debug ? .debug : .warning
        let configuration = OBSClientConfiguration(endpoint: endpoint, addressing: options.virtualHostAddressing ? .virtualHost : .pathStyle,
                                                   region: options.region, dialect: options.dialect, credentials: credentials,
                                                   transport: transport, retry: .timeBounded(options.retryTimeout),
                                                   keyEncoding: options.upload.keyEncoding, logger: clientLogger)
        do {
            return try OBSClient(configuration: configuration)
        } catch {
            throw Failure(message: "cannot start the HTTP client: \(error)", exitCode: 1)
        }
    }

    /// `AK:SK[:TOKEN]` from passwd_file= (mode must deny group and others), else the environment.
    static func loadCredentials(_ options: MountOptions) throws -> Credentials {
        if let path = options.passwordFile {
            var status = stat()
            guard stat(path, &status) == 0 else { throw Failure(message: "passwd_file \(path): cannot read it", exitCode: 1) }
            guard status.st_mode & 0o077 == 0 else {
                throw Failure(message: "passwd_file \(path) is readable by group or others (chmod 600 it)", exitCode: 1)
            }
            guard let text = readSmallFile(path) else { throw Failure(message: "passwd_file \(path): cannot read it", exitCode: 1) }
            let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 2, !fields[0].isEmpty, !fields[1].isEmpty else {
                throw Failure(message: "passwd_file \(path): expected one line AK:SK or AK:SK:TOKEN", exitCode: 1)
            }
            return Credentials(accessKey: fields[0], secretKey: fields[1], securityToken: fields.count == 3 ? fields[2] : nil)
        }
        guard let accessKey = getenv("OBS_ACCESS_KEY_ID").map({ String(cString: $0) }), !accessKey.isEmpty,
              let secretKey = getenv("OBS_SECRET_ACCESS_KEY").map({ String(cString: $0) }), !secretKey.isEmpty else {
            throw Failure(message: "no credentials: give passwd_file= or set OBS_ACCESS_KEY_ID and OBS_SECRET_ACCESS_KEY", exitCode: 1)
        }
        let token = getenv("OBS_SECURITY_TOKEN").map { String(cString: $0) }
        return Credentials(accessKey: accessKey, secretKey: secretKey, securityToken: token?.isEmpty == false ? token : nil)
    }

    private static func readSmallFile(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 64 * 1024)
        let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count >= 0 else { return nil }
        defer { zeroize(&bytes) }
        return String(decoding: bytes[0..<count], as: UTF8.self)
    }

    /// obs-local on a free loopback port, data under $XDG_DATA_HOME/obsmount when that is set,
    /// else /var/lib/obsmount for root and ~/.local/share/obsmount for other users.
    static func startEmbeddedServer(bucket: BucketName, credentials: Credentials, logger: Logger) throws -> OBSLocalServer {
        let dataDirectory: String
        if let xdg = getenv("XDG_DATA_HOME").map({ String(cString: $0) }), !xdg.isEmpty {
            dataDirectory = xdg + "/obsmount"
        } else if getuid() == 0 {
            dataDirectory = "/var/lib/obsmount"
        } else {
            dataDirectory = (getenv("HOME").map { String(cString: $0) } ?? "/tmp") + "/.local/share/obsmount"
        }
        makeDirectories(dataDirectory)
        do {
            let server = try OBSLocalServer.start(ServerConfiguration(storage: .directory(dataDirectory), buckets: [bucket], credentials: [credentials]))
            logger.notice("no url= given: started the embedded obs-local server at \(server.endpoint), data in \(dataDirectory)")
            return server
        } catch {
            throw Failure(message: "cannot start the embedded obs-local server (data dir \(dataDirectory)): \(error)", exitCode: 1)
        }
    }

    private static func makeDirectories(_ path: String) {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            mkdir(current, 0o700)
        }
    }

    /// One line for a failed bucket check.
    static func diagnose(_ error: any Error, bucket: BucketName, endpoint: String) -> String {
        let prefix = "cannot use bucket \(bucket) at \(endpoint): "
        guard let error = error as? OBSClientError else { return prefix + "\(error)" }
        switch error {
        case .service(let service):
            let detail = "(\(service.code), request-id \(service.requestID ?? "none"))"
            switch service.code {
            case .noSuchBucket: return prefix + "the bucket does not exist \(detail)"
            case .invalidAccessKeyId: return prefix + "the access key is not known \(detail)"
            case .signatureDoesNotMatch: return prefix + "the secret key is wrong \(detail)"
            case .accessDenied: return prefix + "access denied for these credentials \(detail)"
            case .requestTimeTooSkewed: return prefix + "this machine's clock is off by more than 15 minutes \(detail)"
            default: return prefix + service.description
            }
        case .transport(let transport):
            return prefix + "endpoint unreachable: \(transport.message)"
        default:
            return prefix + error.description
        }
    }
}
