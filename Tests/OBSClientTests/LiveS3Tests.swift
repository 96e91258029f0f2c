// Live tests against a real S3-compatible server (SeaweedFS in the project's test script).
// Enabled when OBSMOUNT_TEST_S3_URL, _BUCKET, _ACCESS_KEY and _SECRET_KEY are set (_REGION optional).
import Foundation
import OBSClient
import OBSHashing
import OBSProtocol
import Testing

/// The server named by the environment.
struct LiveS3Server {
    let endpoint: Endpoint
    let bucket: BucketName
    let credentials: Credentials
    let region: String

    static let fromEnvironment: LiveS3Server? = {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["OBSMOUNT_TEST_S3_URL"], let endpoint = Endpoint(url),
              let bucket = environment["OBSMOUNT_TEST_S3_BUCKET"],
              let accessKey = environment["OBSMOUNT_TEST_S3_ACCESS_KEY"],
              let secretKey = environment["OBSMOUNT_TEST_S3_SECRET_KEY"] else { return nil }
        return LiveS3Server(endpoint: endpoint, bucket: BucketName(bucket), credentials: Credentials(accessKey: accessKey, secretKey: secretKey),
                            region: environment["OBSMOUNT_TEST_S3_REGION"] ?? "us-east-1")
    }()

    func client(_ dialect: Dialect) throws -> OBSClient {
        try OBSClient(configuration: OBSClientConfiguration(endpoint: endpoint, region: region, dialect: dialect, credentials: credentials,
                                                            retry: RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(50))))
    }
}

@Suite("Live S3 (SeaweedFS)", .enabled(if: LiveS3Server.fromEnvironment != nil, "OBSMOUNT_TEST_S3_* not set"))
struct LiveS3Tests {
    let server = LiveS3Server.fromEnvironment!
    static let mebibyte = 1 << 20

    /// A unique prefix per test run and dialect, with characters that need encoding.
    func prefix(_ dialect: Dialect) -> String { "live-\(dialect)-\(UInt32.random(in: 0...UInt32.max))/dir with space/" }

