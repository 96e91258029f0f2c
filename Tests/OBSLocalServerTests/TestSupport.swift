// Test support: an in-process obs-local on port 0 and a small blocking HTTP/1.1 client over a
// raw socket (so tests control every byte, including broken requests), signing with the
// project's RequestSigner.
import Foundation
import OBSHashing
import OBSLocalServer
import OBSProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

let testCredentials = Credentials(accessKey: "test-ak", secretKey: "test-sk")

/// A reply as read off the socket.
struct TestResponse {
    var status: Int
    var headers: HeaderFields
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    /// The `<Code>` of an error body.
    var errorCode: String? {
        guard let start = text.range(of: "<Code>"), let end = text.range(of: "</Code>") else { return nil }
        return String(text[start.upperBound..<end.lowerBound])
    }
    func element(_ name: String) -> String? {
        guard let start = text.range(of: "<\(name)>"), let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex) else { return nil }
        return String(text[start.upperBound..<end.lowerBound])
    }
    func elements(_ name: String) -> [String] {
        var found: [String] = []
        var rest = text[...]
        while let start = rest.range(of: "<\(name)>"), let end = rest.range(of: "</\(name)>", range: start.upperBound..<rest.endIndex) {
            found.append(String(rest[start.upperBound..<end.lowerBound]))
            rest = rest[end.upperBound...]
        }
        return found
    }
}

enum TestClientError: Error { case connect(Int32), closedEarly, malformed }

/// A server on a temporary directory (or in memory), stopped by `stop()`.
final class TestServer {
    let server: OBSLocalServer
    let directory: String?
    let configuration: ServerConfiguration

    /// Removed by `stop()` when the server made it.
    private let ownsDirectory: Bool

    init(memory: Bool = false, directory: String? = nil, buckets: [String] = ["bkt"], fileSystemBuckets: [String] = [],
         requestLog: String? = nil) throws {
        let dir = memory ? nil : (directory ?? TestServer.makeTemporaryDirectory())
        ownsDirectory = !memory && directory == nil
        var configuration = ServerConfiguration(storage: dir.map { .directory($0) } ?? .memory,
                                                buckets: buckets.map(BucketName.init), credentials: [testCredentials])
        configuration.requestLogPath = requestLog
        configuration.fileSystemBuckets = fileSystemBuckets.map(BucketName.init)
        self.configuration = configuration
        self.directory = dir
        server = try OBSLocalServer.start(configuration)
    }

