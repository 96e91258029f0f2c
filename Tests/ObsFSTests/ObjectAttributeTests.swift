import Glibc
import OBSHashing
import OBSProtocol
import Testing

@testable import ObsFS

/// Shared values of the attribute tests.
enum AttributeFixtures {
    static let now = Timestamp(iso8601: "2026-11-21T10:21:04.000Z")!
    static let future = "2030-07-01T04:11:15.297Z"
    static let key = CustomerKey(key: SecretBytes("0123456789abcdef0123456789abcdef"))

    /// A mount with an SSE-C key file loaded.
    static var mountWithKey: UploadMountOptions {
        var mount = UploadMountOptions()
        mount.customerKey = key
        return mount
    }

    static func name(_ text: String) throws -> ObjectAttributeName {
        try #require(try ObjectAttributeName.parse(text))
    }

    /// Sets `text` (as `setfattr` passes it: its UTF-8 bytes) on `options`.
    static func set(_ text: String, _ value: String, on options: inout ObjectOptions, mount: UploadMountOptions = UploadMountOptions()) throws {
        try name(text).apply(Array(value.utf8), to: &options, mount: mount, now: now)
    }

    /// The `ObjectAttributeError` a call ends with; nil (and a recorded issue for another error)
    /// otherwise.
    static func failure(_ body: () throws -> Void) -> ObjectAttributeError? {
        do {
            try body()
            return nil
        } catch let error as ObjectAttributeError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    static func read(_ text: String, in options: ObjectOptions, state: ObjectAttributeState = ObjectAttributeState(),
                     mount: UploadMountOptions = UploadMountOptions()) throws -> String {
        String(decoding: try name(text).value(in: options, state: state, mount: mount), as: UTF8.self)
    }
}

/// One settable attribute: the value written and the options it must produce.
struct AttributeCase: Sendable, CustomTestStringConvertible {
    let name: String
    let value: String
    let expected: ObjectOptions
    /// The options after `setfattr -x` (a KMS part leaves SSE-KMS selected).
    let removed: ObjectOptions
    var testDescription: String { "\(name)=\(value)" }

    init(_ name: String, _ value: String, removed: ObjectOptions = ObjectOptions(), _ build: (inout ObjectOptions) -> Void) {
        self.name = name
        self.value = value
        self.removed = removed
        var options = ObjectOptions()
        build(&options)
        expected = options
    }

    static let kmsOnly = {
        var options = ObjectOptions()
        options.encryption = .kms(keyID: nil, bucketKeyEnabled: false)
        return options
    }()

    static let all: [AttributeCase] = [
        AttributeCase("user.obs.acl", "public-read") { $0.acl = .publicRead },
        AttributeCase("user.obs.grant-read", "id=d1,id=d2") { $0.grants[.read] = ["d1", "d2"] },
        AttributeCase("user.obs.grant-read-acp", "id=d3") { $0.grants[.readACP] = ["d3"] },
        AttributeCase("user.obs.grant-write-acp", "id=d4") { $0.grants[.writeACP] = ["d4"] },
        AttributeCase("user.obs.grant-full-control", "id=d5") { $0.grants[.fullControl] = ["d5"] },
        AttributeCase("user.obs.storage-class", "COLD") { $0.storageClass = .cold },
        AttributeCase("user.obs.meta.color", "vé %") { $0.metadata["color"] = "vé %" },
        AttributeCase("user.obs.content-type", "text/plain; charset=utf-8") { $0.contentType = "text/plain; charset=utf-8" },
        AttributeCase("user.obs.content-encoding", "gzip") { $0.contentEncoding = "gzip" },
        AttributeCase("user.obs.website-redirect", "https://example.com/x") { $0.websiteRedirectLocation = "https://example.com/x" },
        AttributeCase("user.obs.sse", "kms") { $0.encryption = .kms(keyID: nil, bucketKeyEnabled: false) },
        AttributeCase("user.obs.sse", "obs") { $0.encryption = .obs },
        AttributeCase("user.obs.sse", "c") { $0.encryption = .customer(AttributeFixtures.key) },
        AttributeCase("user.obs.sse-kms-key-id", "region:domain:key/id", removed: kmsOnly) { $0.encryption = .kms(keyID: "region:domain:key/id", bucketKeyEnabled: false) },
        AttributeCase("user.obs.sse-kms-bucket-key", "true", removed: kmsOnly) { $0.encryption = .kms(keyID: nil, bucketKeyEnabled: true) },
        AttributeCase("user.obs.expires", "30") { $0.expiresDays = 30 },
        AttributeCase("user.obs.tagging", "a%20b=c%26d&flag") { $0.tags = [ObjectTag(key: "a b", value: "c&d"), ObjectTag(key: "flag")] },
        AttributeCase("user.obs.persistent.x-custom", "value, é") { $0.persistentHeaders["x-custom"] = "value, é" },
        AttributeCase("user.obs.object-lock-mode", "COMPLIANCE") { $0.objectLockMode = .compliance },
        AttributeCase("user.obs.object-lock-retain-until", AttributeFixtures.future) { $0.objectLockRetainUntil = Timestamp(iso8601: AttributeFixtures.future) },
    ]
}

@Suite("user.obs attributes")
struct ObjectAttributeTests {
    typealias F = AttributeFixtures

