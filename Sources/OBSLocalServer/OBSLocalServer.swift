// obs-local as a library: start a server in-process (tests, `obsmount`'s embedded default) or
// from the `obs-local` command, on a fixed port or port 0, and stop it.
import NIOCore
import NIOHTTP1
import NIOPosix
import OBSHashing
import OBSProtocol
import Synchronization
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// A running obs-local server.
public final class OBSLocalServer: Sendable {
    /// The port it listens on (the chosen one when started with port 0).
    public let port: Int
    public let host: String
    private let group: MultiThreadedEventLoopGroup
    /// ServerCore's pools: body I/O and operations.
    let bodyPool: NIOThreadPool
    let operationPool: NIOThreadPool
    private let channel: any Channel
    /// The data directory's lock (DataDirectoryLock), released by `stop`; nil in memory.
    private let dataDirectoryLock: FileLock?
    /// Set once `stop` has run.
    private let stopped = Mutex(false)

    /// `http://127.0.0.1:PORT`
    public var endpoint: String { "http://\(host):\(port)" }

    private init(port: Int, host: String, group: MultiThreadedEventLoopGroup, bodyPool: NIOThreadPool, operationPool: NIOThreadPool,
                 channel: any Channel, dataDirectoryLock: FileLock?) {
        self.port = port
        self.host = host
        self.group = group
        self.bodyPool = bodyPool
        self.operationPool = operationPool
        self.channel = channel
        self.dataDirectoryLock = dataDirectoryLock
    }

    /// Locks and opens the data directory, creates the configured buckets and starts listening.
    /// Throws `DataDirectoryInUse` when another server holds the directory.
    public static func start(_ configuration: ServerConfiguration) throws -> OBSLocalServer {
        var dataDirectoryLock: FileLock?
        if case .directory(let path) = configuration.storage { dataDirectoryLock = try DataDirectoryLock.acquire(directory: path) }
        let bodyPool = NIOThreadPool(numberOfThreads: configuration.ioThreads)
        let operationPool = NIOThreadPool(numberOfThreads: configuration.operationThreads)
        bodyPool.start()
        operationPool.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
        do {
            let core = try ServerCore(configuration: configuration, bodyPool: bodyPool, operationPool: operationPool)
            let bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: ServerCore.readsPerTurn)
                .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 512 << 10))
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: false)
                        try channel.pipeline.syncOperations.addHandler(ConnectionHandler(core: core))
                    }
                }
            let channel = try bootstrap.bind(host: configuration.host, port: configuration.port).wait()
            guard let port = channel.localAddress?.port else { throw StorageIOError(operation: "bind", path: configuration.host, errno: EADDRNOTAVAIL) }
            return OBSLocalServer(port: port, host: configuration.host, group: group, bodyPool: bodyPool, operationPool: operationPool,
                                  channel: channel, dataDirectoryLock: dataDirectoryLock)
        } catch {
            try? group.syncShutdownGracefully()
            try? bodyPool.syncShutdownGracefully()
            try? operationPool.syncShutdownGracefully()
            dataDirectoryLock?.release()
            throw error
        }
    }

    /// Stops listening, closes connections and releases the threads. Idempotent. Requests in
    /// flight are cut off: bodies being received are discarded, operations not yet started fail.
    public func stop() throws {
        let first = stopped.withLock { wasStopped in
            defer { wasStopped = true }
            return !wasStopped
        }
        guard first else { return }
        try? channel.close().wait()
        // The thread pools before the event loops: a task running on one completes its promise by
        // hopping to its connection's loop, and queued tasks are failed the same way, so the loops
        // must still run then. (Loops stopped first left those promises unfulfilled: a leaked
        // promise, a trap in debug builds.) Work submitted after this fails at once, on the loop.
        defer { dataDirectoryLock?.release() }
        try bodyPool.syncShutdownGracefully()
        try operationPool.syncShutdownGracefully()
        try group.syncShutdownGracefully()
    }

    /// Waits until the listening socket is closed (by `stop`).
    public func waitUntilClosed() throws { try channel.closeFuture.wait() }
}

/// What every connection shares: the store, the keys, fault rules, the log, the clock.
final class ServerCore: Sendable {
    let store: ObjectStore
    let verifier: SignatureVerifier
    /// Secret keys by access key (signed streaming payloads chain their chunk signatures to them).
    let secrets: [String: SecretBytes]
    let faults = FaultInjector()
    /// Reads (of up to 512 KiB) one connection may do per turn of its event loop: a few, so that a
    /// request head (a HEAD, a LIST) on another connection of the loop is read within a
    /// millisecond or two while uploads stream, instead of after 16 reads of each upload's body.
    static let readsPerTurn: UInt = 4
    /// Blocking I/O of bodies: disk writes of uploads, opening blobs for GET, journal compaction.
    let bodyPool: NIOThreadPool
    /// Runs operations (`Operations.perform`), so that none waits behind body I/O.
    let operationPool: NIOThreadPool
    let clock: Clock
    let operations: Operations
    /// How long a connection may go without a complete request head; nil: for ever.
    let idleTimeout: TimeAmount?
    private let requestLog: RequestLog?
    /// Request counter, for unique request IDs.
    private let requestCounter = Atomic<UInt64>(0)
    private let idPrefix: String

