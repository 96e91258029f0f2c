// What the adapter gives back when the kernel does not take a reply that handed it an inode or a
// file handle (libfuse returns an error: the request was interrupted). The kernel will never
// forget such a lookup nor release such a handle, so each would stay in the core for the life of
// the mount. The Dispatcher answers through RecordingReplies, over a real ObsFileSystem on an
// in-process obs-local; each test also runs with the reply taken, where the core keeps both.
import CFuse3
import Logging
import OBSClient
import OBSLocalServer
import OBSProtocol
import Testing
@testable import FuseAdapter
@testable import ObsFS

/// A Dispatcher over an ObsFileSystem on an in-process obs-local, answering into `replies`.
final class RecordedMount {
    let server: OBSLocalServer
    let bucket = BucketName("bkt")
    let client: OBSClient
    let fileSystem: ObsFileSystem
    let replies = RecordingReplies()
    let dispatcher: Dispatcher

    init() throws {
        server = try OBSLocalServer.start(ServerConfiguration(storage: .memory, buckets: [bucket]))
        client = try OBSClient(configuration: OBSClientConfiguration(endpoint: Endpoint(server.endpoint)!,
                                                                     credentials: ServerConfiguration.developmentCredentials))
        let upload = UploadSettings(schedule: PartSizeSchedule(initialPartSize: ProtocolLimits.minimumPartSize), parallel: 2,
                                    pool: PartBufferPool(capacity: 16 << 20))
        var logger = Logger(label: "fuse-adapter-test")
        logger.logLevel = .critical
        fileSystem = ObsFileSystem(configuration: FileSystemConfiguration(bucket: bucket, prefix: "", upload: upload, ownerUID: 1000, ownerGID: 1000),
                                   store: OBSClientStore(client: client, bucket: bucket), logger: logger)
        dispatcher = Dispatcher(fileSystem: fileSystem, logger: logger, replies: replies)
    }

    func stop() { try? server.stop() }

    func putObjects(_ names: [String]) async throws {
        for name in names { _ = try await client.putObject(bucket: bucket, key: ObjectKey(name), bytes: Array(name.utf8)) }
    }

    /// The inodes the table holds for `names` in the root (nil: not held).
    func inodes(_ names: [String]) -> [InodeNumber?] { names.map { fileSystem.table.child(.root, $0)?.number } }

    func holds(_ inode: InodeNumber) -> Bool { fileSystem.table.inode(inode) != nil }

    /// Forgets one lookup of each inode, as the kernel does; whether that dropped them all (one
    /// lookup each was counted).
    func forgetOnce(_ inodes: [InodeNumber]) -> Bool {
        for inode in inodes { fileSystem.forget(inode, count: 1) }
        return !inodes.contains(where: holds)
    }
}

/// Whether the kernel takes the reply under test.
enum Kernel: CaseIterable {
    case takes, refuses
}

@Suite("Replies the kernel does not take")
struct KernelRefusalTests {
    @Test(arguments: Kernel.allCases)
    func lookupCountsOnlyWhenTheKernelTakesTheEntry(_ kernel: Kernel) async throws {
        let mount = try RecordedMount()
        defer { mount.stop() }
        try await mount.putObjects(["a.txt"])
        if kernel == .refuses { mount.replies.refuse() }

        await mount.dispatcher.replyEntry(RecordingReplies.request(isLookup: true)) {
            try await mount.fileSystem.lookup(parent: .root, name: "a.txt")
        }

        let inode = try #require(mount.replies.sent.last?.inode)
        switch kernel {
        case .refuses:
            #expect(!mount.holds(inode))
        case .takes:
            #expect(mount.inodes(["a.txt"]) == [inode])
            #expect(mount.forgetOnce([inode]))
        }
    }

    @Test(arguments: Kernel.allCases)
    func createKeepsItsInodeAndHandleOnlyWhenTheKernelTakesThem(_ kernel: Kernel) async throws {
        let mount = try RecordedMount()
        defer { mount.stop() }
        if kernel == .refuses { mount.replies.refuse() }

        await mount.dispatcher.replyCreate(RecordingReplies.request(), parent: .root, name: "new.bin", mode: 0o644,
                                           caller: Caller(uid: 1000, gid: 1000, umask: 0o022), template: fuse_file_info())

        let inode = try #require(mount.replies.sent.last?.inode)
        let handle = try #require(mount.replies.sent.last?.handle)
        let isOpen = mount.fileSystem.openFiles.withLock { $0.files[handle] != nil }
        let uploads = try await mount.client.listMultipartUploads(bucket: mount.bucket).uploads
        switch kernel {
        case .refuses:
            #expect(!mount.holds(inode))
            #expect(!isOpen)
            #expect(uploads.isEmpty)
        case .takes:
            #expect(mount.inodes(["new.bin"]) == [inode])
            #expect(isOpen)
            #expect(uploads.map(\.key) == [ObjectKey("new.bin")])
            await mount.fileSystem.release(handle)
            #expect(mount.forgetOnce([inode]))
        }
    }

    @Test(arguments: Kernel.allCases)
    func readdirplusEntriesCountOnlyWhenTheKernelTakesTheListing(_ kernel: Kernel) async throws {
        let mount = try RecordedMount()
        defer { mount.stop() }
        let names = ["a", "b", "c"]
        try await mount.putObjects(names)
        if kernel == .refuses { mount.replies.refuse() }
        let directory = try mount.fileSystem.openDirectory(.root)

        // After "." and ".." (cookies 1 and 2, no lookups): the listing.
        await mount.dispatcher.replyDirectory(RecordingReplies.request(), directory, .root, size: 16 * RecordingReplies.packedEntrySize,
                                              offset: 2, plus: true)

        #expect(mount.replies.packedNames == names)
        #expect(mount.replies.sent == [.buffer(count: names.count * RecordingReplies.packedEntrySize)])
        switch kernel {
        case .refuses:
            #expect(mount.inodes(names) == [nil, nil, nil])
        case .takes:
            let inodes = mount.inodes(names).compactMap { $0 }
            #expect(inodes.count == names.count)
            #expect(mount.forgetOnce(inodes))
        }
    }

    @Test func readdirplusEntryThatDoesNotFitIsGivenBack() async throws {
        let mount = try RecordedMount()
        defer { mount.stop() }
        let names = ["a", "b", "c"]
        try await mount.putObjects(names)
        let directory = try mount.fileSystem.openDirectory(.root)

        // Room for "a" only: "b" is counted, does not fit, and is given back; "c" is not reached.
        await mount.dispatcher.replyDirectory(RecordingReplies.request(), directory, .root, size: RecordingReplies.packedEntrySize,
                                              offset: 2, plus: true)

        #expect(mount.replies.packedNames == ["a"])
        let inodes = mount.inodes(names)
        #expect(inodes[0] != nil)
        #expect(inodes[1...] == [nil, nil])
    }
}
