// Retry decisions, back-off, error typing and the complete/NoSuchUpload recovery, with a
// scripted transport.
import CurlTransport
import LogCapture
import Logging
import OBSClient
import OBSHashing
import OBSProtocol
import Testing

@Suite("Retries and errors")
struct RetryAndErrorTests {
    let bucket = BucketName("bkt")
    let key = ObjectKey("k")

    func client(_ answers: [ScriptedTransport.Answer], dialect: Dialect = .v4, maxAttempts: Int = 4) -> (OBSClient, ScriptedTransport) {
        let transport = ScriptedTransport(answers)
        return (OBSClient(configuration: .scripted(dialect: dialect, maxAttempts: maxAttempts), transport: transport), transport)
    }

    @Test func retryableFailuresAreRetriedUntilSuccess() async throws {
        let (client, transport) = client([
            Reply.error(503, "SlowDown"), Reply.error(500, "InternalError"), Reply.timeout, Reply.status(204),
        ])
        try await client.deleteObject(bucket: bucket, key: key)
        #expect(transport.requests.count == 4)
    }

    @Test(arguments: [(408, "RequestTimeout"), (429, "TooManyRequests"), (502, "BadGateway"), (503, "ServiceUnavailable")])
    func throttlingAndServerErrorsAreRetried(status: Int, code: String) async throws {
        let (client, transport) = client([Reply.error(status, code), Reply.status(204)])
        try await client.deleteObject(bucket: bucket, key: key)
        #expect(transport.requests.count == 2)
    }

    @Test(arguments: [(400, "InvalidArgument"), (403, "AccessDenied"), (404, "NoSuchKey"), (409, "ObjectNotAppendable"), (400, "BadDigest")])
    func clientErrorsAreNeverRetried(status: Int, code: String) async throws {
        let (client, transport) = client([Reply.error(status, code, requestID: "RID-\(status)"), Reply.status(204)])
        do {
            try await client.deleteObject(bucket: bucket, key: key)
            Issue.record("expected \(code)")
        } catch {
            guard case .service(let service) = error else { Issue.record("unexpected \(error)"); return }
            #expect(service.status == status)
            #expect(service.code == ObsErrorCode(code))
            #expect(service.message == "\(code) message")
            #expect(service.requestID == "RID-\(status)")
            #expect(service.hostID == "H")
            #expect(service.resource == "/b/k")
        }
        #expect(transport.requests.count == 1)
    }

    @Test func attemptsAreBounded() async throws {
        let (client, transport) = client([Reply.error(500, "InternalError"), Reply.error(500, "InternalError"), Reply.error(500, "InternalError"),
                                          Reply.status(204)], maxAttempts: 3)
        await #expect(throws: OBSClientError.self) { try await client.deleteObject(bucket: bucket, key: key) }
        #expect(transport.requests.count == 3)
    }

    @Test func connectionFailuresAreRetriedButCancellationIsNot() async throws {
        let (client, transport) = client([Reply.transportFailure(code: 7, "Connection refused"), Reply.transportFailure(code: 56, "Connection reset"),
                                          Reply.status(204)])
        try await client.deleteObject(bucket: bucket, key: key)
        #expect(transport.requests.count == 3)

        let cancelled: ScriptedTransport.Answer = { request in .failure(TransportError(kind: .cancelled, message: "cancelled", url: request.url)) }
        let (second, secondTransport) = self.client([cancelled, Reply.status(204)])
        await #expect(throws: OBSClientError.self) { try await second.deleteObject(bucket: bucket, key: key) }
        #expect(secondTransport.requests.count == 1)
    }

    @Test func everyAttemptIsSignedAfresh() async throws {
        let (client, transport) = client([Reply.error(503, "SlowDown"), Reply.status(204)])
        try await client.deleteObject(bucket: bucket, key: key)
        #expect(transport.requests.allSatisfy { $0.headers["Authorization"] != nil && $0.headers["x-amz-date"] != nil })
    }

    @Test func headErrorsAreNamedByStatus() async throws {
        let (client, _) = client([Reply.status(404)])
        do {
            _ = try await client.headObject(bucket: bucket, key: key)
            Issue.record("expected NoSuchKey")
        } catch {
            #expect(error.serviceCode == .noSuchKey)
        }
        let (second, _) = self.client([Reply.status(404)])
        #expect(try await second.bucketExists(bucket) == false)
    }

