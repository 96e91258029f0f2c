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
    /// Event-loop threads (accepting, parsing, signature checks) and blocking-I/O threads.
    public var eventLoopThreads: Int
    public var ioThreads: Int

    public init(host: String = "127.0.0.1", port: Int = 0, storage: Storage = .memory, buckets: [BucketName] = [],
                fileSystemBuckets: [BucketName] = [], credentials: [Credentials] = [ServerConfiguration.developmentCredentials], requestLogPath: String? = nil,
                clockOffsetSeconds: Int64 = 0, eventLoopThreads: Int = 2, ioThreads: Int = 4) {
        self.host = host
        self.port = port
        self.storage = storage
        self.buckets = buckets
        self.fileSystemBuckets = fileSystemBuckets
        self.credentials = credentials
        self.requestLogPath = requestLogPath
        self.clockOffsetSeconds = clockOffsetSeconds
        self.eventLoopThreads = eventLoopThreads
        self.ioThreads = ioThreads
    }
}
