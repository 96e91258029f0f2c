import OBSProtocol
import Testing

/// Keys that break naive XML or URL handling.
let awkwardKeys: [ObjectKey] = [
    "plain.txt", "dir/a b+~é.txt", "100% sure & <fine>", "quote\"apos'", "emoji 🎉/ünïcödé", "tab\there",
    "line\nbreak", "cr\rhere", "ctl\u{1}x\u{1F}y", " leading and trailing ", "+plus+", "%41 not an escape", "ámp;&amp;",
].map { ObjectKey($0) }

let sampleTime = Timestamp(millisecondsSinceEpoch: 1_795_000_000_123)
let sampleETag = ETag("0123456789abcdef0123456789abcdef")

/// Checks that `document` survives writing and reading in every dialect, and (unless
/// `truncations` is false, to keep loops over many keys quick) that every proper prefix of its
/// bytes (a truncated body) is an error.
func checkRoundTrip<D: XMLWireDocument & Equatable>(_ document: D, truncations: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) throws {
    for dialect in Dialect.allCases {
        for withNamespace in [true, false] {
            let bytes = document.serialized(for: dialect, withNamespace: withNamespace)
            #expect(try D(parsing: bytes) == document, "\(dialect)", sourceLocation: sourceLocation)
        }
    }
    guard truncations else { return }
    let bytes = document.serialized(for: .obs)
    for length in 0..<bytes.count {
        #expect(throws: XML.ParseError.self, "prefix \(length)", sourceLocation: sourceLocation) { try D(parsing: Array(bytes[..<length])) }
    }
}

/// The document's bytes as text.
func wireText(_ document: some XMLWireDocument, _ dialect: Dialect = .obs) -> String {
    String(decoding: document.serialized(for: dialect), as: UTF8.self)
}

@Suite("Typed XML documents")
struct XMLDocumentTests {
    @Test("InitiateMultipartUploadResult round trips, with and without encoding-type=url", arguments: awkwardKeys)
    func initiate(_ key: ObjectKey) throws {
        for encoding in [nil, KeyEncoding.url] {
            try checkRoundTrip(InitiateMultipartUploadResult(bucket: "bkt", key: key, uploadID: "UP1", encodingType: encoding), truncations: key == awkwardKeys[1])
        }
        let encoded = wireText(InitiateMultipartUploadResult(bucket: "bkt", key: key, uploadID: "UP1", encodingType: .url))
        #expect(encoded.contains("<Key>\(PercentEncoding.encodePath(key.rawValue))</Key>"))
        #expect(encoded.contains("<EncodingType>url</EncodingType>"))
        #expect(!encoded.contains("&#x"))
    }

    @Test("a key with control characters: references without encoding-type, percent-escapes with it")
    func controlCharacterKey() throws {
        let key = ObjectKey("a\u{1}b")
        let plain = wireText(ListBucketResult(name: "b", maxKeys: 1, isTruncated: false,
                                              contents: [.init(key: key, lastModified: sampleTime, etag: sampleETag, size: 1)]))
        #expect(plain.contains("<Key>a&#x1;b</Key>"))
        let encoded = wireText(ListBucketResult(name: "b", maxKeys: 1, isTruncated: false,
                                                contents: [.init(key: key, lastModified: sampleTime, etag: sampleETag, size: 1)], encodingType: .url))
        #expect(encoded.contains("<Key>a%01b</Key>"))
    }

    @Test("CompleteMultipartUpload reads the SDK's body and round trips")
    func complete() throws {
        let sdkBody = #"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"e1"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>"e2"</ETag></Part></CompleteMultipartUpload>"#
        let parsed = try CompleteMultipartUpload(parsing: sdkBody)
        #expect(parsed.parts == [.init(partNumber: PartNumber(1)!, etag: ETag("e1")), .init(partNumber: PartNumber(2)!, etag: ETag("e2"))])
        #expect(String(decoding: parsed.serialized(for: .obs, withNamespace: false), as: UTF8.self) == #"<?xml version="1.0" encoding="UTF-8"?>"# + sdkBody)
        try checkRoundTrip(CompleteMultipartUpload(parts: (1...3).map { .init(partNumber: PartNumber($0)!, etag: ETag("abc-\($0)")) }))
        #expect(throws: XML.ParseError.self) { try CompleteMultipartUpload(parsing: "<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>") }
        #expect(throws: XML.ParseError.self) { try CompleteMultipartUpload(parsing: "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>") }
        #expect(throws: XML.ParseError.self) { try CompleteMultipartUpload(parsing: "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>") }
        #expect(throws: XML.ParseError.self) { try CompleteMultipartUpload(parsing: "<Other/>") }
    }