    @Test("names: every fixed name parses back to itself; names outside user.obs. are not ours")
    func names() throws {
        for (suffix, name) in ObjectAttributeName.fixedNames {
            #expect(try ObjectAttributeName.parse("user.obs." + suffix) == name)
            #expect(name.description == "user.obs." + suffix)
        }
        for foreign in ["user.other", "security.selinux", "trusted.obs.acl", "user.obsacl", "system.posix_acl_access"] {
            #expect(try ObjectAttributeName.parse(foreign) == nil)
        }
        #expect(try ObjectAttributeName.parse("user.obs.meta.Color") == .metadata("color"))
        #expect(try ObjectAttributeName.parse("user.obs.persistent.X-Trace") == .persistentHeader("x-trace"))
    }

    @Test("an unknown user.obs. name is ENOTSUP, a malformed metadata name EINVAL", arguments: [
        ("user.obs.colour", ENOTSUP), ("user.obs.", ENOTSUP), ("user.obs.storage_class", ENOTSUP), ("user.obs.meta", ENOTSUP),
        ("user.obs.meta.", EINVAL), ("user.obs.meta.two words", EINVAL), ("user.obs.persistent.é", EINVAL),
    ])
    func unknownNames(_ text: String, _ errno: Int32) {
        let error = F.failure { _ = try ObjectAttributeName.parse(text) }
        #expect(error?.errno == errno)
        #expect(error?.attribute == text)
    }

    @Test("set, get, list and remove round-trip", arguments: AttributeCase.all)
    func roundTrip(_ test: AttributeCase) throws {
        var options = ObjectOptions()
        try F.set(test.name, test.value, on: &options, mount: F.mountWithKey)
        #expect(options == test.expected)
        #expect(try F.read(test.name, in: options) == test.value)
        let name = try F.name(test.name)
        #expect(ObjectAttributeName.listNames(in: options, state: ObjectAttributeState()).contains(name))
        try name.remove(from: &options)
        #expect(options == test.removed)
        #expect(F.failure { _ = try name.value(in: options, state: ObjectAttributeState(), mount: F.mountWithKey) }?.errno == ENODATA)
        #expect(F.failure { try name.remove(from: &options) }?.errno == ENODATA)
    }

    @Test("one trailing newline is ignored; bytes that are not UTF-8 are EINVAL")
    func valueBytes() throws {
        var options = ObjectOptions()
        try F.set("user.obs.storage-class", "WARM\n", on: &options)
        #expect(options.storageClass == .warm)
        try F.set("user.obs.meta.note", "line\n\n", on: &options)
        #expect(options.metadata["note"] == "line\n")
        let error = F.failure { try F.name("user.obs.meta.note").apply([0x66, 0xff], to: &options, mount: UploadMountOptions(), now: F.now) }
        #expect(error?.errno == EINVAL)
        #expect(options.metadata["note"] == "line\n")
    }

