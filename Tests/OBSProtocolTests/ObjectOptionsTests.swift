import OBSHashing
import OBSProtocol
import Testing

/// The option headers of a captured SDK request (transport and signing headers left out).
func optionHeaders(of vector: SignatureVector) -> HeaderFields {
    let transport: Set<String> = ["accept-encoding", "content-length", "host", "date", "authorization", "connection", "user-agent", "x-obs-custom", "content-md5"]
    return HeaderFields(vector.headers.filter { !transport.contains($0.key.lowercasedASCII) }.map { (name: $0.key, value: $0.value) })
}

/// Header fields as a comparable set of lower-cased names and values.
func fieldSet(_ fields: HeaderFields) -> Set<String> {
    Set(fields.map { $0.name.lowercasedASCII + ": " + $0.value })
}

func vector(_ label: String, _ dialect: Dialect) throws -> SignatureVector {
    try #require(SignatureVector.load(dialect == .obs ? "obs-signature.jsonl" : "v2-signature.jsonl").first { $0.label == label })
}

let sdkCustomerKey = CustomerKey(key: SecretBytes("0123456789abcdef0123456789abcdef"))

/// Options using every parameter.
func everyOption(encryption: ServerSideEncryption) -> ObjectOptions {
    var options = ObjectOptions()
    options.acl = .publicReadDelivered
    options.grants = [.read: ["d1", "d2"], .readACP: ["d3"], .writeACP: ["d4"], .fullControl: ["d5"]]
    options.storageClass = .cold
    options.metadata = ["plain": "v", "Mixed-Case": "vé %", "spaces": " a;b=c&d "]
    options.contentType = "text/plain; charset=utf-8"
    options.contentEncoding = "gzip"
    options.websiteRedirectLocation = "https://example.com/x"
    options.encryption = encryption
    options.expiresDays = 30
    options.tags = [ObjectTag(key: "a b", value: "c&d=é"), ObjectTag(key: "flag")]
    options.persistentHeaders = ["x-custom-h": "value, with: punctuation é"]
    options.objectLockMode = .compliance
    options.objectLockRetainUntil = Timestamp(iso8601: "2030-07-01T04:11:15.297Z")
    return options
}

let testNow = Timestamp(iso8601: "2026-11-21T10:21:04.000Z")!

@Suite("Object options")
struct ObjectOptionsTests {
    @Test("\"initiate full\" matches the SDK's headers in OBS and V2, and parses back", arguments: [Dialect.obs, .v2])
    func initiateFull(_ dialect: Dialect) throws {
        var options = ObjectOptions()
        options.acl = .private
        options.storageClass = .cold
        options.metadata = ["Mk": "v1"]
        options.websiteRedirectLocation = "/other"
        options.contentType = "application/x-foo"
        options.expiresDays = 3
        options.encryption = .kms(keyID: "kmskeyid", bucketKeyEnabled: false)
        options.grants = [.read: ["uid1"]]
        let sdk = optionHeaders(of: try vector("initiate full", dialect))
        #expect(fieldSet(options.headers(for: dialect)) == fieldSet(sdk))
        #expect(try ObjectOptions(parsing: sdk, dialect: dialect) == options)
        #expect(options.violations(now: testNow).isEmpty)
    }

    @Test("\"putObject\" matches the SDK's headers in OBS and V2, and parses back", arguments: [Dialect.obs, .v2])
    func putObject(_ dialect: Dialect) throws {
        var options = ObjectOptions()
        options.metadata = ["a": "b"]
        options.acl = .publicRead
        options.websiteRedirectLocation = "/x"
        options.contentType = "text/plain"
        options.encryption = .kms(keyID: nil, bucketKeyEnabled: false)
        options.storageClass = .standard
        options.expiresDays = 2
        let sdk = optionHeaders(of: try vector("putObject", dialect))
        #expect(fieldSet(options.headers(for: dialect)) == fieldSet(sdk))
        #expect(try ObjectOptions(parsing: sdk, dialect: dialect) == options)
    }

    @Test("non-ASCII metadata is percent-encoded as the SDK does", arguments: [Dialect.obs, .v2])
    func nonASCIIMetadata(_ dialect: Dialect) throws {
        var options = ObjectOptions()
        options.metadata = ["k": "vé %"]
        options.contentType = "text/plain"
        let sdk = optionHeaders(of: try vector("meta non-ascii", dialect))
        #expect(fieldSet(options.headers(for: dialect)) == fieldSet(sdk))
        #expect(try ObjectOptions(parsing: sdk, dialect: dialect).metadata == ["k": "vé %"])
    }

    @Test("a metadata value that is not validly percent-encoded is kept as sent")
    func literalPercentMetadata() throws {
        let options = try ObjectOptions(parsing: ["x-amz-meta-rate": "100%"], dialect: .v4)
        #expect(options.metadata == ["rate": "100%"])
    }