    init(configuration: ServerConfiguration, bodyPool: NIOThreadPool, operationPool: NIOThreadPool) throws {
        let offsetMilliseconds = configuration.clockOffsetSeconds * 1000
        let clock: Clock = { Timestamp(millisecondsSinceEpoch: Timestamp.now().millisecondsSinceEpoch + offsetMilliseconds) }
        self.clock = clock
        let blobs: any BlobStorage
        let journal: any MetadataJournal
        switch configuration.storage {
        case .memory:
            blobs = MemoryBlobStorage()
            journal = TransientJournal()
        case .directory(let path):
            blobs = try DiskBlobStorage(directory: path + "/blobs")
            journal = try LogJournal(directory: path + "/meta") { compaction in
                bodyPool.submit { state in if state == .active { compaction() } }
            }
        }
        store = try ObjectStore(blobs: blobs, journal: journal, clock: clock)
        var secrets: [String: SecretBytes] = [:]
        for credentials in configuration.credentials { secrets[credentials.accessKey] = credentials.secretKey }
        verifier = SignatureVerifier(secrets: secrets)
        self.secrets = secrets
        self.bodyPool = bodyPool
        self.operationPool = operationPool
        requestLog = try configuration.requestLogPath.map(RequestLog.init(path:))
        operations = Operations(store: store, clock: clock, s3MinimumPartSize: configuration.s3MinimumPartSize)
        idleTimeout = configuration.idleTimeout.map { .nanoseconds($0.components.seconds * 1_000_000_000 + $0.components.attoseconds / 1_000_000_000) }
        var generator = SystemRandomNumberGenerator()
        idPrefix = (0..<4).map { _ in UInt8.random(in: 0...255, using: &generator) }.hexString.uppercased()
        for bucket in configuration.buckets + configuration.kmsBuckets where (try? store.headBucket(bucket)) == nil {
            try store.createBucket(bucket)
        }
        for bucket in configuration.fileSystemBuckets where (try? store.headBucket(bucket)) == nil {
            try store.createBucket(bucket, fileSystem: true)
        }
        for bucket in configuration.kmsBuckets { try store.setDefaultEncryption(bucket, "kms") }
    }

    /// `0000018BC3A1F2E4` style: a per-server prefix and a counter, 32 hex digits.
    func nextRequestID() -> String {
        let n = requestCounter.wrappingAdd(1, ordering: .relaxed).newValue
        let counter = String(n, radix: 16, uppercase: true)
        return idPrefix + String(repeating: "0", count: max(0, 24 - counter.count)) + counter
    }

    func hostID(for requestID: String) -> String { Base64.encode(Hash.sha256(("obs-local/" + requestID).utf8).prefix(24)) }

    func errorDocument(_ error: OBSLocalError, requestID: String, resource: String) -> [UInt8] {
        let path = resource.split(separator: "?", maxSplits: 1).first.map(String.init) ?? resource
        return ServiceError(status: error.status, code: error.code, message: error.message, requestID: requestID,
                            hostID: hostID(for: requestID), resource: path).serializedDocument
    }

    func isLoopback(_ address: SocketAddress?) -> Bool {
        guard let ip = address?.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }

    /// Closes a connection with a TCP reset instead of an orderly FIN.
    static func reset(_ channel: any Channel) {
        guard let provider = channel as? any SocketOptionProvider else { return channel.close(promise: nil) }
        provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
    }

    func log(exchange: (requestID: String, routed: RoutedRequest?, started: UInt64, bytesIn: Int64), status: Int, code: ObsErrorCode?, bytesOut: Int64) {
        guard let requestLog else { return }
        let routed = exchange.routed
        let elapsed = Double(FaultInjector.monotonicNow() - exchange.started) / 1e6
        requestLog.record(RequestLogEntry(
            time: clock().iso8601, requestId: exchange.requestID, operation: routed?.operation.rawValue ?? "Unknown",
            bucket: routed?.bucket?.rawValue, key: routed?.key?.rawValue, uploadId: routed?.query("uploadId"),
            partNumber: routed?.query("partNumber").flatMap { Int($0) }, encodingType: routed?.query("encoding-type"),
            status: status, code: code?.rawValue,
            bytesIn: exchange.bytesIn, bytesOut: bytesOut, durationMs: (elapsed * 1000).rounded() / 1000))
    }
}
