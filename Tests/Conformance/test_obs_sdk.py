"""The official OBS SDK (esdk-obs-python) against obs-local, in the OBS-native and the S3 V2
dialects (fixture `obs`): every operation, every initiate header read back, the error codes."""
import base64
import hashlib
import os

from obs import (ACL, AppendObjectContent, ExtensionGrant, CompleteMultipartUploadRequest, CompletePart, CopyObjectHeader,
                 GetObjectHeader, Grant, Grantee, ListMultipartUploadsRequest, Owner, Permission, PutObjectHeader,
                 SetObjectMetadataHeader, SseCHeader, SseKmsHeader)

from conftest import ACCESS_KEY, BUCKET, make_obs_client

SSE_KEY = "0123456789abcdef0123456789abcdef"


def ok(resp):
    assert resp.status < 300, f"{resp.status} {resp.errorCode} {resp.errorMessage}"
    return resp.body


def err(resp, status, code):
    assert (resp.status, resp.errorCode) == (status, code), f"{resp.status} {resp.errorCode} {resp.errorMessage}"
    assert resp.requestId, "error replies carry a request ID"


def header(resp, name):
    return dict(resp.header).get(name)


def upload_parts(obs, key, upload_id, parts, **kw):
    etags = []
    for number, data in enumerate(parts, start=1):
        etags.append(ok(obs.uploadPart(BUCKET, key, number, upload_id, content=data, **kw)).etag)
    return etags


def test_put_get_head_delete_and_ranges(obs, prefix):
    key = prefix + "dir/a b+~é.txt"
    data = os.urandom(10000)
    ok(obs.putContent(BUCKET, key, data, headers=PutObjectHeader(contentType="text/x-test", md5=base64.b64encode(hashlib.md5(data).digest()).decode())))
    got = obs.getObject(BUCKET, key, loadStreamInMemory=True)
    assert ok(got).buffer == data
    assert got.body.contentType == "text/x-test"
    part = obs.getObject(BUCKET, key, loadStreamInMemory=True, headers=GetObjectHeader(range="100-199"))
    assert part.status == 206 and part.body.buffer == data[100:200]
    meta = obs.getObjectMetadata(BUCKET, key)
    assert ok(meta).contentLength == 10000 and meta.body.etag == '"' + hashlib.md5(data).hexdigest() + '"'
    err(obs.getObject(BUCKET, key, loadStreamInMemory=True, headers=GetObjectHeader(range="20000-")), 416, "InvalidRange")
    err(obs.getObject(BUCKET, key, loadStreamInMemory=True, headers=GetObjectHeader(if_match='"nope"')), 412, "PreconditionFailed")
    ok(obs.deleteObject(BUCKET, key))
    err(obs.getObject(BUCKET, key, loadStreamInMemory=True), 404, "NoSuchKey")


def test_bad_digest(obs, prefix):
    bad_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    err(obs.putContent(BUCKET, prefix + "d", b"data", headers=PutObjectHeader(md5=bad_md5)), 400, "BadDigest")


