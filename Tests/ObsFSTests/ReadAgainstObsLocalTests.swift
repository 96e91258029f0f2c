// The read engine over OBSClientStore against an in-process obs-local: ranged GETs into pool
// buffers over libcurl, If-Match answered with 412, prefetch GETs counted in the request log.
#if canImport(Glibc)
import Glibc
#endif
import OBSProtocol
import Testing
@testable import ObsFS

@Suite("Read stream against obs-local")
struct ReadAgainstObsLocalTests {
    @Test func sequentialAndRandomReadsThenAReplacedObject() async throws {
        let local = try LocalOBS()
        defer { local.stop() }
        let key = ObjectKey("dir/read me.bin")
        let source = pattern(20 * Int(MiB) + 4321, seed: 17)
        _ = try await local.client.putObject(bucket: local.bucket, key: key, bytes: source)
        let attributes = try #require(try await local.store.headObject(key))
        let pool = ReadBufferPool(capacity: Int(64 * MiB))
        let settings = ReadSettings(readAhead: 16 * MiB)
        let stream = ObjectReadStream(key: key, etag: attributes.etag, size: attributes.size, customerKey: nil,
                                      reader: local.store, pool: pool, settings: settings)

        // Sequential, as the kernel sends it (128 KiB reads): 1, 2, 4, 8 MiB GETs, then the rest.
        var bytes: [UInt8] = []
        while bytes.count < source.count {
            bytes += try await stream.read(at: Int64(bytes.count), count: 128 * 1024).gathered()
        }
        #expect(bytes == source)
        let gets = try local.requests().filter { $0["operation"] as? String == "GetObject" }
        #expect(gets.count == 5)
        #expect(gets.map { $0["bytesOut"] as? Int ?? 0 }.reduce(0, +) == source.count)
        #expect(gets.allSatisfy { $0["status"] as? Int == 206 })

        // Random reads at 1,000 offsets.
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<1000 {
            let offset = Int.random(in: 0..<source.count, using: &generator)
            let count = Int.random(in: 1...65_536, using: &generator)
            #expect(try await stream.read(at: Int64(offset), count: count).gathered() == Array(source[offset..<min(source.count, offset + count)]))
        }

        // Another client replaces the object: the next GET is refused with 412, the read fails with EIO.
        _ = try await local.client.putObject(bucket: local.bucket, key: key, bytes: pattern(1000, seed: 18))
        var failure: (any Error)?
        do {
            for offset in stride(from: 0, to: source.count, by: 3 * Int(MiB) + 12345) {
                _ = try await stream.read(at: Int64(offset), count: 4096).gathered()
            }
        } catch {
            failure = error
        }
        let changed = try #require(failure as? ObjectChangedError)
        #expect(changed.expected == attributes.etag)
        #expect(changed.description.contains("PreconditionFailed"))
        #expect(ErrnoMapping.errno(for: changed) == .io)
        #expect(try local.requests().contains { $0["operation"] as? String == "GetObject" && $0["status"] as? Int == 412 })
        stream.close()
    }

    /// Another client replaces the object with a shorter one while a descriptor reads it: the
    /// descriptor's inode keeps the size it opened (stat of it refreshed the size, so the kernel
    /// ended the read early, silently), reads past the new end fail with EIO, and the name gets
    /// the new object's inode.
    @Test func aDescriptorKeepsTheVersionItOpenedWhenAnotherClientReplacesIt() async throws {
        let local = try LocalOBS()
        defer { local.stop() }
        let key = ObjectKey("replaced.bin")
        let source = pattern(24 * Int(MiB), seed: 21)
        _ = try await local.client.putObject(bucket: local.bucket, key: key, bytes: source)
        let fs = makeFileSystem(local.store, attributeTimeout: .zero)
        let file = try await fs.lookup(parent: .root, name: "replaced.bin")
        let handle = try await fs.open(file.inode, flags: O_RDONLY).handle
        #expect(try await fs.read(handle, at: 0, count: 4096).gathered() == Array(source[0..<4096]))
        _ = try await local.client.putObject(bucket: local.bucket, key: key, bytes: pattern(1000, seed: 22))
        #expect(try await fs.getattr(file.inode).size == Int64(source.count))
        #expect(await errno { _ = try await fs.read(handle, at: Int64(20 * MiB), count: 4096) } == .io)
        let renewed = try await fs.lookup(parent: .root, name: "replaced.bin")
        #expect(renewed.inode != file.inode && renewed.size == 1000)
        await fs.release(handle)
    }

    /// Opened after another client replaced the object, within `attr_timeout`: the first read
    /// fails (EIO: the version the mount knew is gone), and the next open reads the new object
    /// (every open failed until the attributes expired).
    @Test func theOpenAfterAFailedReadOfAReplacedObjectReadsTheNewOne() async throws {
        let local = try LocalOBS()
        defer { local.stop() }
        let key = ObjectKey("swapped.bin")
        _ = try await local.client.putObject(bucket: local.bucket, key: key, bytes: pattern(5000, seed: 23))
        let fs = makeFileSystem(local.store, attributeTimeout: .seconds(60))
        let file = try await fs.lookup(parent: .root, name: "swapped.bin")
        let replacement = pattern(3000, seed: 24)
        _ = try await local.client.putObject(bucket: local.bucket, key: key, bytes: replacement)
        let first = try await fs.open(file.inode, flags: O_RDONLY).handle
        #expect(await errno { _ = try await fs.read(first, at: 0, count: 4096) } == .io)
        await fs.release(first)
        // The next open finds the new object: ESTALE, and the kernel's lookup gets its inode.
        #expect(await errno { _ = try await fs.open(file.inode, flags: O_RDONLY) } == .stale)
        let renewed = try await fs.lookup(parent: .root, name: "swapped.bin")
        let second = try await fs.open(renewed.inode, flags: O_RDONLY).handle
        #expect(try await fs.read(second, at: 0, count: 4096).gathered() == replacement)
        await fs.release(second)
    }
}
