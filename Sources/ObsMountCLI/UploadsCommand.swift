// `obsmount uploads BUCKET[:/PREFIX] -o url=…,passwd_file=… [--older-than DURATION] [--abort]`:
// lists the incomplete multipart uploads under the prefix, whoever started them (this mount,
// a crashed one, other tools), one line each: key, upload ID, initiated (UTC), parts, bytes; with
// --abort, aborts the listed ones. --older-than keeps those initiated longer ago than DURATION.
//
// Exit status: 0 done (nothing found is fine); 1 the endpoint, bucket or credentials cannot be
// used, or an abort failed (each failure is one line on stderr); 2 a bad option or argument.
import ArgumentParser
import Logging
import OBSClient
import OBSProtocol
import ObsFS

struct UploadsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uploads",
        abstract: "List (and with --abort, abort) the incomplete multipart uploads of a bucket or prefix.",
        discussion: """
            Takes the mount's connection options (-o url=,passwd_file=,dialect=,region=,addressing=,cafile=). \
            Prints one tab-separated line per upload: key, upload ID, initiated (UTC, ISO 8601), parts, bytes. \
            Lists every upload under the prefix, also those of other tools: use --older-than to spare uploads \
            that may still be in progress.
            """)

    @Argument(help: "BUCKET or BUCKET:/PREFIX") var source: String
    @Option(name: .short, help: "Connection options, comma-separated (url= is required); may be repeated.") var options: [String] = []
    @Option(name: .customLong("older-than"), help: "Only uploads initiated longer ago than this (90s, 30m, 1h, 7d).") var olderThan: String?
    @Flag(help: "Abort the listed uploads.") var abort = false

    func run() async throws {
        let mountSource: MountSource
        let mountOptions: MountOptions
        let minimumAge: Duration?
        do {
            mountSource = try MountSource(parsing: source)
            mountOptions = try MountOptions(parsing: options)
            minimumAge = try olderThan.map { try MountOptions.duration($0, "--older-than \($0)") }
        } catch {
            FileHandleOutput.standardError("obsmount uploads: \(error)")
            throw ExitCode(2)
        }
        guard let url = mountOptions.endpoint, let endpoint = Endpoint(url) else {
            FileHandleOutput.standardError("obsmount uploads: give the endpoint with -o url=…")
            throw ExitCode(2)
        }
        let logger = LogSetup.makeLogger(debug: false)
        do {
            let credentials = try MountSetup.loadCredentials(mountOptions)
            // A quick answer: a few retries, not the mount's retry_timeout.
            let client = try MountSetup.makeClient(endpoint: endpoint, credentials: credentials, options: mountOptions, debug: false,
                                                   logger: logger).retrying(RetryPolicy())
            try await listAndAbort(client: client, bucket: mountSource.bucket, prefix: mountSource.prefix, minimumAge: minimumAge, url: url)
        } catch let failure as MountSetup.Failure {
            FileHandleOutput.standardError("obsmount uploads: \(failure.message)")
            throw ExitCode(failure.exitCode)
        }
    }

    private func listAndAbort(client: OBSClient, bucket: BucketName, prefix: String, minimumAge: Duration?, url: String) async throws {
        let now = Timestamp.now()
        var uploads: [ListMultipartUploadsResult.Upload] = []
        do {
            for try await page in client.allMultipartUploads(bucket: bucket, prefix: prefix.isEmpty ? nil : prefix) {
                uploads += page.uploads
            }
        } catch {
            throw MountSetup.Failure(message: MountSetup.diagnose(error, bucket: bucket, endpoint: url), exitCode: 1)
        }
        if let minimumAge {
            let cutoff = now.adding(seconds: -minimumAge.components.seconds)
            uploads = uploads.filter { $0.initiated < cutoff }
        }
        var failures = 0
        for upload in uploads {
            var parts = 0, bytes: Int64 = 0
            do {
                for try await page in client.allParts(bucket: bucket, key: upload.key, uploadID: upload.uploadID) {
                    parts += page.parts.count
                    bytes += page.parts.reduce(0) { $0 + $1.size }
                }
            } catch where error.serviceCode == .noSuchUpload {
                continue  // completed or aborted meanwhile
            } catch {
                FileHandleOutput.standardError("obsmount uploads: listing the parts of \(upload.key) (\(upload.uploadID)): \(error)")
                failures += 1
            }
            print("\(upload.key)\t\(upload.uploadID)\t\(upload.initiated.iso8601)\t\(parts)\t\(bytes)")
            guard abort else { continue }
            do {
                try await client.abortMultipartUpload(bucket: bucket, key: upload.key, uploadID: upload.uploadID)
                print("aborted\t\(upload.key)\t\(upload.uploadID)")
            } catch where error.serviceCode == .noSuchUpload {
                print("gone\t\(upload.key)\t\(upload.uploadID)")
            } catch {
                FileHandleOutput.standardError("obsmount uploads: aborting \(upload.key) (\(upload.uploadID)) failed: \(error)")
                failures += 1
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}