def test_multipart_with_every_initiate_header(obs, s3, prefix):
    key = prefix + "mp.bin"
    sse = SseCHeader(encryption="AES256", key=SSE_KEY)
    extension = {
        obs_header(obs, "tagging"): "TagA=A&TagB",
        obs_header(obs, "persistent-headers"): "pkey:" + base64.b64encode(b"pvalue").decode(),
        obs_header(obs, "object-lock-mode"): "COMPLIANCE",
        obs_header(obs, "object-lock-retain-until-date"): "2099-07-01T04:11:15.297Z",
    }
    init = obs.initiateMultipartUpload(BUCKET, key, acl="public-read", storageClass="WARM", metadata={"mk": "v1"},
                                       websiteRedirectLocation="/other", contentType="application/x-foo", expires=3,
                                       sseHeader=sse, extensionHeaders=extension,
                                       extensionGrants=[ExtensionGrant(granteeId="domain-1", permission=Permission.READ_ACP)])
    upload_id = ok(init).uploadId
    assert init.body.sseCKeyMd5
    parts = [os.urandom(100 * 1024), os.urandom(150 * 1024), b"tail"]
    etags = upload_parts(obs, key, upload_id, parts, sseHeader=sse)
    listed = ok(obs.listParts(BUCKET, key, upload_id, maxParts=2))
    assert [p.partNumber for p in listed.parts] == [1, 2] and listed.isTruncated
    rest = ok(obs.listParts(BUCKET, key, upload_id, partNumberMarker=listed.nextPartNumberMarker))
    assert [p.partNumber for p in rest.parts] == [3]
    done = ok(obs.completeMultipartUpload(BUCKET, key, upload_id, CompleteMultipartUploadRequest(
        [CompletePart(i + 1, e) for i, e in enumerate(etags)])))
    composite = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
    assert done.etag == f'"{composite}"'
    assert obs.getObjectMetadata(BUCKET, key).status == 400, "SSE-C objects need the key"
    meta = obs.getObjectMetadata(BUCKET, key, sseHeader=sse)
    body = ok(meta)
    assert body.storageClass == ("WARM" if obs.mode == "obs" else "STANDARD_IA")
    assert body.websiteRedirectLocation == "/other"
    assert body.contentType == "application/x-foo"
    assert body.expiration and "expiry-date" in body.expiration
    assert body.sseC == "AES256" and body.sseCKeyMd5 == base64.b64encode(hashlib.md5(SSE_KEY.encode()).digest()).decode()
    assert header(meta, "mk") == "v1"
    assert header(meta, "tagging-count") == "2"
    # Persistent headers come back as plain headers, which the SDK does not surface.
    raw = s3.head_object(Bucket=BUCKET, Key=key, SSECustomerAlgorithm="AES256", SSECustomerKey=SSE_KEY)
    assert raw["ResponseMetadata"]["HTTPHeaders"]["pkey"] == "pvalue"
    assert header(meta, "object-lock-mode") == "COMPLIANCE"
    assert header(meta, "object-lock-retain-until-date") == "2099-07-01T04:11:15.297Z"
    got = obs.getObject(BUCKET, key, loadStreamInMemory=True, getObjectRequest=None, headers=GetObjectHeader(sseHeader=sse))
    assert ok(got).buffer == b"".join(parts)
    acl = ok(obs.getObjectAcl(BUCKET, key))
    assert any(g.permission == "READ" and g.grantee.group for g in acl.grants), "public-read"
    assert any(g.permission == "READ_ACP" and g.grantee.grantee_id == "domain-1" for g in acl.grants), "extension grant"
    tags = ok(obs.getObjectTagging(BUCKET, key))
    assert sorted(t.key for t in tags.tags) == ["TagA", "TagB"]


def obs_header(obs, suffix):
    return ("x-obs-" if obs.mode == "obs" else "x-amz-") + suffix


def test_sse_kms_is_echoed(obs, prefix):
    kms = SseKmsHeader(encryption="kms", key="region:domain:key/abc")
    init = ok(obs.initiateMultipartUpload(BUCKET, prefix + "kms", sseHeader=kms))
    assert init.sseKms in ("kms", "aws:kms") and init.sseKmsKey == "region:domain:key/abc"
    etag = upload_parts(obs, prefix + "kms", init.uploadId, [b"x"])[0]
    ok(obs.completeMultipartUpload(BUCKET, prefix + "kms", init.uploadId, CompleteMultipartUploadRequest([CompletePart(1, etag)])))
    meta = ok(obs.getObjectMetadata(BUCKET, prefix + "kms"))
    assert meta.sseKms in ("kms", "aws:kms") and meta.sseKmsKey == "region:domain:key/abc"


