// The composition engine over OBSClientStore against an in-process obs-local: `dd conv=notrunc`
// of 1 MiB into the middle of a 20 MiB object, with the server's request log showing what
// crossed the wire; a base replaced by another client fails the copy (copy-source-if-match).
import OBSClient
import OBSHashing
import OBSProtocol
import Logging
import Testing
@testable import ObsFS

@Suite("Composition against obs-local")
struct ComposeAgainstObsLocalTests {
    static func executor(_ local: LocalOBS, store: OBSClientStore? = nil, integrity: UploadIntegrity = .md5) -> CompositionExecutor {
        var logger = Logger(label: "compose-local-test")
        logger.logLevel = .critical
        return CompositionExecutor(store: store ?? local.store, pool: PartBufferPool(capacity: 64 * MiB), parallel: 4, integrity: integrity, logger: logger)
    }

    /// With the mount's default checksum (CRC-64 on OBS, CRC-32C on S3) declared on initiation:
    /// uploaded parts carry it, copied parts do not.
    @Test(arguments: [Dialect.obs, .v4])
    func composesWithTheDialectsChecksum(dialect: Dialect) async throws {
        let local = try LocalOBS(dialect: dialect)
        defer { local.stop() }
        let integrity = UploadIntegrity.strongest(for: dialect)
        let store = OBSClientStore(client: local.client, bucket: local.bucket, checksum: integrity.checksumAlgorithm)
        let key = ObjectKey("checksummed.bin")
        let base = pattern(12 * Int(MiB), seed: 38)
        _ = try await local.client.putObject(bucket: local.bucket, key: key, bytes: base)
        let baseETag = try #require(try await store.headObject(key)?.etag)
        var expected = base
        expected.replaceSubrange(6 * Int(MiB)..<7 * Int(MiB), with: pattern(Int(MiB), seed: 39))
        let plan = try CompositionPlan(baseSize: 12 * MiB, changes: [6 * MiB..<7 * MiB], newSize: 12 * MiB,
                                       limits: CompositionLimits(dialect: dialect, maximumUploadPartSize: 16 * MiB))
        _ = try await Self.executor(local, store: store, integrity: integrity)
            .compose(plan, into: key, base: key, baseETag: baseETag, changes: NewContent(bytes: expected), options: ObjectOptions())
        #expect(try await Self.object(local, key, size: 12 * Int(MiB)) == expected)
    }

    static func object(_ local: LocalOBS, _ key: ObjectKey, size: Int) async throws -> [UInt8] {
        let memory = AlignedMemory(byteCount: size)
        let read = try await local.client.getObject(bucket: local.bucket, key: key, into: MemoryRegion(owner: memory))
        return Array(UnsafeRawBufferPointer(rebasing: memory.rawBytes[0..<read.byteCount]))
    }

    @Test(arguments: [Dialect.obs, .v4])
    func oneMiBChangedInTheMiddleOfTwentyMiBCrossesTheWireAsLittle(dialect: Dialect) async throws {
        let local = try LocalOBS(dialect: dialect)
        defer { local.stop() }
        let key = ObjectKey("data/big.bin")
        let base = pattern(20 * Int(MiB), seed: 31)
        _ = try await local.client.putObject(bucket: local.bucket, key: key, bytes: base)
        let baseETag = try #require(try await local.store.headObject(key)?.etag)
        let change = 10 * MiB..<11 * MiB
        var expected = base
        expected.replaceSubrange(Int(change.lowerBound)..<Int(change.upperBound), with: pattern(Int(MiB), seed: 32))

        let plan = try CompositionPlan(baseSize: 20 * MiB, changes: [change], newSize: 20 * MiB,
                                       limits: CompositionLimits(dialect: dialect, maximumUploadPartSize: 16 * MiB))
        let before = try local.requests().count
        let result = try await Self.executor(local).compose(plan, into: key, base: key, baseETag: baseETag, changes: NewContent(bytes: expected),
                                                            options: ObjectOptions())
        let requests = try local.requests().dropFirst(before)
        func bytes(_ operation: String, _ field: String) -> Int {
            requests.filter { $0["operation"] as? String == operation }.map { $0[field] as? Int ?? 0 }.reduce(0, +)
        }
        let uploaded = bytes("UploadPart", "bytesIn"), read = bytes("GetObject", "bytesOut")
        #expect(uploaded == Int(plan.uploadedBytes) && read == Int(plan.baseBytesRead))
        #expect(requests.filter { $0["operation"] as? String == "UploadPartCopy" }.count == 2)
        // OBS takes the 1 MiB as one part; S3's 5 MiB minimum adds 4 MiB read and sent again.
        #expect(uploaded + read == (dialect == .obs ? Int(MiB) : 9 * Int(MiB)))

        #expect(try await Self.object(local, key, size: 20 * Int(MiB)) == expected)
        #expect(try await local.store.headObject(key)?.etag == result.etag)
    }

