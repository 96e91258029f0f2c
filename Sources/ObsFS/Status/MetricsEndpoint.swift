// Where the opt-in metrics endpoint listens (`metrics=`): a loopback TCP port or a Unix socket.
// Only loopback addresses are accepted: the counters name files being written.

public enum MetricsEndpoint: Sendable, Equatable {
    /// `127.0.0.1:PORT`, `localhost:PORT` (IPv4 loopback) or `[::1]:PORT`.
    case loopback(host: String, port: UInt16)
    /// `unix:/absolute/path`.
    case unixSocket(path: String)

    init(parsing text: String, option: String) throws(MountOptionError) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst("unix:".count))
            guard path.hasPrefix("/") else { throw MountOptionError(option: option, reason: "unix: needs an absolute path") }
            self = .unixSocket(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            throw MountOptionError(option: option, reason: "must be 127.0.0.1:PORT, [::1]:PORT, localhost:PORT or unix:/PATH")
        }
        switch text[..<colon] {
        case "127.0.0.1", "localhost": self = .loopback(host: "127.0.0.1", port: port)
        case "[::1]": self = .loopback(host: "::1", port: port)
        default: throw MountOptionError(option: option, reason: "only loopback addresses (127.0.0.1, [::1], localhost) or unix:/PATH")
        }
    }
}
