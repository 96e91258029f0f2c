// HEAD answers of files saved for the mounts that follow, so that `ls -l` right after a mount
// sends no HEAD for the names its listing shows unchanged. POSIX metadata (mode, owner, times,
// xattrs) is only in object headers; without this, the first `ls -l` of a directory after every
// mount costs one HEAD per name, as with s3fs.
//
// Design note
// - One file per listed directory: `<state_dir>/attributes/<hash of endpoint, bucket and
//   prefix>/<hash of the directory's key prefix>.json`, holding the HEAD answers of the files
//   directly in it (size, ETag, Last-Modified, Content-Type, user metadata) and when each was
//   fetched. Directories 0700, files 0600; a file is replaced whole (temporary file, rename).
// - An answer is used only for a name a listing shows with the same ETag, size and
//   Last-Modified (to the second), and only when an earlier mount fetched it less than
//   `saved_attr_timeout=` ago. Content changes, and metadata changes in the S3 dialects (a copy
//   onto itself), change Last-Modified, so they are never hidden; a metadata change by another
//   client through OBS's own call (SetObjectMetadata, which keeps Last-Modified and ETag) shows
//   after a mount for at most that long. Within one mount `attr_timeout=` rules as before: the
//   answers this mount fetched are saved, never used by it.
// - An answer fetched less than `settling` after its Last-Modified (by this machine's clock)
//   is not saved: a second change within the same second (s3fs writes, then sets the mode by a
//   copy onto itself) would keep the Last-Modified second the answer is checked against.
// - This mount's own changes drop the directory's answers first (memory and file), before the
//   request that changes the object and again after it; an answer whose HEAD was in flight
//   across such a change is not saved (a generation per directory prefix).
// - Memory: the answers of at most `directoryCount` directories, `answersPerDirectory` each;
//   changed directories are written `writeDelay` after a save, on eviction and at unmount; the
//   files are not synced (a file lost in a crash costs HEADs, nothing else).
internal import FoundationEssentials
import Logging
import OBSHashing
import OBSProtocol
import Synchronization
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

public final class SavedHeadAnswers: Sendable {
    /// One saved HEAD answer.
    struct Answer: Codable, Equatable {
        var etag: String
        var size: Int64
        /// Milliseconds since the epoch, as the HEAD said (to the second).
        var lastModified: Int64
        var contentType: String?
        var metadata: [String: String]
        /// When the HEAD was answered, milliseconds since the epoch.
        var fetched: Int64
    }

    /// A directory's file.
    struct DirectoryFile: Codable {
        var prefix: String
        var answers: [String: Answer]
    }

    /// What a save checks: that no change of this mount touched the directory since the HEAD
    /// was sent.
    struct Generation: Equatable {
        fileprivate let epoch: UInt64
        fileprivate let changes: UInt64
    }

    private struct Directory {
        var answers: [String: Answer]
        var changed = false
        var lastUse: UInt64
    }

    private struct State {
        var directories: [String: Directory] = [:]
        /// Changes this mount made per directory prefix; emptied (and `epoch` moved on) when it
        /// holds `changeCountLimit` prefixes.
        var changes: [String: UInt64] = [:]
        var epoch: UInt64 = 0
        var uses: UInt64 = 0
        var writeScheduled = false

        func generation(of prefix: String) -> Generation {
            Generation(epoch: epoch, changes: changes[prefix] ?? 0)
        }
    }

    static let directoryCount = 64
    static let answersPerDirectory = 10_000
    static let changeCountLimit = 10_000
    static let writeDelay = Duration.seconds(2)
    /// How long after its Last-Modified an answer must have been fetched to be saved.
    static let settling: Int64 = 2_000