    @Test("SSE-C headers match the SDK's upload-part headers", arguments: [Dialect.obs, .v2])
    func customerKeyHeaders(_ dialect: Dialect) throws {
        let sdk = optionHeaders(of: try vector("uploadPart", dialect))
        #expect(fieldSet(sdkCustomerKey.headers(for: dialect)) == fieldSet(sdk))
        var options = ObjectOptions()
        options.encryption = .customer(sdkCustomerKey)
        #expect(try ObjectOptions(parsing: sdk, dialect: dialect) == options)
        #expect(!sdkCustomerKey.description.contains("MDEyMzQ1"))
        #expect(!String(describing: options).contains("MDEyMzQ1"))
    }

    @Test("every parameter's header in every dialect")
    func everyHeader() throws {
        let expected: [Dialect: [String]] = [
            .obs: [
                "x-obs-acl: public-read-delivered", "x-obs-grant-read: id=d1,id=d2", "x-obs-grant-read-acp: id=d3",
                "x-obs-grant-write-acp: id=d4", "x-obs-grant-full-control: id=d5", "x-obs-storage-class: COLD",
                "x-obs-meta-Mixed-Case: v%C3%A9 %25", "x-obs-meta-plain: v", "x-obs-meta-spaces:  a;b=c&d ",
                "Content-Type: text/plain; charset=utf-8", "Content-Encoding: gzip",
                "x-obs-website-redirect-location: https://example.com/x", "x-obs-server-side-encryption: kms",
                "x-obs-server-side-encryption-kms-key-id: region:domain:key/id", "x-obs-server-side-encryption-bucket-key-enabled: true",
                "x-obs-expires: 30", "x-obs-tagging: a%20b=c%26d%3D%C3%A9&flag",
                "x-obs-persistent-headers: x-custom-h:" + Base64.encode("value, with: punctuation é".utf8),
                "x-obs-object-lock-mode: COMPLIANCE", "x-obs-object-lock-retain-until-date: 2030-07-01T04:11:15.297Z",
            ],
        ]
        let options = everyOption(encryption: .kms(keyID: "region:domain:key/id", bucketKeyEnabled: true))
        let obs = options.headers(for: .obs).map { "\($0.name): \($0.value)" }
        #expect(obs == expected[.obs])
        for dialect in [Dialect.v2, .v4] {
            let s3 = options.headers(for: dialect).map { "\($0.name): \($0.value)" }
            let renamed = expected[.obs]!.map { line in
                line.replacingOccurrences("x-obs-", "x-amz-").replacingOccurrences("x-amz-expires", "x-obs-expires")
                    .replacingOccurrences("COLD", "GLACIER").replacingOccurrences("encryption: kms", "encryption: aws:kms")
                    .replacingOccurrences("kms-key-id", "aws-kms-key-id")
            }
            #expect(s3 == renamed)
        }
    }

