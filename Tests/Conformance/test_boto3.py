"""boto3 (signature V4, path style and virtual host) against obs-local: every operation and the
error codes, plus raw requests for the errors boto3 cannot produce."""
import base64
import hashlib
import http.client
import os

import botocore.exceptions
import pytest

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCESS_KEY, BUCKET, SECRET_KEY, make_s3_client


def code_of(call):
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    assert caught.value.response["ResponseMetadata"].get("RequestId"), "error replies carry a request ID"
    return caught.value.response["ResponseMetadata"]["HTTPStatusCode"], error["Code"]


def test_objects_ranges_and_listing(s3, prefix):
    data = os.urandom(300 * 1024)
    s3.put_object(Bucket=BUCKET, Key=prefix + "obj", Body=data, ContentType="text/x-v4", Metadata={"m": "v"},
                  StorageClass="STANDARD_IA", Tagging="a=1&b=2")
    got = s3.get_object(Bucket=BUCKET, Key=prefix + "obj")
    assert got["Body"].read() == data and got["ContentType"] == "text/x-v4" and got["Metadata"] == {"m": "v"}
    assert got["StorageClass"] == "STANDARD_IA" and got["TagCount"] == 2
    assert s3.get_object(Bucket=BUCKET, Key=prefix + "obj", Range="bytes=-10")["Body"].read() == data[-10:]
    head = s3.head_object(Bucket=BUCKET, Key=prefix + "obj")
    assert head["ContentLength"] == len(data) and head["ETag"] == '"' + hashlib.md5(data).hexdigest() + '"'
    assert code_of(lambda: s3.get_object(Bucket=BUCKET, Key=prefix + "obj", Range="bytes=999999999-")) == (416, "InvalidRange")
    assert code_of(lambda: s3.get_object(Bucket=BUCKET, Key=prefix + "missing")) == (404, "NoSuchKey")
    assert code_of(lambda: s3.get_object(Bucket=BUCKET, Key=prefix + "obj", IfMatch='"x"')) == (412, "PreconditionFailed")
    for name in ("a/1", "a/2", "b"):
        s3.put_object(Bucket=BUCKET, Key=prefix + name, Body=b"x")
    v2 = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix, Delimiter="/", MaxKeys=2)
    assert [c["Prefix"] for c in v2["CommonPrefixes"]] == [prefix + "a/"] and v2["IsTruncated"]
    rest = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix, Delimiter="/", ContinuationToken=v2["NextContinuationToken"])
    assert [c["Key"] for c in rest["Contents"]] == [prefix + "obj"]
    v1 = s3.list_objects(Bucket=BUCKET, Prefix=prefix, Marker=prefix + "a/2")
    assert [c["Key"] for c in v1["Contents"]] == [prefix + "b", prefix + "obj"]
    deleted = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": prefix + "a/1"}, {"Key": prefix + "a/2"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == [prefix + "a/1", prefix + "a/2"]
    s3.delete_object(Bucket=BUCKET, Key=prefix + "b")
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]] == [prefix + "obj"]


def test_multipart_copy_part_and_errors(s3, prefix):
    key = prefix + "mp"
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key, Metadata={"x": "y"}, ServerSideEncryption="aws:kms",
                                        SSEKMSKeyId="kms-key-1")
    assert upload["ServerSideEncryption"] == "aws:kms" and upload["SSEKMSKeyId"] == "kms-key-1"
    upload_id = upload["UploadId"]
    first = os.urandom(120 * 1024)
    e1 = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=first)["ETag"]
    s3.put_object(Bucket=BUCKET, Key=prefix + "src", Body=os.urandom(1000))
    src = s3.get_object(Bucket=BUCKET, Key=prefix + "src")["Body"].read()
    e2 = s3.upload_part_copy(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=2,
                             CopySource={"Bucket": BUCKET, "Key": prefix + "src"}, CopySourceRange="bytes=10-109")["CopyPartResult"]["ETag"]
    assert code_of(lambda: s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})) == (400, "InvalidPartOrder")
    assert code_of(lambda: s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e2}]})) == (400, "InvalidPart")
    assert code_of(lambda: s3.upload_part(Bucket=BUCKET, Key=key, UploadId="nope", PartNumber=1, Body=b"x")) == (404, "NoSuchUpload")
    parts = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id, MaxParts=1)
    assert [p["PartNumber"] for p in parts["Parts"]] == [1] and parts["IsTruncated"]
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
    assert [u["UploadId"] for u in uploads["Uploads"]] == [upload_id]
    done = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert done["ETag"].endswith('-2"')
    got = s3.get_object(Bucket=BUCKET, Key=key)
    assert got["Body"].read() == first + src[10:110] and got["Metadata"] == {"x": "y"}
    assert got["ServerSideEncryption"] == "aws:kms"
    other = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=other)
    assert code_of(lambda: s3.list_parts(Bucket=BUCKET, Key=key, UploadId=other)) == (404, "NoSuchUpload")


