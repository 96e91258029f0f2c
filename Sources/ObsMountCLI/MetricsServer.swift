// The opt-in metrics endpoint (`metrics=127.0.0.1:PORT` or `metrics=unix:/PATH`): answers
// `GET /metrics` with every swift-metrics value of the process in the Prometheus text format
// (swift-prometheus), plus the part-buffer gauges read at scrape time. Plain HTTP/1.1, one
// request per connection, served by ListeningSocket's accept thread; anything but
// `GET /metrics` gets 404 or 405.
import CoreMetrics
import ObsFS
import Prometheus
#if canImport(Glibc)
import Glibc
#endif

final class MetricsServer: Sendable {
    /// Where it listens, for the log: `http://127.0.0.1:PORT/metrics` or `unix:/PATH`.
    let location: String
    private let listener: Int32
    private let unixPath: String?

    /// Makes swift-metrics record into a Prometheus registry; call before anything records.
    static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    init(endpoint: MetricsEndpoint, registry: PrometheusCollectorRegistry, pool: PartBufferPool) throws(SocketError) {
        switch endpoint {
        case .loopback(let host, let port):
            let (descriptor, bound) = try ListeningSocket.loopback(host: host, port: port)
            listener = descriptor
            location = "http://\(host.contains(":") ? "[\(host)]" : host):\(bound)/metrics"
            unixPath = nil
        case .unixSocket(let path):
            listener = try ListeningSocket.unix(path: path)
            location = "unix:\(path)"
            unixPath = path
        }
        let inUse = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "obsmount", metricName: "part_buffer", unitName: "bytes",
                                                                        helpText: "Bytes of part buffers allocated"))
        let budget = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "obsmount", metricName: "part_buffer_budget", unitName: "bytes",
                                                                         helpText: "memory_budget=: the bytes part buffers may take"))
        guard ListeningSocket.serve(listener, { connection in
            inUse.set(to: Double(pool.allocatedBytes))
            budget.set(to: Double(pool.capacity))
            Self.answer(connection, registry)
        }) else {
            Glibc.close(listener)
            throw SocketError("cannot start a thread for the metrics endpoint", errno: EAGAIN)
        }
    }

    func close() {
        if let unixPath { unlink(unixPath) }
        shutdown(listener, Int32(SHUT_RDWR))
    }

    private static func answer(_ connection: Int32, _ registry: PrometheusCollectorRegistry) {
        guard let requestLine = readLine(connection) else { return }
        // The rest of the head: until the empty line.
        while let header = readLine(connection), !header.trimmingSuffix("\r").isEmpty {}
        let fields = requestLine.split(separator: " ")
        guard fields.count == 3, fields[0] == "GET" else {
            return respond(connection, status: "405 Method Not Allowed", type: "text/plain", body: Array("only GET /metrics\n".utf8))
        }
        guard fields[1] == "/metrics" || fields[1].hasPrefix("/metrics?") else {
            return respond(connection, status: "404 Not Found", type: "text/plain", body: Array("only /metrics\n".utf8))
        }
        respond(connection, status: "200 OK", type: "text/plain; version=0.0.4; charset=utf-8", body: registry.emitToBuffer())
    }

    private static func respond(_ connection: Int32, status: String, type: String, body: [UInt8]) {
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        writeAll(connection, Array(head.utf8) + body)
    }
}

private extension String {
    func trimmingSuffix(_ suffix: String) -> Substring { hasSuffix(suffix) ? dropLast(suffix.count) : self[...] }
}
