import Foundation
import OBSHashing
import OBSProtocol
import Testing

@testable import ObsFS

@Suite("Upload mount options")
struct ObjectAttributeMountOptionTests {
    typealias F = AttributeFixtures

    /// Parses a `-o` list as the general parser will: split, `name[=value]`, apply, check (the
    /// rules pairing options are left out when `checking` is false).
    func parse(_ list: String, checking: Bool = true) throws(MountOptionError) -> UploadMountOptions {
        var mount = UploadMountOptions()
        for option in MountOptionList.split(list) {
            if let equals = option.firstIndex(of: "=") {
                try mount.apply(name: String(option[..<equals]), value: String(option[option.index(after: equals)...]), now: F.now)
            } else {
                try mount.apply(name: option, value: nil, now: F.now)
            }
        }
        if checking { try mount.check(now: F.now) }
        return mount
    }

    func failure(_ list: String) -> MountOptionError? {
        do {
            _ = try parse(list)
            return nil
        } catch {
            return error
        }
    }

    @Test("every attribute is a mount option under its name with _ for -, giving the same options (pairs are checked in `refused`)")
    func everyAttribute() throws {
        for test in AttributeCase.all where test.value != "c" {
            let name = try F.name(test.name)
            let escaped = test.value.replacing("\\", with: "\\\\").replacing(",", with: "\\,")
            let mount = try parse("\(name.mountOptionName)=\(escaped)", checking: false)
            #expect(mount.defaults == test.expected, "\(name.mountOptionName)")
        }
    }

    @Test("metadata and persistent-header names in options are case-insensitive, like the attributes")
    func namedOptionsIgnoreCase() throws {
        let mount = try parse("meta.Owner=Zoë,meta=Team:ops,persistent.X-Trace=on")
        #expect(mount.defaults.metadata == ["owner": "Zoë", "team": "ops"])
        #expect(mount.defaults.persistentHeaders == ["x-trace": "on"])
    }

    @Test("the option names", arguments: [
        ("user.obs.storage-class", "storage_class"), ("user.obs.grant-read-acp", "grant_read_acp"), ("user.obs.sse-kms-key-id", "sse_kms_key_id"),
        ("user.obs.object-lock-retain-until", "object_lock_retain_until"), ("user.obs.meta.my-key_1", "meta.my-key_1"),
        ("user.obs.persistent.x-p", "persistent.x-p"),
    ])
    func names(_ attribute: String, _ option: String) throws {
        #expect(try F.name(attribute).mountOptionName == option)
    }

    @Test("a whole set of defaults in one list, with escaped commas")
    func fullList() throws {
        let mount = try parse(#"storage_class=COLD,acl=private,grant_read=id=a\,id=b,meta.owner=ops,meta=team:x\,y,content_encoding=gzip,"#
            + #"website_redirect=/r,sse=kms,sse_kms_key_id=k1,sse_kms_bucket_key,expires=30,tagging=env=prod&tier,persistent.x-p=v,"#
            + "object_lock_mode=COMPLIANCE,object_lock_retain_until=\(F.future),encoding_type=none,content_type_inference=off")
        var expected = ObjectOptions()
        expected.storageClass = .cold
        expected.acl = .private
        expected.grants = [.read: ["a", "b"]]
        expected.metadata = ["owner": "ops", "team": "x,y"]
        expected.contentEncoding = "gzip"
        expected.websiteRedirectLocation = "/r"
        expected.encryption = .kms(keyID: "k1", bucketKeyEnabled: true)
        expected.expiresDays = 30
        expected.tags = [ObjectTag(key: "env", value: "prod"), ObjectTag(key: "tier")]
        expected.persistentHeaders = ["x-p": "v"]
        expected.objectLockMode = .compliance
        expected.objectLockRetainUntil = Timestamp(iso8601: F.future)
        #expect(mount.defaults == expected)
        #expect(mount.keyEncoding == nil)
        #expect(try F.read("user.obs.encoding-type", in: ObjectOptions(), mount: mount) == "none")
        #expect(!mount.contentTypeInference)
    }

    @Test("bad options are refused naming the option", arguments: [
        ("storage_class=ICE", "storage_class=ICE", "unknown storage class"),
        ("acl=open", "acl=open", "unknown canned ACL"),
        ("expires=-1", "expires=-1", "0 or more"),
        ("expires", "expires", "needs a value"),
        ("website_redirect=ftp://x", "website_redirect=ftp://x", "must start with"),
        ("grant_read=id=a,id=b", "id=b", "unknown option"),
        ("colour=red", "colour=red", "unknown option"),
        ("storage-class=COLD", "storage-class=COLD", "unknown option"),
        ("etag=abc", "etag=abc", "unknown option"),
        ("upload_id=U", "upload_id=U", "unknown option"),
        ("encoding_type=base64", "encoding_type=base64", "must be url or none"),
        ("content_type_inference=maybe", "content_type_inference=maybe", "must be on or off"),
        ("content_type.md=markdown", "content_type.md=markdown", "content_type.EXT=TYPE/SUBTYPE"),
        ("meta=novalue", "meta=novalue", "meta=NAME:VALUE"),
        ("meta.=v", "meta.=v", "A-Z a-z 0-9"),
        ("persistent.content-length=1", "persistent.content-length=1", "cannot be a persistent header"),
        ("object_lock_mode=COMPLIANCE", "object_lock_retain_until", "needs a retain-until date"),
        ("object_lock_retain_until=2030-01-01T00:00:00Z", "object_lock_mode", "needs a lock mode"),
        ("sse_kms_bucket_key", "sse_kms_key_id", "needs a KMS key id"),
        ("sse=c", "sse=c", "sse_c_key_file="),
        ("sse=rot13", "sse=rot13", "must be kms, obs or c"),
        ("meta.a=\(String(repeating: "x", count: 5000)),meta.b=\(String(repeating: "y", count: 5000))", "meta.b=" + String(repeating: "y", count: 5000), "at most 8192"),
    ])
    func refused(_ list: String, _ option: String, _ reason: String) {
        let error = failure(list)
        #expect(error?.option == option)
        #expect(error?.reason.contains(reason) == true, "\(String(describing: error))")
    }

