#if canImport(Glibc)
import Glibc
#endif
import OBSHashing
import OBSProtocol
import Testing
@testable import ObsFS

struct UploadTests {
    let writerA = WriterIdentity(0xA)
    let writerB = WriterIdentity(0xB)

    @Test func writesAreUploadedAsPartsAndCompletedOnFlush() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store, parallel: 3)
        let (attributes, handle) = try await fs.create(parent: .root, name: "big.bin")
        #expect(attributes.size == 0)
        let data = pattern(Int(minimumPart) * 5 + 12_345)
        try await writeAll(fs, handle, data, chunk: 4096)
        #expect(try await fs.getattr(attributes.inode).size == Int64(data.count))
        try await fs.flush(handle, writer: WriterIdentity(7))
        #expect(store.object("big.bin") == data)
        let parts = stride(from: 0, to: data.count, by: Int(minimumPart)).map { Hash.md5(data[$0..<min($0 + Int(minimumPart), data.count)]) }
        #expect(try await fs.getxattr(attributes.inode, name: ExtendedAttribute.etag) == Array(ETag.composite(partMD5s: parts).value.utf8))
        await fs.release(handle)
        #expect(store.completeCalls == 1)
        #expect(store.uploadsInProgress == 0)
    }

    @Test func uploadIDIsReadableWhileWriting() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (attributes, handle) = try await fs.create(parent: .root, name: "f")
        let id = try await fs.getxattr(attributes.inode, name: ExtendedAttribute.uploadID)
        #expect(String(decoding: id, as: UTF8.self) == store.contents.withLock { $0.uploads.keys.first!.rawValue })
        // Listed: the attributes set (none: the inferred Content-Type is not); read-only facts
        // are read by name.
        #expect(try await fs.listxattr(attributes.inode) == [])
        #expect(await errno { _ = try await fs.getxattr(attributes.inode, name: "user.other") } == .noAttribute)
        _ = try await write(fs, handle, at: 0, [1, 2, 3]).get()
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(await errno { _ = try await fs.getxattr(attributes.inode, name: ExtendedAttribute.uploadID) } == .noAttribute)
        #expect(try await fs.getxattr(attributes.inode, name: ExtendedAttribute.etag) == Array(ETag.composite(partMD5s: [Hash.md5([1, 2, 3] as [UInt8])]).value.utf8))
    }

    @Test func uploadsStartWithTheMountDefaultsAndAnInferredContentType() async throws {
        let store = InMemoryStore()
        let options = try MountOptions(parsing: ["storage_class=COLD,meta.owner=alice"])
        let fs = makeFileSystem(store, uploadOptions: options.upload)
        let (_, handle) = try await fs.create(parent: .root, name: "photo.jpg")
        await fs.release(handle)
        let initiated = store.contents.withLock { $0.initiatedOptions[ObjectKey("photo.jpg")] }
        #expect(initiated?.storageClass == StorageClass("COLD"))
        #expect(userMetadata(initiated?.metadata) == ["owner": "alice"])
        #expect(initiated?.metadata["mode"] == String(S_IFREG | 0o644))
        #expect(initiated?.metadata["uid"] == "1000")
        #expect(initiated?.contentType == "image/jpeg")
    }

    @Test func emptyFileBecomesZeroByteObject() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "empty")
        try await fs.flush(handle, writer: writerA)
        #expect(store.object("empty") == [])
        await fs.release(handle)
        #expect(store.object("empty") == [])
        #expect(store.uploadsInProgress == 0)
        #expect(store.completeCalls == 0)
    }

    /// A second open for writing of a file being streamed (two processes writing one new file):
    /// the upload is completed as it stands and both descriptors go on with one set of changes;
    /// nothing either wrote is lost. Before, the second open changed an object that did not
    /// exist yet and its close overwrote the first writer's bytes.
    @Test(arguments: [false, true])
    func aSecondWriterJoinsTheFirst(truncating: Bool) async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (attributes, first) = try await fs.create(parent: .root, name: "f")
        _ = try await write(fs, first, at: 0, [1, 2, 3], writer: writerA).get()
        #expect(await errno { _ = try await fs.create(parent: .root, name: "f", flags: O_WRONLY | O_CREAT | O_EXCL) } == .exists)
        let second = try await fs.open(attributes.inode, flags: O_WRONLY | (truncating ? O_TRUNC : 0)).handle
        _ = try await write(fs, second, at: 0, [9], writer: writerB).get()
        _ = try await write(fs, first, at: 3, [4], writer: writerA).get()
        try await fs.flush(second, writer: writerB)
        await fs.release(second)
        try await fs.flush(first, writer: writerA)
        await fs.release(first)
        #expect(store.object("f") == (truncating ? [9, 0, 0, 4] : [9, 2, 3, 4]))
        #expect(store.uploadsInProgress == 0)
        // After release the file can be written again (O_TRUNC replaces it).
        let again = try await fs.open(attributes.inode, flags: O_WRONLY | O_TRUNC).handle
        await fs.release(again)
    }

    /// Two processes create one name at once (both found it missing): the second create opens
    /// the file the first made, as a local filesystem does, and with O_EXCL answers EEXIST. A
    /// create without O_TRUNC of a stored file keeps its bytes.
    @Test func aCreateOfAnExistingNameOpensTheFile() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (made, first) = try await fs.create(parent: .root, name: "f")
        _ = try await write(fs, first, at: 0, [1, 2, 3], writer: writerA).get()
        #expect(await errno { _ = try await fs.create(parent: .root, name: "f", flags: O_WRONLY | O_CREAT | O_EXCL) } == .exists)
        let (joined, second) = try await fs.create(parent: .root, name: "f", flags: O_WRONLY | O_CREAT)
        #expect(joined.inode == made.inode)
        _ = try await write(fs, second, at: 3, [4], writer: writerB).get()
        try await fs.flush(second, writer: writerB)
        await fs.release(second)
        try await fs.flush(first, writer: writerA)
        await fs.release(first)
        #expect(store.object("f") == [1, 2, 3, 4])

        let (_, again) = try await fs.create(parent: .root, name: "f", flags: O_WRONLY | O_CREAT)
        _ = try await write(fs, again, at: 0, [7], writer: writerA).get()
        try await fs.flush(again, writer: writerA)
        await fs.release(again)
        #expect(store.object("f") == [7, 2, 3, 4])
        #expect(store.uploadsInProgress == 0)
    }

    /// The same while the first writer has written nothing yet (with `writeback_cache` its bytes
    /// are still in the kernel's cache): its empty upload ends too, so what it writes afterwards
    /// joins the shared changes and each close stores all written so far.
    @Test func aSecondWriterJoinsAnEmptyFile() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (attributes, first) = try await fs.create(parent: .root, name: "f")
        let second = try await fs.open(attributes.inode, flags: O_WRONLY | O_TRUNC).handle
        _ = try await write(fs, first, at: 0, [5], writer: writerA).get()
        _ = try await write(fs, second, at: 1, [6], writer: writerB).get()
        try await fs.flush(first, writer: writerA)
        #expect(store.object("f") == [5, 6])
        try await fs.flush(second, writer: writerB)
        await fs.release(first)
        await fs.release(second)
        #expect(store.object("f") == [5, 6])
        #expect(store.uploadsInProgress == 0)
    }

    /// An open for writing while another open's upload is being initiated (stress-ng's lease
    /// stressor) waits for the upload ID, then joins that upload instead of answering EBUSY.
    @Test func anOpenRacingAnotherWritersInitiationJoinsItsUpload() async throws {
        let store = InMemoryStore()
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults)
        faults.hold(.initiate)
        let creating = Task { try await fs.create(parent: .root, name: "f") }
        #expect(try await eventually { faults.heldCount(.initiate) == 1 })
        let found = try await fs.lookup(parent: .root, name: "f")
        let opening = Task { try await fs.open(found.inode, flags: O_WRONLY).handle }
        try await Task.sleep(for: .milliseconds(20))
        faults.release(.initiate)
        let (_, first) = try await creating.value
        let second = try await opening.value
        _ = try await write(fs, first, at: 0, [1, 2], writer: writerA).get()
        _ = try await write(fs, second, at: 2, [3], writer: writerB).get()
        try await fs.flush(second, writer: writerB)
        await fs.release(second)
        try await fs.flush(first, writer: writerA)
        await fs.release(first)
        #expect(store.object("f") == [1, 2, 3])
        #expect(store.uploadsInProgress == 0)
    }

    /// A lookup while a create's initiation is slower than attr_timeout= finds the file being
    /// created: the store has nothing of it yet, and the lookup answered ENOENT (seen on a loaded
    /// machine in the test above).
    @Test func aLookupDuringASlowInitiationFindsTheFileBeingCreated() async throws {
        let store = InMemoryStore()
        let faults = FaultInjectingStore(store)
        let fs = makeFileSystem(faults, attributeTimeout: .milliseconds(50))
        faults.hold(.initiate)
        let creating = Task { try await fs.create(parent: .root, name: "f") }
        #expect(try await eventually { faults.heldCount(.initiate) == 1 })
        try await Task.sleep(for: .milliseconds(100))
        let found = try await fs.lookup(parent: .root, name: "f")
        faults.release(.initiate)
        let (created, handle) = try await creating.value
        #expect(found.inode == created.inode)
        try await fs.flush(handle, writer: writerA)
        await fs.release(handle)
        #expect(store.object("f") == [])
    }

    /// Once two descriptors of an empty file share changes, a third writable open joins them
    /// too, rather than starting an upload of its own (which the others' close would overwrite).
    @Test func aThirdWriterOfAnEmptyFileJoinsTheSharedChanges() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (attributes, first) = try await fs.create(parent: .root, name: "f")
        let second = try await fs.open(attributes.inode, flags: O_WRONLY).handle
        let third = try await fs.open(attributes.inode, flags: O_WRONLY).handle
        _ = try await write(fs, third, at: 0, [3], writer: writerA).get()
        _ = try await write(fs, second, at: 1, [2], writer: writerB).get()
        for handle in [third, second, first] {
            try await fs.flush(handle, writer: handle == third ? writerA : writerB)
            await fs.release(handle)
        }
        #expect(store.object("f") == [3, 2])
        #expect(store.uploadsInProgress == 0)
    }

    @Test func aClosedEmptyFileDoesNotBlockTheNextWriter() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (_, touched) = try await fs.create(parent: .root, name: "f")
        try await fs.flush(touched, writer: writerA)
        // `touch f; echo x > f`: the second open may arrive before the first release.
        let (_, writer) = try await fs.create(parent: .root, name: "f")
        _ = try await write(fs, writer, at: 0, [120], writer: writerA).get()
        try await fs.flush(writer, writer: writerA)
        await fs.release(touched)
        await fs.release(writer)
        #expect(store.object("f") == [120])
        #expect(store.uploadsInProgress == 0)
    }

    /// Shell redirection and fork: the flush of a descriptor whose process did not write last is a
    /// no-op; the flush from the last writer completes; later flushes and the release complete nothing.
    @Test func completesExactlyOnceAcrossDupAndForkFlushes() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        let data = pattern(Int(minimumPart) * 2 + 10)
        try await writeAll(fs, handle, Array(data[0..<1000]), chunk: 1000, writer: writerA)
        // A forked child (another descriptor table) closes its copy.
        try await fs.flush(handle, writer: writerB)
        #expect(store.completeCalls == 0)
        for offset in stride(from: 1000, to: data.count, by: 777) {
            _ = try await write(fs, handle, at: Int64(offset), Array(data[offset..<min(offset + 777, data.count)]), writer: writerA).get()
        }
        try await fs.flush(handle, writer: writerA)
        #expect(store.completeCalls == 1)
        #expect(store.object("f") == data)
        try await fs.flush(handle, writer: writerA)
        try await fs.flush(handle, writer: writerB)
        await fs.release(handle)
        #expect(store.completeCalls == 1)
        // A write after completion is refused.
        #expect(store.uploadsInProgress == 0)
    }

    @Test func writeAfterCompletionContinuesTheFile() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        _ = try await write(fs, handle, at: 0, [1, 2, 3], writer: writerA).get()
        try await fs.flush(handle, writer: writerA)
        #expect(try await write(fs, handle, at: 3, [4], writer: writerA).get() == 1)
        await fs.release(handle)
        #expect(store.object("f") == [1, 2, 3, 4])
    }

    @Test func emptyFlushThenWritesStillComplete() async throws {
        // `cmd > file`: the shell closes its descriptor before the command writes.
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        try await fs.flush(handle, writer: writerA)
        #expect(store.object("f") == [])
        let data = pattern(300_000)
        try await writeAll(fs, handle, data, chunk: 65536, writer: writerA)
        try await fs.flush(handle, writer: writerA)
        await fs.release(handle)
        #expect(store.object("f") == data)
        #expect(store.completeCalls == 1)
    }

    @Test func failedPartAbortsAndCloseFails() async throws {
        let store = FaultInjectingStore()
        store.fail(.uploadPart, nth: 2, code: .internalError)
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        let data = pattern(Int(minimumPart) * 4)
        // Writes may or may not see the failure depending on timing; the close must.
        for offset in stride(from: 0, to: data.count, by: 8192) {
            if case .failure = await write(fs, handle, at: Int64(offset), Array(data[offset..<min(offset + 8192, data.count)])) { break }
        }
        #expect(await errno { try await fs.flush(handle, writer: WriterIdentity(7)) } == .io)
        #expect(store.inner.uploadsInProgress == 0)
        #expect(store.inner.object("f") == nil)
        // Every later close reports the failure too.
        #expect(await errno { try await fs.flush(handle, writer: WriterIdentity(7)) } == .io)
        await fs.release(handle)
    }

    @Test func aCompleteWhoseAnswerWasLostIsFoundDoneByTheAbort() async throws {
        // The server completed the upload but its answer was lost (no retry left): the abort
        // answers NoSuchUpload and the object is the parts' composite, so close() returns 0.
        let store = FaultInjectingStore()
        store.loseCompleteAnswers()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        let data = pattern(Int(minimumPart) * 2 + 77)
        try await writeAll(fs, handle, data, chunk: 50_000)
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.inner.object("f") == data)
        #expect(store.inner.uploadsInProgress == 0)
    }

    @Test func failedCompleteAbortsAndCloseFails() async throws {
        let store = FaultInjectingStore()
        store.fail(.complete, code: .internalError)
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        try await writeAll(fs, handle, pattern(250_000), chunk: 50_000)
        #expect(await errno { try await fs.flush(handle, writer: WriterIdentity(7)) } == .io)
        #expect(store.inner.uploadsInProgress == 0)
        await fs.release(handle)
    }

    /// After a failed close the attributes are asked for again: a new file is missing, a
    /// rewritten one shows the version the store kept (helper-50: `stat` showed the new file as
    /// an empty one, and the rewrite's size, for attr_timeout=).
    @Test func afterAFailedCloseTheAttributesAreAskedForAgain() async throws {
        let store = FaultInjectingStore()
        store.inner.seed("g", Array("old content\n".utf8))
        store.fail(.complete, code: .internalError)
        let fs = makeFileSystem(store)
        let (created, handle) = try await fs.create(parent: .root, name: "f")
        try await writeAll(fs, handle, pattern(1000), chunk: 1000)
        #expect(await errno { try await fs.flush(handle, writer: WriterIdentity(7)) } == .io)
        await fs.release(handle)
        #expect(await errno { _ = try await fs.getattr(created.inode) } == .noEntry)
        #expect(await errno { _ = try await fs.lookup(parent: .root, name: "f") } == .noEntry)
        let stored = try await fs.lookup(parent: .root, name: "g")
        let rewriting = try await fs.open(stored.inode, flags: O_WRONLY | O_TRUNC).handle
        try await writeAll(fs, rewriting, pattern(500), chunk: 500)
        #expect(await errno { try await fs.flush(rewriting, writer: WriterIdentity(7)) } == .io)
        await fs.release(rewriting)
        #expect(try await fs.getattr(stored.inode).size == 12)
        #expect(store.inner.object("g") == Array("old content\n".utf8))
    }

    @Test func aPartTheStoreRejectsAsCorruptFailsTheUpload() async throws {
        let store = FaultInjectingStore()
        store.fail(.uploadPart, code: .badDigest)
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        _ = await write(fs, handle, at: 0, pattern(1000))
        #expect(await errno { try await fs.flush(handle, writer: WriterIdentity(7)) } == .io)
        #expect(store.inner.uploadsInProgress == 0)
        await fs.release(handle)
    }

    /// Each `checksum=` mode: every part carries its proof (the store checks it against the bytes
    /// received), a CRC mode's object checksum is combined from the parts and checked against
    /// the whole object, and the object is right.
    @Test(arguments: UploadIntegrity.allCases)
    func partsCarryTheChosenProof(integrity: UploadIntegrity) async throws {
        let store = InMemoryStore()
        let data = pattern(Int(minimumPart) * 3 + 777)
        _ = try await writeFile(makeFileSystem(store, integrity: integrity), "f", data, chunk: 40_000)
        #expect(store.object("f") == data)
        let (proofs, objectChecksum) = store.contents.withLock { ($0.partIntegrity, $0.objectChecksums[ObjectKey("f")]) }
        #expect(proofs.count == 4)
        for proof in proofs {
            switch (integrity, proof) {
            case (.md5, .md5), (.none, .none): break
            case (.crc64, .checksum(let checksum)): #expect(checksum.algorithm == .crc64ecma)
            case (.crc32c, .checksum(let checksum)): #expect(checksum.algorithm == .crc32c)
            default: Issue.record("\(integrity) sent \(proof)")
            }
        }
        let expected = integrity.checksumAlgorithm.map { algorithm in data.withUnsafeBytes { Checksum(algorithm, of: $0) } }
        #expect(objectChecksum == expected)
    }

    /// Issue 11 item 4: on a bucket with default SSE-KMS, ETags are not MD5s; the store's verdict
    /// (accepted) is final and the upload completes although the mount asked for no encryption.
    @Test func defaultKMSBucketAcceptsUploads() async throws {
        let store = InMemoryStore(defaultKMS: true)
        let fs = makeFileSystem(store, integrity: .md5)
        let data = pattern(Int(minimumPart) * 2 + 5)
        let inode = try await writeFile(fs, "f", data, chunk: 65536)
        #expect(store.object("f") == data)
        #expect(try await fs.getxattr(inode, name: ExtendedAttribute.etag) == Array(store.contents.withLock { $0.etags[ObjectKey("f")]! }.value.utf8))
    }

    @Test func initiateErrorsMapToErrno() async throws {
        let store = FaultInjectingStore()
        store.fail(.initiate, nth: 1, code: .accessDenied)
        store.fail(.initiate, nth: 2, code: .noSuchBucket)
        store.fail(.initiate, nth: 3, code: .internalError)
        let fs = makeFileSystem(store)
        #expect(await errno { _ = try await fs.create(parent: .root, name: "a") } == .accessDenied)
        #expect(await errno { _ = try await fs.create(parent: .root, name: "b") } == .noEntry)
        #expect(await errno { _ = try await fs.create(parent: .root, name: "c") } == .io)
        // A failed create leaves the name free.
        let (_, handle) = try await fs.create(parent: .root, name: "a")
        await fs.release(handle)
    }

    @Test func nonSequentialWritesInsideTheUnsentPartAreAccepted() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        var expected = pattern(150_000)
        _ = try await write(fs, handle, at: 0, Array(expected[0..<50_000])).get()
        // Overwrite inside the unsent part (its proof is computed when it is sealed).
        let patch = pattern(1000, seed: 99)
        expected.replaceSubrange(10_000..<11_000, with: patch)
        _ = try await write(fs, handle, at: 10_000, patch).get()
        // A forward gap is zero-filled.
        _ = try await write(fs, handle, at: 60_000, Array(expected[60_000...])).get()
        expected.replaceSubrange(50_000..<60_000, with: [UInt8](repeating: 0, count: 10_000))
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("f") == expected)
    }

    @Test func writeBeforeTheUnsentPartContinuesTheFileByComposition() async throws {
        // zip patching its local headers, `pwrite` backwards.
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        var expected = pattern(Int(minimumPart) + 100)
        try await writeAll(fs, handle, expected, chunk: 4096)
        #expect(try await write(fs, handle, at: 5, [1]).get() == 1)
        expected[5] = 1
        let tail = pattern(300, seed: 4)
        try await writeAll(fs, handle, tail, chunk: 100, from: Int64(expected.count))
        expected += tail
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("f") == expected)
        #expect(store.uploadsInProgress == 0)
    }

    /// A pool of two parts and held uploads: writes wait for buffers instead of growing memory,
    /// and finish once parts drain.
    @Test func writesWaitForBuffersWhenThePoolIsEmpty() async throws {
        let store = FaultInjectingStore()
        store.holdParts()
        let budget = 2 * minimumPart
        let fs = makeFileSystem(store, parallel: 4, budget: budget)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        let data = pattern(Int(minimumPart) * 6 + 5)
        let writer = Task { try await writeAll(fs, handle, data, chunk: 32768) }
        // Two parts fill the pool; their uploads are held, so the writer must stall.
        while store.heldPartCount < 2 { await Task.yield() }
        for _ in 0..<200 { await Task.yield() }
        #expect(fs.configuration.upload.pool.allocatedBytes <= budget)
        #expect(store.heldPartCount == 2)
        store.releaseParts()
        try await writer.value
        try await fs.flush(handle, writer: WriterIdentity(7))
        #expect(store.inner.object("f") == data)
        #expect(fs.configuration.upload.pool.allocatedBytes <= budget)
        await fs.release(handle)
    }

    @Test func partsInFlightAreBoundedByParallel() async throws {
        let store = FaultInjectingStore()
        let fs = makeFileSystem(store, parallel: 2, budget: 64 * MiB)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        let data = pattern(Int(minimumPart) * 12)
        try await writeAll(fs, handle, data, chunk: Int(minimumPart))
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.maxPartsInFlight <= 2)
        #expect(store.inner.object("f") == data)
    }

    @Test func fsyncWaitsForFullPartsAndReportsFailure() async throws {
        let store = FaultInjectingStore()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        try await writeAll(fs, handle, pattern(Int(minimumPart) * 2 + 1), chunk: 65536)
        try await fs.fsync(handle)
        #expect(store.inner.contents.withLock { $0.partUploads } == 2)
        store.fail(.uploadPart, code: .internalError)
        _ = await write(fs, handle, at: 2 * minimumPart + 1, pattern(Int(minimumPart)))
        #expect(await errno { try await fs.fsync(handle) } == .io)
        await fs.release(handle)
    }

    @Test func shutdownAbortsOpenUploads() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store)
        let (_, handle) = try await fs.create(parent: .root, name: "open")
        _ = try await write(fs, handle, at: 0, pattern(5000)).get()
        let (_, empty) = try await fs.create(parent: .root, name: "empty")
        #expect(store.uploadsInProgress == 2)
        await fs.shutdown()
        #expect(store.uploadsInProgress == 0)
        #expect(store.object("open") == nil)
        await fs.release(handle)
        await fs.release(empty)
    }

    @Test func aCreateWhoseInitiateIsInFlightAtUnmountIsAbortedToo() async throws {
        let store = FaultInjectingStore()
        store.hold(.initiate)
        let fs = makeFileSystem(store)
        let creating = Task { try await fs.create(parent: .root, name: "late") }
        while store.heldCount(.initiate) == 0 { try await Task.sleep(for: .milliseconds(5)) }
        let shutdown = Task { await fs.shutdown() }
        try await Task.sleep(for: .milliseconds(50))  // shutdown has begun and waits for the initiate
        store.release(.initiate)
        await shutdown.value
        if case .success(let (_, handle)) = await creating.result { await fs.release(handle) }
        #expect(store.inner.contents.withLock { $0.nextUpload } == 2)  // it was initiated…
        #expect(store.inner.uploadsInProgress == 0)  // …and is not left behind
    }

    @Test func growingPartsFollowTheSchedule() async throws {
        let store = InMemoryStore()
        let fs = makeFileSystem(store, budget: 64 * MiB)
        let (_, handle) = try await fs.create(parent: .root, name: "f")
        let schedule = fs.configuration.upload.schedule
        let partCount = schedule.flatParts + 6
        let count = (1...partCount).reduce(Int64(0)) { $0 + schedule.size(of: PartNumber($1)!) }
        // A cheap pattern: one random block repeated (each part still differs in alignment).
        let block = pattern(4093)
        let data = (0..<Int(count)).map { block[$0 % block.count] }
        try await writeAll(fs, handle, data, chunk: 1 << 20)
        try await fs.flush(handle, writer: WriterIdentity(7))
        await fs.release(handle)
        #expect(store.object("f") == data)
        let sizes = store.contents.withLock { contents in contents.objects.isEmpty ? [] : [contents.partUploads] }
        #expect(sizes == [partCount])
    }
}
