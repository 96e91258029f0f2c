// The crash journal of the multipart uploads a mount initiated and has not yet completed or
// aborted: what a mount that dies (SIGKILL, power loss, a bug) would leave on the server for ever.
//
// Design note
// - One directory per endpoint, bucket and prefix (`<state_dir>/journal/<hash>`); in it one file
//   per running mount, `<pid>-<random>.journal`, held under an exclusive `flock` for the mount's
//   lifetime. The kernel drops the lock when the process ends however it ends, so a file nobody
//   holds belongs to a mount that is gone, and a mount running beside it (same bucket and prefix)
//   is never mistaken for a crashed one.
// - The file is append-only text: a header line, `+ UPLOAD-ID KEY` once an initiation answered,
//   `- UPLOAD-ID` once the upload is completed or aborted (both percent-encoded, so any key fits
//   on a line). Replaying it gives the uploads still open. Appends are single `write`s on an
//   O_APPEND descriptor: a killed process loses nothing it wrote; a machine crash can lose the
//   last lines (no fsync per file created), and the bucket's lifecycle rule for incomplete
//   uploads is then the last safety net (mount-options/README.md).
// - An upload whose initiation reply was lost (the mount died between the server's answer and
//   the append) is not in the journal: `obsmount uploads` finds those.
// - A new mount adopts the files of gone mounts: their open uploads are appended to its own
//   journal, the files removed, and the uploads aborted in the background (BackgroundAborts).
// - When nothing is open and the file has grown, it is truncated back to its header.
import Logging
import OBSHashing
import OBSProtocol
import Synchronization
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// An upload recorded in a journal.
public struct JournaledUpload: Sendable, Hashable {
    public let key: ObjectKey
    public let uploadID: UploadID

    public init(key: ObjectKey, uploadID: UploadID) {
        self.key = key
        self.uploadID = uploadID
    }
}

/// The journal directory or file cannot be used. The mount exits with status 1.
public struct UploadJournalError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "upload journal \(path): \(reason)" }
}

/// This mount's journal file, and the adoption of the files of mounts that are gone.
public final class UploadJournal: Sendable {
    /// The directory of every journal of this endpoint, bucket and prefix.
    public let directory: String
    /// This mount's file.
    public let path: String
    private let header: String
    private let logger: Logger

    private struct State {
        /// The O_APPEND descriptor holding the `flock`; -1 once closed.
        var descriptor: Int32
        /// Uploads recorded and not yet finished.
        var open: [UploadID: ObjectKey] = [:]
        /// Lines appended since the file was last truncated.
        var lines = 0
    }

    /// Guards the descriptor's appends and the set of open uploads (a `write` of one short line
    /// under the lock, no await).
    private let state: Mutex<State>

    /// Lines after which a journal with nothing open is truncated to its header.
    static let compactionLines = 10_000

    /// `<stateDirectory>/journal/<32 hex digits of SHA-256 over endpoint, bucket and prefix>`.
    public static func directory(stateDirectory: String, endpoint: String, bucket: BucketName, prefix: String) -> String {
        let digest = Hash.sha256(Array("\(endpoint)\n\(bucket.rawValue)\n\(prefix)".utf8))
        return stateDirectory + "/journal/" + digest.prefix(16).hexString
    }