    @Test func aBaseReplacedByAnotherClientFailsTheCopyAndStays() async throws {
        let local = try LocalOBS()
        defer { local.stop() }
        let key = ObjectKey("replaced.bin")
        _ = try await local.client.putObject(bucket: local.bucket, key: key, bytes: pattern(2 * Int(MiB), seed: 33))
        let baseETag = try #require(try await local.store.headObject(key)?.etag)
        let other = pattern(300 * 1024, seed: 34)
        _ = try await local.client.putObject(bucket: local.bucket, key: key, bytes: other)

        // Only copies: the copy-source-if-match of UploadPartCopy is what refuses the new version.
        let plan = try CompositionPlan(baseSize: 2 * MiB, changes: [], newSize: MiB, limits: CompositionLimits(dialect: .obs, maximumUploadPartSize: MiB))
        #expect(plan.parts.allSatisfy { $0.content == .copy })
        let changes = NewContent(bytes: [])
        await #expect(throws: ObjectChangedError.self) {
            _ = try await Self.executor(local).compose(plan, into: key, base: key, baseETag: baseETag, changes: changes, options: ObjectOptions())
        }
        #expect(try await Self.object(local, key, size: 2 * Int(MiB)) == other)
        #expect(try await local.client.listMultipartUploads(bucket: local.bucket).uploads.isEmpty)
        #expect(try local.requests().contains { $0["operation"] as? String == "UploadPartCopy" && $0["status"] as? Int == 412 })
    }

    /// An SSE-C object: the key opens the copy sources, the ranged reads of the base, and goes
    /// with every part; the result reads back with the key.
    @Test func aCustomerKeyObjectIsComposedWithItsKey() async throws {
        let local = try LocalOBS()
        defer { local.stop() }
        let key = ObjectKey("secret.bin")
        var options = ObjectOptions()
        options.encryption = .customer(CustomerKey(key: SecretBytes(pattern(32, seed: 35))))
        let base = pattern(2 * Int(MiB), seed: 36)
        _ = try await local.client.putObject(bucket: local.bucket, key: key, bytes: base, options: options)
        let customerKey = try #require(options.customerKey)
        let baseETag = try #require(try await local.client.headObject(bucket: local.bucket, key: key, customerKey: customerKey).etag)
        // 50 KiB changed: widened to OBS's 100 KiB minimum by reading 50 KiB of the base.
        let change = MiB..<(MiB + 50 * KiB)
        var expected = base
        expected.replaceSubrange(Int(change.lowerBound)..<Int(change.upperBound), with: pattern(Int(50 * KiB), seed: 37))
        let plan = try CompositionPlan(baseSize: 2 * MiB, changes: [change], newSize: 2 * MiB,
                                       limits: CompositionLimits(dialect: .obs, maximumUploadPartSize: MiB))
        #expect(plan.baseBytesRead == 50 * KiB && plan.copiedBytes == 2 * MiB - 100 * KiB)
        _ = try await Self.executor(local).compose(plan, into: key, base: key, baseETag: baseETag, changes: NewContent(bytes: expected),
                                                   options: options)
        let memory = AlignedMemory(byteCount: 2 * Int(MiB))
        let read = try await local.client.getObject(bucket: local.bucket, key: key, into: MemoryRegion(owner: memory), customerKey: customerKey)
        #expect(read.byteCount == expected.count && Array(UnsafeRawBufferPointer(memory.rawBytes)) == expected)
    }
}
