// Changes to existing objects through open files (Compose/ModifySession.swift): the changed
// ranges against a reference model, read-your-writes, composition at the opener's flush with
// unchanged ranges copied, truncate of a closed object.
#if canImport(Glibc)
import Glibc
#endif
import OBSProtocol
import Synchronization
import Testing
@testable import ObsFS

struct ModifyTests {
    /// Another process's `>> f` of `bytes`: opened O_APPEND, written where the kernel puts it
    /// (`offset`, the size it knows), closed.
    func appendAsAnotherProcess(_ fs: ObsFileSystem, _ inode: InodeNumber, at offset: Int64, _ bytes: [UInt8]) async throws {
        let appending = try await fs.open(inode, flags: O_WRONLY | O_APPEND).handle
        #expect(await fs.write(appending, at: offset, bytes: bytes, writer: WriterIdentity(8), process: ProcessID(8), appending: true).count == bytes.count)
        try await fs.flush(appending, writer: WriterIdentity(8))
        await fs.release(appending)
    }

    @Test func changedRangesMatchAReferenceModel() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var changes = ChangedRanges()
            var reference = [UInt8?](repeating: nil, count: 400)
            for _ in 0..<Int.random(in: 1...12, using: &generator) {
                let offset = Int.random(in: 0..<380, using: &generator)
                let bytes = (0..<Int.random(in: 1...20, using: &generator)).map { _ in UInt8.random(in: 1...255, using: &generator) }
                bytes.withUnsafeBytes { changes.write($0, at: Int64(offset)) }
                for (index, byte) in bytes.enumerated() { reference[offset + index] = byte }
            }
            var seen = [UInt8](repeating: 0, count: 400)
            changes.overlay(0..<400, on: &seen)
            #expect(seen == reference.map { $0 ?? 0 })
            #expect(changes.byteCount == reference.filter { $0 != nil }.count)
            #expect(changes.byteCount == changes.runs.reduce(0) { $0 + $1.bytes.count })
            // Runs are sorted and never overlap; the ranges join the runs that touch.
            #expect(zip(changes.runs, changes.runs.dropFirst()).allSatisfy { $0.end <= $1.offset })
            #expect(zip(changes.ranges, changes.ranges.dropFirst()).allSatisfy { $0.upperBound < $1.lowerBound })
            #expect(changes.ranges.flatMap { Array($0) } == reference.indices.filter { reference[$0] != nil }.map(Int64.init))
        }
    }

    /// What a composition stored is removed; a range written again while it ran stays, whole.
    @Test func removingWhatACompositionStoredKeepsWhatWasWrittenSince() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var changes = ChangedRanges()
            var reference = [UInt8?](repeating: nil, count: 400)
            func write(_ bytes: [UInt8], at offset: Int) {
                bytes.withUnsafeBytes { changes.write($0, at: Int64(offset)) }
                for (index, byte) in bytes.enumerated() { reference[offset + index] = byte }
            }
            func randomWrite() {
                let offset = Int.random(in: 0..<380, using: &generator)
                write((0..<Int.random(in: 1...20, using: &generator)).map { _ in UInt8.random(in: 1...255, using: &generator) }, at: offset)
            }
            for _ in 0..<Int.random(in: 1...12, using: &generator) { randomWrite() }
            let committed = changes
            let committedReference = reference
            for _ in 0..<Int.random(in: 0...4, using: &generator) { randomWrite() }
            changes.remove(committed)
            // Kept: every byte of a committed range that changed since, and what lies outside.
            var expected = [UInt8?](repeating: nil, count: 400)
            for range in committed.ranges {
                let span = Int(range.lowerBound)..<Int(range.upperBound)
                if span.contains(where: { reference[$0] != committedReference[$0] }) {
                    for index in span { expected[index] = reference[index] }
                }
            }
            for index in reference.indices where committedReference[index] == nil { expected[index] = reference[index] }
            var seen = [UInt8](repeating: 0, count: 400)
            changes.overlay(0..<400, on: &seen)
            #expect(seen == expected.map { $0 ?? 0 })
            #expect(changes.byteCount == expected.filter { $0 != nil }.count)
        }
    }

    /// Sequential writes over a large range (bonnie++'s rewrite, `dd conv=notrunc`) grow runs in
    /// place: 64 MiB of 8 KiB writes is a few runs, not a union copied at every write.
    @Test func sequentialWritesGrowRunsInPlace() {
        var changes = ChangedRanges()
        let block = [UInt8](repeating: 7, count: 8192)
        for index in 0..<8192 { block.withUnsafeBytes { changes.write($0, at: Int64(index * 8192)) } }
        #expect(changes.byteCount == 64 << 20)
        #expect(changes.runs.count == (64 << 20) / ChangedRanges.runCapacity)
        #expect(changes.ranges == [0..<Int64(64 << 20)])
    }

    @Test func appendAndInPlaceWritesAreComposedAtTheOpenersFlush() async throws {
        let store = InMemoryStore()
        let base = pattern(3 * Int(minimumPart) + 1234)
        store.seed("f", base)
        let fs = makeFileSystem(store)
        let file = try await fs.lookup(parent: .root, name: "f")
        let opener = ProcessID(55)
        let handle = try await fs.open(file.inode, flags: O_RDWR, opener: opener).handle
        let middle = Int64(minimumPart) + 10
        #expect(await fs.write(handle, at: middle, bytes: [1, 2, 3], writer: WriterIdentity(5), process: opener).count == 3)
        let tail = pattern(500, seed: 9)
        #expect(await fs.write(handle, at: Int64(base.count), bytes: tail, writer: WriterIdentity(5), process: opener).count == 500)
        var expected = base
        expected.replaceSubrange(Int(middle)..<Int(middle) + 3, with: [1, 2, 3])
        expected += tail
        // Read-your-writes before anything is stored; stat shows the new size.
        #expect(try await fs.read(handle, at: middle - 2, count: 7).gathered() == Array(expected[Int(middle) - 2..<Int(middle) + 5]))
        #expect(try await fs.getattr(file.inode).size == Int64(expected.count))
        #expect(store.object("f") == base)
        try await fs.flush(handle, writer: WriterIdentity(9), process: ProcessID(77))  // a child's close: nothing yet
        #expect(store.object("f") == base)
        try await fs.flush(handle, writer: WriterIdentity(5), process: opener)
        #expect(store.object("f") == expected)
        #expect(store.contents.withLock { $0.copyCalls } >= 1)  // unchanged ranges copied on the server
        await fs.release(handle)
        #expect(store.uploadsInProgress == 0)
    }

    /// A write over the change budget composes what is held, then is tried again, and again
    /// while other writes filled the budget meanwhile (the kernel's writeback with
    /// `writeback_cache` sends many at once). It answered ENOMEM ("one write larger than the
    /// change budget") when the budget was full again after its composition, and the bytes were
    /// lost with close() returning 0 (helper's fsx runs with `writeback_cache,memory_budget=1M`).
    @Test func aWriteOverTheChangeBudgetIsTakenWhenOthersFilledItDuringTheComposition() async throws {
        let inner = InMemoryStore()
        let base = pattern(Int(2 * MiB))
        inner.seed("f", base)
        let faults = FaultInjectingStore(inner)
        let fs = makeFileSystem(faults, budget: 4 * MiB)  // a change budget of 1 MiB
        let file = try await fs.lookup(parent: .root, name: "f")
        let handle = try await fs.open(file.inode, flags: O_RDWR).handle
        let first = pattern(700 << 10, seed: 2), large = pattern(800 << 10, seed: 3), small = pattern(300 << 10, seed: 4)
        _ = try await write(fs, handle, at: 0, first).get()
        faults.holdParts()
        let overBudget = Task { await write(fs, handle, at: Int64(first.count), large) }  // composes `first`
        #expect(try await eventually { faults.heldPartCount > 0 })
        _ = try await write(fs, handle, at: Int64(first.count + large.count), small).get()  // fits beside `first`
        faults.release(.uploadPart)
        #expect(try await overBudget.value.get() == large.count)  // `small` alone leaves no room for it
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(inner.object("f") == first + large + small + Array(base[(first.count + large.count + small.count)...]))
    }

    /// Two processes changing one file (bonnie++'s seekers, a database opened twice): one set of
    /// changes, each reading the other's writes, each close storing all written so far, nothing
    /// refused for a changed ETag.
    @Test func descriptorsChangingOneFileShareTheirChanges() async throws {
        let store = InMemoryStore()
        let base = pattern(3 * Int(minimumPart))
        store.seed("db", base)
        let fs = makeFileSystem(store)
        let file = try await fs.lookup(parent: .root, name: "db")
        let (first, second) = (ProcessID(61), ProcessID(62))
        let one = try await fs.open(file.inode, flags: O_RDWR, opener: first).handle
        let other = try await fs.open(file.inode, flags: O_RDWR, opener: second).handle
        #expect(await fs.write(one, at: 10, bytes: [1, 1], writer: WriterIdentity(1), process: first).count == 2)
        #expect(await fs.write(other, at: 20, bytes: [2, 2], writer: WriterIdentity(2), process: second).count == 2)
        #expect(try await fs.read(other, at: 10, count: 2).gathered() == [1, 1])
        #expect(try await fs.read(one, at: 20, count: 2).gathered() == [2, 2])
        var expected = base
        expected.replaceSubrange(10..<12, with: [1, 1])
        expected.replaceSubrange(20..<22, with: [2, 2])
        try await fs.flush(one, writer: WriterIdentity(1), process: first)
        #expect(store.object("db") == expected)
        await fs.release(one)
        #expect(await fs.write(other, at: 30, bytes: [3], writer: WriterIdentity(2), process: second).count == 1)
        #expect(try await fs.read(other, at: 10, count: 2).gathered() == [1, 1])  // the base it shares moved on
        try await fs.flush(other, writer: WriterIdentity(2), process: second)
        await fs.release(other)
        expected[30] = 3
        #expect(store.object("db") == expected)
        // A later open starts over the stored object.
        let again = try await fs.open(file.inode, flags: O_RDWR, opener: first).handle
        #expect(try await fs.read(again, at: 30, count: 1).gathered() == [3])
        await fs.release(again)
    }

    @Test func truncateOfAClosedObjectUpAndDown() async throws {
        let store = InMemoryStore()
        let base = pattern(Int(minimumPart) * 2 + 7)
        store.seed("t", base)
        let fs = makeFileSystem(store)
        let file = try await fs.lookup(parent: .root, name: "t")
        #expect(try await fs.setattr(file.inode, AttributeChanges(size: 100)).size == 100)
        #expect(store.object("t") == Array(base[0..<100]))
        #expect(try await fs.setattr(file.inode, AttributeChanges(size: 300)).size == 300)
        #expect(store.object("t") == Array(base[0..<100]) + [UInt8](repeating: 0, count: 200))
        // To 0: an empty object that keeps the metadata.
        store.seed("m", [1, 2, 3], metadata: ["mode": "33216"])
        let kept = try await fs.lookup(parent: .root, name: "m")
        #expect(try await fs.setattr(kept.inode, AttributeChanges(size: 0)).size == 0)
        #expect(store.object("m") == [])
        #expect(store.contents.withLock { $0.written[ObjectKey("m")]?.metadata["mode"] } == "33216")
    }

    /// Linux truncates on `open(O_RDONLY | O_TRUNC)`; the descriptor then reads the empty file.
    @Test func aReadOnlyOpenWithTruncateEmptiesTheFile() async throws {
        let store = InMemoryStore()
        store.seed("t", pattern(5000))
        let fs = makeFileSystem(store)
        let file = try await fs.lookup(parent: .root, name: "t")
        let reading = try await fs.open(file.inode, flags: O_RDONLY | O_TRUNC).handle
        #expect(try await fs.read(reading, at: 0, count: 100).gathered().isEmpty)
        await fs.release(reading)
        #expect(store.object("t") == [])
        #expect(try await fs.getattr(file.inode).size == 0)
    }

    @Test func theModificationTimeShownAfterAChangeIsTheOneStored() async throws {
        // The mount showed the time its commit finished, the object kept the one it composed
        // with: stat moved back a few milliseconds once the attributes expired.
        let store = InMemoryStore()
        store.seed("t", pattern(1000))
        let fs = makeFileSystem(store, attributeTimeout: .zero)
        let file = try await fs.lookup(parent: .root, name: "t")
        let handle = try await fs.open(file.inode, flags: O_WRONLY).handle
        _ = try await write(fs, handle, at: 10, [1, 2, 3]).get()
        try await fs.flush(handle, writer: WriterIdentity(7))
        let shown = try await fs.getattr(file.inode).modified
        await fs.release(handle)
        let stored = try #require(store.contents.withLock { $0.written[ObjectKey("t")]?.metadata["mtime"] })
        #expect(shown.description == stored)
        #expect(try await fs.getattr(file.inode).modified == shown)  // asked of the store again
    }

    /// While open for changes the file shows the time of its last write, as a local disk does,
    /// and its object stores that time: `stat` before the close showed the old mtime, which the
    /// kernel kept for `attr_timeout` after the close (make, rsync saw no change). A `utimens`
    /// while open sets the mtime that is stored.
    @Test func aFileOpenForChangesShowsAndStoresTheTimeOfItsLastWrite() async throws {
        let local = try LocalOBS()
        defer { local.stop() }
        let old = FileTime(seconds: 5)
        var options = ObjectOptions()
        options.metadata = ["mtime": old.description]
        _ = try await local.store.putObject(ObjectKey("t"), bytes: pattern(1000), options: options)
        func stored() async throws -> String? { try await local.store.headObject(ObjectKey("t"))?.metadata["mtime"] }
        let fs = makeFileSystem(local.store)
        let file = try await fs.lookup(parent: .root, name: "t")
        #expect(file.modified == old)
        let before = FileTime.now()
        let handle = try await fs.open(file.inode, flags: O_RDWR).handle
        _ = try await write(fs, handle, at: 10, [1, 2, 3]).get()
        let shown = try await fs.getattr(file.inode)
        #expect(shown.modified >= before && shown.changed >= before)
        await fs.release(handle)
        #expect(try await stored() == shown.modified.description)
        #expect(try await fs.getattr(file.inode).modified == shown.modified)
        // touch -m -d while open, after the writes: that time is stored.
        let set = FileTime(seconds: 7)
        let again = try await fs.open(file.inode, flags: O_RDWR).handle
        _ = try await write(fs, again, at: 0, [9]).get()
        _ = try await fs.setattr(file.inode, AttributeChanges(modified: set))
        #expect(try await fs.getattr(file.inode).modified == set)
        await fs.release(again)
        #expect(try await stored() == set.description)
        #expect(try await fs.getattr(file.inode).modified == set)
    }

    @Test func aTruncateBeyondTheLargestObjectIsRefusedWithEFBIGBeforeAnyPlan() async throws {
        // 2^62 planned millions of parts in memory until the daemon was killed; 2^50 answered EIO.
        let store = InMemoryStore()
        store.seed("t", [1, 2, 3])
        let fs = makeFileSystem(store)
        let file = try await fs.lookup(parent: .root, name: "t")
        let largest = fs.configuration.upload.schedule.reach
        for size in [largest + 1, 1 << 50, 1 << 62] {
            #expect(await errno { _ = try await fs.setattr(file.inode, AttributeChanges(size: size)) } == .fileTooBig)
        }
        #expect(store.object("t") == [1, 2, 3])
        #expect(try await fs.getattr(file.inode).size == 3)
        // Open for changes, or being streamed, the same.
        let changing = try await fs.open(file.inode, flags: O_RDWR).handle
        #expect(await errno { _ = try await fs.setattr(file.inode, AttributeChanges(size: 1 << 62)) } == .fileTooBig)
        await fs.release(changing)
        let (created, streaming) = try await fs.create(parent: .root, name: "new")
        #expect(await errno { _ = try await fs.setattr(created.inode, AttributeChanges(size: largest + 1)) } == .fileTooBig)
        await fs.release(streaming)
        #expect(store.object("t") == [1, 2, 3])
        #expect(store.object("new") == [])
    }

    @Test func metadataChangesBeforeAndDuringAnAppendAreKept() async throws {
        // `chmod 755 x; echo b >> x` stored the mode this mount first wrote (0644): the composed
        // object took its options from the upload, not from the chmod since. A chmod while the
        // file was open for changes was lost at its close the same way.
        let store = AttributeKeepingStore()
        let fs = makeFileSystem(store)
        let (created, handle) = try await fs.create(parent: .root, name: "x")
        _ = try await write(fs, handle, at: 0, [1]).get()
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        _ = try await fs.setattr(created.inode, AttributeChanges(permissions: 0o755))
        let appending = try await fs.open(created.inode, flags: O_WRONLY | O_APPEND)
        _ = try await write(fs, appending.handle, at: 1, [2]).get()
        _ = try await fs.setattr(created.inode, AttributeChanges(uid: 42))
        try await fs.flush(appending.handle, writer: WriterIdentity(7))
        await fs.release(appending.handle)
        #expect(store.inner.object("x") == [1, 2])
        #expect(store.options("x")?.metadata["mode"] == String(UInt32(S_IFREG) | 0o755))
        #expect(store.options("x")?.metadata["uid"] == "42")
    }

    @Test func anAppendKeepsTheMetadataAnotherClientSetSinceThisMountWroteTheFile() async throws {
        // Another client's chmod and setfattr (same ETag on OBS) were reverted by `echo b >> x`
        // through the mount that wrote x: the composition took the options it had written.
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (created, handle) = try await fs.create(parent: .root, name: "x")
        _ = try await write(fs, handle, at: 0, [1]).get()
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        let changedMode = String(UInt32(S_IFREG) | 0o600)
        store.contents.withLock { contents in
            contents.written[ObjectKey("x")]?.metadata["mode"] = changedMode
            contents.written[ObjectKey("x")]?.metadata["other"] = "kept"
        }
        let appending = try await fs.open(created.inode, flags: O_WRONLY | O_APPEND)
        _ = try await write(fs, appending.handle, at: 1, [2]).get()
        try await fs.flush(appending.handle, writer: WriterIdentity(7))
        await fs.release(appending.handle)
        #expect(store.object("x") == [1, 2])
        let stored = store.contents.withLock { $0.written[ObjectKey("x")]?.metadata }
        #expect(stored?["mode"] == changedMode)
        #expect(stored?["other"] == "kept")
    }

    @Test func aLengthSetWhileStreamedHoldsForAnotherDescriptorsAppend() async throws {
        // open(O_RDWR) of an empty file, ftruncate(N), then another descriptor's O_APPEND write:
        // the bytes landed at offset 0 and the file kept N bytes.
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (created, first) = try await fs.create(parent: .root, name: "f")
        try await fs.flush(first, writer: WriterIdentity(7))
        await fs.release(first)
        let writing = try await fs.open(created.inode, flags: O_RDWR).handle
        _ = try await fs.setattr(created.inode, AttributeChanges(size: 1000))
        let tail = Array("TAIL".utf8)
        try await appendAsAnotherProcess(fs, created.inode, at: 0, tail)
        #expect(try await fs.read(writing, at: 990, count: 100).gathered() == [UInt8](repeating: 0, count: 10) + tail)
        try await fs.flush(writing, writer: WriterIdentity(7))
        await fs.release(writing)
        #expect(store.object("f") == [UInt8](repeating: 0, count: 1000) + tail)
    }

    @Test(arguments: [0, 10])
    func aLengthSetAheadOfAStreamedFileSurvivesAReadOnlyDescriptorsRelease(written: Int) async throws {
        // open(O_CREAT|O_WRONLY|O_TRUNC), ftruncate(100000), close(open(O_RDONLY)), close: the
        // read-only descriptor's release dropped the length, and the object was stored with
        // what was written only (found by a helper's stress run).
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (created, writing) = try await fs.create(parent: .root, name: "f")
        let head = pattern(written)
        if written > 0 { _ = try await write(fs, writing, at: 0, head).get() }
        _ = try await fs.setattr(created.inode, AttributeChanges(size: 100_000))
        let reader = try await fs.open(created.inode, flags: O_RDONLY).handle
        try await fs.flush(reader, writer: WriterIdentity(7))
        await fs.release(reader)
        try await fs.flush(writing, writer: WriterIdentity(7))
        await fs.release(writing)
        #expect(store.object("f") == head + [UInt8](repeating: 0, count: 100_000 - written))
        #expect(try await fs.getattr(created.inode).size == 100_000)
    }

    @Test func aLengthSetAheadOfAStreamedFileHoldsWhenAnotherDescriptorJoinsIt() async throws {
        // A new file: 4 bytes written, fallocate/ftruncate to 1000 (held until the next flush),
        // then another descriptor's O_APPEND open joins it by composition: "TAIL" went to offset
        // 4 and the file kept 1000 bytes.
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (created, writing) = try await fs.create(parent: .root, name: "f")
        _ = try await write(fs, writing, at: 0, Array("head".utf8)).get()
        _ = try await fs.setattr(created.inode, AttributeChanges(size: 1000))
        let tail = Array("TAIL".utf8)
        try await appendAsAnotherProcess(fs, created.inode, at: 4, tail)
        try await fs.flush(writing, writer: WriterIdentity(7))
        await fs.release(writing)
        #expect(store.object("f") == Array("head".utf8) + [UInt8](repeating: 0, count: 996) + tail)
    }

    @Test func writesAfterTheOpenersCloseContinueTheFile() async throws {
        // `exec 3>f; echo a >&3; echo b >&3`: the copy's close completes, the next write goes on.
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let shell = ProcessID(100)
        let (_, handle) = try await fs.create(parent: .root, name: "f", mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: shell))
        #expect(await fs.write(handle, at: 0, bytes: Array("a\n".utf8), writer: WriterIdentity(1), process: shell).count == 2)
        try await fs.flush(handle, writer: WriterIdentity(1), process: shell)
        #expect(store.object("f") == Array("a\n".utf8))
        #expect(await fs.write(handle, at: 2, bytes: Array("b\n".utf8), writer: WriterIdentity(1), process: shell).count == 2)
        try await fs.flush(handle, writer: WriterIdentity(1), process: shell)
        #expect(store.object("f") == Array("a\nb\n".utf8))
        await fs.release(handle)
    }

    @Test func theWriterOfANewFileReadsItBackAndGoesOn() async throws {
        // A database creating its file: write, read back, write more, close.
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let process = ProcessID(31)
        let (_, handle) = try await fs.create(parent: .root, name: "db", mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: process))
        #expect(try await fs.read(handle, at: 0, count: 100).gathered() == [])  // nothing written yet: end of file
        let page = pattern(4096)
        #expect(await fs.write(handle, at: 0, bytes: page, writer: WriterIdentity(3), process: process).count == 4096)
        #expect(try await fs.read(handle, at: 0, count: 4096).gathered() == page)
        let second = pattern(4096, seed: 5)
        #expect(await fs.write(handle, at: 8192, bytes: second, writer: WriterIdentity(3), process: process).count == 4096)
        #expect(await fs.write(handle, at: 0, bytes: [9], writer: WriterIdentity(3), process: process).count == 1)
        try await fs.fsync(handle)
        try await fs.flush(handle, writer: WriterIdentity(3), process: process)
        await fs.release(handle)
        var expected = page + [UInt8](repeating: 0, count: 4096) + second
        expected[0] = 9
        #expect(store.object("db") == expected)
        #expect(store.uploadsInProgress == 0)
    }

    @Test func anotherDescriptorReadsAFileBeingStreamedAndTheWriterGoesOn() async throws {
        // `cmd > log` beside `tail -f log`: readers opened before and after the writing began
        // read what was written (it was EBUSY until the close), and the writer loses nothing.
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let process = ProcessID(32)
        let (created, writer) = try await fs.create(parent: .root, name: "log", mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: process))
        let early = try await fs.open(created.inode, flags: O_RDONLY).handle
        #expect(try await fs.read(early, at: 0, count: 100).gathered() == [])  // nothing written yet
        let first = pattern(3000)
        #expect(await fs.write(writer, at: 0, bytes: first, writer: WriterIdentity(3), process: process).count == 3000)
        let late = try await fs.open(created.inode, flags: O_RDONLY).handle
        #expect(try await fs.read(late, at: 0, count: 4096).gathered() == first)
        #expect(store.object("log") == first)  // completed as it stands
        let second = pattern(2000, seed: 9)
        #expect(await fs.write(writer, at: 3000, bytes: second, writer: WriterIdentity(3), process: process).count == 2000)
        #expect(try await fs.read(early, at: 0, count: 8192).gathered() == first + second)
        #expect(try await fs.read(late, at: 3000, count: 8192).gathered() == second)
        try await fs.flush(writer, writer: WriterIdentity(3), process: process)
        await fs.release(writer)
        #expect(store.object("log") == first + second)
        #expect(try await fs.read(late, at: 0, count: 8192).gathered() == first + second)
        await fs.release(early)
        await fs.release(late)
        #expect(store.uploadsInProgress == 0)

        // So does a descriptor opened on the version an O_TRUNC stream replaces, as on a local
        // disk (helper-50: it read on in the old version, `tail -f` beside `cmd > log` printed
        // the old lines, and a read after another descriptor's append answered EIO).
        store.seed("old", Array("previous version".utf8))
        let replaced = try await fs.lookup(parent: .root, name: "old").inode
        let before = try await fs.open(replaced, flags: O_RDONLY).handle
        let rewriting = try await fs.open(replaced, flags: O_WRONLY | O_TRUNC, opener: process).handle
        #expect(try await fs.read(before, at: 0, count: 100).gathered() == [])  // nothing written yet
        #expect(await fs.write(rewriting, at: 0, bytes: first, writer: WriterIdentity(3), process: process).count == 3000)
        #expect(try await fs.read(before, at: 0, count: 4096).gathered() == first)
        #expect(store.object("old") == first)  // completed as it stands
        #expect(await fs.write(rewriting, at: 3000, bytes: second, writer: WriterIdentity(3), process: process).count == 2000)
        #expect(try await fs.read(before, at: 3000, count: 4096).gathered() == second)
        try await fs.flush(rewriting, writer: WriterIdentity(3), process: process)
        await fs.release(rewriting)
        #expect(store.object("old") == first + second)
        #expect(try await fs.read(before, at: 0, count: 8192).gathered() == first + second)
        await fs.release(before)
        #expect(store.uploadsInProgress == 0)
    }
}