    /// Creates this mount's file in `directory` (made, mode 0700, when missing) and locks it.
    /// `description` (endpoint, bucket and prefix) goes into the header for a reader.
    public init(directory: String, description: String, logger: Logger) throws(UploadJournalError) {
        self.directory = directory
        self.logger = logger
        var generator = SystemRandomNumberGenerator()
        let name = "\(getpid())-\((0..<8).map { _ in UInt8.random(in: 0...255, using: &generator) }.hexString).journal"
        path = directory + "/" + name
        let descriptor: Int32
        do {
            try FileSystem.makeDirectories(directory, mode: 0o700)
            descriptor = try FileSystem.open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, mode: 0o600)
        } catch let error as StorageIOError {
            throw UploadJournalError(path: error.path, reason: "cannot create it (\(String(cString: strerror(error.errno))))")
        } catch {
            throw UploadJournalError(path: directory, reason: "cannot create it (\(error))")
        }
        guard FileSystem.retryingInterrupts({ flock(descriptor, LOCK_EX | LOCK_NB) }) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(descriptor)
            unlink(path)
            throw UploadJournalError(path: path, reason: "cannot lock it (\(reason))")
        }
        header = "# obsmount upload journal of \(description)\n"
        state = Mutex(State(descriptor: descriptor))
        state.withLock { append(header, &$0) }
    }

    /// Records an upload the store has initiated.
    public func recordInitiated(_ upload: JournaledUpload) {
        state.withLock { state in
            state.open[upload.uploadID] = upload.key
            append("+ \(PercentEncoding.encode(upload.uploadID.rawValue, keepSlash: false)) \(PercentEncoding.encode(upload.key.rawValue, keepSlash: false))\n", &state)
        }
    }

    /// Records that an upload is completed or aborted (or gone); a no-op for one not recorded.
    public func recordFinished(_ uploadID: UploadID) {
        state.withLock { state in
            guard state.open.removeValue(forKey: uploadID) != nil else { return }
            if state.open.isEmpty, state.lines >= Self.compactionLines, state.descriptor >= 0, ftruncate(state.descriptor, 0) == 0 {
                state.lines = 0
                append(header, &state)
                return
            }
            append("- \(PercentEncoding.encode(uploadID.rawValue, keepSlash: false))\n", &state)
        }
    }

    /// The uploads recorded and not finished.
    public var openUploads: [JournaledUpload] {
        state.withLock { $0.open.map { JournaledUpload(key: $1, uploadID: $0) } }
    }

    /// The open uploads in the files of mounts that are gone (files no process holds locked):
    /// recorded in this journal, their files removed. The caller aborts them.
    public func adoptOrphans() -> [JournaledUpload] {
        var adopted: [JournaledUpload] = []
        for name in FileSystem.list(directory) where name.hasSuffix(".journal") && directory + "/" + name != path {
            let orphanPath = directory + "/" + name
            guard let descriptor = try? FileSystem.open(orphanPath, O_RDONLY) else { continue }
            defer { Glibc.close(descriptor) }
            // Held by a running mount: not an orphan.
            guard FileSystem.retryingInterrupts({ flock(descriptor, LOCK_EX | LOCK_NB) }) == 0,
                  let text = try? FileSystem.readFile(orphanPath) else { continue }
            let uploads = Self.replay(String(decoding: text, as: UTF8.self))
            for upload in uploads { recordInitiated(upload) }
            adopted += uploads
            unlink(orphanPath)
        }
        return adopted
    }

    /// A clean end with nothing open removes the file; otherwise it stays for the next mount.
    public func close() {
        state.withLock { state in
            guard state.descriptor >= 0 else { return }
            if state.open.isEmpty { unlink(path) }
            Glibc.close(state.descriptor)
            state.descriptor = -1
        }
    }

    /// The uploads a journal's text leaves open.
    static func replay(_ text: String) -> [JournaledUpload] {
        var open: [String: String] = [:]
        var order: [String] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard let id = fields.count >= 2 ? PercentEncoding.decode(String(fields[1])) : nil else { continue }
            switch fields[0] {
            case "+" where fields.count == 3:
                guard let key = PercentEncoding.decode(String(fields[2])) else { continue }
                if open.updateValue(key, forKey: id) == nil { order.append(id) }
            case "-":
                open[id] = nil
            default:
                continue
            }
        }
        return order.compactMap { id in open[id].map { JournaledUpload(key: ObjectKey($0), uploadID: UploadID(id)) } }
    }

    private func append(_ line: String, _ state: inout State) {
        guard state.descriptor >= 0 else { return }
        do {
            try Array(line.utf8).withUnsafeBytes { try FileSystem.writeAll(state.descriptor, $0, path: path) }
        } catch {
            logger.warning("upload journal \(path): cannot append (\(error)); a crash now could leave an upload only `obsmount uploads` finds")
        }
        state.lines += 1
    }
}
