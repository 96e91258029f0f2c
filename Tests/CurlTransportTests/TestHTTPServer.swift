// A tiny HTTP/1.1 server on 127.0.0.1 for the transport tests: plain sockets, one thread per
// connection, keep-alive. Routes:
//   PUT|POST /md5          → 200, body = hex MD5 of the request body
//   PUT /md5-then-close    → the same, then closes the connection without saying so
//   GET /bytes?n=N         → N bytes of `TestHTTPServer.pattern`, honouring `Range: bytes=a-b`
//   GET /status/CODE       → CODE with a small XML body
//   GET /silent            → reads the request and never answers
//   any /echo              → 200, headers X-Method, X-Expect, X-Content-Length echo the request
//   GET /odd-headers       → 200 with padded, empty and repeated (differently cased) header lines
import Foundation
import OBSHashing
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class TestHTTPServer: Sendable {
    let port: Int
    private let listener: Int32
    /// Connections accepted so far, and whether the server is stopping; guarded for the
    /// accept thread and the tests.
    private let state = Mutex<(connections: Int, stopped: Bool)>((0, false))

    /// Byte `i` of every `/bytes` body.
    static func pattern(_ index: Int) -> UInt8 { UInt8(truncatingIfNeeded: index &* 31 &+ index >> 8) }

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 128) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        self.listener = listener
        Thread.detachNewThread { [self] in
            // The accept thread owns the listener and closes it when it leaves: if `stop()` closed
            // it, its descriptor number could be reused by another server's socket before this
            // loop's next `accept`, which would then take (and drop) that server's connection.
            defer { close(listener) }
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 { return }
                let stopped = state.withLock { state in
                    state.connections += 1
                    return state.stopped
                }
                if stopped { close(client); return }
                Thread.detachNewThread { TestHTTPServer.serve(client) }
            }
        }
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }
    var connectionsAccepted: Int { state.withLock { $0.connections } }

    func stop() {
        state.withLock { $0.stopped = true }
        shutdown(listener, Int32(SHUT_RDWR))  // wakes the accept thread, which closes the listener
    }

    private struct Request {
        var method: String
        var target: String
        var headers: [String: String]
        var body: [UInt8]
    }

    private static func serve(_ socket: Int32) {
        defer { close(socket) }
        var buffer: [UInt8] = []
        while let request = readRequest(socket, &buffer) {
            let path = request.target.split(separator: "?").first.map(String.init) ?? ""
            let query = request.target.split(separator: "?").dropFirst().first.map(String.init) ?? ""
            switch (request.method, path) {
            case (_, "/md5"):
                respond(socket, status: 200, headers: [:], body: Array(Hash.md5(request.body).hexString.utf8))
            case (_, "/md5-then-close"):
                respond(socket, status: 200, headers: [:], body: Array(Hash.md5(request.body).hexString.utf8))
                return
            case ("GET", "/bytes"):
                let count = Int(query.replacingOccurrences(of: "n=", with: "")) ?? 0
                var range = 0..<count
                var status = 200
                if let header = request.headers["range"], header.hasPrefix("bytes=") {
                    let bounds = header.dropFirst(6).split(separator: "-").compactMap { Int($0) }
                    range = bounds[0]..<min(count, bounds[1] + 1)
                    status = 206
                }
                respond(socket, status: status, headers: [:], body: range.map(pattern))
            case ("GET", _) where path.hasPrefix("/status/"):
                let code = Int(path.dropFirst(8)) ?? 500
                respond(socket, status: code, headers: ["Content-Type": "application/xml"],
                        body: Array("<Error><Code>Test</Code><Message>status \(code)</Message></Error>".utf8))
            case ("PUT", "/answer-after"):
                // Works silently for `ms` milliseconds (a server-side copy), then answers.
                let milliseconds = Int(query.replacingOccurrences(of: "ms=", with: "")) ?? 0
                usleep(UInt32(milliseconds) * 1000)
                respond(socket, status: 200, headers: [:], body: Array("<CopyPartResult/>".utf8))
            case ("GET", "/silent"):
                // Hold the connection open without answering until the client gives up.
                var byte: UInt8 = 0
                _ = recv(socket, &byte, 1, 0)
                return
            case (_, "/echo"):
                respond(socket, status: 200, headers: [
                    "X-Method": request.method,
                    "X-Expect": request.headers["expect"] ?? "absent",
                    "X-Content-Length": request.headers["content-length"] ?? "absent",
                ], body: [], isHead: request.method == "HEAD")
            case ("GET", "/odd-headers"):
                respond(socket, status: 200, headers: [:], body: [],
                        extraLines: ["X-Padded: \t a  b \t", "X-Empty:", "x-twice: 1", "X-TWICE: 2", "X-Colon: a:b"])
            default:
                respond(socket, status: 404, headers: [:], body: [])
            }
        }
    }

    private static func readRequest(_ socket: Int32, _ buffer: inout [UInt8]) -> Request? {
        let terminator: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        while headEnd == nil {
            if let end = buffer.firstRange(of: terminator) { headEnd = end.upperBound; break }
            guard receive(socket, into: &buffer) else { return nil }
        }
        let head = String(decoding: buffer[..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd!)
        let lines = head.components(separatedBy: "\r\n")
        let requestLine = lines[0].split(separator: " ")
        guard requestLine.count == 3 else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() where line.contains(":") {
            let colon = line.firstIndex(of: ":")!
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        while buffer.count < length {
            guard receive(socket, into: &buffer) else { return nil }
        }
        let body = Array(buffer[..<length])
        buffer.removeFirst(length)
        return Request(method: String(requestLine[0]), target: String(requestLine[1]), headers: headers, body: body)
    }

    private static func receive(_ socket: Int32, into buffer: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 256 * 1024)
        let count = recv(socket, &chunk, chunk.count, 0)
        guard count > 0 else { return false }
        buffer.append(contentsOf: chunk[..<count])
        return true
    }

    private static func respond(_ socket: Int32, status: Int, headers: [String: String], body: [UInt8], isHead: Bool = false,
                                extraLines: [String] = []) {
        var head = "HTTP/1.1 \(status) Status\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        for line in extraLines { head += line + "\r\n" }
        head += "\r\n"
        var bytes = Array(head.utf8)
        if !isHead { bytes += body }
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { return }
            sent += count
        }
    }
}