extension ModifyTests {
    /// `exec 3>f; /bin/true; echo a >> f; echo b >&3`: a child's close of the inherited new file
    /// before any write stores the empty object; a second open for writing then joins the stream
    /// (helper-52: it changed that empty object beside the stream, and its composition at close
    /// replaced the streamed bytes).
    @Test func aSecondWriterAfterAnotherProcessClosedTheEmptyNewFileJoinsTheStream() async throws {
        let shell = ProcessID(40)
        let (store, fs, created, streaming) = try await created("f", by: shell)
        try await fs.flush(streaming, writer: WriterIdentity(41), process: ProcessID(41))  // /bin/true exits
        #expect(store.object("f") == [])
        let appending = try await fs.open(created.inode, flags: O_WRONLY | O_APPEND, opener: shell).handle
        let first = pattern(12_000)
        #expect(await fs.write(streaming, at: 0, bytes: first, writer: WriterIdentity(40), process: shell).count == first.count)
        #expect(await fs.write(appending, at: Int64(first.count), bytes: Array("appended".utf8), writer: WriterIdentity(40), process: shell).count == 8)
        try await fs.flush(appending, writer: WriterIdentity(40), process: shell)
        await fs.release(appending)
        try await fs.flush(streaming, writer: WriterIdentity(40), process: shell)
        await fs.release(streaming)
        #expect(store.object("f") == first + Array("appended".utf8))
        #expect(store.uploadsInProgress == 0)
    }

