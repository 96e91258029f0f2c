// One server per data directory (DataDirectoryLock): a second server on a directory is refused,
// naming the holder, while the first keeps serving; stopping releases the directory. Killing the
// holder outright is tested across processes in Tests/Integration/test_single_owner.py.
import Foundation
import OBSLocalServer
import Testing
#if canImport(Glibc)
import Glibc
#endif

struct DataDirectoryLockTests {
    @Test func secondServerOnADirectoryIsRefusedAndTheFirstKeepsServing() throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try TestServer(directory: directory)
        defer { first.stop() }
        let body = randomBytes(10_000)
        #expect(try first.client().send("PUT", "/bkt/kept", body: body).status == 200)

        let refusal = try #require(throws: DataDirectoryInUse.self) { try TestServer(directory: directory) }
        #expect(refusal.directory == directory)
        #expect(refusal.holder == getpid())
        #expect(refusal.description == "data directory \(directory) is in use by process \(getpid())")
        #expect(try String(contentsOfFile: directory + "/obs-local.lock", encoding: .utf8) == "\(getpid())\n")

        #expect(try first.client().send("GET", "/bkt/kept").body == body)
        #expect(try first.client().send("PUT", "/bkt/after", body: body).status == 200)
    }

    @Test func stoppingReleasesTheDirectory() throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let body = randomBytes(10_000)
        let first = try TestServer(directory: directory)
        #expect(try first.client().send("PUT", "/bkt/kept", body: body).status == 200)
        first.stop()

        let second = try TestServer(directory: directory)
        defer { second.stop() }
        #expect(try second.client().send("GET", "/bkt/kept").body == body)
    }

    @Test func sharedLocksExcludeAnExclusiveOneUntilReleased() throws {
        let directory = TestServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/mounts.lock"
        let one = try #require(try FileLock.acquire(path, .shared, wait: false))
        let two = try #require(try FileLock.acquire(path, .shared, wait: false))
        #expect(try FileLock.acquire(path, .exclusive, wait: false) == nil)
        one.release()
        #expect(try FileLock.acquire(path, .exclusive, wait: false) == nil)
        two.release()
        let exclusive = try #require(try FileLock.acquire(path, .exclusive, wait: false))
        #expect(try FileLock.acquire(path, .shared, wait: false) == nil)
        exclusive.release()
        var status = stat()
        #expect(stat(path, &status) == 0 && status.st_mode & 0o777 == 0o600)
    }
}