    @Test("CompleteMultipartUploadResult round trips", arguments: awkwardKeys)
    func completeResult(_ key: ObjectKey) throws {
        for encoding in [nil, KeyEncoding.url] {
            try checkRoundTrip(CompleteMultipartUploadResult(location: "http://h/bkt/k", bucket: "bkt", key: key,
                                                             etag: ETag("abcdef-3"), encodingType: encoding), truncations: key == awkwardKeys[1])
        }
    }

    @Test("ListPartsResult round trips with paging fields")
    func listParts() throws {
        let parts = (1...3).map { ListPartsResult.Part(partNumber: PartNumber($0 * 2)!, lastModified: sampleTime.adding(seconds: Int64($0)), etag: sampleETag, size: Int64($0) << 33) }
        for key in awkwardKeys {
            for encoding in [nil, KeyEncoding.url] {
                try checkRoundTrip(ListPartsResult(bucket: "bkt", key: key, uploadID: "U", initiator: Owner(id: "i", displayName: "n"),
                                                   owner: Owner(id: "o"), storageClass: .warm, partNumberMarker: PartNumber(1),
                                                   nextPartNumberMarker: PartNumber(6), maxParts: 3, isTruncated: true, parts: parts, encodingType: encoding),
                                   truncations: key == awkwardKeys[1])
            }
        }
        try checkRoundTrip(ListPartsResult(bucket: "b", key: "k", uploadID: "U", maxParts: 1000, isTruncated: false, parts: []))
        let s3 = wireText(ListPartsResult(bucket: "b", key: "k", uploadID: "U", storageClass: .cold, maxParts: 1, isTruncated: false, parts: []), .v4)
        #expect(s3.contains("<StorageClass>GLACIER</StorageClass>") && s3.contains("<PartNumberMarker>0</PartNumberMarker>"))
    }

    @Test("ListMultipartUploadsResult round trips with uploads, prefixes and markers")
    func listUploads() throws {
        for key in awkwardKeys {
            for encoding in [nil, KeyEncoding.url] {
                let uploads = [ListMultipartUploadsResult.Upload(key: key, uploadID: "U1", initiator: Owner(id: "i"), owner: Owner(id: "o"),
                                                                 storageClass: .standard, initiated: sampleTime),
                               ListMultipartUploadsResult.Upload(key: key, uploadID: "U2", initiated: sampleTime)]
                try checkRoundTrip(ListMultipartUploadsResult(
                    bucket: "bkt", keyMarker: key, uploadIDMarker: "U0", nextKeyMarker: key, nextUploadIDMarker: "U2",
                    prefix: key.rawValue, delimiter: "/", maxUploads: 2, isTruncated: true, uploads: uploads,
                    commonPrefixes: [key.rawValue + "/", "p/"], encodingType: encoding), truncations: key == awkwardKeys[1])
            }
        }
    }

    @Test("ListBucketResult round trips with contents, prefixes and markers")
    func listObjects() throws {
        for key in awkwardKeys {
            for encoding in [nil, KeyEncoding.url] {
                let contents = [ListBucketResult.Object(key: key, lastModified: sampleTime, etag: sampleETag, size: 0, storageClass: .deepArchive, owner: Owner(id: "o")),
                                ListBucketResult.Object(key: ObjectKey(key.rawValue + "2"), lastModified: sampleTime, etag: ETag("x-2"), size: 5 << 40)]
                try checkRoundTrip(ListBucketResult(name: "bkt", prefix: key.rawValue, marker: key, nextMarker: key, maxKeys: 2, delimiter: "/",
                                                    isTruncated: true, contents: contents, commonPrefixes: [key.rawValue + "/"], encodingType: encoding),
                                   truncations: key == awkwardKeys[1])
            }
        }
        try checkRoundTrip(ListBucketResult(name: "bkt", maxKeys: 1000, isTruncated: false, contents: []))
    }