def test_multipart_errors(obs, prefix):
    key = prefix + "errors"
    upload_id = ok(obs.initiateMultipartUpload(BUCKET, key)).uploadId
    small, last = upload_parts(obs, key, upload_id, [os.urandom(50 * 1024), os.urandom(10)])
    err(obs.completeMultipartUpload(BUCKET, key, upload_id, CompleteMultipartUploadRequest(
        [CompletePart(1, small), CompletePart(2, last)])), 400, "EntityTooSmall")
    err(obs.completeMultipartUpload(BUCKET, key, upload_id, CompleteMultipartUploadRequest(
        [CompletePart(1, '"0123456789abcdef0123456789abcdef"')])), 400, "InvalidPart")
    # (InvalidPartOrder: the SDK sorts parts before sending; see test_boto3.py.)
    err(obs.uploadPart(BUCKET, key, 10001, upload_id, content=b"x"), 400, "InvalidArgument")
    err(obs.uploadPart(BUCKET, key, 1, "NOSUCHUPLOAD", content=b"x"), 404, "NoSuchUpload")
    # Re-uploading part 1 with a large enough part fixes the upload.
    big = os.urandom(100 * 1024)
    new_etag = ok(obs.uploadPart(BUCKET, key, 1, upload_id, content=big)).etag
    ok(obs.completeMultipartUpload(BUCKET, key, upload_id, CompleteMultipartUploadRequest(
        [CompletePart(1, new_etag), CompletePart(2, last)])))
    err(obs.abortMultipartUpload(BUCKET, key, upload_id), 404, "NoSuchUpload")
    other = ok(obs.initiateMultipartUpload(BUCKET, key)).uploadId
    ok(obs.abortMultipartUpload(BUCKET, key, other))
    err(obs.listParts(BUCKET, key, other), 404, "NoSuchUpload")
    err(obs.initiateMultipartUpload("no-such-bucket-x", key), 404, "NoSuchBucket")


def test_list_uploads_paging(obs, prefix):
    ids = [ok(obs.initiateMultipartUpload(BUCKET, prefix + name)).uploadId for name in ("a/1", "a/2", "b")]
    first = ok(obs.listMultipartUploads(BUCKET, ListMultipartUploadsRequest(prefix=prefix, max_uploads=2)))
    assert [u.key for u in first.upload] == [prefix + "a/1", prefix + "a/2"] and first.isTruncated
    rest = ok(obs.listMultipartUploads(BUCKET, ListMultipartUploadsRequest(
        prefix=prefix, key_marker=first.nextKeyMarker, upload_id_marker=first.nextUploadIdMarker)))
    assert [u.key for u in rest.upload] == [prefix + "b"]
    grouped = ok(obs.listMultipartUploads(BUCKET, ListMultipartUploadsRequest(prefix=prefix, delimiter="/")))
    assert [p.prefix for p in grouped.commonPrefixs] == [prefix + "a/"]
    for key, upload_id in zip(("a/1", "a/2", "b"), ids):
        ok(obs.abortMultipartUpload(BUCKET, prefix + key, upload_id))


def test_list_objects_paging_delimiter_and_url_encoding(obs, prefix):
    keys = [prefix + k for k in ("a/1", "a/2", "b c", "d+e", "é")]
    for key in keys:
        ok(obs.putContent(BUCKET, key, b"x"))
    page = ok(obs.listObjects(BUCKET, prefix=prefix, max_keys=2))
    assert [c.key for c in page.contents] == keys[:2] and page.is_truncated
    rest = ok(obs.listObjects(BUCKET, prefix=prefix, marker=page.next_marker))
    assert [c.key for c in rest.contents] == keys[2:]
    grouped = ok(obs.listObjects(BUCKET, prefix=prefix, delimiter="/"))
    assert [p.prefix for p in grouped.commonPrefixs] == [prefix + "a/"]
    assert [c.key for c in grouped.contents] == keys[2:]
    encoded = ok(obs.listObjects(BUCKET, prefix=prefix, encoding_type="url"))
    assert [c.key for c in encoded.contents] == keys


