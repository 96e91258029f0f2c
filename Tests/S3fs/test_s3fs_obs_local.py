"""Debian's s3fs (s3fs-fuse, a third-party S3 client) against obs-local (issue 3).

s3fs signs with V4, addresses path-style, sends Content-MD5 and uploads a 200 MiB file as a
multipart upload of about 10 MB parts, 5 in parallel. The file goes in with `cp`, is checked on the
server with boto3 (size, MD5 of the bytes, no upload left in progress), and comes back out with
`cp` through a fresh mount, so that the read is served by obs-local and not the page cache.
"""
import hashlib
import os

import boto3
import pytest
from botocore.config import Config

FILE_SIZE = 200 * 1024 * 1024
CHUNK = 1024 * 1024
COPY_TIMEOUT = 180  # seconds for one cp of the file (a few seconds are expected)


def md5_of_file(path):
    digest = hashlib.md5()
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_random_file(path, size):
    """Writes size random bytes to path and returns their MD5."""
    digest = hashlib.md5()
    with open(path, "wb") as target:
        for _ in range(size // CHUNK):
            chunk = os.urandom(CHUNK)
            digest.update(chunk)
            target.write(chunk)
    return digest.hexdigest()


def s3_client(endpoint):
    return boto3.client(
        "s3", endpoint_url=endpoint.url, region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key, aws_secret_access_key=endpoint.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required",
                      retries={"max_attempts": 1}))


def server_md5(client, bucket, key):
    digest = hashlib.md5()
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in body.iter_chunks(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.timeout(420)
def test_s3fs_copies_200_mib_in_and_out_intact(obs_local, s3fs_mount, tmp_path):
    source = tmp_path / "source.bin"
    source_md5 = write_random_file(source, FILE_SIZE)
    key = "random-200MiB.bin"

    with s3fs_mount(obs_local, "mount-in") as mount:
        mount.copy(source, mount.mount_point / key, timeout=COPY_TIMEOUT)

    client = s3_client(obs_local)
    head = client.head_object(Bucket=obs_local.bucket, Key=key)
    assert head["ContentLength"] == FILE_SIZE
    etag_parts = head["ETag"].strip('"').rpartition("-")[2]
    assert etag_parts.isdigit() and int(etag_parts) > 1, f"expected a multipart ETag, got {head['ETag']}"
    assert server_md5(client, obs_local.bucket, key) == source_md5
    assert client.list_multipart_uploads(Bucket=obs_local.bucket).get("Uploads", []) == []

    copy_out = tmp_path / "copy-out.bin"
    with s3fs_mount(obs_local, "mount-out") as mount:
        assert os.path.getsize(mount.mount_point / key) == FILE_SIZE
        mount.copy(mount.mount_point / key, copy_out, timeout=COPY_TIMEOUT)
    assert md5_of_file(copy_out) == source_md5
