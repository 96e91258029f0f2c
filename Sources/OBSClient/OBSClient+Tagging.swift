// Object tags: `GET`, `PUT` and `DELETE ?tagging` on one object.
import OBSHashing
import OBSProtocol

extension OBSClient {
    /// An object's tags (empty when it has none).
    public func objectTagging(bucket: BucketName, key: ObjectKey) async throws(OBSClientError) -> Tagging {
        let call = OperationRequest(operation: "GetObjectTagging", method: "GET", bucket: bucket, key: key, query: [QueryItem("tagging")])
        return try decode(Tagging.self, try await send(call), call)
    }

    /// Replaces an object's tags (S3 requires Content-MD5 on this request; OBS accepts it).
    public func setObjectTagging(bucket: BucketName, key: ObjectKey, tagging: Tagging) async throws(OBSClientError) {
        let body = tagging.serialized(for: dialect, withNamespace: false)
        var headers = HeaderFields()
        headers["Content-Type"] = "application/xml"
        headers["Content-MD5"] = Base64.encode(Hash.md5(body))
        _ = try await send(OperationRequest(operation: "PutObjectTagging", method: "PUT", bucket: bucket, key: key,
                                            query: [QueryItem("tagging")], headers: headers, body: .bytes(body)))
    }

    /// Removes every tag of an object.
    public func deleteObjectTagging(bucket: BucketName, key: ObjectKey) async throws(OBSClientError) {
        _ = try await send(OperationRequest(operation: "DeleteObjectTagging", method: "DELETE", bucket: bucket, key: key,
                                            query: [QueryItem("tagging")]))
    }
}