def test_copy_copy_part_and_metadata(obs, prefix):
    data = os.urandom(300 * 1024)
    ok(obs.putContent(BUCKET, prefix + "src", data, metadata={"a": "1"}, headers=PutObjectHeader(contentType="text/x-src")))
    copied = ok(obs.copyObject(BUCKET, prefix + "src", BUCKET, prefix + "dst"))
    assert copied.etag == '"' + hashlib.md5(data).hexdigest() + '"'
    got = obs.getObject(BUCKET, prefix + "dst", loadStreamInMemory=True)
    assert ok(got).buffer == data and got.body.contentType == "text/x-src"
    replaced = ok(obs.copyObject(BUCKET, prefix + "src", BUCKET, prefix + "dst2", metadata={"b": "2"},
                                 headers=CopyObjectHeader(directive="REPLACE", contentType="text/x-new")))
    assert replaced.etag
    meta = obs.getObjectMetadata(BUCKET, prefix + "dst2")
    assert header(meta, "b") == "2" and header(meta, "a") is None and ok(meta).contentType == "text/x-new"

    upload_id = ok(obs.initiateMultipartUpload(BUCKET, prefix + "assembled")).uploadId
    first = ok(obs.copyPart(BUCKET, prefix + "assembled", 1, upload_id, f"{BUCKET}/{prefix}src", copySourceRange="0-204799"))
    second = ok(obs.copyPart(BUCKET, prefix + "assembled", 2, upload_id, f"{BUCKET}/{prefix}src", copySourceRange=f"204800-{len(data) - 1}"))
    ok(obs.completeMultipartUpload(BUCKET, prefix + "assembled", upload_id, CompleteMultipartUploadRequest(
        [CompletePart(1, first.etag), CompletePart(2, second.etag)])))
    assert ok(obs.getObject(BUCKET, prefix + "assembled", loadStreamInMemory=True)).buffer == data

    ok(obs.setObjectMetadata(BUCKET, prefix + "dst", metadata={"c": "3"}, headers=SetObjectMetadataHeader(
        contentType="text/x-changed", removeUnset=False)))
    meta = obs.getObjectMetadata(BUCKET, prefix + "dst")
    assert header(meta, "a") == "1" and header(meta, "c") == "3" and ok(meta).contentType == "text/x-changed"
    ok(obs.setObjectMetadata(BUCKET, prefix + "dst", metadata={"d": "4"}, headers=SetObjectMetadataHeader(removeUnset=True)))
    meta = obs.getObjectMetadata(BUCKET, prefix + "dst")
    assert header(meta, "a") is None and header(meta, "c") is None and header(meta, "d") == "4"


def test_acl_canned_and_grants(obs, prefix):
    ok(obs.putContent(BUCKET, prefix + "acl", b"x"))
    ok(obs.setObjectAcl(BUCKET, prefix + "acl", aclControl="public-read"))
    acl = ok(obs.getObjectAcl(BUCKET, prefix + "acl"))
    assert sorted(g.permission for g in acl.grants) == ["FULL_CONTROL", "READ"]
    policy = ACL(owner=Owner(owner_id=acl.owner.owner_id), grants=[
        Grant(grantee=Grantee(grantee_id="user-one"), permission=Permission.READ_ACP),
        Grant(grantee=Grantee(group="Everyone"), permission=Permission.READ),
    ])
    ok(obs.setObjectAcl(BUCKET, prefix + "acl", acl=policy))
    acl = ok(obs.getObjectAcl(BUCKET, prefix + "acl"))
    assert [(g.grantee.grantee_id, g.permission) for g in acl.grants if g.grantee.grantee_id] == [("user-one", "READ_ACP")]
    assert any(g.grantee.group for g in acl.grants)


def test_tagging(obs, prefix):
    ok(obs.putContent(BUCKET, prefix + "tags", b"x"))
    ok(obs.setObjectTagging(BUCKET, prefix + "tags", {"k1": "v1", "k2": "v2"}))
    tags = ok(obs.getObjectTagging(BUCKET, prefix + "tags"))
    assert sorted((t.key, t.value) for t in tags.tags) == [("k1", "v1"), ("k2", "v2")]
    ok(obs.deleteObjectTagging(BUCKET, prefix + "tags"))
    assert not ok(obs.getObjectTagging(BUCKET, prefix + "tags")).tags


