// `obsmount bench-upload` (hidden): measures the client's multipart upload path. Uploads N MiB
// from memory as parts of S MiB, P in flight at a time, then prints throughput and CPU seconds
// per GiB (getrusage of the whole process, MD5 of every part included, as the filesystem
// computes it for Content-MD5; the MD5 share is measured apart with the thread CPU clock).
import ArgumentParser
import CurlTransport
import OBSClient
import OBSHashing
import OBSProtocol
#if canImport(Glibc)
import Glibc
#endif

struct BenchUploadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-upload",
        abstract: "Upload N MiB from memory as a multipart upload and report MB/s and CPU seconds per GiB.",
        discussion: """
            The access key comes from --access-key or OBSMOUNT_ACCESS_KEY; the secret key only from
            OBSMOUNT_SECRET_KEY or --secret-key-file, so it never shows in `ps`.
            """,
        shouldDisplay: false)

    @Option(help: "Endpoint URL (http:// or https://).") var endpoint: String
    @Option(help: "Bucket to upload into.") var bucket: String
    @Option(help: "Object key (default: bench-upload/<random>).") var key: String?
    @Option(help: "Signing dialect: obs, v2 or v4.") var dialect: String = "v4"
    @Option(help: "Signing region (V4).") var region: String = "us-east-1"
    @Option(help: "Use virtual-host addressing instead of path style.") var addressing: String = "path"
    @Option(help: "Access key (default: $OBSMOUNT_ACCESS_KEY).") var accessKey: String?
    @Option(help: "File holding the secret key (default: $OBSMOUNT_SECRET_KEY).") var secretKeyFile: String?
    @Option(name: .customLong("size-mib"), help: "MiB to upload.") var sizeMiB: Int = 1024
    @Option(name: .customLong("part-size-mib"), help: "Part size in MiB.") var partSizeMiB: Int = 16
    @Option(help: "Parts in flight at once.") var parallel: Int = 8
    @Option(help: "Upload this file's bytes (read into memory first) instead of random bytes.") var file: String?
    @Flag(help: "Keep the object instead of deleting it afterwards.") var keep = false
    @Flag(help: "Hash every part before the clock starts (the filesystem hashes while data is written), so the run times the upload alone.")
    var hashAhead = false

    func run() async throws {
        let client = try makeClient()
        let memory = try loadData()
        let partSize = partSizeMiB << 20
        let regions = stride(from: 0, to: memory.rawBytes.count, by: partSize).map { start in
            MemoryRegion(owner: memory, range: start ..< min(start + partSize, memory.rawBytes.count))
        }
        guard !regions.isEmpty, regions.count <= PartNumber.range.upperBound else {
            throw ValidationError("\(regions.count) parts: a multipart upload takes 1 to 10,000")
        }
        let bucket = BucketName(bucket)
        let key = ObjectKey(key ?? "bench-upload/\(UInt64.random(in: 0 ... .max))")
        let md5sAhead = hashAhead ? regions.map { Hash.md5($0.bytes) } : nil

        let cpuBefore = CPUTime.now()
        let clock = ContinuousClock()
        let start = clock.now
        let uploadID = try await client.initiateMultipartUpload(bucket: bucket, key: key)
        let parts: [UploadedPart]
        do {
            parts = try await uploadParts(client, bucket, key, uploadID, regions, md5sAhead)
        } catch {
            try? await client.abortMultipartUpload(bucket: bucket, key: key, uploadID: uploadID)
            throw error
        }
        let stored = try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: uploadID,
                                                              parts: parts.map { ($0.partNumber, $0.etag) })
        let elapsed = clock.now - start
        let cpu = CPUTime.now() - cpuBefore

        let expected = ETag.composite(partMD5s: parts.map(\.md5))
        let md5Seconds = parts.map(\.md5Seconds).reduce(0, +)
        guard stored.etag == expected else { throw ValidationError("completed ETag \(stored.etag), expected \(expected)") }
        if !keep { try await client.deleteObject(bucket: bucket, key: key) }

        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let bytes = Double(memory.rawBytes.count)
        let gibibytes = bytes / Double(1 << 30)
        print("bench-upload: \(memory.rawBytes.count >> 20) MiB in \(regions.count) parts of \(partSizeMiB) MiB, \(parallel) in flight, dialect \(dialect), \(endpoint)")
        print("  elapsed \(format(seconds)) s, \(format(bytes / seconds / 1e6)) MB/s (\(format(bytes / seconds / Double(1 << 20))) MiB/s)")
        print("  CPU \(format(cpu.user + cpu.system)) s (user \(format(cpu.user)), system \(format(cpu.system))) = \(format((cpu.user + cpu.system) / gibibytes)) CPU s/GiB, of which MD5 \(format(md5Seconds / gibibytes))")
        print("RESULT seconds=\(format(seconds)) mbps=\(format(bytes / seconds / 1e6)) cpu_per_gib=\(format((cpu.user + cpu.system) / gibibytes)) md5_cpu_per_gib=\(format(md5Seconds / gibibytes)) etag=\(stored.etag.value)")
    }

    /// Uploads every region as a part, `parallel` at a time, hashing each part just before it
    /// goes unless its MD5 is given.
    private func uploadParts(_ client: OBSClient, _ bucket: BucketName, _ key: ObjectKey, _ uploadID: UploadID,
                             _ regions: [MemoryRegion], _ md5sAhead: [[UInt8]]?) async throws -> [UploadedPart] {
        try await withThrowingTaskGroup(of: UploadedPart.self) { group in
            var results: [UploadedPart] = []
            for (index, region) in regions.enumerated() {
                if index >= parallel, let done = try await group.next() { results.append(done) }
                let partNumber = PartNumber(index + 1)!
                group.addTask {
                    let hashStart = CPUTime.currentThreadSeconds()
                    let md5 = md5sAhead?[index] ?? Hash.md5(region.bytes)
                    let md5Seconds = CPUTime.currentThreadSeconds() - hashStart
                    let etag = try await client.uploadPart(bucket: bucket, key: key, uploadID: uploadID, partNumber: partNumber,
                                                           body: region, integrity: .md5(md5)).etag
                    return UploadedPart(partNumber: partNumber, etag: etag, md5: md5, md5Seconds: md5Seconds)
                }
            }
            for try await done in group { results.append(done) }
            return results.sorted { $0.partNumber < $1.partNumber }
        }
    }

    private func makeClient() throws -> OBSClient {
        guard let endpoint = Endpoint(endpoint) else { throw ValidationError("bad endpoint URL \(self.endpoint)") }
        guard let dialect = Dialect(rawValue: dialect) else { throw ValidationError("dialect must be obs, v2 or v4") }
        guard let addressing = Addressing(rawValue: addressing) else { throw ValidationError("addressing must be path or virtual-host") }
        guard let accessKey = accessKey ?? environment("OBSMOUNT_ACCESS_KEY") else { throw ValidationError("no access key") }
        let secret: String
        if let secretKeyFile {
            secret = try readSmallFile(secretKeyFile).trimmingSpaces.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        } else if let fromEnvironment = environment("OBSMOUNT_SECRET_KEY") {
            secret = fromEnvironment
        } else {
            throw ValidationError("no secret key: set OBSMOUNT_SECRET_KEY or --secret-key-file")
        }
        let transport = TransportConfiguration(maxConcurrentTransfers: parallel, reservedControlTransfers: 0)  // parts only while they run
        return try OBSClient(configuration: OBSClientConfiguration(endpoint: endpoint, addressing: addressing, region: region, dialect: dialect,
                                                                   credentials: Credentials(accessKey: accessKey, secretKey: secret),
                                                                   transport: transport))
    }

    /// The bytes to upload: the file's, or random ones.
    private func loadData() throws -> AlignedMemory {
        if let file {
            let descriptor = open(file, O_RDONLY)
            guard descriptor >= 0 else { throw ValidationError("cannot open \(file)") }
            defer { close(descriptor) }
            var status = stat()
            fstat(descriptor, &status)
            let memory = AlignedMemory(byteCount: Int(status.st_size))
            var offset = 0
            while offset < memory.rawBytes.count {
                let count = read(descriptor, memory.rawBytes.baseAddress! + offset, memory.rawBytes.count - offset)
                guard count > 0 else { throw ValidationError("short read of \(file)") }
                offset += count
            }
            return memory
        }
        let memory = AlignedMemory(byteCount: sizeMiB << 20)
        var generator = SystemRandomNumberGenerator()
        for offset in stride(from: 0, to: memory.rawBytes.count, by: 8) {
            memory.rawBytes.storeBytes(of: generator.next() as UInt64, toByteOffset: offset, as: UInt64.self)
        }
        return memory
    }

    private func readSmallFile(_ path: String) throws -> String {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw ValidationError("cannot open \(path)") }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = read(descriptor, &bytes, bytes.count)
        guard count >= 0 else { throw ValidationError("cannot read \(path)") }
        return String(decoding: bytes[..<count], as: UTF8.self)
    }

    private func format(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = abs(hundredths % 100)
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

/// One uploaded part and the CPU time its MD5 took.
private struct UploadedPart: Sendable {
    var partNumber: PartNumber
    var etag: ETag
    var md5: [UInt8]
    var md5Seconds: Double
}

/// The process's user and system CPU seconds (getrusage).
private struct CPUTime {
    var user: Double
    var system: Double

    static func now() -> CPUTime {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        return CPUTime(user: Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6,
                       system: Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6)
    }

    /// CPU seconds of the calling thread (CLOCK_THREAD_CPUTIME_ID).
    static func currentThreadSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    static func - (lhs: CPUTime, rhs: CPUTime) -> CPUTime {
        CPUTime(user: lhs.user - rhs.user, system: lhs.system - rhs.system)
    }
}

private func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
