// Operations (HEAD, LIST, initiate...) run on threads of their own: a HEAD is answered while
// every body-I/O thread is busy, as a real endpoint answers metadata while other clients upload.
import Foundation
@testable import OBSLocalServer
import Testing

@Suite struct OperationPoolTests {
    @Test func aHeadAndAListAreAnsweredWhileEveryBodyThreadIsBusy() throws {
        let server = try TestServer()
        defer { server.stop() }
        let client = server.client()
        #expect(try client.send("PUT", "/bkt/k", body: Array("abc".utf8)).status == 200)

        let release = DispatchSemaphore(value: 0)
        let busy = DispatchGroup()
        for _ in 0..<server.configuration.ioThreads {
            busy.enter()
            server.server.bodyPool.submit { _ in
                busy.leave()
                release.wait()
            }
        }
        defer { for _ in 0..<server.configuration.ioThreads { release.signal() } }
        #expect(busy.wait(timeout: .now() + 10) == .success)

        let head = try client.send("HEAD", "/bkt/k")
        #expect(head.status == 200)
        #expect(head.headers["Content-Length"] == "3")
        let listing = try client.send("GET", "/bkt")
        #expect(listing.elements("Key") == ["k"])
    }
}