    /// A mount over an empty in-memory store, and `name` created there by `process`.
    func created(_ name: String, by process: ProcessID) async throws -> (InMemoryStore, ObsFileSystem, FileAttributes, FileHandleID) {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (attributes, handle) = try await fs.create(parent: .root, name: name, mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: process))
        return (store, fs, attributes, handle)
    }

    /// A mount over an in-memory store that holds `name` with `bytes`, and the file's inode.
    func seeded(_ name: String, _ bytes: [UInt8]) async throws -> (InMemoryStore, ObsFileSystem, InodeNumber) {
        let store = InMemoryStore()
        store.seed(name, bytes)
        let fs = makeFileSystem(store)
        return (store, fs, try await fs.lookup(parent: .root, name: name).inode)
    }

    /// A reader of a file renamed and then unlinked while another descriptor changes it reads
    /// the changes once they are stored, from the object kept under the new name (helper-52: it
    /// moved to the version stored here under the old key, 412 and EIO; SIGBUS through mmap).
    @Test func aReaderOfAFileRenamedThenUnlinkedReadsTheChangesStoredUnderTheNewName() async throws {
        let old = pattern(4000)
        let (store, fs, file) = try await seeded("f", old)
        let writer = try await fs.open(file, flags: O_RDWR).handle
        let reader = try await fs.open(file, flags: O_RDONLY).handle
        try await fs.rename(parent: .root, name: "f", newParent: .root, newName: "g", flags: 0)
        try await fs.unlink(parent: .root, name: "g")
        let patch = pattern(1000, seed: 5)
        #expect(await fs.write(writer, at: 3500, bytes: patch, writer: WriterIdentity(7), process: .unknown).count == patch.count)
        try await fs.flush(writer, writer: WriterIdentity(7))
        await fs.release(writer)
        #expect(try await fs.read(reader, at: 0, count: 8192).gathered() == Array(old.prefix(3500)) + patch)
        await fs.release(reader)
        #expect(store.object("f") == nil && store.object("g") == nil)
    }

    /// A new file whose opener's close stored it while a forked child still holds its
    /// descriptor, then unlinked: the child reads, writes and truncates on, as on a local disk,
    /// and the object goes at its last close (helper-52's R2: the unlink deleted it at once,
    /// ENOENT for the child). With no other holder the unlink deletes it at once, as before.
    @Test func anUnlinkedNewFileStaysForAnotherProcessHoldingItsDescriptor() async throws {
        let parent = ProcessID(50)
        let (store, fs, created, handle) = try await created("f", by: parent)
        let bytes = pattern(526)
        #expect(await fs.write(handle, at: 6310, bytes: bytes, writer: WriterIdentity(50), process: parent).count == bytes.count)
        try await fs.flush(handle, writer: WriterIdentity(50), process: parent)  // the parent's close; the child holds it
        try await fs.unlink(parent: .root, name: "f") { $0 == created.inode }
        #expect(store.object("f") != nil)
        #expect(try await fs.read(handle, at: 6310, count: 4).gathered() == Array(bytes.prefix(4)))
        #expect(await fs.write(handle, at: 100, bytes: [7, 7], writer: WriterIdentity(51), process: ProcessID(51)).count == 2)
        _ = try await fs.setattr(created.inode, AttributeChanges(size: 9000))
        #expect(try await fs.read(handle, at: 98, count: 4).gathered() == [0, 0, 7, 7])
        try await fs.flush(handle, writer: WriterIdentity(51), process: ProcessID(51))
        await fs.release(handle)
        #expect(store.object("f") == nil)
        // Nobody else holds it: the unlink right after the close deletes the object at once.
        let (_, alone) = try await fs.create(parent: .root, name: "g", mode: 0o644, caller: Caller(uid: 0, gid: 0, umask: 0o022, process: parent))
        #expect(await fs.write(alone, at: 0, bytes: bytes, writer: WriterIdentity(50), process: parent).count == bytes.count)
        try await fs.flush(alone, writer: WriterIdentity(50), process: parent)
        try await fs.unlink(parent: .root, name: "g") { _ in false }
        #expect(store.object("g") == nil)
        await fs.release(alone)
    }

    /// `mv log log.1` and a new `log` beside a reader of the log: the reader reads on from the
    /// renamed copy (helper-52's R6: it read the old key, which the new file replaced: EIO).
    @Test func aReaderFollowsItsFileToTheNewNameOfARename() async throws {
        let old = pattern(5000)
        let (store, fs, log) = try await seeded("log", old)
        let reader = try await fs.open(log, flags: O_RDONLY).handle
        try await fs.rename(parent: .root, name: "log", newParent: .root, newName: "log.1", flags: 0)
        #expect(store.object("log") == nil)  // not kept for the reader: it reads the copy
        let (_, writer) = try await fs.create(parent: .root, name: "log")
        #expect(await fs.write(writer, at: 0, bytes: Array("new log\n".utf8), writer: WriterIdentity(7), process: .unknown).count == 8)
        try await fs.flush(writer, writer: WriterIdentity(7))
        await fs.release(writer)
        #expect(try await fs.read(reader, at: 0, count: 8192).gathered() == old)
        await fs.release(reader)
        #expect(store.object("log") == Array("new log\n".utf8) && store.object("log.1") == old)
    }

    @Test func aFailedCompositionIsFinal() async throws {
        // close() reported the failure: nothing composes the changes later (release, a retry).
        let seeded = try await SeededFile("g", size: 2 * Int(minimumPart) + 5)
        let (inner, store, fs, base, file) = (seeded.inner, seeded.store, seeded.fs, seeded.base, seeded.inode)
        store.fail(.complete, nth: 1)  // the first composition fails; a second one would succeed
        let opener = ProcessID(60)
        let handle = try await fs.open(file, flags: O_WRONLY | O_APPEND, opener: opener).handle
        #expect(await fs.write(handle, at: Int64(base.count), bytes: [1, 2, 3], writer: WriterIdentity(6), process: opener).count == 3)
        #expect(await errno(of: { try await fs.flush(handle, writer: WriterIdentity(6), process: opener) }) == .io)
        #expect(await fs.write(handle, at: Int64(base.count) + 3, bytes: [4], writer: WriterIdentity(6), process: opener).count == -1)
        await #expect(throws: (any Error).self) { try await fs.fsync(handle) }
        await fs.release(handle)
        #expect(inner.object("g") == base)
        #expect(inner.uploadsInProgress == 0)
        // A new open of the same file works from the intact base.
        let again = try await fs.open(file, flags: O_WRONLY | O_APPEND, opener: opener).handle
        #expect(await fs.write(again, at: Int64(base.count), bytes: [7], writer: WriterIdentity(6), process: opener).count == 1)
        try await fs.flush(again, writer: WriterIdentity(6), process: opener)
        await fs.release(again)
        #expect(inner.object("g") == base + [7])
    }
}

