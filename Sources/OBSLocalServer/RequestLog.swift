// The JSON-lines request log (`--request-log FILE`): one object a line per finished request, for
// tests to inspect. Fields: time (ISO 8601), requestId, operation, bucket, key, uploadId,
// partNumber, encodingType (the `encoding-type` query parameter, when sent), status, code (error
// code, when any), bytesIn (body bytes received), bytesOut (body bytes sent), durationMs. Never
// contains headers, signatures or keys.
import FoundationEssentials
import Synchronization
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// One line of the request log.
struct RequestLogEntry: Codable, Sendable {
    var time: String
    var requestId: String
    var operation: String
    var bucket: String?
    var key: String?
    var uploadId: String?
    var partNumber: Int?
    var encodingType: String?
    var status: Int
    var code: String?
    var bytesIn: Int64
    var bytesOut: Int64
    var durationMs: Double
}

/// Appends entries to a file with one `write(2)` each (O_APPEND), so lines never interleave.
final class RequestLog: Sendable {
    /// The log file descriptor; the lock serialises encoder use and writes.
    private let file: Mutex<Int32>

    init(path: String) throws {
        file = Mutex(try FileSystem.open(path, O_WRONLY | O_CREAT | O_APPEND))
    }

    deinit { file.withLock { try? FileSystem.close($0, path: "request log") } }

    func record(_ entry: RequestLogEntry) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var line = try? encoder.encode(entry) else { return }
        line.append(UInt8(ascii: "\n"))
        file.withLock { fd in
            // A lost log line must not fail the request it describes.
            try? line.withUnsafeBytes { try FileSystem.writeAll(fd, $0, path: "request log") }
        }
    }
}
