import Glibc
import OBSProtocol
import Testing

@testable import ObsFS

@Suite("Upload option inheritance")
struct ObjectAttributeInheritanceTests {
    typealias F = AttributeFixtures

    /// Options with `attributes` set through their xattrs.
    func level(_ attributes: [(String, String)]) throws -> ObjectOptions {
        var options = ObjectOptions()
        for (name, value) in attributes { try F.set(name, value, on: &options) }
        return options
    }

    @Test("the nearest directory wins over farther ones and the mount; the file wins over all")
    func singleValues() throws {
        let mount = try level([("user.obs.storage-class", "STANDARD"), ("user.obs.acl", "private"), ("user.obs.expires", "1")])
        let root = try level([("user.obs.storage-class", "WARM"), ("user.obs.expires", "30")])
        let nearest = try level([("user.obs.storage-class", "COLD")])
        var resolved = EffectiveOptions.resolve(mountDefaults: mount, directoryChain: [root, nearest], file: ObjectOptions())
        #expect(resolved.storageClass == .cold)
        #expect(resolved.expiresDays == 30)
        #expect(resolved.acl == .private)
        let file = try level([("user.obs.storage-class", "DEEP_ARCHIVE")])
        resolved = EffectiveOptions.resolve(mountDefaults: mount, directoryChain: [root, nearest], file: file)
        #expect(resolved.storageClass == .deepArchive)
        resolved = EffectiveOptions.resolve(mountDefaults: mount, directoryChain: [nearest, root], file: ObjectOptions())
        #expect(resolved.storageClass == .warm, "the last directory of the chain is the nearest")
    }

    @Test("the encoding type: the nearest directory wins, the file wins over all, unset levels keep the mount's")
    func encodingType() throws {
        let root = try level([("user.obs.encoding-type", "none")])
        let nearest = try level([("user.obs.encoding-type", "url")])
        #expect(EffectiveOptions.resolve(mountDefaults: ObjectOptions(), directoryChain: [root], file: ObjectOptions()).encodingType == .omitted)
        #expect(EffectiveOptions.resolve(mountDefaults: ObjectOptions(), directoryChain: [root, nearest], file: ObjectOptions()).encodingType == .url)
        let file = try level([("user.obs.encoding-type", "none")])
        #expect(EffectiveOptions.resolve(mountDefaults: ObjectOptions(), directoryChain: [root, nearest], file: file).encodingType == .omitted)
        #expect(EffectiveOptions.resolve(mountDefaults: ObjectOptions(), directoryChain: [], file: ObjectOptions()).encodingType == nil)
    }

    @Test("metadata, persistent headers, tags and grants merge per key")
    func maps() throws {
        let mount = try level([("user.obs.meta.owner", "ops"), ("user.obs.meta.team", "x"), ("user.obs.tagging", "env=prod&tier=1"),
                               ("user.obs.grant-read", "id=m1"), ("user.obs.persistent.x-a", "1")])
        let directory = try level([("user.obs.meta.team", "y"), ("user.obs.meta.project", "p"), ("user.obs.tagging", "tier=2&dir"),
                                   ("user.obs.grant-full-control", "id=d1"), ("user.obs.persistent.x-b", "2")])
        let file = try level([("user.obs.meta.project", "q"), ("user.obs.grant-read", "id=f1,id=f2"), ("user.obs.persistent.x-a", "3")])
        let resolved = EffectiveOptions.resolve(mountDefaults: mount, directoryChain: [directory], file: file)
        #expect(resolved.metadata == ["owner": "ops", "team": "y", "project": "q"])
        #expect(resolved.tags == [ObjectTag(key: "env", value: "prod"), ObjectTag(key: "tier", value: "2"), ObjectTag(key: "dir")])
        #expect(resolved.grants == [.read: ["f1", "f2"], .fullControl: ["d1"]])
        #expect(resolved.persistentHeaders == ["x-a": "3", "x-b": "2"])
    }

    @Test("encryption is one value: the nearest level that sets it sets all of it")
    func encryptionIsWhole() throws {
        let mount = try level([("user.obs.sse-kms-key-id", "mount-key"), ("user.obs.sse-kms-bucket-key", "true")])
        let directory = try level([("user.obs.sse", "obs")])
        #expect(EffectiveOptions.resolve(mountDefaults: mount, directoryChain: [directory], file: ObjectOptions()).encryption == .obs)
        let file = try level([("user.obs.sse", "kms")])
        #expect(EffectiveOptions.resolve(mountDefaults: mount, directoryChain: [directory], file: file).encryption
            == .kms(keyID: nil, bucketKeyEnabled: false))
    }

    @Test("a lock mode on a directory and a date on the file make a valid pair")
    func pairAcrossLevels() throws {
        let directory = try level([("user.obs.object-lock-mode", "COMPLIANCE")])
        let file = try level([("user.obs.object-lock-retain-until", F.future)])
        try EffectiveOptions.check(EffectiveOptions.resolve(mountDefaults: ObjectOptions(), directoryChain: [directory], file: file), now: F.now)
        let alone = EffectiveOptions.resolve(mountDefaults: ObjectOptions(), directoryChain: [directory], file: ObjectOptions())
        #expect(F.failure { try EffectiveOptions.check(alone, now: F.now) }?.attribute == "user.obs.object-lock-retain-until")
    }

    @Test("metadata within the limit on each level but over it together is refused where used")
    func metadataLimitAcrossLevels() throws {
        let half = String(repeating: "x", count: 4100)
        let directory = try level([("user.obs.meta.a", half)])
        let file = try level([("user.obs.meta.b", half)])
        let resolved = EffectiveOptions.resolve(mountDefaults: ObjectOptions(), directoryChain: [directory], file: file)
        let error = F.failure { try EffectiveOptions.check(resolved, now: F.now) }
        #expect(error?.errno == EINVAL)
        #expect(error?.attribute == "user.obs.meta.*")
    }

    @Test("Content-Type: a level's value, else the mount's content_type=, else inferred from the name")
    func contentType() throws {
        var mount = UploadMountOptions()
        func created(_ name: String, _ chain: [ObjectOptions] = [], file: ObjectOptions = ObjectOptions()) -> String? {
            EffectiveOptions.forNewFile(named: name, mount: mount, directoryChain: chain, file: file).contentType
        }
        #expect(created("photo.JPG") == "image/jpeg")
        #expect(created("notes") == "application/octet-stream")
        let directory = try level([("user.obs.content-type", "text/x-log")])
        #expect(created("photo.jpg", [directory]) == "text/x-log")
        #expect(created("photo.jpg", [directory], file: try level([("user.obs.content-type", "image/png")])) == "image/png")
        try mount.apply(name: "content_type", value: "application/x-mount", now: F.now)
        #expect(created("photo.jpg") == "application/x-mount")
        mount = UploadMountOptions()
        try mount.apply(name: "content_type_inference", value: "off", now: F.now)
        #expect(created("photo.jpg") == nil)
        mount = UploadMountOptions()
        try mount.apply(name: "content_type.jpg", value: "image/x-custom", now: F.now)
        #expect(created("a.JPG") == "image/x-custom")
    }
}