    @Test("url-encoded listings as S3 writes them: + is a space, %2B a plus")
    func s3EncodedListing() throws {
        let body = """
        <?xml version="1.0" encoding="UTF-8"?>
        <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>a+b%2F</Prefix><Marker></Marker>
        <MaxKeys>1000</MaxKeys><Delimiter>%2F</Delimiter><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
        <Contents><Key>a+b%2Fc%2Bd%C3%A9%01</Key><LastModified>2026-11-21T10:21:04.000Z</LastModified><ETag>&quot;e&quot;</ETag>
        <Size>3</Size><StorageClass>STANDARD_IA</StorageClass></Contents>
        <CommonPrefixes><Prefix>a+b%2Fd%2F</Prefix></CommonPrefixes></ListBucketResult>
        """
        let listing = try ListBucketResult(parsing: body)
        #expect(listing.prefix == "a b/")
        #expect(listing.delimiter == "/")
        #expect(listing.marker == nil)
        #expect(listing.contents.map(\.key) == ["a b/c+dé\u{1}"])
        #expect(listing.contents.first?.etag == ETag("e"))
        #expect(listing.contents.first?.storageClass == .warm)
        #expect(listing.contents.first?.lastModified == Timestamp(iso8601: "2026-11-21T10:21:04.000Z"))
        #expect(listing.commonPrefixes == ["a b/d/"])
        #expect(throws: XML.ParseError.self) { try ListBucketResult(parsing: body.replacingOccurrences("%2Bd", "%2")) }
        #expect(throws: XML.ParseError.self) { try ListBucketResult(parsing: body.replacingOccurrences("<EncodingType>url", "<EncodingType>base64")) }
    }

    @Test("listings refuse bad numbers, sizes, dates and part numbers")
    func listingFieldErrors() throws {
        let good = wireText(ListBucketResult(name: "b", maxKeys: 1, isTruncated: false,
                                             contents: [.init(key: "k", lastModified: sampleTime, etag: sampleETag, size: 1)]))
        _ = try ListBucketResult(parsing: good)
        for (from, to) in [("<Size>1", "<Size>-1"), ("<Size>1", "<Size>x"), ("<MaxKeys>1", "<MaxKeys>many"), ("2026-", "2026/"),
                           ("<IsTruncated>false", "<IsTruncated>no"), ("<Key>k</Key>", ""), ("<Name>b</Name>", "")] {
            #expect(throws: XML.ParseError.self, "\(to)") { try ListBucketResult(parsing: good.replacingOccurrences(from, to)) }
        }
        let parts = wireText(ListPartsResult(bucket: "b", key: "k", uploadID: "U", maxParts: 1, isTruncated: false,
                                             parts: [.init(partNumber: .first, lastModified: sampleTime, etag: sampleETag, size: 1)]))
        #expect(throws: XML.ParseError.self) { try ListPartsResult(parsing: parts.replacingOccurrences("<PartNumber>1<", "<PartNumber>10001<")) }
        #expect(throws: XML.ParseError.self) { try ListPartsResult(parsing: parts.replacingOccurrences("<PartNumberMarker>0<", "<PartNumberMarker>-1<")) }
    }

    @Test("CopyObjectResult and CopyPartResult round trip and keep their roots apart")
    func copyResults() throws {
        try checkRoundTrip(CopyObjectResult(lastModified: sampleTime, etag: sampleETag))
        try checkRoundTrip(CopyPartResult(lastModified: sampleTime, etag: sampleETag))
        #expect(throws: XML.ParseError.self) { try CopyPartResult(parsing: CopyObjectResult(lastModified: sampleTime, etag: sampleETag).serialized(for: .obs)) }
    }

    @Test("AccessControlPolicy reads the SDK's OBS and S3 bodies")
    func aclFromSDK() throws {
        let obsBody = "<AccessControlPolicy><Owner><ID>ownerid</ID></Owner><Delivered>true</Delivered><AccessControlList><Grant><Grantee><ID>uid2</ID></Grantee><Permission>READ</Permission></Grant><Grant><Grantee><Canned>Everyone</Canned></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>"
        let s3Body = #"<AccessControlPolicy><Owner><ID>ownerid</ID></Owner><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>uid2</ID></Grantee><Permission>READ</Permission></Grant><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>"#
        let grants = [AccessControlPolicy.Grant(grantee: .user(id: "uid2"), permission: .read), AccessControlPolicy.Grant(grantee: .everyone, permission: .read)]
        let obs = try AccessControlPolicy(parsing: obsBody)
        #expect(obs == AccessControlPolicy(owner: Owner(id: "ownerid"), delivered: true, grants: grants))
        let s3 = try AccessControlPolicy(parsing: s3Body)
        #expect(s3 == AccessControlPolicy(owner: Owner(id: "ownerid"), grants: grants))
        // Each dialect writes exactly the form its SDK sends.
        #expect(String(decoding: obs.serialized(for: .obs, withNamespace: false), as: UTF8.self).hasSuffix(obsBody))
        #expect(String(decoding: s3.serialized(for: .v4, withNamespace: false), as: UTF8.self).hasSuffix(s3Body))
    }