extension ModifyTests {
    @Test func aFileCompletedByReadingItBackKeepsItsSizeAfterClose() async throws {
        // Write, read back (completes the upload), close without writing more, open again.
        let process = ProcessID(12)
        let (store, fs, attributes, handle) = try await created("r", by: process)
        let bytes = pattern(5000)
        #expect(await fs.write(handle, at: 0, bytes: bytes, writer: WriterIdentity(2), process: process).count == 5000)
        #expect(try await fs.read(handle, at: 0, count: 10).gathered() == Array(bytes[0..<10]))
        try await fs.flush(handle, writer: WriterIdentity(2), process: process)
        await fs.release(handle)
        #expect(try await fs.getattr(attributes.inode).size == 5000)
        let again = try await fs.open(attributes.inode, flags: O_RDWR, opener: process).handle
        try await fs.flush(again, writer: WriterIdentity(2), process: process)
        await fs.release(again)
        #expect(store.object("r") == bytes)
    }

    /// An in-process obs-local's parallel file system bucket holding `name`, a mount of it, and
    /// the file looked up; the caller stops the server.
    func nativeFile(_ name: String, _ bytes: [UInt8], options: ObjectOptions = ObjectOptions(),
                    attributeTimeout: Duration = .seconds(10)) async throws -> (local: LocalOBS, fs: ObsFileSystem, file: FileAttributes) {
        let local = try LocalOBS(fileSystemBucket: true)
        do {
            _ = try await local.store.putObject(ObjectKey(name), bytes: bytes, options: options)
            let fs = makeFileSystem(local.store, attributeTimeout: attributeTimeout)
            return (local, fs, try await fs.lookup(parent: .root, name: name))
        } catch {
            local.stop()
            throw error
        }
    }