def test_append(obs, prefix):
    first = ok(obs.appendObject(BUCKET, prefix + "log", AppendObjectContent(content="abc", position=0)))
    assert first.nextPosition == 3
    assert ok(obs.appendObject(BUCKET, prefix + "log", AppendObjectContent(content="def", position=3))).nextPosition == 6
    err(obs.appendObject(BUCKET, prefix + "log", AppendObjectContent(content="x", position=1)), 409, "PositionNotEqualToLength")
    assert ok(obs.getObject(BUCKET, prefix + "log", loadStreamInMemory=True)).buffer == b"abcdef"
    meta = ok(obs.getObjectMetadata(BUCKET, prefix + "log"))
    assert meta.isAppendable and meta.nextPosition == 6
    ok(obs.putContent(BUCKET, prefix + "plain", b"12345"))
    err(obs.appendObject(BUCKET, prefix + "plain", AppendObjectContent(content="x", position=5)), 409, "ObjectNotAppendable")


def test_metadata_too_large(obs, prefix):
    err(obs.putContent(BUCKET, prefix + "m", b"x", metadata={"big": "v" * 9000}), 400, "MetadataTooLarge")


def test_buckets(obs):
    name = "conf-" + os.urandom(4).hex() + "-" + obs.mode
    ok(obs.createBucket(name))
    err(obs.createBucket(name), 409, "BucketAlreadyOwnedByYou")
    ok(obs.headBucket(name))
    assert name in [b.name for b in ok(obs.listBuckets(isQueryLocation=False)).buckets]
    ok(obs.putContent(name, "k", b"x"))
    err(obs.deleteBucket(name), 409, "BucketNotEmpty")
    ok(obs.deleteObject(name, "k"))
    ok(obs.deleteBucket(name))
    assert obs.headBucket(name).status == 404


def test_signature_errors(server, obs):
    wrong = make_obs_client(server, obs.mode, secret_key="wrong-secret")
    resp = wrong.listObjects(BUCKET)
    assert (resp.status, resp.errorCode) == (403, "SignatureDoesNotMatch")
    unknown = make_obs_client(server, obs.mode, access_key="nobody")
    resp = unknown.listObjects(BUCKET)
    assert (resp.status, resp.errorCode) == (403, "InvalidAccessKeyId")


def test_crc64_parts_and_object(obs, prefix):
    """The SDK's own CRC-64 (`isAttachCrc64`): each part's value verified and echoed, the object's
    value (the SDK's `calc_obj_crc_from_parts`) verified on complete and returned on HEAD/GET;
    a wrong value is BadDigest."""
    from obs import util
    key = prefix + "crc.bin"
    parts = [os.urandom(150 * 1024), os.urandom(4321)]
    upload_id = ok(obs.initiateMultipartUpload(BUCKET, key)).uploadId
    completed = []
    for number, data in enumerate(parts, start=1):
        reply = ok(obs.uploadPart(BUCKET, key, number, upload_id, content=data, isAttachCrc64=True))
        assert int(reply.crc64) == util.calculate_content_crc64(data)
        completed.append(CompletePart(partNum=number, etag=reply.etag, crc64=reply.crc64, size=len(data)))
    err(obs.uploadPart(BUCKET, key, 3, upload_id, content=b"xyz", crc64=str(util.calculate_content_crc64(b"xyZ"))), 400, "BadDigest")
    done = ok(obs.completeMultipartUpload(BUCKET, key, upload_id, CompleteMultipartUploadRequest(parts=completed), isAttachCrc64=True))
    expected = util.calculate_content_crc64(b"".join(parts))
    assert int(done.crc64) == expected
    assert int(ok(obs.getObjectMetadata(BUCKET, key)).crc64) == expected
    # The SDK verifies a download against the returned value.
    assert ok(obs.getObject(BUCKET, key, loadStreamInMemory=True, isAttachCrc64=True)).buffer == b"".join(parts)
    # A complete whose object value is wrong is refused and leaves the upload in place.
    other = ok(obs.initiateMultipartUpload(BUCKET, key)).uploadId
    reply = ok(obs.uploadPart(BUCKET, key, 1, other, content=parts[1], isAttachCrc64=True))
    wrong = CompletePart(partNum=1, etag=reply.etag, crc64=str(int(reply.crc64) ^ 1), size=len(parts[1]))
    err(obs.completeMultipartUpload(BUCKET, key, other, CompleteMultipartUploadRequest(parts=[wrong]), isAttachCrc64=True), 400, "BadDigest")
    ok(obs.abortMultipartUpload(BUCKET, key, other))