    @Test("GET/HEAD reply headers echo the stored options, never the SSE-C key", arguments: Dialect.allCases)
    func responseHeaders(_ dialect: Dialect) {
        let p = dialect.headerPrefix
        let kms = everyOption(encryption: .kms(keyID: "region:domain:key/id", bucketKeyEnabled: true))
        let lines = kms.responseHeaders(for: dialect, lastModified: testNow).map { "\($0.name): \($0.value)" }
        #expect(lines == [
            "\(p)storage-class: \(dialect == .obs ? "COLD" : "GLACIER")",
            "\(p)meta-Mixed-Case: v%C3%A9 %25", "\(p)meta-plain: v", "\(p)meta-spaces:  a;b=c&d ",
            "Content-Type: text/plain; charset=utf-8", "Content-Encoding: gzip",
            "\(p)website-redirect-location: https://example.com/x",
            "\(p)server-side-encryption: \(dialect == .obs ? "kms" : "aws:kms")",
            "\(p)server-side-encryption-\(dialect == .obs ? "" : "aws-")kms-key-id: region:domain:key/id",
            "\(p)server-side-encryption-bucket-key-enabled: true",
            // 30 days after 2026-11-21T10:21:04Z, rounded up to midnight.
            "\(p)expiration: expiry-date=\"Tue, 22 Dec 2026 00:00:00 GMT\"",
            "\(p)tagging-count: 2",
            "x-custom-h: value, with: punctuation é",
            "\(p)object-lock-mode: COMPLIANCE", "\(p)object-lock-retain-until-date: 2030-07-01T04:11:15.297Z",
        ])
        let customer = everyOption(encryption: .customer(sdkCustomerKey)).responseHeaders(for: dialect, lastModified: testNow)
        #expect(customer[dialect.header("server-side-encryption-customer-algorithm")] == "AES256")
        #expect(customer[dialect.header("server-side-encryption-customer-key-MD5")] == "hRasmdxgYDKV3nvbahU1MA==")
        #expect(customer[dialect.header("server-side-encryption-customer-key")] == nil)
        #expect(!customer.contains { $0.value.contains("MDEyMzQ1") })
    }

    @Test("expiry is rounded up to midnight; a midnight due date stays")
    func expiryRounding() {
        var options = ObjectOptions()
        options.expiresDays = 0
        #expect(options.responseHeaders(for: .obs, lastModified: testNow)["x-obs-expiration"] == "expiry-date=\"Sun, 22 Nov 2026 00:00:00 GMT\"")
        options.expiresDays = 1
        #expect(options.responseHeaders(for: .obs, lastModified: Timestamp(iso8601: "2026-11-21T00:00:00Z")!)["x-obs-expiration"]
            == "expiry-date=\"Sun, 22 Nov 2026 00:00:00 GMT\"")
    }

    @Test("a violation becomes the ServiceError the server answers with")
    func violationServiceError() {
        var options = ObjectOptions()
        options.metadata = ["m": String(repeating: "v", count: 9000)]
        let error = options.violations(now: testNow)[0].serviceError(resource: "/b/k", requestID: "R")
        #expect(error.status == 400 && error.code == .metadataTooLarge && error.resource == "/b/k" && error.requestID == "R")
        #expect(error.message.hasPrefix("metadata: "))
    }

    @Test("headers parse back to the same options in every dialect and for every encryption",
          arguments: Dialect.allCases, [ServerSideEncryption.kms(keyID: "k", bucketKeyEnabled: true), .kms(keyID: nil, bucketKeyEnabled: false), .obs, .customer(sdkCustomerKey)])
    func roundTrip(_ dialect: Dialect, _ encryption: ServerSideEncryption) throws {
        let options = everyOption(encryption: encryption)
        #expect(try ObjectOptions(parsing: options.headers(for: dialect), dialect: dialect) == options)
        #expect(options.violations(now: testNow).isEmpty)
        #expect(try ObjectOptions(parsing: ObjectOptions().headers(for: dialect), dialect: dialect) == ObjectOptions())
    }

    @Test("the server reads S3 storage-class names and the OBS names in either dialect")
    func storageClassNames() throws {
        for (wire, storageClass) in [("STANDARD_IA", StorageClass.warm), ("GLACIER", .cold), ("WARM", .warm), ("DEEP_ARCHIVE", .deepArchive)] {
            #expect(try ObjectOptions(parsing: ["x-amz-storage-class": wire], dialect: .v4).storageClass == storageClass)
        }
        #expect(StorageClass.known.map { $0.wireName(for: .v2) } == ["STANDARD", "STANDARD_IA", "GLACIER", "DEEP_ARCHIVE"])
        #expect(StorageClass.known.map { $0.wireName(for: .obs) } == ["STANDARD", "WARM", "COLD", "DEEP_ARCHIVE"])
    }

    /// One validation rule: how to break it and the parameter and code it must be reported with.
    struct Rule: Sendable, CustomTestStringConvertible {
        let name: String
        let parameter: ObjectOptions.Parameter
        var code: ObsErrorCode = .invalidArgument
        let breakIt: @Sendable (inout ObjectOptions) -> Void
        var testDescription: String { name }
    }

    static let rules: [Rule] = [
        Rule(name: "unknown storage class", parameter: .storageClass, code: "InvalidStorageClass") { $0.storageClass = StorageClass("REDUCED_REDUNDANCY") },
        Rule(name: "negative expires", parameter: .expires) { $0.expiresDays = -1 },
        Rule(name: "redirect without / or http(s)://", parameter: .websiteRedirectLocation) { $0.websiteRedirectLocation = "ftp://x" },
        Rule(name: "redirect over 2 KB", parameter: .websiteRedirectLocation) { $0.websiteRedirectLocation = "/" + String(repeating: "a", count: 2048) },
        Rule(name: "metadata over 8 KB", parameter: .metadata, code: .metadataTooLarge) { $0.metadata = ["m": String(repeating: "v", count: 8 * 1024)] },
        Rule(name: "metadata plus persistent headers over 8 KB", parameter: .metadata, code: .metadataTooLarge) {
            $0.metadata = ["m": String(repeating: "v", count: 5000)]
            $0.persistentHeaders = ["p": String(repeating: "v", count: 3200)]
        },
        Rule(name: "persistent header named x-obs-*", parameter: .persistentHeaders) { $0.persistentHeaders["x-obs-acl"] = "v" },
        Rule(name: "persistent header shadowing a standard header", parameter: .persistentHeaders) { $0.persistentHeaders["Content-Type"] = "v" },
        Rule(name: "lock mode without a date", parameter: .objectLockRetainUntilDate) { $0.objectLockRetainUntil = nil },
        Rule(name: "lock date without a mode", parameter: .objectLockMode) { $0.objectLockMode = nil },
        Rule(name: "lock date in the past", parameter: .objectLockRetainUntilDate) { $0.objectLockRetainUntil = testNow.adding(seconds: -1) },
        Rule(name: "lock date now", parameter: .objectLockRetainUntilDate) { $0.objectLockRetainUntil = testNow },
        Rule(name: "SSE-KMS bucket key without key id", parameter: .kmsKeyID) { $0.encryption = .kms(keyID: nil, bucketKeyEnabled: true) },
        Rule(name: "SSE-C key of 16 bytes", parameter: .customerKey) { $0.encryption = .customer(CustomerKey(key: SecretBytes(Array(repeating: 7, count: 16)))) },
        Rule(name: "SSE-C key MD5 mismatch", parameter: .customerKey) {
            $0.encryption = .customer(CustomerKey(key: sdkCustomerKey.key, keyMD5: Hash.md5(Array("other".utf8))))
        },
        Rule(name: "empty grant id", parameter: .grants) { $0.grants[.read] = [""] },
    ]

    @Test("each validation rule is reported once, naming its parameter", arguments: rules)
    func rule(_ rule: Rule) {
        var options = everyOption(encryption: .kms(keyID: "k", bucketKeyEnabled: true))
        #expect(options.violations(now: testNow).isEmpty)
        rule.breakIt(&options)
        let violations = options.violations(now: testNow)
        #expect(violations.count == 1, "\(violations)")
        #expect(violations.first?.parameter == rule.parameter)
        #expect(violations.first?.code == rule.code)
        #expect(violations.first.map { !$0.message.isEmpty && $0.description.hasPrefix(rule.parameter.description + ": ") } == true)
    }

    @Test("limits are inclusive: 2 KB redirect, 8 KB metadata, 0 days and a date 1 ms ahead are valid")
    func limitsInclusive() {
        var options = ObjectOptions()
        options.websiteRedirectLocation = "/" + String(repeating: "a", count: 2047)
        options.metadata = ["m": String(repeating: "v", count: 8 * 1024 - 1)]
        options.expiresDays = 0
        options.objectLockMode = .compliance
        options.objectLockRetainUntil = Timestamp(millisecondsSinceEpoch: testNow.millisecondsSinceEpoch + 1)
        #expect(options.violations(now: testNow).isEmpty)
    }

    @Test("values the options cannot hold are thrown as violations", arguments: [
        (["x-obs-acl": "everyone"], ObjectOptions.Parameter.acl),
        (["x-obs-expires": "1.5"], .expires),
        (["x-obs-expires": "soon"], .expires),
        (["x-obs-tagging": "a=%zz"], .tagging),
        (["x-obs-tagging": "=v"], .tagging),
        (["x-obs-persistent-headers": "h:not base64!"], .persistentHeaders),
        (["x-obs-persistent-headers": "novalue"], .persistentHeaders),
        (["x-obs-object-lock-mode": "GOVERNANCE"], .objectLockMode),
        (["x-obs-object-lock-retain-until-date": "2030-07-01"], .objectLockRetainUntilDate),
        (["x-obs-server-side-encryption": "aws:kms"], .serverSideEncryption),
        (["x-obs-server-side-encryption-customer-algorithm": "AES256"], .customerKey),
        (["x-obs-server-side-encryption-customer-algorithm": "AES128", "x-obs-server-side-encryption-customer-key": "AA==",
          "x-obs-server-side-encryption-customer-key-MD5": "AA=="], .customerKey),
        (["x-obs-server-side-encryption-customer-algorithm": "AES256", "x-obs-server-side-encryption-customer-key": "***",
          "x-obs-server-side-encryption-customer-key-MD5": "AA=="], .customerKey),
        (["x-obs-grant-read": "uid1"], .grants),
    ] as [([String: String], ObjectOptions.Parameter)])
    func unrepresentable(_ headers: [String: String], _ parameter: ObjectOptions.Parameter) {
        do {
            _ = try ObjectOptions(parsing: HeaderFields(headers.map { (name: $0.key, value: $0.value) }), dialect: .obs)
            Issue.record("accepted \(headers)")
        } catch {
            #expect(error.violations.map(\.parameter) == [parameter])
        }
    }

    @Test("grants accept quoted ids, and tags accept + for spaces and value-less keys")
    func lenientForms() throws {
        let options = try ObjectOptions(parsing: ["x-amz-grant-full-control": "id=\"a\", id=b", "x-amz-tagging": "k+1=v+1&k2&k3="], dialect: .v2)
        #expect(options.grants == [.fullControl: ["a", "b"]])
        #expect(options.tags == [ObjectTag(key: "k 1", value: "v 1"), ObjectTag(key: "k2"), ObjectTag(key: "k3", value: "")])
    }
}