    @Test func nativeChangesWritePastATruncatedEnd() async throws {
        // A parallel file system bucket: truncate, then a write past the new end (a hole).
        let (local, fs, file) = try await nativeFile("h", Array("0123456789ABCDEF".utf8))
        defer { local.stop() }
        let handle = try await fs.open(file.inode, flags: O_RDWR, opener: ProcessID(3)).handle
        _ = try await fs.setattr(file.inode, AttributeChanges(size: 4))
        #expect(await fs.write(handle, at: 8, bytes: Array("end".utf8), writer: WriterIdentity(3), process: ProcessID(3)).count == 3)
        try await fs.flush(handle, writer: WriterIdentity(3), process: ProcessID(3))
        await fs.release(handle)
        #expect(try await local.store.objectBytes(ObjectKey("h")) == Array("0123".utf8) + [0, 0, 0, 0] + Array("end".utf8))
    }

    /// A reader of a file this mount truncates in place (parallel file system) reads on in the
    /// truncated object: the truncate answers no ETag, so the reader's pinned one failed (EIO).
    @Test func aReaderFollowsANativeTruncateOfThisMount() async throws {
        let (local, fs, file) = try await nativeFile("r", Array("0123456789".utf8))
        defer { local.stop() }
        let reading = try await fs.open(file.inode, flags: O_RDONLY).handle
        #expect(try await fs.read(reading, at: 0, count: 2).gathered() == Array("01".utf8))
        _ = try await fs.setattr(file.inode, AttributeChanges(size: 3))
        #expect(try await fs.read(reading, at: 0, count: 10).gathered() == Array("012".utf8))
        let changing = try await fs.open(file.inode, flags: O_RDWR, opener: ProcessID(3)).handle
        _ = try await fs.setattr(file.inode, AttributeChanges(size: 5))
        try await fs.flush(changing, writer: WriterIdentity(3), process: ProcessID(3))
        #expect(try await fs.read(reading, at: 0, count: 10).gathered() == Array("012".utf8) + [0, 0])
        await fs.release(changing)
        await fs.release(reading)
    }

    /// A reader of a file this mount truncates and then touches (with writeback_cache the kernel
    /// sends the new mtime after the truncate): the touch copies the object onto itself, and the
    /// reader follows to that version (it failed with EIO, its ETag forgotten).
    @Test func aReaderFollowsATruncateAndAMetadataChangeOfThisMount() async throws {
        let local = try LocalOBS()
        defer { local.stop() }
        _ = try await local.store.putObject(ObjectKey("r"), bytes: Array("0123456789".utf8), options: ObjectOptions())
        let fs = makeFileSystem(local.store)
        let file = try await fs.lookup(parent: .root, name: "r")
        let reading = try await fs.open(file.inode, flags: O_RDONLY).handle
        _ = try await fs.setattr(file.inode, AttributeChanges(size: 3))
        _ = try await fs.setattr(file.inode, AttributeChanges(modified: .now()))
        #expect(try await fs.read(reading, at: 0, count: 10).gathered() == Array("012".utf8))
        await fs.release(reading)
    }

    @Test func aNativeChangeStoresItsModificationTime() async throws {
        // A parallel file system bucket changes the object in place and keeps its metadata: the
        // s3fs mtime stayed the old one, shown once the attributes expired (`make` saw no change).
        var options = ObjectOptions()
        options.metadata = ["mode": "33152", "uid": "7", "mtime": "1000000000", "ctime": "1000000000"]
        options.contentType = "text/plain"
        let (local, fs, file) = try await nativeFile("m", Array("0123456789".utf8), options: options, attributeTimeout: .zero)
        defer { local.stop() }
        let handle = try await fs.open(file.inode, flags: O_WRONLY | O_APPEND, opener: ProcessID(3)).handle
        #expect(await fs.write(handle, at: 10, bytes: Array("+".utf8), writer: WriterIdentity(3), process: ProcessID(3), appending: true).count == 1)
        try await fs.flush(handle, writer: WriterIdentity(3), process: ProcessID(3))
        let shown = try await fs.getattr(file.inode)
        await fs.release(handle)
        let head = try #require(try await local.store.headObject(ObjectKey("m")))
        #expect(head.metadata["mtime"] == shown.modified.description)
        #expect(shown.modified.seconds > 1_000_000_000)
        #expect(head.metadata["mode"] == "33152" && head.metadata["uid"] == "7")
        #expect(head.contentType == "text/plain")
        #expect(try await local.store.objectBytes(ObjectKey("m")) == Array("0123456789+".utf8))
        #expect(try await fs.getattr(file.inode).modified == shown.modified)  // asked of the store again
    }

