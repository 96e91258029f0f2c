// HEAD answers saved for later mounts (Namespace/SavedHeadAnswers.swift): `ls -l` right after a
// mount sends no HEAD for names listed unchanged, and never shows what a change hid.
import Foundation
import Logging
import OBSProtocol
import Testing
@testable import ObsFS

@Suite("Saved HEAD answers")
struct SavedHeadAnswersTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("saved-heads-\(UUID().uuidString)").path

    func answers(lifetime: Duration = .seconds(900), now: Timestamp = .now()) throws -> SavedHeadAnswers {
        var logger = Logger(label: "saved-heads-test")
        logger.logLevel = .critical
        return try SavedHeadAnswers(directory: directory, lifetime: lifetime, logger: logger, now: now)
    }

    /// What `ls -l` does: a listing of `dir`, then a lookup of each name (with `plus`, the
    /// attributes come with the listing: readdirplus); the modes it shows and the HEADs it cost.
    func listLong(_ fs: ObsFileSystem, _ local: LocalOBS, plus: Bool = false) async throws -> (modes: [String: UInt32], heads: Int) {
        let dir = try await fs.lookup(parent: .root, name: "dir")
        // HEADs of the files in `dir` only: the lookup of `dir` itself may answer (from its
        // listing) before its own HEADs of `dir`, `dir/` and `dir_$folder$` are logged.
        func fileHeads() throws -> Int {
            try local.requests().filter { $0["operation"] as? String == "HeadObject" && ($0["key"] as? String).map { $0.hasPrefix("dir/") && $0 != "dir/" } == true }.count
        }
        let before = try fileHeads()
        let handle = try fs.openDirectory(dir.inode)
        defer { fs.releaseDirectory(handle) }
        var modes: [String: UInt32] = [:]
        var offset: Int64 = 0
        while let last = try await fs.readDirectory(handle, directory: dir.inode, from: offset, plus: plus).last {
            for entry in try await fs.readDirectory(handle, directory: dir.inode, from: offset, plus: plus) where entry.name != "." && entry.name != ".." {
                let attributes = if plus { try #require(fs.entryAttributes(entry, in: dir.inode)) } else { try await fs.lookup(parent: dir.inode, name: entry.name) }
                modes[entry.name] = attributes.mode & 0o7777
            }
            offset = last.cookie
        }
        let heads = try fileHeads() - before
        return (modes, heads)
    }

    func put(_ local: LocalOBS, _ name: String, mode: UInt32, bytes: [UInt8] = Array("same bytes".utf8)) async throws {
        var options = ObjectOptions()
        var posix = PosixMetadata()
        posix.permissions = mode
        posix.write(into: &options.metadata, kind: .regular)
        _ = try await local.store.putObject(ObjectKey("dir/\(name)"), bytes: bytes, options: options)
    }

    @Test func aMountAfterAnotherListsUnchangedNamesWithoutHeadsAndChangedOnesFresh() async throws {
        let local = try LocalOBS()
        defer { local.stop(); try? FileManager.default.removeItem(atPath: directory) }
        for index in 0..<20 { try await put(local, "f\(index)", mode: 0o600) }
        try await Task.sleep(for: .milliseconds(2100))  // answers fetched sooner after a change are not saved

        let first = makeFileSystem(local.store, savedHeads: try answers())
        let seen = try await listLong(first, local)
        #expect(seen.modes == Dictionary(uniqueKeysWithValues: (0..<20).map { ("f\($0)", UInt32(0o600)) }))
        #expect(seen.heads >= 20)
        await first.shutdown()

        let second = makeFileSystem(local.store, savedHeads: try answers())
        let remounted = try await listLong(second, local)
        #expect(remounted.modes == seen.modes)
        #expect(remounted.heads == 0)
        await second.shutdown()

        // Another client writes f1 again with other metadata (same bytes, same ETag, a later
        // Last-Modified), and replaces f2's bytes: both are asked for, the others are not.
        try await Task.sleep(for: .milliseconds(1100))
        try await put(local, "f1", mode: 0o644)
        try await put(local, "f2", mode: 0o640, bytes: Array("other bytes".utf8))
        try await Task.sleep(for: .milliseconds(2100))
        let third = makeFileSystem(local.store, savedHeads: try answers())
        let changed = try await listLong(third, local, plus: true)
        #expect(changed.modes["f1"] == 0o644)
        #expect(changed.modes["f2"] == 0o640)
        #expect(changed.modes["f3"] == 0o600)
        #expect(changed.heads == 2)

        // This mount's own chmod keeps ETag and Last-Modified on OBS (modify metadata): the
        // answers of the directory are dropped, so the next mount does not show the old mode.
        let dir = try await third.lookup(parent: .root, name: "dir")
        let f3 = try await third.lookup(parent: dir.inode, name: "f3")
        _ = try await third.setattr(f3.inode, AttributeChanges(permissions: 0o604))
        await third.shutdown()
        let fourth = makeFileSystem(local.store, savedHeads: try answers())
        let afterChmod = try await listLong(fourth, local)
        #expect(afterChmod.modes["f3"] == 0o604)
        #expect(afterChmod.heads >= 20)
        await fourth.shutdown()
    }

    @Test func namesThatAreCanonicallyEquivalentKeepTheirOwnAnswers() throws {
        // "café" in NFC and in NFD are two files with one ETag (same bytes, same second): each
        // keeps its own mode, in memory and in the file a later mount reads. Keyed by `String`,
        // the second answer replaced the first for both names.
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let keys = [ObjectKey("dir/caf\u{E9}"), ObjectKey("dir/cafe\u{301}")]
        let listed = ObjectAttributes(size: 3, etag: ETag("abc"), lastModified: Timestamp(secondsSinceEpoch: 1_000))
        let saving = try answers(lifetime: .seconds(60), now: Timestamp(secondsSinceEpoch: 2_000))
        for (key, mode) in zip(keys, ["33188", "33216"]) {
            var head = listed
            head.metadata = ["mode": mode]
            saving.save(head, for: key, generation: saving.generation(of: key), now: Timestamp(secondsSinceEpoch: 2_000))
        }
        saving.writeChanged()
        let later = try answers(lifetime: .seconds(60), now: Timestamp(secondsSinceEpoch: 2_010))
        let modes = keys.map { later.answer(for: $0, listed: listed, now: Timestamp(secondsSinceEpoch: 2_010))?.metadata["mode"] }
        #expect(modes == ["33188", "33216"])
    }

    @Test func answersAreUsedOnlyByLaterMountsWithinTheirLifetimeAndNotAcrossAChange() throws {
        let key = ObjectKey("dir/f")
        let head = ObjectAttributes(size: 3, etag: ETag("abc"), lastModified: Timestamp(secondsSinceEpoch: 1_000),
                                    metadata: ["mode": "33188"], contentType: "text/plain")
        let listed = ObjectAttributes(size: 3, etag: ETag("abc"), lastModified: Timestamp(millisecondsSinceEpoch: 1_000_250))
        let start = Timestamp(secondsSinceEpoch: 2_000)
        let saving = try answers(lifetime: .seconds(60), now: start)
        saving.save(head, for: key, generation: saving.generation(of: key), now: Timestamp(secondsSinceEpoch: 1_001))  // too soon after the change
        saving.writeChanged()
        #expect(try answers(now: Timestamp(secondsSinceEpoch: 1_500)).answer(for: key, listed: listed, now: Timestamp(secondsSinceEpoch: 1_500)) == nil)
        saving.save(head, for: key, generation: saving.generation(of: key), now: start)
        #expect(saving.answer(for: key, listed: listed, now: start) == nil)  // this mount's own: never used by it
        saving.writeChanged()

        let later = try answers(lifetime: .seconds(60), now: Timestamp(secondsSinceEpoch: 2_010))
        #expect(later.answer(for: key, listed: listed, now: Timestamp(secondsSinceEpoch: 2_010))?.metadata == ["mode": "33188"])
        #expect(later.answer(for: key, listed: listed, now: Timestamp(secondsSinceEpoch: 2_061)) == nil)  // too old
        var other = listed
        other.lastModified = Timestamp(secondsSinceEpoch: 1_001)
        #expect(later.answer(for: key, listed: other, now: Timestamp(secondsSinceEpoch: 2_010)) == nil)
        other = listed
        other.size = 4
        #expect(later.answer(for: key, listed: other, now: Timestamp(secondsSinceEpoch: 2_010)) == nil)

        // A HEAD in flight across a change of this mount in the directory is not saved.
        let generation = later.generation(of: key)
        later.forget(directoryPrefix: "dir/")
        later.save(head, for: key, generation: generation, now: Timestamp(secondsSinceEpoch: 2_011))
        later.writeChanged()
        let last = try answers(lifetime: .seconds(60), now: Timestamp(secondsSinceEpoch: 2_020))
        #expect(last.answer(for: key, listed: listed, now: Timestamp(secondsSinceEpoch: 2_020)) == nil)
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test func filesLastWrittenBeyondTheLifetimeAreRemovedWhenAMountStarts() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = ObjectKey("dir/f")
        let head = ObjectAttributes(size: 3, etag: ETag("abc"), lastModified: Timestamp(secondsSinceEpoch: 1_000), metadata: [:])
        let first = try answers(lifetime: .seconds(60))
        first.save(head, for: key, generation: first.generation(of: key))
        first.writeChanged()
        let files = { try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") } }
        #expect(try files().count == 1)
        _ = try answers(lifetime: .seconds(60))  // written just now: kept
        #expect(try files().count == 1)
        _ = try answers(lifetime: .seconds(60), now: Timestamp(secondsSinceEpoch: Timestamp.now().secondsSinceEpoch + 120))
        #expect(try files().isEmpty)
    }

    @Test func aChangeByOneMountDropsTheAnswersAnotherMountSharingTheDirectoryHolds() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = ObjectKey("dir/f"), other = ObjectKey("dir/g")
        let head = ObjectAttributes(size: 3, etag: ETag("abc"), lastModified: Timestamp(secondsSinceEpoch: 1_000), metadata: ["mode": "33188"])
        let listed = ObjectAttributes(size: 3, etag: ETag("abc"), lastModified: Timestamp(secondsSinceEpoch: 1_000))
        // Two mounts of the bucket at once. B fetches f; A changes f's mode (OBS keeps ETag and
        // Last-Modified) and drops the directory's answers; B then writes what it holds.
        let a = try answers(now: Timestamp(secondsSinceEpoch: 2_000))
        let b = try answers(now: Timestamp(secondsSinceEpoch: 2_000))
        b.save(head, for: key, generation: b.generation(of: key), now: Timestamp(secondsSinceEpoch: 2_001))
        a.forget(directoryPrefix: "dir/", now: Timestamp(secondsSinceEpoch: 2_002))
        a.writeChanged()
        b.save(head, for: other, generation: b.generation(of: other), now: Timestamp(secondsSinceEpoch: 2_003))
        b.writeChanged()
        let later = try answers(now: Timestamp(secondsSinceEpoch: 2_100))
        #expect(later.answer(for: key, listed: listed, now: Timestamp(secondsSinceEpoch: 2_100)) == nil)
        #expect(later.answer(for: other, listed: listed, now: Timestamp(secondsSinceEpoch: 2_100)) != nil)  // fetched after the change

        // A directory renamed (in place on a parallel file system bucket): nothing saved before is used.
        later.forgetEverything(now: Timestamp(secondsSinceEpoch: 2_101))
        let last = try answers(now: Timestamp(secondsSinceEpoch: 2_200))
        #expect(last.answer(for: other, listed: listed, now: Timestamp(secondsSinceEpoch: 2_200)) == nil)
    }
}
