// Everything between parsed options and a mounted session: the check that nothing is mounted on
// the mountpoint yet (MountTable), credentials, the embedded server when no url= is given
// (EmbeddedServer: started, or joined when another mount runs it on the same data directory), the
// client, the one-request check of bucket and credentials, the filesystem core and the FUSE
// session.
import CMalloc
import CurlTransport
import FuseAdapter
import Logging
import OBSClient
import OBSHashing
import OBSLocalServer
import OBSProtocol
import ObsFS
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// A mounted filesystem and what keeps it served.
struct MountSetup {
    let session: FuseSession
    /// The embedded server (without url=), started by this process or joined. Released by
    /// `stopEmbeddedServer`.
    let embeddedServer: EmbeddedServer?
    /// Upload counters and open uploads, for `obsmount status`, STATUS= and metrics.
    let statistics: MountStatistics
    let pool: PartBufferPool
    /// The store, with the upload journal and its background aborts (MountSetup+Journal.swift).
    let store: OBSClientStore

    /// Once the session has ended (unmounted, uploads finished): stops the embedded server this
    /// process started, after the mounts that joined it are gone, or leaves the one it joined.
    func stopEmbeddedServer(logger: Logger) {
        embeddedServer?.release(logger: logger)
    }

    /// Why the mount cannot be set up: one line and the exit status.
    struct Failure: Error {
        let message: String
        let exitCode: Int32
    }

    static func prepare(source: MountSource, options: MountOptions, mountpoint: String, debug: Bool, logger: Logger) async throws -> MountSetup {
        returnLargeBlocksToTheSystem()
        if !options.allowOverMount, let mounted = MountTable.fuseMounts(on: mountpoint).last {
            throw Failure(message: "\(mountpoint) is already mounted (\(mounted.source), \(mounted.type)): unmount it first (fusermount3 -u \(mountpoint)), or mount over it with -o allow_over_mount", exitCode: 1)
        }
        var embeddedServer: EmbeddedServer?
        let endpointURL: String
        let credentials: Credentials
        var passwordFile: PasswordFile?
        if let url = options.endpoint {
            endpointURL = url
            if let path = options.passwordFile {
                let file = try PasswordFile(path: path, logger: logger)
                passwordFile = file
                credentials = file.initial
            } else {
                credentials = try loadCredentials(options)
            }
        } else {
            credentials = (try? loadCredentials(options)) ?? ServerConfiguration.developmentCredentials
            let server = try EmbeddedServer.startOrJoin(dataDirectory: options.dataDirectory ?? EmbeddedServer.defaultDataDirectory(),
                                                        bucket: source.bucket, credentials: credentials, logger: logger)
            embeddedServer = server
            endpointURL = server.endpoint
        }
        var mounted = false
        // A mount that fails after the embedded server started (or was joined) releases it again.
        defer { if !mounted { embeddedServer?.release(logger: logger) } }
        guard let endpoint = Endpoint(endpointURL) else { throw Failure(message: "cannot parse url=\(endpointURL)", exitCode: 2) }

        let statistics = MountStatistics()
        let renewal: (@Sendable () -> Credentials?)? = if let passwordFile { { passwordFile.renewed() } } else { nil }
        let client = try makeClient(endpoint: endpoint, credentials: credentials, options: options, debug: debug, logger: logger,
                                    observer: statistics, renewedCredentials: renewal)
        let journal = try openUploadJournal(source: source, options: options, logger: logger)
        var store = OBSClientStore(client: client, bucket: source.bucket, customerKey: options.upload.customerKey,
                                   checksum: options.integrity.checksumAlgorithm, journal: journal, logger: logger)
        do {
            // A joined server was started for another mount's bucket: this one's is created, as
            // the embedded server creates the bucket it is started for.
            let quickClient = client.retrying(RetryPolicy())
            if embeddedServer?.joined == true, !(try await quickClient.bucketExists(source.bucket)) {
                try await quickClient.createBucket(source.bucket)
            }
            // The check answers at once (a few quick retries), not after retry_timeout=.
            try await OBSClientStore(client: quickClient, bucket: source.bucket).checkBucket()
        } catch {
            journal.close()
            throw Failure(message: diagnose(error, bucket: source.bucket, endpoint: endpointURL), exitCode: 1)
        }
        do {
            store.isFileSystemBucket = try await client.isFileSystemBucket(source.bucket)
        } catch {
            logger.warning("HEAD bucket \(source.bucket) failed (\(error)): taken for an ordinary bucket, not a parallel file system")
        }

        let schedule = PartSizeSchedule(initialPartSize: options.partSize, maximumPartSize: options.memoryBudget / 2)
        var settings = UploadSettings(schedule: schedule, parallel: options.parallel, pool: PartBufferPool(capacity: options.memoryBudget, warmBuffersPerSize: options.parallel + 1),
                                      integrity: options.integrity)
        settings.statistics = statistics
        let fileSystem = ObsFileSystem(
            configuration: FileSystemConfiguration(bucket: source.bucket, prefix: source.prefix, upload: settings, uploadOptions: options.upload,
                                                   readOnly: options.readOnly,
                                                   ownerUID: options.uid ?? getuid(), ownerGID: options.gid ?? getgid(), umask: options.umask,
                                                   attributeTimeout: options.attributeTimeout, negativeTimeout: options.negativeTimeout,
                                                   read: options.read, dialect: options.dialect, writebackCache: options.writebackCache),
            store: store, logger: logger, savedHeads: openSavedHeadAnswers(source: source, options: options, logger: logger))
        var fuseOptions = ["fsname=obs:\(source.bucket)", "subtype=obsmount", "default_permissions"]
        if options.allowOther ?? (geteuid() == 0) { fuseOptions.append("allow_other") }
        if options.readOnly { fuseOptions.append("ro") }
        fuseOptions += options.kernelFlags
        let session: FuseSession
        do {
            session = try FuseSession(fileSystem: fileSystem, mountpoint: mountpoint, options: fuseOptions, debug: debug, logger: logger)
        } catch {
            store.backgroundAborts?.stop()
            journal.close()
            throw Failure(message: "\(error)", exitCode: 1)
        }
        logger.notice("mounted \(source) of \(endpointURL) (\(options.dialect)) on \(mountpoint)\(store.isFileSystemBucket ? " (a parallel file system bucket: native rename, modify, truncate)" : ""): part_size \(options.partSize), parallel \(options.parallel), memory_budget \(options.memoryBudget), retry_timeout \(options.retryTimeout), checksum \(options.integrity), largest file \(schedule.reach) bytes")
        mounted = true
        return MountSetup(session: session, embeddedServer: embeddedServer, statistics: statistics, pool: settings.pool, store: store)
    }