    @Test("multipart upload, list parts, complete, ranged get, list, copy, copy part, delete", arguments: [Dialect.v4, .v2])
    func multipartLifecycle(dialect: Dialect) async throws {
        let client = try server.client(dialect)
        let bucket = server.bucket
        let prefix = prefix(dialect)
        let key = ObjectKey(prefix + "a+b%c~é.bin")

        // 5 MiB + 5 MiB + 1 MiB of random bytes in one caller buffer, uploaded in parallel.
        let sizes = [5 * Self.mebibyte, 5 * Self.mebibyte, Self.mebibyte]
        let memory = AlignedMemory(byteCount: sizes.reduce(0, +))
        var generator = SystemRandomNumberGenerator()
        for index in stride(from: 0, to: memory.rawBytes.count, by: 8) {
            memory.rawBytes.storeBytes(of: generator.next() as UInt64, toByteOffset: index, as: UInt64.self)
        }
        var offset = 0
        let parts = sizes.enumerated().map { index, size in
            defer { offset += size }
            let region = MemoryRegion(owner: memory, range: offset ..< offset + size)
            return (number: PartNumber(index + 1)!, region: region, md5: Hash.md5(region.bytes))
        }

        let uploadID = try await client.initiateMultipartUpload(bucket: bucket, key: key)
        let etags = try await withThrowingTaskGroup(of: (PartNumber, ETag).self) { group in
            for part in parts {
                group.addTask {
                    (part.number, try await client.uploadPart(bucket: bucket, key: key, uploadID: uploadID, partNumber: part.number,
                                                              body: part.region, integrity: .md5(part.md5)).etag)
                }
            }
            return try await group.reduce(into: [PartNumber: ETag]()) { $0[$1.0] = $1.1 }
        }
        for part in parts { #expect(etags[part.number] == ETag(md5: part.md5)) }

        // List parts two per page, following the pages.
        let listed = try await client.allParts(bucket: bucket, key: key, uploadID: uploadID, pageSize: 2).collect().flatMap(\.parts)
        #expect(listed.map(\.partNumber) == parts.map(\.number))
        #expect(listed.map(\.size) == sizes.map(Int64.init))
        #expect(listed.map(\.etag) == parts.map { ETag(md5: $0.md5) })

        let completed = try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: uploadID,
                                                                 parts: parts.map { ($0.number, etags[$0.number]!) })
        let composite = ETag.composite(partMD5s: parts.map(\.md5))
        #expect(completed.etag == composite)
        let info = try await client.headObject(bucket: bucket, key: key)
        #expect(info.contentLength == Int64(memory.rawBytes.count))
        #expect(info.etag == composite)

        // A range across the first part boundary, into the middle of a caller buffer.
        let range: ClosedRange<Int64> = Int64(5 * Self.mebibyte - 1000) ... Int64(5 * Self.mebibyte + 99_999)
        let target = AlignedMemory(byteCount: range.count + 8192)
        let read = try await client.getObject(bucket: bucket, key: key, range: range,
                                              into: MemoryRegion(owner: target, range: 4096 ..< 4096 + range.count))
        #expect(read.byteCount == range.count)
        #expect(read.info.totalSize == Int64(memory.rawBytes.count))
        #expect(memcmp(target.rawBytes.baseAddress! + 4096, memory.rawBytes.baseAddress! + Int(range.lowerBound), range.count) == 0)

        // Listing with the prefix, then one level down with a delimiter.
        let objects = try await client.allObjects(bucket: bucket, prefix: prefix).collect().flatMap(\.contents)
        #expect(objects.map(\.key) == [key])
        #expect(objects.first?.size == Int64(memory.rawBytes.count))
        let top = String(prefix.prefix { $0 != "/" }) + "/"
        let level = try await client.listObjects(bucket: bucket, prefix: top, delimiter: "/")
        #expect(level.commonPrefixes == [prefix])
        #expect(level.contents.isEmpty)

        // Server-side copy, checked by size and a small ranged read.
        let copyKey = ObjectKey(prefix + "copy of é.bin")
        _ = try await client.copyObject(from: bucket, key, to: bucket, copyKey)
        #expect(try await client.headObject(bucket: bucket, key: copyKey).contentLength == Int64(memory.rawBytes.count))
        let tail = try await client.getObjectBytes(bucket: bucket, key: copyKey, range: Int64(memory.rawBytes.count - 100) ... Int64(memory.rawBytes.count - 1))
        #expect(tail.bytes == Array(memory.rawBytes[(memory.rawBytes.count - 100)...]))

        // Metadata replaced by copying the object onto itself (S3's way; `PUT ?metadata` is OBS only).
        var replacement = ObjectOptions()
        replacement.metadata = ["state": "copied onto itself"]
        replacement.contentType = "application/x-replaced"
        _ = try await client.copyObject(from: bucket, copyKey, to: bucket, copyKey, metadata: .replace(replacement))
        let replaced = try await client.headObject(bucket: bucket, key: copyKey)
        #expect(replaced.metadata == ["state": "copied onto itself"])
        #expect(replaced.contentType == "application/x-replaced")
        #expect(replaced.contentLength == Int64(memory.rawBytes.count))

        // Copy parts (SeaweedFS, like S3, wants 5 MiB parts but the last): a new object from two
        // ranges of the first. SeaweedFS answers UploadPartCopy with an ETag of its own chunk
        // layout (`…-2`) where S3 and OBS give the MD5 of the range, so the bytes are compared.
        let partsKey = ObjectKey(prefix + "copied in parts.bin")
        let split = 5 * Self.mebibyte
        let ranges: [ClosedRange<Int64>] = [0 ... Int64(split - 1), Int64(split) ... Int64(memory.rawBytes.count - 1)]
        let copyUpload = try await client.initiateMultipartUpload(bucket: bucket, key: partsKey)
        var copiedParts: [(partNumber: PartNumber, etag: ETag)] = []
        for (index, range) in ranges.enumerated() {
            let number = PartNumber(index + 1)!
            copiedParts.append((number, try await client.copyPart(bucket: bucket, key: partsKey, uploadID: copyUpload, partNumber: number,
                                                                  sourceBucket: bucket, sourceKey: key, sourceRange: range)))
        }
        let listedCopies = try await client.listParts(bucket: bucket, key: partsKey, uploadID: copyUpload).parts
        #expect(listedCopies.map(\.size) == ranges.map { Int64($0.count) })
        _ = try await client.completeMultipartUpload(bucket: bucket, key: partsKey, uploadID: copyUpload, parts: copiedParts)
        let whole = AlignedMemory(byteCount: memory.rawBytes.count)
        let wholeRead = try await client.getObject(bucket: bucket, key: partsKey, into: MemoryRegion(owner: whole))
        #expect(wholeRead.byteCount == memory.rawBytes.count)
        #expect(memcmp(whole.rawBytes.baseAddress!, memory.rawBytes.baseAddress!, memory.rawBytes.count) == 0)

        for deleted in [key, copyKey, partsKey] {
            try await client.deleteObject(bucket: bucket, key: deleted)
            do {
                _ = try await client.headObject(bucket: bucket, key: deleted)
                Issue.record("\(deleted) still exists after delete")
            } catch {
                #expect(error.serviceCode == .noSuchKey)
            }
        }
        #expect(try await client.allObjects(bucket: bucket, prefix: prefix).collect().flatMap(\.contents).isEmpty)
    }

    @Test("abort leaves no upload behind", arguments: [Dialect.v4, .v2])
    func abortLeavesNoUpload(dialect: Dialect) async throws {
        let client = try server.client(dialect)
        let bucket = server.bucket
        let key = ObjectKey(prefix(dialect) + "aborted.bin")
        let body = AlignedMemory(copying: [UInt8](repeating: 0x5A, count: 200_000))
        let uploadID = try await client.initiateMultipartUpload(bucket: bucket, key: key)
        _ = try await client.uploadPart(bucket: bucket, key: key, uploadID: uploadID, partNumber: .first,
                                        body: MemoryRegion(owner: body), integrity: .md5(Hash.md5(body.rawBytes)))
        let before = try await client.allMultipartUploads(bucket: bucket, prefix: key.rawValue).collect().flatMap(\.uploads)
        #expect(before.map(\.uploadID) == [uploadID])
        #expect(before.map(\.key) == [key])

        try await client.abortMultipartUpload(bucket: bucket, key: key, uploadID: uploadID)
        let after = try await client.allMultipartUploads(bucket: bucket, prefix: key.rawValue).collect().flatMap(\.uploads)
        #expect(after.isEmpty)
        do {
            _ = try await client.listParts(bucket: bucket, key: key, uploadID: uploadID)
            Issue.record("listing the parts of an aborted upload must fail")
        } catch {
            #expect(error.serviceCode == .noSuchUpload)
        }
    }
}
