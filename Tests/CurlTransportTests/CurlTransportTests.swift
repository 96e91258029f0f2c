import CurlTransport
import Foundation
import OBSHashing
import OBSProtocol
import Testing

@Suite("CurlTransport against an in-test HTTP server")
struct CurlTransportTests {
    private func randomMemory(_ count: Int) -> AlignedMemory {
        let memory = AlignedMemory(byteCount: count)
        var generator = SystemRandomNumberGenerator()
        var word: UInt64 = 0
        for index in 0..<count {
            if index % 8 == 0 { word = generator.next() }
            memory.rawBytes[index] = UInt8(truncatingIfNeeded: word >> (index % 8 * 8))
        }
        return memory
    }

    @Test func concurrentUploadsFromMemoryArriveByteExactOverFewConnections() async throws {
        let server = try TestHTTPServer()
        defer { server.stop() }
        let transport = try CurlTransport(configuration: TransportConfiguration(maxConcurrentTransfers: 4))
        // 48 bodies of different sizes, each a slice of one shared buffer, all submitted at once.
        let memory = randomMemory(4 << 20)
        let regions = (0..<48).map { index in
            let start = index * 40_000
            return MemoryRegion(owner: memory, range: start ..< start + 1 + index * 37_000)
        }
        let digests = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for (index, region) in regions.enumerated() {
                group.addTask {
                    let response = try await transport.perform(HTTPRequest(method: index % 2 == 0 ? "PUT" : "POST",
                                                                            url: server.baseURL + "/md5", body: .memory(region)))
                    #expect(response.status == 200)
                    return (index, String(decoding: response.body, as: UTF8.self))
                }
            }
            return try await group.reduce(into: [Int: String]()) { $0[$1.0] = $1.1 }
        }
        for (index, region) in regions.enumerated() {
            #expect(digests[index] == Hash.md5(region.bytes).hexString, "body \(index)")
        }
        // Keep-alive: 48 transfers, at most 4 at a time, reuse the same few connections.
        #expect(server.connectionsAccepted <= 4)
    }

    @Test func rangedGetWritesIntoCallerMemoryOnly() async throws {
        let server = try TestHTTPServer()
        defer { server.stop() }
        let transport = try CurlTransport()
        let memory = AlignedMemory(byteCount: 300_000)
        memory.rawBytes.initializeMemory(as: UInt8.self, repeating: 0xEE)
        let region = MemoryRegion(owner: memory, range: 50_000 ..< 250_000)
        var headers = HeaderFields()
        headers["Range"] = "bytes=100000-299999"
        let response = try await transport.perform(HTTPRequest(method: "GET", url: server.baseURL + "/bytes?n=1000000",
                                                               headers: headers, destination: .memory(region)))
        #expect(response.status == 206)
        #expect(response.bytesWritten == 200_000)
        #expect(response.body.isEmpty)
        let expected = (100_000 ..< 300_000).map(TestHTTPServer.pattern)
        #expect(Array(region.bytes) == expected)
        #expect(memory.rawBytes[..<50_000].allSatisfy { $0 == 0xEE })
        #expect(memory.rawBytes[250_000...].allSatisfy { $0 == 0xEE })
    }

    @Test func bodyLargerThanDestinationFails() async throws {
        let server = try TestHTTPServer()
        defer { server.stop() }
        let transport = try CurlTransport()
        let region = MemoryRegion(owner: AlignedMemory(byteCount: 1000))
        for (destination, limit) in [(ResponseDestination.memory(region), 1000), (.collect(limit: 100), 100)] {
            do {
                _ = try await transport.perform(HTTPRequest(method: "GET", url: server.baseURL + "/bytes?n=5000", destination: destination))
                Issue.record("a 5000-byte body must not fit in \(limit) bytes")
            } catch {
                #expect(error.kind == .responseTooLarge(limit: limit))
            }
        }
    }

    @Test func errorBodyIsCollectedEvenForMemoryDestination() async throws {
        let server = try TestHTTPServer()
        defer { server.stop() }
        let transport = try CurlTransport()
        let region = MemoryRegion(owner: AlignedMemory(byteCount: 10))
        let response = try await transport.perform(HTTPRequest(method: "GET", url: server.baseURL + "/status/404", destination: .memory(region)))
        #expect(response.status == 404)
        #expect(response.bytesWritten == 0)
        #expect(String(decoding: response.body, as: UTF8.self).contains("<Code>Test</Code>"))
        #expect(response.headers["content-type"] == "application/xml")
    }

    @Test func replyHeadersAreTrimmedKeptInOrderAndFoundWhateverTheirCase() async throws {
        let server = try TestHTTPServer()
        defer { server.stop() }
        let transport = try CurlTransport()
        let response = try await transport.perform(HTTPRequest(method: "GET", url: server.baseURL + "/odd-headers"))
        #expect(response.status == 200)
        #expect(response.headers["x-padded"] == "a  b")
        #expect(response.headers["X-EMPTY"] == "")
        #expect(response.headers["X-Colon"] == "a:b")
        #expect(response.headers.values("X-Twice") == ["1", "2"])
        #expect(response.headers["x-twice"] == "1")
        #expect(response.headers["content-length"] == "0")
        #expect(response.headers["X-Absent"] == nil)
    }

    @Test func methodsSendNoExpectAndExplicitLengths() async throws {
        let server = try TestHTTPServer()
        defer { server.stop() }
        let transport = try CurlTransport()
        let body = MemoryRegion(owner: AlignedMemory(copying: [UInt8](repeating: 7, count: 2 << 20)))
        let cases: [(String, RequestBody, String)] = [
            ("PUT", .memory(body), "2097152"), ("POST", .bytes(Array("<a/>".utf8)), "4"), ("PUT", .none, "0"),
            ("POST", .none, "0"), ("DELETE", .none, "absent"), ("HEAD", .none, "absent"), ("GET", .none, "absent"),
        ]
        for (method, requestBody, length) in cases {
            let response = try await transport.perform(HTTPRequest(method: method, url: server.baseURL + "/echo", body: requestBody))
            #expect(response.status == 200)
            #expect(response.headers["X-Method"] == method)
            #expect(response.headers["X-Expect"] == "absent", "\(method)")
            #expect(response.headers["X-Content-Length"] == length, "\(method)")
        }
    }

    @Test(.timeLimit(.minutes(1))) func silentServerTimesOutInBoundedTime() async throws {
        let server = try TestHTTPServer()
        defer { server.stop() }
        let transport = try CurlTransport(configuration: TransportConfiguration(lowSpeedTime: .seconds(1)))
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await transport.perform(HTTPRequest(method: "GET", url: server.baseURL + "/silent"))
            Issue.record("a silent server must not produce a response")
        } catch {
            #expect(error.isTimeout)
            #expect(error.isRetryable)
            #expect(error.url == server.baseURL + "/silent")
        }
        // Bounded well below the 30 s default low-speed window even on a loaded machine.
        #expect(clock.now - start < .seconds(10))
    }

    @Test(.timeLimit(.minutes(1))) func aRequestAwaitingServerWorkMayStaySilentLonger() async throws {
        let server = try TestHTTPServer()
        defer { server.stop() }
        var configuration = TransportConfiguration(lowSpeedTime: .seconds(1))
        configuration.serverWorkTime = .seconds(20)
        let transport = try CurlTransport(configuration: configuration)
        var copy = HTTPRequest(method: "PUT", url: server.baseURL + "/answer-after?ms=3000")
        do {
            _ = try await transport.perform(copy)
            Issue.record("silent for 3 s beyond a 1 s low-speed window: must time out")
        } catch {
            #expect(error.isTimeout)
        }
        copy.awaitsServerWork = true
        #expect(try await transport.perform(copy).status == 200)
    }

    @Test func connectionRefusedIsATransportError() async throws {
        let server = try TestHTTPServer()
        let url = server.baseURL + "/echo"
        server.stop() // nothing listens on the port any more
        let transport = try CurlTransport()
        do {
            _ = try await transport.perform(HTTPRequest(method: "GET", url: url))
            Issue.record("expected connection refused")
        } catch {
            #expect(error.kind == .curl(code: 7))
            #expect(error.isRetryable)
            #expect(!error.message.isEmpty)
            #expect(error.description.contains(url))
        }
    }

    @Test(.timeLimit(.minutes(1))) func cancellingTheTaskAbortsTheTransfer() async throws {
        let server = try TestHTTPServer()
        defer { server.stop() }
        let transport = try CurlTransport(configuration: TransportConfiguration(lowSpeedTime: .seconds(60)))
        let clock = ContinuousClock()
        let start = clock.now
        let task = Task { try await transport.perform(HTTPRequest(method: "GET", url: server.baseURL + "/silent")) }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        let result = await task.result
        #expect(clock.now - start < .seconds(10)) // the low-speed limit alone would take 60 s
        #expect(throws: TransportError.self) { try result.get() }
        if case .failure(let error as TransportError) = result { #expect(error.kind == .cancelled) }
        // The transport still works after an aborted transfer.
        let response = try await transport.perform(HTTPRequest(method: "GET", url: server.baseURL + "/echo"))
        #expect(response.status == 200)
    }

    /// Two data slots held by transfers that never finish, one more data transfer waiting: a
    /// control request (no memory body or destination) still starts at once, on the control
    /// lane's own thread and connection; with no slot reserved it still has one.
    @Test(.timeLimit(.minutes(1)), arguments: [1, 0])
    func controlRequestsNeverWaitBehindDataTransfers(reserved: Int) async throws {
        let server = try TestHTTPServer()
        defer { server.stop() }
        let transport = try CurlTransport(configuration: TransportConfiguration(maxConcurrentTransfers: 2 + reserved, lowSpeedTime: .seconds(60),
                                                                                reservedControlTransfers: reserved))
        let memory = AlignedMemory(byteCount: 1024)
        let stuck = (0..<3).map { index in
            let request = HTTPRequest(method: "GET", url: server.baseURL + "/silent?\(index)", destination: .memory(MemoryRegion(owner: memory)))
            #expect(request.lane == .data)
            return Task { try await transport.perform(request) }
        }
        try await Task.sleep(for: .milliseconds(300))
        let head = HTTPRequest(method: "HEAD", url: server.baseURL + "/echo")
        #expect(head.lane == .control)
        // The data transfers never end before they are cancelled below: answering at all proves
        // the request did not wait behind them (however loaded the machine is).
        #expect(try await transport.perform(head).status == 200)
        for task in stuck { task.cancel() }
        for task in stuck { _ = await task.result }
    }

    @Test func serverClosingKeptAliveConnectionsCostsNoRequest() async throws {
        // The server closes every connection after its reply without `Connection: close`: each
        // next request must go out intact on a fresh connection.
        let server = try TestHTTPServer()
        defer { server.stop() }
        let transport = try CurlTransport(configuration: TransportConfiguration(maxConcurrentTransfers: 1))
        let memory = randomMemory(300_000)
        for round in 0..<5 {
            let region = MemoryRegion(owner: memory, range: round * 1000 ..< 300_000)
            let response = try await transport.perform(HTTPRequest(method: "PUT", url: server.baseURL + "/md5-then-close", body: .memory(region)))
            #expect(String(decoding: response.body, as: UTF8.self) == Hash.md5(region.bytes).hexString)
        }
        #expect(server.connectionsAccepted == 5)
    }

    @Test func tlsIsVerifiedByDefaultAndTrustsAGivenCAFile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curl-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let certificate = directory + "/cert.pem", key = directory + "/key.pem"
        let generate = try runOpenSSL(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate, "-days", "1",
                                       "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        generate.waitUntilExit()
        #expect(generate.terminationStatus == 0)
        let port = try freePort()
        let tlsServer = try runOpenSSL(["s_server", "-accept", "127.0.0.1:\(port)", "-cert", certificate, "-key", key, "-www", "-quiet"])
        defer {
            // SIGKILL: the child inherits the test thread's signal mask, in which SIGTERM is blocked.
            kill(tlsServer.processIdentifier, SIGKILL)
            tlsServer.waitUntilExit()
        }
        let url = "https://127.0.0.1:\(port)/"
        // Wait until s_server listens (an unverified request succeeds).
        let insecure = try CurlTransport(configuration: TransportConfiguration(verifyTLS: false))
        var listening = false
        for _ in 0..<50 where !listening {
            listening = (try? await insecure.perform(HTTPRequest(method: "GET", url: url)))?.status == 200
            if !listening { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(listening)

        do {
            _ = try await CurlTransport().perform(HTTPRequest(method: "GET", url: url))
            Issue.record("a self-signed certificate must not be trusted by default")
        } catch {
            #expect(error.kind == .curl(code: 60)) // CURLE_PEER_FAILED_VERIFICATION
            #expect(!error.isRetryable)
        }
        let trusting = try CurlTransport(configuration: TransportConfiguration(caFile: certificate))
        #expect(try await trusting.perform(HTTPRequest(method: "GET", url: url)).status == 200)
    }

    private func runOpenSSL(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// A port nothing listens on right now (bound to 0 and released).
    private func freePort() throws -> Int {
        let server = try TestHTTPServer()
        server.stop()
        return server.port
    }
}
