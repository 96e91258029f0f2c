// An in-process obs-local for the ObsFS engines' end-to-end tests: the real OBSClient over
// libcurl, OBSClientStore, and the server's request log to count what crossed the wire.
import Foundation
import OBSClient
import OBSLocalServer
import OBSProtocol
@testable import ObsFS

final class LocalOBS {
    static let credentials = Credentials(accessKey: "obsfs-test-ak", secretKey: "obsfs-test-sk")
    let server: OBSLocalServer
    let bucket = BucketName("bkt")
    let client: OBSClient
    let store: OBSClientStore
    let logPath: String

    /// `fileSystemBucket`: `bkt` is a parallel file system bucket (native rename, modify, truncate).
    init(dialect: Dialect = .obs, fileSystemBucket: Bool = false) throws {
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent("obsfs-requests-\(UUID().uuidString).jsonl").path
        server = try OBSLocalServer.start(ServerConfiguration(storage: .memory, buckets: fileSystemBucket ? [] : [bucket],
                                                              fileSystemBuckets: fileSystemBucket ? [bucket] : [],
                                                              credentials: [Self.credentials], requestLogPath: logPath))
        client = try OBSClient(configuration: OBSClientConfiguration(endpoint: Endpoint(server.endpoint)!, dialect: dialect,
                                                                     credentials: Self.credentials))
        store = OBSClientStore(client: client, bucket: bucket, isFileSystemBucket: fileSystemBucket)
    }

    func stop() {
        try? server.stop()
        try? FileManager.default.removeItem(atPath: logPath)
    }

    /// The request log's entries so far (operation, status, bytesIn, bytesOut …).
    func requests() throws -> [[String: Any]] {
        let text = try String(contentsOfFile: logPath, encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
        }
    }
}