    @Test("AccessControlPolicy round trips every permission and grantee; refuses unknown ones")
    func aclRoundTrip() throws {
        let grants = AccessControlPolicy.Permission.allCases.flatMap { permission in
            [AccessControlPolicy.Grant(grantee: .user(id: "u&<1>"), permission: permission), AccessControlPolicy.Grant(grantee: .everyone, permission: permission)]
        }
        let policy = AccessControlPolicy(owner: Owner(id: "o", displayName: "Owner Name"), grants: grants)
        try checkRoundTrip(policy)
        var delivered = policy
        delivered.delivered = false
        delivered.grants[0].delivered = true
        #expect(try AccessControlPolicy(parsing: delivered.serialized(for: .obs)) == delivered)
        let base = wireText(policy, .v2)
        for (from, to) in [("READ<", "READ_ALL<"), ("AllUsers", "AuthenticatedUsers"), ("<ID>u&amp;&lt;1&gt;</ID>", "<EmailAddress>e</EmailAddress>"), ("<Owner><ID>o</ID>", "<Owner>")] {
            #expect(throws: XML.ParseError.self, "\(to)") { try AccessControlPolicy(parsing: base.replacingOccurrences(from, to)) }
        }
        #expect(throws: XML.ParseError.self) { try AccessControlPolicy(parsing: wireText(policy).replacingOccurrences("Everyone", "Nobody")) }
    }

    @Test("Tagging round trips awkward keys and values")
    func tagging() throws {
        try checkRoundTrip(Tagging(tags: awkwardKeys.map { Tagging.Tag(key: $0.rawValue, value: $0.rawValue + "=v") } + [Tagging.Tag(key: "empty", value: "")]))
        try checkRoundTrip(Tagging(tags: []))
        #expect(throws: XML.ParseError.self) { try Tagging(parsing: "<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>") }
    }

    @Test("ListAllMyBucketsResult and CreateBucketConfiguration round trip")
    func buckets() throws {
        try checkRoundTrip(ListAllMyBucketsResult(owner: Owner(id: "o"), buckets: [
            .init(name: "a", creationDate: sampleTime, location: "region-1"), .init(name: "b", creationDate: Timestamp(secondsSinceEpoch: 0)),
        ]))
        try checkRoundTrip(CreateBucketConfiguration(location: "cn-north-4"))
        #expect(wireText(CreateBucketConfiguration(location: "r")).contains("<Location>r</Location>"))
        #expect(wireText(CreateBucketConfiguration(location: "r"), .v4).contains("<LocationConstraint>r</LocationConstraint>"))
        #expect(throws: XML.ParseError.self) { try CreateBucketConfiguration(parsing: "<CreateBucketConfiguration/>") }
    }

    @Test("documents carry the dialect's namespace and are read whatever the namespace")
    func namespaces() throws {
        let document = CopyObjectResult(lastModified: sampleTime, etag: sampleETag)
        #expect(wireText(document, .obs).contains("xmlns=\"\(XML.obsNamespace)\""))
        #expect(wireText(document, .v2).contains("xmlns=\"\(XML.s3Namespace)\""))
        let prefixed = "<s:CopyObjectResult xmlns:s=\"urn:x\"><s:LastModified>2026-11-21T10:21:04Z</s:LastModified><s:ETag>\"e\"</s:ETag></s:CopyObjectResult>"
        #expect(try CopyObjectResult(parsing: prefixed) == CopyObjectResult(lastModified: Timestamp(iso8601: "2026-11-21T10:21:04Z")!, etag: ETag("e")))
    }
}

extension String {
    /// `self` with every occurrence of `target` replaced (Foundation-free, for tests).
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
