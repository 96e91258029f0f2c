// The composition executor's pinned part copy over the OBS client: UploadPartCopy with a source
// range, copy-source-if-match and the SSE-C key for source and part; a 412 becomes
// ObjectChangedError. The other ObjectComposer operations are OBSClientStore's ObjectStore ones.
import OBSClient
import OBSProtocol

extension OBSClientStore: ObjectComposer {
    public func copyPart(_ key: ObjectKey, uploadID: UploadID, number: PartNumber, source: ObjectKey, range: Range<Int64>,
                         sourceETag: ETag?, customerKey: CustomerKey?) async throws -> ETag {
        precondition(!range.isEmpty, "a part copy needs a non-empty range")
        return try await pinned(to: sourceETag, of: source) { () async throws(OBSClientError) in
            try await client.copyPart(bucket: bucket, key: key, uploadID: uploadID, partNumber: number, sourceBucket: bucket, sourceKey: source,
                                      sourceRange: range.lowerBound...(range.upperBound - 1), sourceIfMatch: sourceETag,
                                      sourceCustomerKey: customerKey, customerKey: customerKey)
        }
    }
}
