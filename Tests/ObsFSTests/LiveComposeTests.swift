// The read and composition engines against a real S3 server (SeaweedFS in the project's test
// script), whose copied-part ETags are not MD5s. Enabled when OBSMOUNT_TEST_S3_URL, _BUCKET,
// _ACCESS_KEY and _SECRET_KEY are set (_REGION optional).
import Foundation
import Logging
import OBSClient
import OBSProtocol
import Testing
@testable import ObsFS

private let liveEnvironment: [String: String]? = {
    let environment = ProcessInfo.processInfo.environment
    guard environment["OBSMOUNT_TEST_S3_URL"] != nil, environment["OBSMOUNT_TEST_S3_BUCKET"] != nil,
          environment["OBSMOUNT_TEST_S3_ACCESS_KEY"] != nil, environment["OBSMOUNT_TEST_S3_SECRET_KEY"] != nil else { return nil }
    return environment
}()

@Suite("Composition and reads against live S3 (SeaweedFS)", .enabled(if: liveEnvironment != nil, "OBSMOUNT_TEST_S3_* not set"))
struct LiveComposeTests {
    let store: OBSClientStore

    init() throws {
        let environment = liveEnvironment!
        let client = try OBSClient(configuration: OBSClientConfiguration(
            endpoint: Endpoint(environment["OBSMOUNT_TEST_S3_URL"]!)!, region: environment["OBSMOUNT_TEST_S3_REGION"] ?? "us-east-1", dialect: .v4,
            credentials: Credentials(accessKey: environment["OBSMOUNT_TEST_S3_ACCESS_KEY"]!, secretKey: environment["OBSMOUNT_TEST_S3_SECRET_KEY"]!)))
        store = OBSClientStore(client: client, bucket: BucketName(environment["OBSMOUNT_TEST_S3_BUCKET"]!))
    }

    /// An executor whose uploads carry `integrity`, declared on initiation as the mount does.
    func executor(_ integrity: UploadIntegrity = .md5) -> CompositionExecutor {
        var logger = Logger(label: "live-compose-test")
        logger.logLevel = .critical
        let declaring = OBSClientStore(client: store.client, bucket: store.bucket, checksum: integrity.checksumAlgorithm)
        return CompositionExecutor(store: declaring, pool: PartBufferPool(capacity: 64 * MiB), parallel: 4, integrity: integrity, logger: logger)
    }

    func readAll(_ key: ObjectKey) async throws -> [UInt8] {
        let attributes = try #require(try await store.headObject(key))
        let stream = ObjectReadStream(key: key, etag: attributes.etag, size: attributes.size, customerKey: nil, reader: store,
                                      pool: ReadBufferPool(capacity: Int(64 * MiB)), settings: ReadSettings(readAhead: 16 * MiB))
        defer { stream.close() }
        return try await readSequentially(stream, chunk: 128 * 1024)
    }

    @Test(arguments: [UploadIntegrity.md5, .crc32c])
    func inPlaceChangeAndAppendComposeWithCopiedParts(integrity: UploadIntegrity) async throws {
        let key = ObjectKey("live-compose-\(UInt32.random(in: 0...UInt32.max))/f.bin")
        let base = pattern(12 * Int(MiB), seed: 41)
        _ = try await store.client.putObject(bucket: store.bucket, key: key, bytes: base)
        let baseETag = try #require(try await store.headObject(key)?.etag)
        let changes = [(6 * MiB..<7 * MiB, pattern(Int(MiB), seed: 42)), (12 * MiB..<(12 * MiB + 1000), pattern(1000, seed: 43))]
        let expected = referenceObject(base: base, baseSize: 12 * MiB, newSize: 12 * MiB + 1000, changed: changes)
        let plan = try CompositionPlan(baseSize: 12 * MiB, changes: changes.map(\.0), newSize: 12 * MiB + 1000,
                                       limits: CompositionLimits(dialect: .v4, maximumUploadPartSize: 16 * MiB))
        #expect(plan.parts.contains { $0.content == .copy })
        let result = try await executor(integrity).compose(plan, into: key, base: key, baseETag: baseETag, changes: NewContent(bytes: expected),
                                                  options: ObjectOptions())
        #expect(try await readAll(key) == expected)
        #expect(try await store.headObject(key)?.etag == result.etag)
        try await store.deleteObject(key)
    }

    @Test func aReplacedBaseIsNeitherCopiedNorRead() async throws {
        let key = ObjectKey("live-compose-\(UInt32.random(in: 0...UInt32.max))/replaced.bin")
        _ = try await store.client.putObject(bucket: store.bucket, key: key, bytes: pattern(12 * Int(MiB), seed: 44))
        let baseETag = try #require(try await store.headObject(key)?.etag)
        let other = pattern(12 * Int(MiB), seed: 45)
        _ = try await store.client.putObject(bucket: store.bucket, key: key, bytes: other)
        let plan = try CompositionPlan(baseSize: 12 * MiB, changes: [], newSize: 11 * MiB,
                                       limits: CompositionLimits(dialect: .v4, maximumUploadPartSize: 16 * MiB))
        await #expect(throws: ObjectChangedError.self) {
            _ = try await executor().compose(plan, into: key, base: key, baseETag: baseETag, changes: NewContent(bytes: []), options: ObjectOptions())
        }
        #expect(try await readAll(key) == other)
        try await store.deleteObject(key)
    }
}