    @Test func aFailedNativeChangeLeavesWhatItChangedReadableAtTheNextOpen() async throws {
        // In place means no rollback: the first range is changed when the second fails. The
        // failure expires what the mount knew of the object, so the next open reads it as it is
        // (it read with the old ETag pinned and failed with EIO once).
        let inner = InMemoryStore(isFileSystemBucket: true)
        let store = FaultInjectingStore(inner)
        let original = pattern(4 << 20)
        inner.seed("t", original)
        let fs = makeFileSystem(store)
        let file = try await fs.lookup(parent: .root, name: "t")
        let handle = try await fs.open(file.inode, flags: O_RDWR, opener: ProcessID(5)).handle
        for offset in [Int64(0), 3 << 20] {
            #expect(await fs.write(handle, at: offset, bytes: Array("XYZ".utf8), writer: WriterIdentity(5), process: ProcessID(5)).count == 3)
        }
        store.fail(.modify, nth: 2)
        #expect(await errno { try await fs.flush(handle, writer: WriterIdentity(5), process: ProcessID(5)) } == .io)
        await fs.release(handle)
        let stored = try #require(inner.object("t"))
        #expect(stored == Array("XYZ".utf8) + original[3...])
        // Another version than the one the mount knew: a new inode, which the kernel looks up
        // on the open's ESTALE.
        #expect(await errno { _ = try await fs.open(file.inode, flags: O_RDONLY, opener: ProcessID(6)) } == .stale)
        let renewed = try await fs.lookup(parent: .root, name: "t")
        let reading = try await fs.open(renewed.inode, flags: O_RDONLY, opener: ProcessID(6)).handle
        #expect(try await fs.read(reading, at: 0, count: 8).gathered() == stored[0..<8].map { $0 })
        await fs.release(reading)
    }

    @Test func aComposedObjectHasANewModificationTime() async throws {
        let store = InMemoryStore()
        store.seed("old", pattern(1000), metadata: ["mode": "33188", "mtime": "1000000000", "ctime": "1000000000"])
        let fs = makeFileSystem(store)
        let file = try await fs.lookup(parent: .root, name: "old")
        #expect(try await fs.getattr(file.inode).modified.seconds == 1_000_000_000)
        let handle = try await fs.open(file.inode, flags: O_RDWR, opener: ProcessID(8)).handle
        try await fs.flush(handle, writer: WriterIdentity(8), process: ProcessID(8))  // nothing written: nothing changes
        #expect(try await fs.getattr(file.inode).modified.seconds == 1_000_000_000)
        let before = FileTime.now().seconds
        #expect(await fs.write(handle, at: 1000, bytes: [1], writer: WriterIdentity(8), process: ProcessID(8)).count == 1)
        try await fs.flush(handle, writer: WriterIdentity(8), process: ProcessID(8))
        await fs.release(handle)
        #expect(try await fs.getattr(file.inode).modified.seconds >= before)
        let stored = store.contents.withLock { $0.written[ObjectKey("old")]?.metadata }
        #expect(stored?["mode"] == "33188")
        #expect((stored?["mtime"]).flatMap(FileTime.init(metadataValue:)).map { $0.seconds >= before } == true)
    }
}

struct LongOperationTests {
    @Test func runningOperationsAppearInTheStatusUntilFinished() {
        let statistics = MountStatistics()
        let operation = statistics.operations.begin("renaming directory a/ to b/", total: 10, unit: "keys")
        operation.advance(by: 4)
        let pool = PartBufferPool(capacity: 4 * MiB)
        let running = statistics.snapshot(pool: pool, prefix: "").operations
        #expect(running.map(\.description) == ["renaming directory a/ to b/"])
        #expect(running.first?.done == 4)
        #expect(running.first?.total == 10)
        #expect(running.first?.unit == "keys")
        statistics.operations.finished(operation)
        #expect(statistics.snapshot(pool: pool, prefix: "").operations.isEmpty)
    }
}

extension ModifyTests {
    /// An `ftruncate` while another descriptor's close composes (the late release of an earlier
    /// descriptor, as in fsx-like programs that close and reopen): the composed object becomes
    /// the base, but what the truncate cut stays cut, and growing again reads zeros.
    @Test func aTruncateWhileComposingStaysCutOverTheComposedObject() async throws {
        let seeded = try await SeededFile("t", size: 3 * Int(minimumPart) + 1234)
        let (inner, store, fs, base, file) = (seeded.inner, seeded.store, seeded.fs, seeded.base, seeded.inode)
        let opener = ProcessID(70)
        let handle = try await fs.open(file, flags: O_RDWR, opener: opener).handle
        #expect(await fs.write(handle, at: 10, bytes: [1, 2, 3], writer: WriterIdentity(7), process: opener).count == 3)
        store.holdParts()
        let composing = Task { try await fs.flush(handle, writer: WriterIdentity(7), process: opener) }
        #expect(try await eventually { store.heldPartCount >= 1 })
        #expect(try await fs.setattr(file, AttributeChanges(size: 100)).size == 100)
        #expect(try await fs.setattr(file, AttributeChanges(size: 300)).size == 300)
        store.releaseParts()
        try await composing.value
        var expected = Array(base[0..<100]) + [UInt8](repeating: 0, count: 200)
        expected.replaceSubrange(10..<13, with: [1, 2, 3])
        #expect(try await fs.read(handle, at: 0, count: 1000).gathered() == expected)
        try await fs.flush(handle, writer: WriterIdentity(7), process: opener)
        await fs.release(handle)
        #expect(inner.object("t") == expected)
    }
}

extension ModifyTests {
    /// A read through one descriptor while another's close composes the file: the composition
    /// replaces the version the read was fetching (its GET answers 412); the read starts over
    /// from the new object, which this mount stored, as a reader on a local disk reads on.
    /// Both for a descriptor sharing the changes (O_RDWR) and one reading its version (O_RDONLY).
    @Test(arguments: [O_RDWR, O_RDONLY])
    func aReadRacingAComposeOfTheSameFileStartsOverFromTheNewObject(readerFlags: Int32) async throws {
        let seeded = try await SeededFile("r", size: 3 * Int(minimumPart))
        let (inner, store, fs, base, file) = (seeded.inner, seeded.store, seeded.fs, seeded.base, seeded.inode)
        let (writer, reader) = (ProcessID(81), ProcessID(82))
        let writing = try await fs.open(file, flags: O_RDWR, opener: writer).handle
        let reading = try await fs.open(file, flags: readerFlags, opener: reader).handle
        // A whole first part rewritten: the composition uploads it and copies the rest, reading nothing.
        let first = pattern(Int(minimumPart), seed: 4)
        #expect(await fs.write(writing, at: 0, bytes: first, writer: WriterIdentity(8), process: writer).count == first.count)
        store.hold(.read)
        let offset = 2 * Int(minimumPart) + 5
        let read = Task { try await fs.read(reading, at: Int64(offset), count: 100).gathered() }
        #expect(try await eventually { store.heldCount(.read) >= 1 })
        try await fs.flush(writing, writer: WriterIdentity(8), process: writer)
        #expect(inner.object("r") == first + Array(base[Int(minimumPart)...]))
        store.release(.read)
        #expect(try await read.value == Array(base[offset..<offset + 100]))
        await fs.release(writing)
        await fs.release(reading)
    }

