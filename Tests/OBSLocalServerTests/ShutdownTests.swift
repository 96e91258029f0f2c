// Stopping a server that still has work: connections open, bodies arriving and being written on
// the thread pool. `stop()` must return (no leaked promise, which traps in debug builds), close
// every connection and the listening port.
import Foundation
import OBSProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ShutdownTests {
    /// Reads until the server closes the connection; true when it did (EOF or reset) within the
    /// socket's receive timeout.
    private func closedByServer(_ fd: Int32) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    @Test func stopWithRequestsInFlightReturnsAndClosesThePort() throws {
        let server = try TestServer()
        let client = server.client()
        let port = server.port
        // Keeps sending a large PUT body so writes are queued on the thread pool while stopping.
        let bodyLength = 256 << 20
        var uploading = WireRequest(method: "PUT", target: "/bkt/in-flight", headers: HeaderFields([(name: "Content-Length", value: String(bodyLength))]))!
        let uploadSocket = try client.connect()
        defer { close(uploadSocket) }
        try client.writeAll(uploadSocket, client.signedHead(&uploading))
        let sender = Thread {
            let client = TestClient(port: port, dialect: .obs)
            let slice = [UInt8](repeating: 0x5A, count: 1 << 20)
            for _ in 0..<(bodyLength >> 20) {
                guard (try? client.writeAll(uploadSocket, slice)) != nil else { return }
            }
        }
        sender.start()
        // A complete PUT whose body is still being written when the server stops (its completion
        // is awaited by the handler), and an idle keep-alive connection.
        let completeBody = [UInt8](repeating: 0xA5, count: 24 << 20)
        var complete = WireRequest(method: "PUT", target: "/bkt/complete", headers: HeaderFields([(name: "Content-Length", value: String(completeBody.count))]))!
        let completeSocket = try client.connect()
        defer { close(completeSocket) }
        try client.writeAll(completeSocket, client.signedHead(&complete, closing: false) + completeBody)
        var idle = WireRequest(method: "HEAD", target: "/bkt", headers: HeaderFields())!
        let idleSocket = try client.connect()
        defer { close(idleSocket) }
        try client.writeAll(idleSocket, client.signedHead(&idle, closing: false))
        var status = [UInt8](repeating: 0, count: 12)
        #expect(recv(idleSocket, &status, status.count, Int32(MSG_WAITALL)) == status.count)
        #expect(String(decoding: status, as: UTF8.self) == "HTTP/1.1 200")
        usleep(100_000)

        server.stop()

        #expect(closedByServer(uploadSocket))
        #expect(closedByServer(completeSocket))
        #expect(closedByServer(idleSocket))
        do {
            close(try client.connect())
            Issue.record("the port still accepts connections after stop()")
        } catch TestClientError.connect(let code) {
            #expect(code == ECONNREFUSED)
        }
        // Stopping again is a no-op.
        try server.server.stop()
    }
}
