// Aborts that must not be forgotten: an abort that failed (server unreachable, 5xx) and the
// uploads a crashed predecessor left are retried here, in the background, with back-off, until
// the store confirms them gone; each stays in the upload journal until then, so a mount that
// ends first hands them to the next mount. close() never waits for these.
import Logging
import OBSClient
import OBSProtocol
import Synchronization

/// One retrying task per upload still to abort.
public final class BackgroundAborts: Sendable {
    public typealias Abort = @Sendable (JournaledUpload) async throws -> Void

    private let journal: UploadJournal
    private let abort: Abort
    private let logger: Logger
    /// First back-off; doubles up to `maximumDelay`.
    private let initialDelay: Duration
    private let maximumDelay: Duration
    /// The retrying tasks by upload, for `stop` (and so an upload is retried by one task only).
    private let tasks = Mutex<[UploadID: Task<Void, Never>]>([:])

    public init(journal: UploadJournal, initialDelay: Duration = .seconds(1), maximumDelay: Duration = .seconds(300), logger: Logger,
                abort: @escaping Abort) {
        self.journal = journal
        self.abort = abort
        self.logger = logger
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
    }

    /// Aborts `upload` until the store confirms it gone (aborted, or NoSuchUpload: completed or
    /// aborted meanwhile), then removes it from the journal. `reason` goes into the log lines.
    public func add(_ upload: JournaledUpload, reason: String, startAfter firstDelay: Duration = .zero) {
        tasks.withLock { tasks in
            guard tasks[upload.uploadID] == nil else { return }
            tasks[upload.uploadID] = Task { [self] in
                await retry(upload, reason: reason, firstDelay: firstDelay)
                _ = self.tasks.withLock { $0.removeValue(forKey: upload.uploadID) }
            }
        }
    }

    /// Uploads still waiting for their abort.
    public var pendingCount: Int { tasks.withLock { $0.count } }

    /// Ends every retry (unmount); what is not aborted stays in the journal for the next mount.
    public func stop() {
        let running = tasks.withLock { tasks in
            defer { tasks = [:] }
            return Array(tasks.values)
        }
        for task in running { task.cancel() }
    }

    private func retry(_ upload: JournaledUpload, reason: String, firstDelay: Duration) async {
        var delay = initialDelay
        var wait = firstDelay
        var attempt = 0
        while !Task.isCancelled {
            if wait > .zero {
                do { try await Task.sleep(for: wait) } catch { return }
            }
            attempt += 1
            do {
                try await abort(upload)
                journal.recordFinished(upload.uploadID)
                logger.notice("aborted upload \(upload.uploadID) of \(upload.key) (\(reason))")
                return
            } catch {
                if (error as? OBSClientError)?.serviceCode == .noSuchUpload {
                    journal.recordFinished(upload.uploadID)
                    logger.info("upload \(upload.uploadID) of \(upload.key) is already gone (\(reason))")
                    return
                }
                logger.warning("aborting upload \(upload.uploadID) of \(upload.key) failed (attempt \(attempt), \(reason)); retrying in \(delay): \(error)")
            }
            wait = delay
            delay = min(delay * 2, maximumDelay)
        }
    }
}
