// What a running mount offers besides the filesystem: the control socket for `obsmount status`,
// the metrics endpoint (`metrics=`), the systemd notifications (READY=1, STATUS=, STOPPING=1)
// and log reopening on SIGHUP. The control socket is not needed for the mount to work: when it
// cannot be bound that is a warning. A metrics endpoint asked for but unusable fails the mount.
import Prometheus
import Logging
import ObsFS
#if canImport(Glibc)
import Glibc
#endif

final class MountService: Sendable {
    private let statistics: MountStatistics
    private let pool: PartBufferPool
    private let source: MountSource
    private let mountpoint: String
    private let logger: Logger
    private let controlSocket: ControlSocketServer?
    private let metricsServer: MetricsServer?
    /// The periodic STATUS= sender; cancelled once the session ended.
    private let statusReporter: Task<Void, Never>?

    /// - Parameter metrics: the endpoint and the registry `MetricsServer.bootstrap` made.
    init(mount: MountSetup, source: MountSource, mountpoint: String, metrics: (MetricsEndpoint, PrometheusCollectorRegistry)?,
         logger: Logger) throws(MountSetup.Failure) {
        statistics = mount.statistics
        pool = mount.pool
        self.source = source
        self.mountpoint = ControlSocketPath.canonical(mountpoint)
        self.logger = logger
        let (statistics, pool, prefix) = (mount.statistics, mount.pool, source.prefix)
        let reply: @Sendable () -> StatusReply = { [mountpoint = self.mountpoint, source = source.description] in
            let snapshot = statistics.snapshot(pool: pool, prefix: prefix)
            return StatusReply(mountpoint: mountpoint, source: source, pid: getpid(), uploads: snapshot.uploads, operations: snapshot.operations, totals: snapshot.totals)
        }
        do {
            controlSocket = try ControlSocketServer(mountpoint: mountpoint, reply: reply)
        } catch {
            logger.warning("no `obsmount status` for this mount: control socket \(error)")
            controlSocket = nil
        }
        if let (endpoint, registry) = metrics {
            let server: MetricsServer
            do {
                server = try MetricsServer(endpoint: endpoint, registry: registry, pool: pool)
            } catch {
                controlSocket?.close()
                throw MountSetup.Failure(message: "metrics endpoint: \(error)", exitCode: 1)
            }
            logger.notice("metrics at \(server.location)")
            metricsServer = server
        } else {
            metricsServer = nil
        }
        statusReporter = SystemdNotify.reportStatus(every: .seconds(5)) { statistics.snapshot(pool: pool, prefix: prefix) }
    }

    /// The mount answers: tell systemd, and let SIGHUP reopen `logFile`.
    func started(reopening logFile: String?) {
        LogFileReopening.install(path: logFile, logger: logger)
        SystemdNotify.send("READY=1\nSTATUS=mounted \(source) on \(mountpoint)")
    }

    /// The session loop ended (unmount or signal); open uploads are being finished.
    func stopping() {
        SystemdNotify.send("STOPPING=1\nSTATUS=unmounting: finishing \(statistics.snapshot(pool: pool, prefix: source.prefix).totals.openUploads) open uploads")
    }

    /// The session is gone.
    func stopped() {
        statusReporter?.cancel()
        controlSocket?.close()
        metricsServer?.close()
    }
}