    /// A commit that waited for another one and found nothing left to store returns only once
    /// the other recorded what it stored: a descriptor opened after its close() returned starts
    /// from the new object, never from the version before.
    @Test func aCommitReturnsAfterTheCompositionItWaitedForWasRecorded() async throws {
        let inner = InMemoryStore()
        let base = pattern(2 * Int(minimumPart))
        inner.seed("c", base)
        let store = FaultInjectingStore(inner)
        let fs = makeFileSystem(store)
        let modify = try fs.makeModifySession(key: ObjectKey("c"), etag: inner.contents.withLock { $0.etags[ObjectKey("c")] }, size: Int64(base.count), written: nil)
        defer { modify.close() }
        _ = [UInt8](repeating: 7, count: 10).withUnsafeBytes { modify.write($0, at: 3) }
        let recorded = Mutex<Int64?>(nil)
        store.holdParts()
        let composing = Task {
            try await modify.commit { _, size, _ in
                usleep(50_000)  // a slow recording: the waiting commit must not return before it
                recorded.withLock { $0 = size }
            }
        }
        #expect(try await eventually { store.heldPartCount >= 1 })
        let waiting = Task { try await modify.commit { _, _, _ in Issue.record("nothing was left to store") } }
        try await Task.sleep(for: .milliseconds(20))
        store.releaseParts()
        try await waiting.value
        #expect(recorded.withLock { $0 } == Int64(base.count))
        try await composing.value
    }
}

extension ModifyTests {
    /// An open of a file whose last descriptor's release is still composing its changes (a
    /// close by another process than the opener stored nothing): the new descriptor joins those
    /// changes instead of starting over from the version stored now, which the release is
    /// about to replace (its reads would miss the changes, its close would fail on the ETag).
    @Test func anOpenDuringTheLastReleaseJoinsTheChangesItIsComposing() async throws {
        let seeded = try await SeededFile("j", size: 2 * Int(minimumPart))
        let (inner, store, fs, base, file) = (seeded.inner, seeded.store, seeded.fs, seeded.base, seeded.inode)
        let (opener, child, next) = (ProcessID(91), ProcessID(92), ProcessID(93))
        let first = try await fs.open(file, flags: O_RDWR, opener: opener).handle
        #expect(await fs.write(first, at: 5, bytes: [1, 2, 3], writer: WriterIdentity(9), process: child).count == 3)
        try await fs.flush(first, writer: WriterIdentity(9), process: child)  // not the opener: nothing stored
        #expect(inner.object("j") == base)
        store.holdParts()
        let releasing = Task { await fs.release(first) }
        #expect(try await eventually { store.heldPartCount >= 1 })
        let second = try await fs.open(file, flags: O_RDWR, opener: next).handle
        #expect(try await fs.read(second, at: 5, count: 3).gathered() == [1, 2, 3])
        store.releaseParts()
        await releasing.value
        #expect(await fs.write(second, at: 20, bytes: [4], writer: WriterIdentity(10), process: next).count == 1)
        try await fs.flush(second, writer: WriterIdentity(10), process: next)
        await fs.release(second)
        var expected = base
        expected.replaceSubrange(5..<8, with: [1, 2, 3])
        expected[20] = 4
        #expect(inner.object("j") == expected)
    }
}

extension ModifyTests {
    /// On a parallel file system bucket the object changes in place while a close writes the
    /// changes natively: a read of the shared changes in that moment (its GET answers 412)
    /// waits for the writing to end and reads the new object.
    @Test func aReadDuringNativeChangesOfTheSameFileReadsTheChangedObject() async throws {
        let seeded = try await SeededFile("n", size: 4096, fileSystemBucket: true)
        let (inner, store, fs, base, file) = (seeded.inner, seeded.store, seeded.fs, seeded.base, seeded.inode)
        let process = ProcessID(95)
        let writing = try await fs.open(file, flags: O_RDWR, opener: process).handle
        let reading = try await fs.open(file, flags: O_RDWR, opener: ProcessID(96)).handle
        #expect(await fs.write(writing, at: 10, bytes: [1, 2], writer: WriterIdentity(11), process: process).count == 2)
        store.hold(.modify)
        let flushing = Task { try await fs.flush(writing, writer: WriterIdentity(11), process: process) }
        #expect(try await eventually { store.heldCount(.modify) == 1 })  // the object has changed; the flush goes on
        let read = Task { try await fs.read(reading, at: 0, count: 100).gathered() }
        try await Task.sleep(for: .milliseconds(20))
        store.release(.modify)
        try await flushing.value
        var expected = base
        expected.replaceSubrange(10..<12, with: [1, 2])
        #expect(try await read.value == Array(expected[0..<100]))
        #expect(inner.object("n") == expected)
        await fs.release(writing)
        await fs.release(reading)
    }
}

/// A file system over a fault-injecting store that holds `name`: `size` bytes of `pattern`.
struct SeededFile {
    let inner: InMemoryStore
    let store: FaultInjectingStore
    let fs: ObsFileSystem
    let inode: InodeNumber
    let base: [UInt8]

    init(_ name: String, size: Int, fileSystemBucket: Bool = false) async throws {
        inner = InMemoryStore(isFileSystemBucket: fileSystemBucket)
        base = pattern(size)
        inner.seed(name, base)
        store = FaultInjectingStore(inner)
        fs = makeFileSystem(store)
        inode = try await fs.lookup(parent: .root, name: name).inode
    }
}

extension ModifyTests {
    /// `stress-ng --seek` on a parallel file system bucket: hundreds of small writes across the
    /// file (and one past its end) are written in place as one span, its gaps read from the base
    /// first, not one request each.
    @Test func scatteredSmallChangesOnAParallelFileSystemBucketAreWrittenInFewRequests() async throws {
        let seeded = try await SeededFile("s", size: 1 << 20, fileSystemBucket: true)
        let (inner, _, fs, base, file) = (seeded.inner, seeded.store, seeded.fs, seeded.base, seeded.inode)
        let process = ProcessID(97)
        let handle = try await fs.open(file, flags: O_RDWR, opener: process).handle
        var expected = base
        for index in 0..<500 {
            let offset = index * 2000 + (index % 7) * 13
            let bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: 100)
            #expect(await fs.write(handle, at: Int64(offset), bytes: bytes, writer: WriterIdentity(12), process: process).count == 100)
            expected.replaceSubrange(offset..<offset + 100, with: bytes)
        }
        #expect(await fs.write(handle, at: Int64(base.count + 5000), bytes: [7, 7], writer: WriterIdentity(12), process: process).count == 2)
        expected += [UInt8](repeating: 0, count: 5000) + [7, 7]
        try await fs.flush(handle, writer: WriterIdentity(12), process: process)
        await fs.release(handle)
        #expect(inner.object("s") == expected)
        #expect(inner.contents.withLock { $0.modifyCalls } == 1)
    }
}

/// A read-only descriptor while other descriptors of the mount change the file (found by fio
/// and `tail -f`): it reads what they hold, and once they closed, the version they stored.
extension ModifyTests {
    /// `exec 3<f; cat <&3; echo more >> f; cat <&3`: the reader's next read starts where it
    /// stopped and finds the appended bytes. Reading on in the version it opened ended there
    /// (0 bytes), the kernel took that for the file's end and cut its size, and the next
    /// `O_APPEND` write landed over the bytes appended before.
    @Test func aReaderOpenedBeforeAnAppendReadsTheAppendedBytes() async throws {
        let seeded = try await SeededFile("log", size: 1000)
        let (inner, fs, base, file) = (seeded.inner, seeded.fs, seeded.base, seeded.inode)
        let (follower, appender) = (ProcessID(71), ProcessID(72))
        let reading = try await fs.open(file, flags: O_RDONLY, opener: follower).handle
        #expect(try await fs.read(reading, at: 0, count: 4096).gathered() == base)
        let appending = try await fs.open(file, flags: O_WRONLY | O_APPEND, opener: appender).handle
        let line = Array("line 1\n".utf8)
        #expect(await fs.write(appending, at: 1000, bytes: line, writer: WriterIdentity(72), process: appender).count == line.count)
        try await fs.flush(appending, writer: WriterIdentity(72), process: appender)
        await fs.release(appending)
        #expect(inner.object("log") == base + line)
        #expect(try await fs.read(reading, at: 1000, count: 4096).gathered() == line)
        await fs.release(reading)
    }