    @Test("S3 storage-class names are accepted and stored as OBS names")
    func s3StorageClassNames() throws {
        var options = ObjectOptions()
        try F.set("user.obs.storage-class", "GLACIER", on: &options)
        #expect(try F.read("user.obs.storage-class", in: options) == "COLD")
    }

    @Test("a metadata value with non-ASCII and % survives the wire in every dialect", arguments: Dialect.allCases)
    func nonASCIIMetadata(_ dialect: Dialect) throws {
        var options = ObjectOptions()
        try F.set("user.obs.meta.k", "vé %", on: &options)
        let headers = options.headers(for: dialect)
        #expect(headers[dialect.metadataPrefix + "k"] == "v%C3%A9 %25")
        let echoed = try ObjectOptions(parsing: headers, dialect: dialect)
        #expect(try F.read("user.obs.meta.k", in: echoed) == "vé %")
    }

    @Test("KMS key id and bucket key extend SSE-KMS; sse=kms keeps them")
    func kmsParts() throws {
        var options = ObjectOptions()
        try F.set("user.obs.sse-kms-key-id", "k1", on: &options)
        try F.set("user.obs.sse-kms-bucket-key", "true", on: &options)
        try F.set("user.obs.sse", "kms", on: &options)
        #expect(options.encryption == .kms(keyID: "k1", bucketKeyEnabled: true))
        #expect(try F.read("user.obs.sse", in: options) == "kms")
        try F.name("user.obs.sse-kms-key-id").remove(from: &options)
        #expect(options.encryption == .kms(keyID: nil, bucketKeyEnabled: true))
        try F.set("user.obs.sse-kms-bucket-key", "false", on: &options)
        #expect(options.encryption == .kms(keyID: nil, bucketKeyEnabled: false))
        #expect(ObjectAttributeName.listNames(in: options, state: ObjectAttributeState()) == [.encryption])
    }

    @Test("sse=c selects the mount's key file and never shows the key")
    func customerKeySelection() throws {
        var options = ObjectOptions()
        let error = F.failure { try F.name("user.obs.sse").apply(Array("c".utf8), to: &options, mount: UploadMountOptions(), now: F.now) }
        #expect(error?.errno == EINVAL)
        #expect(error?.message.contains("sse_c_key_file=") == true)
        try F.set("user.obs.sse", "c", on: &options, mount: F.mountWithKey)
        #expect(options.encryption == .customer(F.key))
        #expect(try F.read("user.obs.sse", in: options, mount: F.mountWithKey) == "c")
        let names = ObjectAttributeName.listNames(in: options, state: ObjectAttributeState())
        let shown = try names.map { try F.read($0.description, in: options, mount: F.mountWithKey) }.joined()
        let keyText = F.key.key.withBytes { String(decoding: $0, as: UTF8.self) }
        let keyBase64 = F.key.key.withBytes { Base64.encode($0) }
        #expect(!shown.contains(keyText) && !shown.contains(keyBase64))
        #expect(F.failure { try F.name("user.obs.sse-kms-key-id").apply(Array("k".utf8), to: &options, mount: F.mountWithKey, now: F.now) }?.errno == EINVAL)
    }

    @Test("read-only attributes show the object's facts and refuse writes and removal with EPERM", arguments: [
        ("user.obs.etag", "0123abcd-2"), ("user.obs.upload_id", "UPLOAD1"), ("user.obs.version-id", "v-7"),
        ("user.obs.size", "12345"), ("user.obs.last-modified", "2026-11-21T10:21:04.000Z"),
        ("user.obs.expiry-date", "2026-12-22T00:00:00.000Z"),
    ])
    func readOnly(_ text: String, _ expected: String) throws {
        let state = ObjectAttributeState(etag: ETag("\"0123abcd-2\""), uploadID: UploadID("UPLOAD1"), versionID: VersionID("v-7"),
                                         size: 12345, lastModified: F.now, expiryDate: Timestamp(iso8601: "2026-12-22T00:00:00Z"))
        #expect(try F.read(text, in: ObjectOptions(), state: state) == expected)
        var options = ObjectOptions()
        let name = try F.name(text)
        #expect(name.isReadOnly)
        let writeError = F.failure { try name.apply(Array(expected.utf8), to: &options, mount: UploadMountOptions(), now: F.now) }
        #expect(writeError?.errno == EPERM)
        #expect(writeError?.attribute == text)
        #expect(F.failure { try name.remove(from: &options) }?.errno == EPERM)
        #expect(F.failure { _ = try name.value(in: options, state: ObjectAttributeState(), mount: UploadMountOptions()) }?.errno == ENODATA)
    }