    /// `<state_dir>/attributes/<hash>`.
    let directory: String
    /// How old an answer an earlier mount fetched may be to be used (`saved_attr_timeout=`).
    let lifetime: Duration
    /// When this mount started: answers fetched since are its own.
    let mountedAt: Timestamp
    private let logger: Logger
    /// The directories' answers in memory and the change generations; held for dictionary work
    /// only, never across file I/O.
    private let state = Mutex(State())
    /// Serialises the writes and removals of the files, so that a write of answers a change
    /// dropped meanwhile cannot land after that change's removal. Lock order: `files`, then
    /// `state`.
    private let files = Mutex(())

    /// `<stateDirectory>/attributes/<32 hex digits of SHA-256 over endpoint, bucket and prefix>`.
    public static func directory(stateDirectory: String, endpoint: String, bucket: BucketName, prefix: String) -> String {
        let digest = Hash.sha256(Array("\(endpoint)\n\(bucket.rawValue)\n\(prefix)".utf8))
        return stateDirectory + "/attributes/" + digest.prefix(16).hexString
    }

    /// Answers saved in `directory` (made, mode 0700, when missing).
    public init(directory: String, lifetime: Duration, logger: Logger, now: Timestamp = .now()) throws {
        try FileSystem.makeDirectories(directory, mode: 0o700)
        self.directory = directory
        self.lifetime = lifetime
        self.logger = logger
        mountedAt = now
    }

    // MARK: Use

    /// The answer an earlier mount saved for `key`, if a listing that shows it as `listed`
    /// (ETag, size, Last-Modified) may use it; nil otherwise.
    func answer(for key: ObjectKey, listed: ObjectAttributes, now: Timestamp = .now()) -> ObjectAttributes? {
        guard let etag = listed.etag, let modified = listed.lastModified else { return nil }
        let (prefix, name) = Self.split(key)
        loadIfNeeded(prefix)
        let saved = state.withLock { state -> Answer? in
            state.uses += 1
            state.directories[prefix]?.lastUse = state.uses
            return state.directories[prefix]?.answers[name]
        }
        guard let saved, saved.fetched < mountedAt.millisecondsSinceEpoch,
              now.millisecondsSinceEpoch - saved.fetched < Int64(lifetime.components.seconds) * 1000,
              saved.etag == etag.value, saved.size == listed.size,
              Timestamp(millisecondsSinceEpoch: saved.lastModified).secondsSinceEpoch == modified.secondsSinceEpoch
        else { return nil }
        return ObjectAttributes(size: saved.size, etag: etag, lastModified: Timestamp(millisecondsSinceEpoch: saved.lastModified),
                                metadata: saved.metadata, contentType: saved.contentType)
    }

    /// The generation to pass to `save` for a HEAD of `key` about to be sent.
    func generation(of key: ObjectKey) -> Generation {
        let prefix = Self.split(key).prefix
        return state.withLock { $0.generation(of: prefix) }
    }

    /// Saves the HEAD answer of the file `key`, unless this mount changed its directory since
    /// `generation` was taken or the object changed less than `settling` before.
    func save(_ answer: ObjectAttributes, for key: ObjectKey, generation: Generation, now: Timestamp = .now()) {
        guard let etag = answer.etag, let modified = answer.lastModified, !key.rawValue.hasSuffix("/"),
              now.millisecondsSinceEpoch - modified.millisecondsSinceEpoch >= Self.settling else { return }
        let (prefix, name) = Self.split(key)
        let saved = Answer(etag: etag.value, size: answer.size, lastModified: modified.millisecondsSinceEpoch,
                           contentType: answer.contentType, metadata: answer.metadata, fetched: now.millisecondsSinceEpoch)
        loadIfNeeded(prefix)
        let scheduleWrite = state.withLock { state -> Bool in
            guard state.generation(of: prefix) == generation, var directory = state.directories[prefix],
                  directory.answers[name] != nil || directory.answers.count < Self.answersPerDirectory else { return false }
            directory.answers[name] = saved
            directory.changed = true
            state.directories[prefix] = directory
            defer { state.writeScheduled = true }
            return !state.writeScheduled
        }
        if scheduleWrite {
            Task {
                try? await Task.sleep(for: Self.writeDelay)
                writeChanged()
            }
        }
    }

