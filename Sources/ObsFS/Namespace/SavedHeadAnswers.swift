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
// - This mount's own changes drop the directory's answers, before the request that changes the
//   object and again after it: from memory at once (an answer whose HEAD was in flight across
//   the change is not saved: a generation per directory prefix), and on disk by a tombstone, the
//   time of the change, which every later write of the directory's file keeps and which drops
//   every answer fetched before it. Mounts of the same bucket sharing `state_dir=` merge their
//   answers into the file under a `flock`, so one mount's answers fetched before another's
//   change cannot come back. The tombstone is written at once when the directory has a file,
//   else `writeDelay` later (a mount sharing the directory may hold answers in memory). Files
//   last written more than `saved_attr_timeout=` ago hold nothing usable: a mount removes them
//   when it starts. A rename of a directory (whose objects may keep ETag and Last-Modified: a
//   parallel file system bucket renames in place) drops every answer: a tombstone for the whole
//   bucket.
// - Names and prefixes are keyed byte for byte (ExactName): "café" in NFC and in NFD are two
//   files, each with its own answer. On disk a directory's answers are a list of names with
//   their answers (a JSON object's keys would be merged by `String` equality when read).
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
        /// One name of the directory with its answer.
        struct Entry: Codable {
            var name: String
            var answer: Answer
        }

        var prefix: String
        /// The last change a mount made in the directory (milliseconds since the epoch): answers
        /// fetched before it are dropped.
        var changedAt: Int64 = 0
        var entries: [Entry]

        init(prefix: ExactName, changedAt: Int64 = 0, answers: [ExactName: Answer]) {
            self.prefix = prefix.text
            self.changedAt = changedAt
            entries = answers.map { Entry(name: $0.key.text, answer: $0.value) }
        }

        /// The answers by name; of two entries with the same name (a file edited by hand) the
        /// later one.
        var answers: [ExactName: Answer] {
            Dictionary(entries.map { (ExactName($0.name), $0.answer) }, uniquingKeysWith: { $1 })
        }
    }

    /// What a save checks: that no change of this mount touched the directory since the HEAD
    /// was sent.
    struct Generation: Equatable {
        fileprivate let epoch: UInt64
        fileprivate let changes: UInt64
    }

    private struct Directory {
        var answers: [ExactName: Answer]
        var changed = false
        var lastUse: UInt64
    }

    private struct State {
        var directories: [ExactName: Directory] = [:]
        /// Changes this mount made per directory prefix; emptied (and `epoch` moved on) when it
        /// holds `changeCountLimit` prefixes.
        var changes: [ExactName: UInt64] = [:]
        var epoch: UInt64 = 0
        var uses: UInt64 = 0
        var writeScheduled = false
        /// Changes made here whose tombstone is not on disk yet, per prefix: their time.
        var tombstones: [ExactName: Int64] = [:]
        /// Prefixes whose file this mount left without answers (its last write dropped them all):
        /// a change there need not rewrite it at once.
        var answerless: Set<ExactName> = []

        func generation(of prefix: ExactName) -> Generation {
            Generation(epoch: epoch, changes: changes[prefix] ?? 0)
        }

        /// Whether the caller starts the delayed write (none is scheduled yet).
        mutating func scheduleWrite() -> Bool {
            defer { writeScheduled = true }
            return !writeScheduled
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
    /// Serialises the reads and writes of the files, within this process and (by a `flock` on
    /// `lockDescriptor`) with other mounts sharing the directory. Lock order: `files`, then
    /// `state`.
    private let files = Mutex(())
    /// `<directory>/lock`, open for the mount's lifetime.
    private let lockDescriptor: Int32

    /// `<stateDirectory>/attributes/<32 hex digits of SHA-256 over endpoint, bucket and prefix>`.
    public static func directory(stateDirectory: String, endpoint: String, bucket: BucketName, prefix: String) -> String {
        let digest = Hash.sha256(Array("\(endpoint)\n\(bucket.rawValue)\n\(prefix)".utf8))
        return stateDirectory + "/attributes/" + digest.prefix(16).hexString
    }

    /// Answers saved in `directory` (made, mode 0700, when missing).
    public init(directory: String, lifetime: Duration, logger: Logger, now: Timestamp = .now()) throws {
        try FileSystem.makeDirectories(directory, mode: 0o700)
        lockDescriptor = try FileSystem.open(directory + "/lock", O_RDWR | O_CREAT, mode: 0o600)
        self.directory = directory
        self.lifetime = lifetime
        self.logger = logger
        mountedAt = now
        removeExpiredFiles()
    }

    /// Removes the files (and temporary files left by a crash) last written more than
    /// `lifetime` ago: every answer in them is too old to be used.
    private func removeExpiredFiles() {
        let oldest = mountedAt.secondsSinceEpoch - lifetime.components.seconds
        for name in FileSystem.list(directory) where name.hasSuffix(".json") || name.contains(".json.tmp-") {
            let path = directory + "/" + name
            if let written = FileSystem.modificationTime(path), written.secondsSinceEpoch < oldest { FileSystem.remove(path) }
        }
    }

    deinit { Glibc.close(lockDescriptor) }

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
            return state.scheduleWrite()
        }
        if scheduleWrite { scheduleWriting() }
    }

    private func scheduleWriting() {
        Task {
            try? await Task.sleep(for: Self.writeDelay)
            writeChanged()
        }
    }

    /// This mount is changing, or changed, something directly in the directory of key prefix
    /// `prefix`: its answers are dropped, from memory and from disk, and HEADs in flight there
    /// are not saved.
    func forget(directoryPrefix text: String, now: Timestamp = .now()) {
        let prefix = ExactName(text)
        let (scheduleWrite, answerless) = state.withLock { state -> (Bool, Bool) in
            state.directories[prefix] = nil
            if state.changes.count >= Self.changeCountLimit, state.changes[prefix] == nil {
                state.changes = [:]
                state.epoch += 1
            }
            state.changes[prefix, default: 0] += 1
            state.tombstones[prefix] = now.millisecondsSinceEpoch
            return (state.scheduleWrite(), state.answerless.contains(prefix))
        }
        // A crash now must not leave the directory's answers on disk.
        if !answerless, FileSystem.exists(path(of: prefix)) { write(prefix) }
        if scheduleWrite { scheduleWriting() }
    }

    /// This mount renamed a directory: every answer saved so far may name an object that now
    /// sits elsewhere with its ETag and Last-Modified; none is used again.
    func forgetEverything(now: Timestamp = .now()) {
        files.withLock { _ in
            withDiskLock {
                state.withLock { state in
                    state.directories = [:]
                    state.changes = [:]
                    state.tombstones = [:]
                    state.epoch += 1
                }
                writeFile(Array("\(now.millisecondsSinceEpoch)\n".utf8), to: everythingChangedPath)
            }
        }
    }

    // MARK: Files

    /// Writes the directories whose answers changed since they were last written.
    public func writeChanged() {
        let changed = state.withLock { state -> Set<ExactName> in
            state.writeScheduled = false
            return Set(state.directories.filter(\.value.changed).map(\.key)).union(state.tombstones.keys)
        }
        for prefix in changed { write(prefix) }
    }

    /// Brings the answers of `prefix` into memory (none when a change of this mount dropped
    /// them while they were read), evicting the least recently used directory beyond
    /// `directoryCount`.
    private func loadIfNeeded(_ prefix: ExactName) {
        guard state.withLock({ $0.directories[prefix] == nil }) else { return }
        let before = state.withLock { $0.generation(of: prefix) }
        let loaded = files.withLock { _ in withDiskLock { read(prefix)?.answers ?? [:] } }
        let oldest = state.withLock { state -> ExactName? in
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

    /// The directory's file with the answers fetched before its last change, or before the
    /// bucket-wide one, left out; nil when there is none. Called under the disk lock.
    private func read(_ prefix: ExactName) -> DirectoryFile? {
        let path = path(of: prefix)
        guard FileSystem.exists(path) else { return nil }
        do {
            var file = try JSONDecoder().decode(DirectoryFile.self, from: Data(try FileSystem.readFile(path)))
            guard ExactName(file.prefix) == prefix else { return nil }
            file.changedAt = max(file.changedAt, everythingChangedAt())
            file.entries.removeAll { $0.answer.fetched <= file.changedAt }
            return file
        } catch {
            logger.warning("saved attributes \(path) cannot be read (\(error)); the names it held are asked for again")
            return nil
        }
    }

    /// Merges what this mount holds for `prefix` (answers saved since the last write, a change
    /// made since) into its file: the newer answer of a name wins, and answers fetched before
    /// the latest change are dropped.
    private func write(_ prefix: ExactName) {
        files.withLock { _ in
            withDiskLock {
                let (answers, tombstone) = state.withLock { state -> ([ExactName: Answer], Int64?) in
                    let changed = state.directories[prefix]?.changed == true
                    state.directories[prefix]?.changed = false
                    return (changed ? state.directories[prefix]?.answers ?? [:] : [:], state.tombstones.removeValue(forKey: prefix))
                }
                guard !answers.isEmpty || tombstone != nil else { return }
                let stored = read(prefix) ?? DirectoryFile(prefix: prefix, answers: [:])
                let changedAt = max(stored.changedAt, tombstone ?? 0)
                var merged = stored.answers
                for (name, answer) in answers where answer.fetched > changedAt && (merged[name]?.fetched ?? 0) < answer.fetched {
                    merged[name] = answer
                }
                let file = DirectoryFile(prefix: prefix, changedAt: changedAt, answers: merged.filter { $0.value.fetched > changedAt })
                state.withLock { state in
                    if file.entries.isEmpty {
                        if state.answerless.count >= Self.changeCountLimit { state.answerless = [] }
                        state.answerless.insert(prefix)
                    } else {
                        state.answerless.remove(prefix)
                    }
                }
                do {
                    writeFile(Array(try JSONEncoder().encode(file)), to: path(of: prefix))
                } catch {
                    logger.warning("saving attributes of \(prefix): \(error); the next mount asks for them again")
                }
            }
        }
    }

    /// Replaces `path` with `bytes` (temporary file, rename; not synced: a file lost in a crash
    /// costs HEADs). Called under the disk lock.
    private func writeFile(_ bytes: [UInt8], to path: String) {
        var generator = SystemRandomNumberGenerator()
        let suffix = ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max, using: &generator))"
        do {
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

    /// Runs `body` holding the `flock` that mounts sharing the directory take for its files.
    /// Called under `files`.
    private func withDiskLock<Result>(_ body: () -> Result) -> Result {
        let locked = FileSystem.retryingInterrupts { flock(lockDescriptor, LOCK_EX) } == 0
        defer { if locked { _ = flock(lockDescriptor, LOCK_UN) } }
        return body()
    }

    /// `<directory>/everything-changed`: when a mount last renamed a directory.
    private var everythingChangedPath: String { directory + "/everything-changed" }

    private func everythingChangedAt() -> Int64 {
        guard let bytes = try? FileSystem.readFile(everythingChangedPath) else { return 0 }
        return Int64(String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)) ?? 0
    }

    /// The file of `prefix`: a hash of its bytes, with the version of the files' format
    /// (files of an older format are never read, and expire).
    private func path(of prefix: ExactName) -> String {
        directory + "/" + Hash.sha256(Array("\(Self.formatVersion)\n\(prefix.text)".utf8)).prefix(16).hexString + ".json"
    }

    /// 2: answers as a list of entries (1 had a JSON object keyed by name).
    static let formatVersion = 2

    /// A key's directory prefix (up to its last `/`, empty at the top) and its name.
    static func split(_ key: ObjectKey) -> (prefix: ExactName, name: ExactName) {
        // By bytes: a name starting with a combining mark makes one Character with the `/`.
        let bytes = key.rawValue.utf8
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return (ExactName(""), ExactName(key.rawValue)) }
        return (ExactName(String(decoding: bytes[...slash], as: UTF8.self)),
                ExactName(String(decoding: bytes[bytes.index(after: slash)...], as: UTF8.self)))
    }
}