    static func makeTemporaryDirectory() -> String {
        var template = Array("/tmp/obs-local-test-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    var port: Int { server.port }

    func stop() {
        try? server.stop()
        if ownsDirectory, let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    func client(dialect: Dialect = .obs) -> TestClient { TestClient(port: port, dialect: dialect) }
}

/// Sends one request per connection (`Connection: close`) and reads the whole reply.
struct TestClient {
    let port: Int
    let dialect: Dialect
    var credentials = testCredentials

    /// Signs and sends a request. `path` is the encoded path, `query` the raw query string.
    func send(_ method: String, _ path: String, query: String = "", headers: [(String, String)] = [], body: [UInt8] = [],
              signedPayload: Bool = false, date: Timestamp = Timestamp.now(), host: String? = nil) throws -> TestResponse {
        let target = query.isEmpty ? path : path + "?" + query
        var fields = HeaderFields(headers.map { (name: $0.0, value: $0.1) })
        let hostHeader = host ?? "127.0.0.1:\(port)"
        fields["Host"] = hostHeader
        if !body.isEmpty || method == "PUT" || method == "POST" { fields["Content-Length"] = String(body.count) }
        guard var wire = WireRequest(method: method, target: target, headers: fields) else { throw TestClientError.malformed }
        let virtualHost = hostHeader.hasSuffix(".localhost:\(port)") ? BucketName(String(hostHeader.split(separator: ".").first!)) : nil
        let signer = RequestSigner(dialect: dialect, credentials: credentials, region: "region-1")
        signer.sign(&wire, at: date, virtualHostBucket: virtualHost, payloadHash: signedPayload ? Hash.sha256(body).hexString : nil)
        var head = "\(method) \(target) HTTP/1.1\r\n"
        for field in wire.headers { head += "\(field.name): \(field.value)\r\n" }
        head += "Connection: close\r\n\r\n"
        return try exchange(Array(head.utf8) + body, isHead: method == "HEAD")
    }

    /// Sends raw bytes and reads the reply (until the server closes the connection).
    func exchange(_ bytes: [UInt8], isHead: Bool = false) throws -> TestResponse {
        let fd = try connect()
        defer { close(fd) }
        try writeAll(fd, bytes)
        return try readResponse(fd, isHead: isHead)
    }

    func connect() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw TestClientError.connect(code)
        }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestClientError.closedEarly }
            done += n
        }
    }

    func readResponse(_ fd: Int32, isHead: Bool) throws -> TestResponse {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        guard let split = data.firstRange(of: Array("\r\n\r\n".utf8)) else { throw TestClientError.closedEarly }
        var lines = String(decoding: data[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        // Skip interim 100 Continue replies.
        var body = Array(data[split.upperBound...])
        while lines.first?.contains(" 100 ") == true, let next = body.firstRange(of: Array("\r\n\r\n".utf8)) {
            lines = String(decoding: body[..<next.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
            body = Array(body[next.upperBound...])
        }
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw TestClientError.malformed }
        var headers = HeaderFields()
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.add(name: String(line[..<colon]), value: String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        }
        if let length = headers["Content-Length"].flatMap(Int.init), !isHead, body.count > length { body = Array(body[..<length]) }
        return TestResponse(status: status, headers: headers, body: isHead ? [] : body)
    }
}

func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    var bytes = [UInt8](repeating: 0, count: count)
    for index in stride(from: 0, to: count, by: 8) {
        let value = generator.next() as UInt64
        for offset in 0..<min(8, count - index) { bytes[index + offset] = UInt8(truncatingIfNeeded: value >> (offset * 8)) }
    }
    return bytes
}

/// The `<CompleteMultipartUpload>` body for parts.
func completeBody(_ parts: [(Int, String)]) -> [UInt8] {
    var xml = "<CompleteMultipartUpload>"
    for (number, etag) in parts { xml += "<Part><PartNumber>\(number)</PartNumber><ETag>\(etag)</ETag></Part>" }
    return Array((xml + "</CompleteMultipartUpload>").utf8)
}

extension TestClient {
    /// Signs `wire` (Host set to this server) and returns its request line and header section,
    /// for tests that send odd bodies or framing by hand.
    func signedHead(_ wire: inout WireRequest, payloadHash: String? = nil, closing: Bool = true) -> [UInt8] {
        wire.headers["Host"] = "127.0.0.1:\(port)"
        RequestSigner(dialect: dialect, credentials: credentials, region: "r").sign(&wire, at: Timestamp.now(), payloadHash: payloadHash)
        var head = "\(wire.method) \(wire.target) HTTP/1.1\r\n"
        for field in wire.headers { head += "\(field.name): \(field.value)\r\n" }
        return Array((head + (closing ? "Connection: close\r\n" : "") + "\r\n").utf8)
    }

    /// Initiates an upload and returns its ID.
    func initiate(_ key: String, headers: [(String, String)] = []) throws -> String {
        let reply = try send("POST", "/bkt/\(key)", query: "uploads", headers: headers)
        #expect(reply.status == 200, "initiate: \(reply.text)")
        return try #require(reply.element("UploadId"))
    }

    /// Uploads a part and returns its quoted ETag.
    func uploadPart(_ key: String, _ uploadID: String, _ number: Int, _ body: [UInt8], headers: [(String, String)] = []) throws -> TestResponse {
        try send("PUT", "/bkt/\(key)", query: "partNumber=\(number)&uploadId=\(uploadID)", headers: headers, body: body)
    }
}