    @Test func backoffIsFullJitterUnderADoublingCappedCeiling() {
        let policy = RetryPolicy(maxAttempts: 8, baseDelay: .milliseconds(100), maxDelay: .seconds(1))
        #expect(policy.ceiling(forRetry: 1) == .milliseconds(100))
        #expect(policy.ceiling(forRetry: 2) == .milliseconds(200))
        #expect(policy.ceiling(forRetry: 4) == .milliseconds(800))
        #expect(policy.ceiling(forRetry: 5) == .seconds(1))
        #expect(policy.ceiling(forRetry: 60) == .seconds(1))
        var generator = SystemRandomNumberGenerator()
        for retry in 1...6 {
            let delays = (0..<200).map { _ in policy.delay(beforeRetry: retry, using: &generator) }
            #expect(delays.allSatisfy { $0 >= .zero && $0 <= policy.ceiling(forRetry: retry) })
            // Full jitter spreads over the whole interval, not around the ceiling.
            #expect(delays.contains { $0 < policy.ceiling(forRetry: retry) / 2 })
            #expect(delays.contains { $0 > policy.ceiling(forRetry: retry) / 2 })
        }
    }

    @Test func malformedOrTruncatedXMLIsAnErrorNotACrash() async throws {
        let bodies = ["", "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>", "<Other/>", "not xml at all", "<InitiateMultipartUploadResult><Bucket>b</Bucket></InitiateMultipartUploadResult>"]
        for body in bodies {
            var headers = HeaderFields()
            headers["x-amz-request-id"] = "RID"
            let (client, _) = client([Reply.status(200, body, headers: headers)])
            do {
                _ = try await client.initiateMultipartUpload(bucket: bucket, key: key)
                Issue.record("accepted \(body)")
            } catch {
                guard case .malformedResponse(let operation, _, let requestID) = error else { Issue.record("unexpected \(error)"); continue }
                #expect(operation == "InitiateMultipartUpload")
                #expect(requestID == "RID")
            }
        }
    }

    @Test func partETagMustBeTheMD5UnlessEncrypted() async throws {
        let bytes: [UInt8] = Array("part body".utf8)
        let body = MemoryRegion(owner: AlignedMemory(copying: bytes))
        let wrong = "\"00000000000000000000000000000000\""
        let (client, _) = client([Reply.headers(200, [("ETag", wrong)])])
        do {
            _ = try await client.uploadPart(bucket: bucket, key: key, uploadID: UploadID("U"), partNumber: .first, body: body, integrity: .md5(Hash.md5(bytes)))
            Issue.record("a wrong ETag must be reported")
        } catch {
            guard case .etagMismatch(let expected, let received, _) = error else { Issue.record("unexpected \(error)"); return }
            #expect(expected == ETag(md5: Hash.md5(bytes)))
            #expect(received == ETag(wrong))
        }
        let (kms, _) = self.client([Reply.headers(200, [("ETag", wrong), ("x-amz-server-side-encryption", "aws:kms")])])
        let etag = try await kms.uploadPart(bucket: bucket, key: key, uploadID: UploadID("U"), partNumber: .first, body: body, integrity: .md5(Hash.md5(bytes))).etag
        #expect(etag == ETag(wrong))
    }

    // MARK: complete after a lost attempt

    let partMD5s = [Hash.md5([1]), Hash.md5([2])]
    var parts: [(partNumber: PartNumber, etag: ETag)] { [(PartNumber(1)!, ETag(md5: partMD5s[0])), (PartNumber(2)!, ETag(md5: partMD5s[1]))] }