    @Test("option lists split on unescaped commas; backslash escapes as libfuse does", arguments: [
        ("a=1,b", ["a=1", "b"]),
        (#"grant_read=id=x\,id=y,b=2"#, ["grant_read=id=x,id=y", "b=2"]),
        (#"meta.p=back\\slash"#, [#"meta.p=back\slash"#]),
        (#"meta.p=oct\054al\041"#, ["meta.p=oct,al!"]),
        (#"meta.p=\q"#, ["meta.p=q"]),
        (#"tail\"#, [#"tail\"#]),
        (",,a,,b,", ["a", "b"]),
        ("", []),
    ])
    func splitting(_ list: String, _ expected: [String]) {
        #expect(MountOptionList.split(list) == expected)
    }

    // MARK: SSE-C key file

    /// A key file in a fresh directory with `bytes` and `mode`.
    func keyFile(_ bytes: [UInt8], mode: Int) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("obsfs-key-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("key").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    let rawKey = Array("0123456789abcdef0123456789abcdef".utf8)

    @Test("a key file of 32 raw bytes or their base64, mode 0600 or 0400, loads the key; sse=c selects it in any order",
          arguments: [(false, 0o600), (true, 0o600), (true, 0o400)])
    func keyFileLoads(_ base64: Bool, _ mode: Int) throws {
        let content = base64 ? Array((Base64.encode(rawKey) + "\n").utf8) : rawKey
        let path = try keyFile(content, mode: mode)
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let expected = CustomerKey(key: SecretBytes(rawKey))
        for list in ["sse=c,sse_c_key_file=\(path)", "sse_c_key_file=\(path),sse=c"] {
            let mount = try parse(list)
            #expect(mount.customerKey == expected)
            #expect(mount.defaults.encryption == .customer(expected))
        }
        let withoutSelection = try parse("sse_c_key_file=\(path)")
        #expect(withoutSelection.customerKey == expected)
        #expect(withoutSelection.defaults.encryption == nil)
    }

    @Test("the last sse= wins whatever the position of the key file; KMS options contradict sse=c")
    func lastEncryptionWins() throws {
        let path = try keyFile(rawKey, mode: 0o600)
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let key = CustomerKey(key: SecretBytes(rawKey))
        #expect(try parse("sse=kms,sse=c,sse_c_key_file=\(path)").defaults.encryption == .customer(key))
        #expect(try parse("sse=c,sse_c_key_file=\(path),sse=obs").defaults.encryption == .obs)
        #expect(try parse("sse_c_key_file=\(path),sse=c,sse=kms").defaults.encryption == .kms(keyID: nil, bucketKeyEnabled: false))
        #expect(try parse("sse=c,sse=kms,sse_c_key_file=\(path)").defaults.encryption == .kms(keyID: nil, bucketKeyEnabled: false))
        let error = failure("sse=c,sse_kms_key_id=k,sse_c_key_file=\(path)")
        #expect(error?.option == "sse_kms_key_id=k")
        #expect(error?.reason == "applies to SSE-KMS only; sse is c")
        #expect(failure("sse_c_key_file=\(path),sse=c,sse_kms_bucket_key")?.option == "sse_kms_bucket_key")
    }

    @Test("a key file group- or world-accessible is refused with the mode and the fix", arguments: [0o644, 0o640, 0o604, 0o660, 0o602])
    func keyFilePermissions(_ mode: Int) throws {
        let path = try keyFile(rawKey, mode: mode)
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let error = failure("sse_c_key_file=\(path)")
        #expect(error?.option == "sse_c_key_file=\(path)")
        #expect(error?.reason == "the key file may be read or written by group or others (mode \(String(mode, radix: 8))); chmod 600 it")
    }

    @Test("a key file of the wrong size or not base64 is refused without showing its content", arguments: [
        Array("short".utf8), Array(repeating: UInt8(ascii: "k"), count: 33), Array(repeating: UInt8(ascii: "!"), count: 44),
        Array((Base64.encode(Array(repeating: UInt8(7), count: 31)) + "\n").utf8), Array(repeating: UInt8(ascii: "A"), count: 4096),
    ])
    func keyFileContent(_ content: [UInt8]) throws {
        let path = try keyFile(content, mode: 0o600)
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let error = failure("sse_c_key_file=\(path)")
        #expect(error?.reason == "the key file must hold a 256-bit key: 32 raw bytes or their base64")
    }

    @Test("a missing key file or a directory is refused")
    func keyFileMissing() throws {
        let path = try keyFile(rawKey, mode: 0o600)
        let directory = (path as NSString).deletingLastPathComponent
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(failure("sse_c_key_file=\(path).absent")?.reason.hasPrefix("cannot open the key file") == true)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory)
        #expect(failure("sse_c_key_file=\(directory)")?.reason == "the key file is not a regular file")
    }

    @Test("the loaded key never appears when the options are printed")
    func keyNotPrinted() throws {
        let path = try keyFile(rawKey, mode: 0o600)
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let mount = try parse("sse=c,sse_c_key_file=\(path)")
        let printed = String(describing: mount) + String(reflecting: mount) + String(describing: mount.defaults)
        #expect(!printed.contains("0123456789abcdef"))
        #expect(!printed.contains(Base64.encode(rawKey)))
        #expect(printed.contains("redacted"))
    }
}