    @Test("user.obs.encoding-type: url or none, read back and listed when set, the mount's choice when not")
    func encodingType() throws {
        var mount = UploadMountOptions()
        mount.keyEncoding = nil
        var options = ObjectOptions()
        #expect(try F.read("user.obs.encoding-type", in: options, mount: mount) == "none")
        #expect(!ObjectAttributeName.listNames(in: options, state: ObjectAttributeState()).contains(.encodingType))
        try F.set("user.obs.encoding-type", "url", on: &options, mount: mount)
        #expect(options.encodingType == .url)
        #expect(try F.read("user.obs.encoding-type", in: options, mount: mount) == "url")
        try F.set("user.obs.encoding-type", "none\n", on: &options)
        #expect(options.encodingType == .omitted)
        #expect(try F.read("user.obs.encoding-type", in: options) == "none")
        #expect(ObjectAttributeName.listNames(in: options, state: ObjectAttributeState()) == [.encodingType])
        #expect(Array(options.headers(for: .obs)).isEmpty, "a query parameter, never a header")
        let error = F.failure { try F.set("user.obs.encoding-type", "base64", on: &options) }
        #expect(error?.errno == EINVAL)
        #expect(error?.attribute == "user.obs.encoding-type")
        #expect(error?.message == "must be url or none")
        #expect(options.encodingType == .omitted)
        try F.name("user.obs.encoding-type").remove(from: &options)
        #expect(options == ObjectOptions())
        #expect(F.failure { try F.name("user.obs.encoding-type").remove(from: &options) }?.errno == ENODATA)
        #expect(try F.read("user.obs.encoding-type", in: options) == "url", "the mount's default")
    }

    @Test("the expiry date is read from the expiration header the store answers with (OBS and S3 forms)")
    func expiryDateFromReply() throws {
        var options = ObjectOptions()
        try F.set("user.obs.expires", "30", on: &options)
        let reply = options.responseHeaders(for: .obs, lastModified: F.now)
        let header = try #require(reply["x-obs-expiration"])
        #expect(ObjectAttributeState.expiryDate(fromExpiration: header) == Timestamp(iso8601: "2026-12-22T00:00:00Z"))
        #expect(ObjectAttributeState.expiryDate(fromExpiration: #"expiry-date="Fri, 23 Dec 2012 00:00:00 GMT", rule-id="picture-deletion-rule""#)
            == Timestamp(iso8601: "2012-12-23T00:00:00Z"))
        for malformed in ["", "expiry-date=", #"expiry-date="tomorrow""#, #"expiry-date="Fri, 23 Dec 2012 00:00:00 GMT"#] {
            #expect(ObjectAttributeState.expiryDate(fromExpiration: malformed) == nil)
        }
    }

    @Test("listxattr lists what is set and the object's facts, sorted by name")
    func listing() throws {
        var options = ObjectOptions()
        try F.set("user.obs.meta.b", "2", on: &options)
        try F.set("user.obs.meta.a", "1", on: &options)
        try F.set("user.obs.expires", "7", on: &options)
        try F.set("user.obs.persistent.x-p", "p", on: &options)
        let state = ObjectAttributeState(etag: ETag("e"), size: 0)
        let names = ObjectAttributeName.listNames(in: options, state: state).map(\.description)
        #expect(names == ["user.obs.etag", "user.obs.expires", "user.obs.meta.a", "user.obs.meta.b", "user.obs.persistent.x-p", "user.obs.size"])
    }

