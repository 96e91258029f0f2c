// No client holds a connection for ever: one that sends no complete request head within the idle
// timeout (nothing at all, a head sent slowly and never finished, or nothing after a response on
// a kept-alive connection) is closed by the server.
import Foundation
import OBSProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct IdleTimeoutTests {
    /// Seconds from `started` until the server closes `fd` (read returns 0 or fails); nil if it
    /// is still open `limit` seconds after `started`.
    func secondsUntilClosed(_ fd: Int32, since started: Date, limit: Double) -> Double? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date().timeIntervalSince(started) < limit {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return Date().timeIntervalSince(started) }
        }
        return nil
    }

    @Test func silentAndSlowAndIdleConnectionsAreClosed() throws {
        let server = try TestServer(memory: true, idleTimeout: .seconds(1))
        defer { server.stop() }
        let client = server.client()
        let started = Date()

        let silent = try client.connect()
        defer { close(silent) }
        let slow = try client.connect()
        defer { close(slow) }
        try client.writeAll(slow, Array("GET /bkt HTTP/1.1\r\nHost: 127.0.0.1\r\n".utf8))  // never finished

        let kept = try client.connect()
        defer { close(kept) }
        var wire = WireRequest(method: "GET", target: "/bkt", headers: HeaderFields([("Host", "127.0.0.1:\(server.port)")]))!
        try client.writeAll(kept, client.signedHead(&wire, closing: false))
        let reply = try client.readResponse(kept, isHead: false)
        #expect(reply.status == 200)

        for fd in [silent, slow, kept] {
            let closedAfter = secondsUntilClosed(fd, since: started, limit: 30)
            #expect(closedAfter != nil, "still open after 30 s")
            #expect((closedAfter ?? 0) >= 0.9, "closed before the 1 s timeout")
        }
    }

    @Test func aRequestLongerThanTheTimeoutIsNotCutOff() throws {
        let server = try TestServer(memory: true, idleTimeout: .seconds(1))
        defer { server.stop() }
        let client = server.client()
        let body = randomBytes(64 * 1024)
        let fd = try client.connect()
        defer { close(fd) }
        var wire = WireRequest(method: "PUT", target: "/bkt/slow", headers: HeaderFields([("Host", "127.0.0.1:\(server.port)"),
                                                                                          ("Content-Length", String(body.count))]))!
        try client.writeAll(fd, client.signedHead(&wire, closing: false))
        // The head is in: the body may take longer than the idle timeout.
        try client.writeAll(fd, Array(body[..<1000]))
        Thread.sleep(forTimeInterval: 1.6)
        try client.writeAll(fd, Array(body[1000...]))
        #expect(try client.readResponse(fd, isHead: false).status == 200)
    }
}