    /// The client of the endpoint as the options say (also `obsmount uploads`'s); `observer`
    /// sees every request attempt (status and metrics).
    static func makeClient(endpoint: Endpoint, credentials: Credentials, options: MountOptions, debug: Bool, logger: Logger,
                           observer: (any RequestObserver)? = nil,
                           renewedCredentials: (@Sendable () -> Credentials?)? = nil) throws -> OBSClient {
        var transport = TransportConfiguration()
        transport.caFile = options.caFile
        transport.lowSpeedTime = options.stallTimeout
        transport.maxConcurrentTransfers = max(16, options.parallel * 4)
        var clientLogger = logger
        clientLogger.logLevel = debug ? .debug : .warning
        var configuration = OBSClientConfiguration(endpoint: endpoint, addressing: options.virtualHostAddressing ? .virtualHost : .pathStyle,
                                                   region: options.region, dialect: options.dialect, credentials: credentials,
                                                   transport: transport, retry: .timeBounded(options.retryTimeout),
                                                   keyEncoding: options.upload.keyEncoding, logger: clientLogger)
        configuration.observer = observer
        configuration.renewedCredentials = renewedCredentials
        do {
            return try OBSClient(configuration: configuration)
        } catch {
            throw Failure(message: "cannot start the HTTP client: \(error)", exitCode: 1)
        }
    }

