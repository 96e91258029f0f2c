// How an obs-local server is set up: where it listens, where it keeps data, whose keys it accepts.
import OBSHashing
import OBSProtocol

/// Settings of one `OBSLocalServer`.
public struct ServerConfiguration: Sendable {
    /// Where objects live.
    public enum Storage: Sendable {
        /// Files under a directory; data survives a restart.
        case directory(String)
        /// RAM only (`--memory`).
        case memory
    }

    /// The development credentials used when none are given (printed by the CLI; they are
    /// public by design and grant nothing outside this local server).
    public static let developmentCredentials = Credentials(accessKey: "obs-local-dev-ak", secretKey: "obs-local-dev-sk")

    /// Address to bind; only loopback addresses are expected.
    public var host: String
    /// Port to bind; 0 picks a free one (read `OBSLocalServer.port`).
    public var port: Int
    public var storage: Storage
    /// Buckets created at start when missing.
    public var buckets: [BucketName]
    /// Buckets encrypted with SSE-KMS by default (created at start when missing): new objects
    /// that ask for no encryption get it, and their ETags are not MD5s (as on OBS).
    public var kmsBuckets: [BucketName] = []
    /// Parallel file system buckets created at start when missing (rename, modify, truncate);
    /// a bucket that exists keeps its kind.
    public var fileSystemBuckets: [BucketName]
    /// Accepted access keys.
    public var credentials: [Credentials]
    /// A JSON-lines request log, appended to.
    public var requestLogPath: String?
    /// Seconds added to the wall clock when checking request dates and stamping objects.
    /// For replaying recorded requests only (`--clock-offset`).
    public var clockOffsetSeconds: Int64
    /// The smallest part but the last that a complete signed in S3 V2/V4 accepts: S3's 5 MiB
    /// by default, as a real S3 endpoint enforces; OBS-signed requests always get OBS's 100 KiB.
    /// Tests that use small parts in V2/V4 lower it (`--s3-min-part-size`).
    public var s3MinimumPartSize: Int64
    /// A connection that delivers no complete request head this long after it was accepted or
    /// its previous response ended is closed (idle keep-alive, or a head sent slowly or never
    /// finished); nil: never (`--idle-timeout 0`).
    public var idleTimeout: Duration?
    /// Event-loop threads (accepting, parsing, signature checks), threads for the blocking I/O of
    /// bodies (disk writes of uploads, opening blobs for GET, journal compaction), and threads
    /// that run operations (HEAD, LIST, initiate, complete...). Operations have threads of their
    /// own so that a HEAD never queues behind the disk writes of other clients' uploads, as on
    /// a real endpoint, whose metadata service does not wait for its data nodes. Event loops are
    /// more than this machine's cores, for the same reason: a loop busy reading upload bodies
    /// delays the request heads of every connection it serves.
    public var eventLoopThreads: Int
    public var ioThreads: Int
    public var operationThreads: Int

    public init(host: String = "127.0.0.1", port: Int = 0, storage: Storage = .memory, buckets: [BucketName] = [],
                fileSystemBuckets: [BucketName] = [], credentials: [Credentials] = [ServerConfiguration.developmentCredentials], requestLogPath: String? = nil,
                clockOffsetSeconds: Int64 = 0, s3MinimumPartSize: Int64 = ProtocolLimits.s3MinimumPartSize, idleTimeout: Duration? = .seconds(60),
                eventLoopThreads: Int = 4, ioThreads: Int = 4, operationThreads: Int = 2) {
        self.host = host
        self.port = port
        self.storage = storage
        self.buckets = buckets
        self.fileSystemBuckets = fileSystemBuckets
        self.credentials = credentials
        self.requestLogPath = requestLogPath
        self.clockOffsetSeconds = clockOffsetSeconds
        self.s3MinimumPartSize = s3MinimumPartSize
        self.idleTimeout = idleTimeout
        self.eventLoopThreads = eventLoopThreads
        self.ioThreads = ioThreads
        self.operationThreads = operationThreads
    }
}