    /// This mount is changing, or changed, something directly in the directory of key prefix
    /// `prefix`: its answers are dropped, from memory and from disk, and HEADs in flight there
    /// are not saved.
    func forget(directoryPrefix prefix: String) {
        state.withLock { state in
            state.directories[prefix] = nil
            if state.changes.count >= Self.changeCountLimit, state.changes[prefix] == nil {
                state.changes = [:]
                state.epoch += 1
            }
            state.changes[prefix, default: 0] += 1
        }
        files.withLock { _ in FileSystem.remove(path(of: prefix)) }
    }

    // MARK: Files

    /// Writes the directories whose answers changed since they were last written.
    public func writeChanged() {
        let changed = state.withLock { state -> [String] in
            state.writeScheduled = false
            return state.directories.filter(\.value.changed).map(\.key)
        }
        for prefix in changed { write(prefix) }
    }

    /// Brings the answers of `prefix` into memory (none when a change of this mount dropped
    /// them while they were read), evicting the least recently used directory beyond
    /// `directoryCount`.
    private func loadIfNeeded(_ prefix: String) {
        guard state.withLock({ $0.directories[prefix] == nil }) else { return }
        let before = state.withLock { $0.generation(of: prefix) }
        let loaded = files.withLock { _ in read(prefix) }
        let oldest = state.withLock { state -> String? in
            guard state.directories[prefix] == nil else { return nil }
            let unchanged = before == state.generation(of: prefix)
            state.uses += 1
            state.directories[prefix] = Directory(answers: unchanged ? loaded : [:], lastUse: state.uses)
            guard state.directories.count > Self.directoryCount else { return nil }
            return state.directories.min(by: { $0.value.lastUse < $1.value.lastUse })?.key
        }
        if let oldest {
            write(oldest)
            state.withLock { $0.directories[oldest] = nil }
        }
    }

    private func read(_ prefix: String) -> [String: Answer] {
        let path = path(of: prefix)
        guard FileSystem.exists(path) else { return [:] }
        do {
            let file = try JSONDecoder().decode(DirectoryFile.self, from: Data(try FileSystem.readFile(path)))
            return file.prefix == prefix ? file.answers : [:]
        } catch {
            logger.warning("saved attributes \(path) cannot be read (\(error)); the names it held are asked for again")
            return [:]
        }
    }

    /// Writes the answers of `prefix` if they changed since last written (none when a change of
    /// this mount dropped them meanwhile). Not synced: a file lost in a crash costs HEADs.
    private func write(_ prefix: String) {
        files.withLock { _ in
            let answers = state.withLock { state -> [String: Answer]? in
                guard state.directories[prefix]?.changed == true else { return nil }
                state.directories[prefix]?.changed = false
                return state.directories[prefix]?.answers
            }
            guard let answers else { return }
            let path = path(of: prefix)
            var generator = SystemRandomNumberGenerator()
            let suffix = ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max, using: &generator))"
            do {
                let bytes = Array(try JSONEncoder().encode(DirectoryFile(prefix: prefix, answers: answers)))
                let replacement = try FileSystem.Replacement(of: path, temporarySuffix: suffix, mode: 0o600)
                do {
                    try replacement.write(bytes)
                    try FileSystem.close(try replacement.commit(synchronizing: false), path: path)
                } catch {
                    replacement.abandon()
                    throw error
                }
            } catch {
                logger.warning("saving attributes to \(path): \(error); the next mount asks for them again")
            }
        }
    }

    private func path(of prefix: String) -> String {
        directory + "/" + Hash.sha256(Array(prefix.utf8)).prefix(16).hexString + ".json"
    }

    /// A key's directory prefix (up to its last `/`, empty at the top) and its name.
    static func split(_ key: ObjectKey) -> (prefix: String, name: String) {
        let raw = key.rawValue
        guard let slash = raw.lastIndex(of: "/") else { return ("", raw) }
        return (String(raw[...slash]), String(raw[raw.index(after: slash)...]))
    }
}
