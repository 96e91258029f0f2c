// Integrity of uploaded bytes, decided once, here, from the service's answer: what the request
// carried (Content-MD5, a CRC checksum header) and what the reply says (ETag, the checksum header
// echoed, encryption headers). A mismatch is an error; anything else becomes a typed verdict that
// callers keep and trust (the filesystem never re-checks ETags against MD5s itself).
//
// - Content-MD5 sent: the service rejects a corrupted body (BadDigest). The ETag must equal the
//   MD5 unless the reply says the object is encrypted with KMS or a customer key (its ETag is then
//   not the MD5 of the plaintext, also for a bucket's default encryption the caller never asked for).
// - A checksum sent: the service rejects a mismatch; when the reply carries the checksum, it must
//   be the one sent (a composite `…-n` value, which S3 answers for COMPOSITE uploads, is not
//   comparable and is left to the service's own check).
// - Complete: the object's checksum is combined from the parts' (no pass over the data) and sent;
//   the composite ETag is expected when every part's ETag was its MD5.
import CurlTransport
import OBSProtocol

/// What the service's answer proved about the bytes of a part or an object.
public enum IntegrityVerdict: Sendable, Equatable {
    /// The service answered the checksum that was sent.
    case checksumEchoed
    /// The ETag is the MD5 of the bytes (or, for an object, the composite of its parts' MD5s).
    case etagMatchesMD5
    /// The service accepted the digest or checksum sent (it rejects a mismatch) and answered
    /// nothing to compare it with (e.g. an encrypted object's ETag).
    case acceptedByService
    /// Neither a digest nor a checksum was sent.
    case unchecked
}

/// How an upload proves its bytes: what each part carries.
public enum PartIntegrity: Sendable, Equatable {
    /// Content-MD5 (binary MD5); the ETag is compared with it.
    case md5([UInt8])
    /// A CRC checksum header; the object's value is combined from the parts' on completion.
    case checksum(Checksum)
    case none
}

/// A part the service has accepted, with what it proved: what CompleteMultipartUpload needs.
public struct PartReceipt: Sendable, Equatable {
    public var number: PartNumber
    public var etag: ETag
    public var size: Int64
    /// The part's checksum, when one was sent.
    public var checksum: Checksum?
    public var verdict: IntegrityVerdict

    public init(number: PartNumber, etag: ETag, size: Int64, checksum: Checksum? = nil, verdict: IntegrityVerdict) {
        self.number = number
        self.etag = etag
        self.size = size
        self.checksum = checksum
        self.verdict = verdict
    }
}

extension OBSClient {
    /// The verdict on a reply to a request that carried `md5` and/or `checksum`; throws on a mismatch.
    func verdict(on response: HTTPResponse, etag: ETag, md5: [UInt8]?, checksum: Checksum?, expectedETag: ETag?) throws(OBSClientError) -> IntegrityVerdict {
        var verdict = IntegrityVerdict.unchecked
        if let expectedETag {
            if etag.value.lowercased() == expectedETag.value.lowercased() {
                verdict = .etagMatchesMD5
            } else if isEncryptedWithoutMD5ETag(response) {
                verdict = .acceptedByService
            } else {
                throw .etagMismatch(expected: expectedETag, received: etag, requestID: requestID(of: response))
            }
        } else if md5 != nil {
            verdict = .acceptedByService
        }
        if let checksum {
            // A value in another form (S3's composite `…-n` of a multipart object) is not comparable.
            if let answered = response.headers[checksum.algorithm.header(for: dialect)], !answered.contains("-") {
                guard Checksum(checksum.algorithm, headerValue: answered) == checksum else {
                    throw .checksumMismatch(sent: checksum, received: answered, requestID: requestID(of: response))
                }
                verdict = .checksumEchoed
            } else if verdict == .unchecked {
                verdict = .acceptedByService
            }
        }
        return verdict
    }

    /// Whether the reply says the data is encrypted with KMS or a customer key, whose ETags are
    /// not the MD5 of the plaintext.
    func isEncryptedWithoutMD5ETag(_ response: HTTPResponse) -> Bool {
        let algorithm = response.headers[dialect.header("server-side-encryption")] ?? ""
        return algorithm == "kms" || algorithm == "aws:kms" || response.headers[dialect.header("server-side-encryption-customer-algorithm")] != nil
    }
}