    @Test("each validation rule is EINVAL naming the attribute, and leaves the options unchanged", arguments: [
        ("user.obs.storage-class", "ICE", "unknown storage class"),
        ("user.obs.acl", "open", "unknown canned ACL"),
        ("user.obs.acl", "", "empty value"),
        ("user.obs.grant-read", "d1", "is not id=domainID"),
        ("user.obs.grant-full-control", "id=", "is not id=domainID"),
        ("user.obs.expires", "-1", "0 or more"),
        ("user.obs.expires", "1.5", "whole number"),
        ("user.obs.expires", "ten", "whole number"),
        ("user.obs.website-redirect", "ftp://example.com/", "must start with /, http:// or https://"),
        ("user.obs.website-redirect", "/" + String(repeating: "a", count: 2048), "at most 2048 bytes"),
        ("user.obs.meta.big", String(repeating: "x", count: 8 * 1024), "at most 8192 bytes"),
        ("user.obs.persistent.big", String(repeating: "x", count: 8 * 1024), "at most 8192 bytes"),
        ("user.obs.persistent.content-type", "x", "cannot be a persistent header"),
        ("user.obs.persistent.x-obs-acl", "x", "cannot be a persistent header"),
        ("user.obs.object-lock-mode", "GOVERNANCE", "unknown mode"),
        ("user.obs.object-lock-retain-until", "2020-01-01T00:00:00.000Z", "must be in the future"),
        ("user.obs.object-lock-retain-until", "tomorrow", "is not an ISO 8601"),
        ("user.obs.sse", "aes", "must be kms, obs or c"),
        ("user.obs.sse-kms-bucket-key", "yes", "must be true or false"),
        ("user.obs.tagging", "=v", "is not a URL-encoded Key=Value pair"),
        ("user.obs.content-type", "text/plain\r\nX-Evil: 1", "printable ASCII"),
        ("user.obs.content-encoding", "gzïp", "printable ASCII"),
    ])
    func rules(_ text: String, _ value: String, _ rule: String) throws {
        var options = ObjectOptions()
        try F.set("user.obs.meta.keep", "me", on: &options)
        let before = options
        let error = F.failure { try F.name(text).apply(Array(value.utf8), to: &options, mount: UploadMountOptions(), now: F.now) }
        #expect(error?.errno == EINVAL)
        #expect(error?.attribute == text)
        #expect(error?.message.contains(rule) == true, "\(String(describing: error))")
        #expect(options == before)
    }

    @Test("a KMS key id or bucket key is refused when the level selects another encryption")
    func kmsAgainstOtherEncryption() throws {
        var options = ObjectOptions()
        try F.set("user.obs.sse", "obs", on: &options)
        let error = F.failure { try F.name("user.obs.sse-kms-bucket-key").apply(Array("true".utf8), to: &options, mount: UploadMountOptions(), now: F.now) }
        #expect(error?.errno == EINVAL)
        #expect(error?.message == "applies to SSE-KMS only; user.obs.sse is obs")
    }

    @Test("paired values may be set one at a time; the pair is checked where options are used")
    func pairedRules() throws {
        var options = ObjectOptions()
        try F.set("user.obs.object-lock-mode", "COMPLIANCE", on: &options)
        var error = F.failure { try EffectiveOptions.check(options, now: F.now) }
        #expect(error?.errno == EINVAL)
        #expect(error?.attribute == "user.obs.object-lock-retain-until")
        try F.set("user.obs.object-lock-retain-until", F.future, on: &options)
        try EffectiveOptions.check(options, now: F.now)

        var kms = ObjectOptions()
        try F.set("user.obs.sse-kms-bucket-key", "true", on: &kms)
        error = F.failure { try EffectiveOptions.check(kms, now: F.now) }
        #expect(error?.attribute == "user.obs.sse-kms-key-id")
        #expect(error?.message == "the bucket key needs a KMS key id")

        var dateOnly = ObjectOptions()
        try F.set("user.obs.object-lock-retain-until", F.future, on: &dateOnly)
        #expect(F.failure { try EffectiveOptions.check(dateOnly, now: F.now) }?.attribute == "user.obs.object-lock-mode")
    }

    @Test("errors read as attribute: rule (errno)")
    func errorDescription() {
        let error = F.failure { _ = try ObjectAttributeName.parse("user.obs.nope") }
        #expect(error?.description == "user.obs.nope: unknown attribute; see mount-options/xattrs.md for the user.obs. names (ENOTSUP)")
    }
}