    /// A reader sees what another descriptor wrote before it is stored, as on a local disk.
    @Test func aReaderReadsWhatAnotherDescriptorHoldsBeforeItIsStored() async throws {
        let seeded = try await SeededFile("held", size: 3 * Int(minimumPart))
        let (inner, fs, base, file) = (seeded.inner, seeded.fs, seeded.base, seeded.inode)
        let (reader, writer) = (ProcessID(73), ProcessID(74))
        let reading = try await fs.open(file, flags: O_RDONLY, opener: reader).handle
        #expect(try await fs.read(reading, at: 0, count: 100).gathered() == Array(base[0..<100]))
        let writing = try await fs.open(file, flags: O_RDWR, opener: writer).handle
        let changed = pattern(100, seed: 9)
        #expect(await fs.write(writing, at: 0, bytes: changed, writer: WriterIdentity(74), process: writer).count == changed.count)
        #expect(try await fs.read(reading, at: 0, count: 100).gathered() == changed)
        #expect(inner.object("held") == base)  // not stored yet
        await fs.release(writing)
        #expect(try await fs.read(reading, at: 0, count: 100).gathered() == changed)
        await fs.release(reading)
    }

    /// A read while a closed descriptor's release is storing its changes: the object on the
    /// server is already the new one, its answer not yet recorded. The read waits for the
    /// record and reads the new version: not the old bytes the handle fetched ahead, and not
    /// EIO for the old version's 412.
    @Test func aReadDuringAnotherDescriptorsReleaseReadsTheVersionItStores() async throws {
        let seeded = try await SeededFile("rel", size: 3 * Int(minimumPart))
        let (inner, store, fs, base, file) = (seeded.inner, seeded.store, seeded.fs, seeded.base, seeded.inode)
        let (reader, writer) = (ProcessID(75), ProcessID(76))
        let reading = try await fs.open(file, flags: O_RDONLY, opener: reader).handle
        #expect(try await fs.read(reading, at: 0, count: 100).gathered() == Array(base[0..<100]))
        let writing = try await fs.open(file, flags: O_RDWR, opener: writer).handle
        let (head, tail) = (pattern(Int(minimumPart), seed: 5), pattern(100, seed: 6))
        let tailOffset = base.count - 200
        #expect(await fs.write(writing, at: 0, bytes: head, writer: WriterIdentity(76), process: writer).count == head.count)
        #expect(await fs.write(writing, at: Int64(tailOffset), bytes: tail, writer: WriterIdentity(76), process: writer).count == tail.count)
        var expected = base
        expected.replaceSubrange(0..<head.count, with: head)
        expected.replaceSubrange(tailOffset..<tailOffset + tail.count, with: tail)
        store.hold(.complete)
        let releasing = Task { await fs.release(writing) }  // no flush by the opener: the release composes
        #expect(try await eventually { store.heldCount(.complete) >= 1 })
        #expect(inner.object("rel") == expected)
        let readHead = Task { try await fs.read(reading, at: 0, count: 100).gathered() }
        let readTail = Task { try await fs.read(reading, at: Int64(tailOffset), count: 100).gathered() }
        try await Task.sleep(for: .milliseconds(20))
        store.release(.complete)
        await releasing.value
        #expect(try await readHead.value == Array(head[0..<100]))
        #expect(try await readTail.value == tail)
        await fs.release(reading)
    }
}

extension ModifyTests {
    /// SIGTERM while a close composes its changes: the unmount waits for the composition, which
    /// stores them (the close returns 0). It logged "changes not stored" for them and returned
    /// while the composition went on.
    @Test func anUnmountWaitsForACompositionUnderWay() async throws {
        let seeded = try await SeededFile("closing", size: 2 * Int(minimumPart))
        let (inner, store, fs, base, file) = (seeded.inner, seeded.store, seeded.fs, seeded.base, seeded.inode)
        let writer = ProcessID(81)
        let handle = try await fs.open(file, flags: O_RDWR, opener: writer).handle
        let changed = pattern(100, seed: 11)
        #expect(await fs.write(handle, at: 0, bytes: changed, writer: WriterIdentity(81), process: writer).count == changed.count)
        store.hold(.complete)
        let closing = Task { try await fs.flush(handle, writer: WriterIdentity(81), process: writer) }
        #expect(try await eventually { store.heldCount(.complete) == 1 })
        let unmounted = Mutex(false)
        let unmounting = Task {
            await fs.shutdown()
            unmounted.withLock { $0 = true }
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!unmounted.withLock { $0 })
        store.release(.complete)
        await unmounting.value
        try await closing.value
        var expected = base
        expected.replaceSubrange(0..<changed.count, with: changed)
        #expect(inner.object("closing") == expected)
        await fs.release(handle)
    }

    /// Reads of one descriptor from several threads while another descriptor appends and
    /// closes again and again (`mt_direct.py`, found by a helper): a read that moves the handle
    /// to a new version closes the old stream, maybe under another read of the handle, which
    /// reads on from the new one instead of failing (EBADF).
    @Test func concurrentReadsOfOneDescriptorFollowTheVersionsAnotherStores() async throws {
        let seeded = try await SeededFile("shared", size: 2 * Int(minimumPart))
        let (inner, fs, base, file) = (seeded.inner, seeded.fs, seeded.base, seeded.inode)
        let (reader, appender) = (ProcessID(77), ProcessID(78))
        let reading = try await fs.open(file, flags: O_RDONLY, opener: reader).handle
        final class Stop: Sendable { let requested = Atomic<Bool>(false) }
        let stop = Stop()
        let readers = (0..<4).map { index in
            Task.detached { () -> [String] in
                var failures: [String] = []
                while !stop.requested.load(ordering: .relaxed) {
                    let at = index * 1000
                    do {
                        let bytes = try await fs.read(reading, at: Int64(at), count: 500).gathered()
                        if bytes != Array(base[at..<at + 500]) { failures.append("wrong bytes at \(at)") }
                    } catch {
                        failures.append("\(error)")
                    }
                    await Task.yield()  // the appender needs a thread too
                }
                return failures
            }
        }
        var expected = base
        for round in 0..<40 {
            let appending = try await fs.open(file, flags: O_WRONLY | O_APPEND, opener: appender).handle
            let tail = pattern(64, seed: UInt32(11 + round))
            #expect(await fs.write(appending, at: Int64(expected.count), bytes: tail, writer: WriterIdentity(78), process: appender).count == tail.count)
            expected += tail
            try await fs.flush(appending, writer: WriterIdentity(78), process: appender)
            await fs.release(appending)
        }
        stop.requested.store(true, ordering: .relaxed)
        for reader in readers { let failures = await reader.value; #expect(failures.isEmpty, "\(failures.prefix(3))") }
        #expect(inner.object("shared") == expected)
        await fs.release(reading)
    }
}

extension ModifyTests {
    /// `O_APPEND` writes go to the end of the file as the mount knows it, not to the offset the
    /// kernel computed from a size it had before another process's `: > f` (found by a helper:
    /// a logger's next lines landed past the cut, leaving NUL bytes on the server).
    @Test func appendsGoToTheEndWhereverTheKernelPutThem() async throws {
        let fs = makeFileSystem(FaultInjectingStore(InMemoryStore()))
        let (logger, truncater) = (ProcessID(79), ProcessID(80))
        let (attributes, logging) = try await fs.create(parent: .root, name: "app.log", mode: 0o644, flags: O_WRONLY | O_CREAT | O_APPEND,
                                                       caller: Caller(uid: 0, gid: 0, umask: 0o022, process: logger))
        let first = Array("line 1\n".utf8)
        #expect(await fs.write(logging, at: 0, bytes: first, writer: WriterIdentity(79), process: logger, appending: true).count == first.count)
        // `: > app.log` by another process: the file is cut to 0 for every descriptor.
        let cutting = try await fs.open(attributes.inode, flags: O_WRONLY | O_TRUNC, opener: truncater).handle
        try await fs.flush(cutting, writer: WriterIdentity(80), process: truncater)
        await fs.release(cutting)
        #expect(try await fs.getattr(attributes.inode).size == 0)
        // The kernel still puts the logger's next line at the size it knew.
        let second = Array("line 2\n".utf8)
        #expect(await fs.write(logging, at: Int64(first.count), bytes: second, writer: WriterIdentity(79), process: logger, appending: true).count == second.count)
        let third = Array("line 3\n".utf8)
        #expect(await fs.write(logging, at: Int64(first.count), bytes: third, writer: WriterIdentity(79), process: logger, appending: true).count == third.count)
        try await fs.flush(logging, writer: WriterIdentity(79), process: logger)
        await fs.release(logging)
        #expect((fs.store as? FaultInjectingStore)?.inner.object("app.log") == second + third)
    }
}
