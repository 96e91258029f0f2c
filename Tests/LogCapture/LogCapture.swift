// A logger for tests that keeps what it is told, shared by the test targets that check logs.
import Logging
import Synchronization

/// Keeps every log line (message and metadata as text).
public final class LogCapture: Sendable {
    /// The lines logged so far; guarded for concurrent loggers.
    private let storage = Mutex<[String]>([])

    public init() {}

    public var lines: [String] { storage.withLock { $0 } }
    public var logger: Logger { Logger(label: "test") { _ in Handler(capture: self) } }

    public func append(_ line: String) { storage.withLock { $0.append(line) } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let details = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.append("\(event.level) \(event.message) \(details)")
        }
    }
}