    @Test func completeLostInTransportThenNoSuchUploadIsCheckedWithHead() async throws {
        let composite = ETag.composite(partMD5s: partMD5s)
        let (client, transport) = client([Reply.timeout, Reply.error(404, "NoSuchUpload"),
                                          Reply.headers(200, [("ETag", composite.quoted), ("Content-Length", "2"), ("x-amz-version-id", "v9")])])
        let stored = try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: UploadID("U"), parts: parts)
        #expect(stored == StoredObject(etag: composite, versionID: VersionID("v9"), verdict: .etagMatchesMD5))
        #expect(transport.requests.map(\.method) == ["POST", "POST", "HEAD"])
    }

    @Test func completeNoSuchUploadWithADifferentObjectFails() async throws {
        let (client, transport) = client([Reply.transportFailure(code: 52, "Empty reply"), Reply.error(404, "NoSuchUpload"),
                                          Reply.headers(200, [("ETag", "\"0123456789abcdef0123456789abcdef-2\"")])])
        do {
            _ = try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: UploadID("U"), parts: parts)
            Issue.record("an object with another ETag is not our upload")
        } catch {
            #expect(error.serviceCode == .noSuchUpload)
        }
        #expect(transport.requests.map(\.method) == ["POST", "POST", "HEAD"])
    }

    @Test func completeNoSuchUploadOnTheFirstAttemptIsNotRecovered() async throws {
        let (client, transport) = client([Reply.error(404, "NoSuchUpload"), Reply.headers(200, [("ETag", "\"x\"")])])
        await #expect(throws: OBSClientError.self) {
            _ = try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: UploadID("U"), parts: parts)
        }
        #expect(transport.requests.map(\.method) == ["POST"])
    }

    @Test func completeAnswering200WithAnErrorDocumentFails() async throws {
        let keptAlive = String(repeating: " \n", count: 300) // S3 sends whitespace while a long complete runs
        let (client, _) = client([Reply.status(200, keptAlive + "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>")])
        do {
            _ = try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: UploadID("U"), parts: parts)
            Issue.record("an error document is not a completed upload")
        } catch {
            #expect(error.serviceCode == .internalError)
        }
    }

    // MARK: paging

    @Test func listingFollowsMarkersAcrossPages() async throws {
        func page(_ keys: [String], truncated: Bool, next: String? = nil) -> ScriptedTransport.Answer {
            let contents = keys.map { "<Contents><Key>\($0)</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>\"e\"</ETag><Size>1</Size></Contents>" }.joined()
            let nextMarker = next.map { "<NextMarker>\($0)</NextMarker>" } ?? ""
            return Reply.status(200, "<ListBucketResult><Name>bkt</Name><EncodingType>url</EncodingType><IsTruncated>\(truncated)</IsTruncated>\(nextMarker)\(contents)</ListBucketResult>")
        }
        let (client, transport) = client([page(["a", "b%20c"], truncated: true), page(["d"], truncated: true, next: "e"), page(["f"], truncated: false)])
        let keys = try await client.allObjects(bucket: bucket, pageSize: 2).collect().flatMap(\.contents).map(\.key.rawValue)
        #expect(keys == ["a", "b c", "d", "f"])
        #expect(transport.requests.map(\.url) == [
            "http://127.0.0.1:9000/bkt?encoding-type=url&max-keys=2",
            "http://127.0.0.1:9000/bkt?encoding-type=url&marker=b%20c&max-keys=2",
            "http://127.0.0.1:9000/bkt?encoding-type=url&marker=e&max-keys=2",
        ])
    }

    @Test func aTruncatedListingThatDoesNotAdvanceFails() async throws {
        let stuck = Reply.status(200, "<ListPartsResult><Bucket>bkt</Bucket><Key>k</Key><UploadId>U</UploadId><IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker></ListPartsResult>")
        let (client, _) = client([stuck, stuck, stuck])
        await #expect(throws: OBSClientError.self) { _ = try await client.allParts(bucket: bucket, key: key, uploadID: UploadID("U")).collect() }
    }

    // MARK: logging

    @Test func logsCarryCodeMessageAndRequestIDButNoSecrets() async throws {
        let capture = LogCapture()
        var configuration = OBSClientConfiguration.scripted(dialect: .obs, maxAttempts: 2, token: "SECRET-TOKEN-123")
        configuration.logger = capture.logger
        let transport = ScriptedTransport([Reply.error(503, "SlowDown", requestID: "RID-RETRY"), Reply.error(403, "AccessDenied", requestID: "RID-FINAL")])
        let client = OBSClient(configuration: configuration, transport: transport)
        await #expect(throws: OBSClientError.self) { try await client.deleteObject(bucket: bucket, key: key) }
        let text = capture.lines.joined(separator: "\n")
        #expect(text.contains("retrying request"))
        #expect(text.contains("code=SlowDown") && text.contains("request-id=RID-RETRY"))
        #expect(text.contains("code=AccessDenied") && text.contains("request-id=RID-FINAL") && text.contains("message=AccessDenied message"))
        for secret in ["SKTEST", "SECRET-TOKEN-123", "Authorization", transport.requests[0].headers["Authorization"]!] {
            #expect(!text.contains(secret), "log holds \(secret)")
        }
    }
}