def test_copy_acl_tagging_and_sse_c(s3, prefix):
    s3.put_object(Bucket=BUCKET, Key=prefix + "src", Body=b"payload", Metadata={"a": "1"})
    s3.copy_object(Bucket=BUCKET, Key=prefix + "dst", CopySource={"Bucket": BUCKET, "Key": prefix + "src"},
                   MetadataDirective="REPLACE", Metadata={"b": "2"})
    assert s3.head_object(Bucket=BUCKET, Key=prefix + "dst")["Metadata"] == {"b": "2"}
    s3.put_object_acl(Bucket=BUCKET, Key=prefix + "dst", ACL="public-read")
    grants = s3.get_object_acl(Bucket=BUCKET, Key=prefix + "dst")["Grants"]
    assert {g["Permission"] for g in grants} == {"FULL_CONTROL", "READ"}
    s3.put_object_tagging(Bucket=BUCKET, Key=prefix + "dst", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    assert s3.get_object_tagging(Bucket=BUCKET, Key=prefix + "dst")["TagSet"] == [{"Key": "k", "Value": "v"}]
    key = "k" * 32
    s3.put_object(Bucket=BUCKET, Key=prefix + "enc", Body=b"secret", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert code_of(lambda: s3.get_object(Bucket=BUCKET, Key=prefix + "enc"))[0] == 400
    assert code_of(lambda: s3.get_object(Bucket=BUCKET, Key=prefix + "enc", SSECustomerAlgorithm="AES256",
                                         SSECustomerKey="z" * 32))[0] == 403
    assert s3.get_object(Bucket=BUCKET, Key=prefix + "enc", SSECustomerAlgorithm="AES256", SSECustomerKey=key)["Body"].read() == b"secret"


def test_virtual_host_addressing(server, prefix):
    s3 = make_s3_client(server, addressing="virtual")
    s3.meta.events.register("before-sign.s3", lambda request, **kw: _localhost(request, server))
    s3.put_object(Bucket=BUCKET, Key=prefix + "vh", Body=b"virtual")
    assert s3.get_object(Bucket=BUCKET, Key=prefix + "vh")["Body"].read() == b"virtual"


def _localhost(request, server):
    # boto3 would name the host conformance.127.0.0.1; obs-local serves bucket.localhost.
    request.url = request.url.replace(f"{BUCKET}.127.0.0.1:{server.port}", f"{BUCKET}.localhost:{server.port}")


def test_signature_and_clock_errors(server):
    wrong = make_s3_client(server, secret_key="wrong")
    assert code_of(lambda: wrong.list_objects_v2(Bucket=BUCKET)) == (403, "SignatureDoesNotMatch")
    unknown = make_s3_client(server, access_key="nobody")
    assert code_of(lambda: unknown.list_objects_v2(Bucket=BUCKET)) == (403, "InvalidAccessKeyId")
    assert code_of(lambda: make_s3_client(server).head_bucket(Bucket="no-such-bucket-y"))[0] == 404


def raw(server, method, path, headers=None, body=b""):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), data


def test_unsigned_probe_and_anonymous_access(server):
    status, headers, _ = raw(server, "HEAD", "/?apiversion")
    assert status == 200 and headers.get("x-obs-api") == "3.0"
    status, headers, body = raw(server, "GET", f"/{BUCKET}/x")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body and b"<RequestId>" in body and b"<HostId>" in body
    assert headers.get("x-obs-request-id") and headers.get("x-obs-id-2")


def signed_headers(server, method, path, headers):
    request = AWSRequest(method=method, url=server.endpoint + path, headers=headers)
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def test_entity_too_large_is_refused_before_the_body(server):
    path = f"/{BUCKET}/huge"
    headers = signed_headers(server, "PUT", path, {"Content-Length": str(6 * 1024 ** 3), "Expect": "100-continue"})
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.putheader("Host", f"127.0.0.1:{server.port}")
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 400 and b"<Code>EntityTooLarge</Code>" in body


def test_missing_content_length(server):
    path = f"/{BUCKET}/chunked"
    headers = signed_headers(server, "PUT", path, {"Transfer-Encoding": "chunked"})
    status, _, body = raw(server, "PUT", path, headers=headers, body=b"3\r\nabc\r\n0\r\n\r\n")
    assert status == 411 and b"<Code>MissingContentLength</Code>" in body


def test_malformed_complete_body(server, s3, prefix):
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=prefix + "bad")["UploadId"]
    path = f"/{BUCKET}/{prefix}bad?uploadId={upload_id}"
    body = b"<CompleteMultipartUpload><Part><PartNumber>1</Part"
    headers = signed_headers(server, "POST", path, {"Content-Length": str(len(body))})
    status, _, reply = raw(server, "POST", path, headers=headers, body=body)
    assert status == 400 and b"<Code>MalformedXML</Code>" in reply


def crc32c(data):
    """CRC-32C (Castagnoli), bitwise: an implementation independent of obs-local's ISA-L."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def crc32c_header(data):
    return base64.b64encode(crc32c(data).to_bytes(4, "big")).decode()


def test_crc32c_parts_verified_and_full_object_value_returned(s3, prefix):
    """boto3 sends `x-amz-checksum-crc32c` (given, so no CRT is needed); obs-local verifies and
    echoes it, refuses a wrong one (BadDigest), and returns the full-object CRC-32C on HEAD."""
    key = prefix + "crc32c.bin"
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="CRC32C", ChecksumType="FULL_OBJECT")
    completed = []
    for number, data in enumerate(parts, start=1):
        reply = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=data,
                               ChecksumCRC32C=crc32c_header(data))
        assert reply["ChecksumCRC32C"] == crc32c_header(data)
        completed.append({"PartNumber": number, "ETag": reply["ETag"], "ChecksumCRC32C": reply["ChecksumCRC32C"]})
    assert code_of(lambda: s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=3, Body=b"abc",
                                          ChecksumCRC32C=crc32c_header(b"abd"))) == (400, "BadDigest")
    whole = crc32c_header(b"".join(parts))
    s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": completed},
                                 ChecksumCRC32C=whole, ChecksumType="FULL_OBJECT")
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-crc32c"] == whole
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"".join(parts)
