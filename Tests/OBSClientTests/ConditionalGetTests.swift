// GET pinned to an ETag (If-Match) against obs-local, in every dialect: the matching version is
// read, another one is refused with 412 PreconditionFailed and nothing is written.
import OBSClient
import OBSProtocol
import Testing

@Suite("Conditional GET against obs-local")
struct ConditionalGetTests {
    @Test(arguments: Dialect.allCases)
    func ifMatchReadsTheMatchingVersionAndRefusesAnother(dialect: Dialect) async throws {
        let local = try LocalServer()
        defer { local.stop() }
        let client = try local.client(dialect)
        let key = ObjectKey("pinned.bin")
        let first = try await client.putObject(bucket: local.bucket, key: key, bytes: Array(repeating: 1, count: 5000))
        let memory = AlignedMemory(byteCount: 100)
        let read = try await client.getObject(bucket: local.bucket, key: key, range: 10...109, into: MemoryRegion(owner: memory), ifMatch: first.etag)
        #expect(read.byteCount == 100)
        #expect(read.info.etag == first.etag)

        let second = try await client.putObject(bucket: local.bucket, key: key, bytes: Array(repeating: 2, count: 5000))
        memory.rawBytes.initializeMemory(as: UInt8.self, repeating: 0)
        do {
            _ = try await client.getObject(bucket: local.bucket, key: key, range: 10...109, into: MemoryRegion(owner: memory), ifMatch: first.etag)
            Issue.record("a GET pinned to a replaced version succeeded")
        } catch {
            #expect(error.isPreconditionFailed)
            #expect(error.serviceCode == .preconditionFailed)
            if case .service(let service) = error { #expect(service.status == 412) }
        }
        #expect(memory.rawBytes.allSatisfy { $0 == 0 })
        #expect(try await client.getObjectBytes(bucket: local.bucket, key: key, range: 0...3, ifMatch: second.etag).bytes == [2, 2, 2, 2])
    }
}