    /// `AK:SK[:TOKEN]` from passwd_file= (mode must deny group and others), else the environment.
    static func loadCredentials(_ options: MountOptions) throws -> Credentials {
        if let path = options.passwordFile { return try PasswordFile.read(path).0 }
        guard let accessKey = getenv("OBS_ACCESS_KEY_ID").map({ String(cString: $0) }), !accessKey.isEmpty,
              let secretKey = getenv("OBS_SECRET_ACCESS_KEY").map({ String(cString: $0) }), !secretKey.isEmpty else {
            throw Failure(message: "no credentials: give passwd_file= or set OBS_ACCESS_KEY_ID and OBS_SECRET_ACCESS_KEY", exitCode: 1)
        }
        let token = getenv("OBS_SECURITY_TOKEN").map { String(cString: $0) }
        scrubSecretsFromEnvironment()
        return Credentials(accessKey: accessKey, secretKey: secretKey, securityToken: token?.isEmpty == false ? token : nil)
    }

    /// Blocks of 256 KiB and more (writes held while no part buffer is free, changed ranges,
    /// listings) are mapped for themselves and unmapped when freed. By default glibc raises that
    /// threshold after the first such free, up to 32 MiB, and keeps freed blocks below it in its
    /// per-thread arenas: 64 files written at once with `memory_budget=64M` left the daemon at
    /// 487 MB resident instead of 129 to 149 MB. (`MALLOC_MMAP_THRESHOLD_=` in the environment
    /// would do the same for one run.)
    static func returnLargeBlocksToTheSystem() {
        _ = mallopt(M_MMAP_THRESHOLD, 256 * 1024)
    }

    /// The variables holding secrets (`loadCredentials`).
    static let secretVariables = ["OBS_SECRET_ACCESS_KEY", "OBS_SECURITY_TOKEN"]

    /// Overwrites the values of `secretVariables` in this process's environment with NUL bytes,
    /// then unsets them: /proc/PID/environ (`ps e`) shows the environment block the process
    /// started with, which `unsetenv` alone leaves as it was.
    static func scrubSecretsFromEnvironment() {
        var pointer = environ
        while let entry = pointer.pointee {
            for name in secretVariables where strncmp(entry, name + "=", name.utf8.count + 1) == 0 {
                let value = entry + name.utf8.count + 1
                memset(value, 0, strlen(value))
            }
            pointer += 1
        }
        for name in secretVariables { unsetenv(name) }
    }

    /// The first `limit` bytes of a file, read to its end (files in /proc answer in pieces); the
    /// buffer is zeroed afterwards (it may have held a secret).
    static func readSmallFile(_ path: String, limit: Int = 64 * 1024) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: limit)
        defer { zeroize(&bytes) }
        var count = 0
        while count < limit {
            let got = FileSystem.retryingInterrupts { bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + count, limit - count) } }
            guard got >= 0 else { return nil }
            if got == 0 { break }
            count += got
        }
        return String(decoding: bytes[0..<count], as: UTF8.self)
    }

    /// One line for a failed bucket check: what is wrong and what to do next.
    static func diagnose(_ error: any Error, bucket: BucketName, endpoint: String) -> String {
        let prefix = "cannot use bucket \(bucket) at \(endpoint): "
        guard let error = error as? OBSClientError else { return prefix + "\(error)" }
        switch error {
        case .service(let service):
            // No request ID: not an answer of an OBS or S3 service (a web server, a proxy), whose
            // bodiless status the client named after the usual code.
            guard let requestID = service.requestID else {
                return prefix + "the endpoint answered HTTP \(service.status) without a request ID: check url= (is it an OBS or S3 endpoint?) and the bucket name"
            }
            let detail = "(\(service.code), request-id \(requestID))"
            switch service.code {
            case .noSuchBucket: return prefix + "the bucket does not exist: create it, or check the name and url= \(detail)"
            case .invalidAccessKeyId: return prefix + "the access key is not known: check the AK in passwd_file= or OBS_ACCESS_KEY_ID \(detail)"
            case .signatureDoesNotMatch:
                return prefix + "the secret key is wrong (or dialect= does not match the endpoint): check the SK in passwd_file= or OBS_SECRET_ACCESS_KEY \(detail)"
            case .accessDenied: return prefix + "access denied: grant these credentials access to the bucket \(detail)"
            case .requestTimeTooSkewed: return prefix + "this machine's clock is off by more than 15 minutes: sync it (NTP) \(detail)"
            default: return prefix + service.description
            }
        case .transport(let transport):
            return prefix + "endpoint unreachable: check url=, DNS and the network (\(transport.message))"
        default:
            return prefix + error.description
        }
    }
}
