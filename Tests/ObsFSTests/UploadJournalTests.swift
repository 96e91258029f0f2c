// The upload journal: what it records, what a successor adopts (only from mounts that are gone),
// and the background aborts that retry until the store confirms an upload gone.
import CurlTransport
import Foundation
import Logging
import OBSClient
import OBSProtocol
import Synchronization
import Testing
@testable import ObsFS

@Suite final class UploadJournalTests {
    let logger: Logger = {
        var logger = Logger(label: "journal-test")
        logger.logLevel = .critical
        return logger
    }()

    /// A fresh directory two levels below a new temporary one (the journal makes the missing
    /// levels); the temporary one is removed when the suite's instance goes away.
    let base = NSTemporaryDirectory() + "journal-test-" + UUID().uuidString
    func temporaryDirectory() -> String { base + "/" + UUID().uuidString + "/b" }

    deinit { try? FileManager.default.removeItem(atPath: base) }

    func upload(_ key: String, _ id: String) -> JournaledUpload { JournaledUpload(key: ObjectKey(key), uploadID: UploadID(id)) }

    @Test func replayKeepsWhatIsNotFinishedWhateverTheKey() throws {
        let directory = temporaryDirectory()
        let journal = try UploadJournal(directory: directory, description: "test", logger: logger)
        let odd = upload("dir/a b\n+%.txt", "ID/with space")
        journal.recordInitiated(upload("done", "1"))
        journal.recordInitiated(odd)
        journal.recordInitiated(upload("aborted", "3"))
        journal.recordFinished(UploadID("1"))
        journal.recordFinished(UploadID("3"))
        let text = try String(contentsOfFile: journal.path, encoding: .utf8)
        #expect(UploadJournal.replay(text) == [odd])
        #expect(journal.openUploads == [odd])
        #expect(text.split(separator: "\n").count == 6)  // header, three starts, two ends
    }

    @Test func aSuccessorAdoptsOnlyTheJournalsOfMountsThatAreGone() throws {
        let directory = temporaryDirectory()
        let running = try UploadJournal(directory: directory, description: "running", logger: logger)
        running.recordInitiated(upload("running", "R"))
        // A mount that died: its file with an open upload and no lock.
        let crashedPath = directory + "/999999-dead.journal"
        try "# obsmount upload journal of crashed\n+ C1 left%20open\n+ C2 finished\n- C2\n".write(toFile: crashedPath, atomically: true, encoding: .utf8)

        let successor = try UploadJournal(directory: directory, description: "successor", logger: logger)
        #expect(successor.adoptOrphans() == [upload("left open", "C1")])
        #expect(successor.openUploads == [upload("left open", "C1")])
        #expect(!FileManager.default.fileExists(atPath: crashedPath))
        #expect(FileManager.default.fileExists(atPath: running.path))  // locked: still running, untouched
        #expect(running.openUploads == [upload("running", "R")])
        // The adopted upload is in the successor's own file: a crash of the successor hands it on.
        #expect(UploadJournal.replay(try String(contentsOfFile: successor.path, encoding: .utf8)) == [upload("left open", "C1")])

        // A mount that ends cleanly with nothing open leaves no file; with something open, it stays.
        successor.recordFinished(UploadID("C1"))
        successor.close()
        #expect(!FileManager.default.fileExists(atPath: successor.path))
        running.close()
        #expect(FileManager.default.fileExists(atPath: running.path))
        let third = try UploadJournal(directory: directory, description: "third", logger: logger)
        #expect(third.adoptOrphans() == [upload("running", "R")])
    }

    @Test func aJournalWithNothingOpenIsCompacted() throws {
        let journal = try UploadJournal(directory: temporaryDirectory(), description: "compaction", logger: logger)
        for index in 0..<(UploadJournal.compactionLines / 2 + 1) {
            journal.recordInitiated(upload("k", "\(index)"))
            journal.recordFinished(UploadID("\(index)"))
        }
        let text = try String(contentsOfFile: journal.path, encoding: .utf8)
        #expect(text.split(separator: "\n").count < 10)
        #expect(text.hasPrefix("# obsmount upload journal of compaction\n"))
    }

    @Test func directoriesDifferByEndpointBucketAndPrefix() {
        let base = UploadJournal.directory(stateDirectory: "/s", endpoint: "http://a", bucket: BucketName("b"), prefix: "p/")
        #expect(base.hasPrefix("/s/journal/"))
        #expect(base == UploadJournal.directory(stateDirectory: "/s", endpoint: "http://a", bucket: BucketName("b"), prefix: "p/"))
        #expect(base != UploadJournal.directory(stateDirectory: "/s", endpoint: "http://c", bucket: BucketName("b"), prefix: "p/"))
        #expect(base != UploadJournal.directory(stateDirectory: "/s", endpoint: "http://a", bucket: BucketName("bb"), prefix: "p/"))
        #expect(base != UploadJournal.directory(stateDirectory: "/s", endpoint: "http://a", bucket: BucketName("b"), prefix: "q/"))
    }

    @Test func backgroundAbortsRetryUntilTheUploadIsGone() async throws {
        let journal = try UploadJournal(directory: temporaryDirectory(), description: "aborts", logger: logger)
        let failing = upload("failing", "F")
        let vanished = upload("vanished", "V")
        journal.recordInitiated(failing)
        journal.recordInitiated(vanished)
        let attempts = Mutex<[UploadID: Int]>([:])
        let aborts = BackgroundAborts(journal: journal, initialDelay: .milliseconds(10), maximumDelay: .milliseconds(40), logger: logger) { upload in
            let attempt = attempts.withLock { attempts -> Int in
                attempts[upload.uploadID, default: 0] += 1
                return attempts[upload.uploadID]!
            }
            if upload.uploadID == UploadID("V") {
                throw OBSClientError.service(ServiceError(status: 404, code: .noSuchUpload, message: "gone"))
            }
            if attempt < 4 { throw OBSClientError.transport(TransportErrorStub.refused) }
        }
        aborts.add(failing, reason: "test")
        aborts.add(failing, reason: "added twice: still one task")
        aborts.add(vanished, reason: "test")
        let deadline = ContinuousClock.now + .seconds(120)  // sleeps overrun on a loaded machine
        while aborts.pendingCount > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(aborts.pendingCount == 0)
        #expect(attempts.withLock { $0 } == [UploadID("F"): 4, UploadID("V"): 1])
        #expect(journal.openUploads.isEmpty)
    }

    @Test func stoppedBackgroundAbortsLeaveTheUploadJournaled() async throws {
        let journal = try UploadJournal(directory: temporaryDirectory(), description: "stop", logger: logger)
        let stuck = upload("stuck", "S")
        journal.recordInitiated(stuck)
        let aborts = BackgroundAborts(journal: journal, initialDelay: .seconds(60), logger: logger) { _ in
            throw OBSClientError.transport(TransportErrorStub.refused)
        }
        aborts.add(stuck, reason: "test")
        try await Task.sleep(for: .milliseconds(50))
        aborts.stop()
        #expect(aborts.pendingCount == 0)
        #expect(journal.openUploads == [stuck])
    }
}

enum TransportErrorStub {
    static let refused = TransportError(kind: .curl(code: 7), message: "Connection refused", url: "http://127.0.0.1/")
}
