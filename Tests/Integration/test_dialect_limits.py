"""The smallest part follows the dialect: obsmount refuses part_size= under S3's 5 MiB for V2/V4 at
mount time, and obs-local refuses a V2/V4-signed complete with a smaller part (OBS-signed: 100 KiB)."""
import subprocess
import uuid

import botocore.exceptions
import pytest

from conftest import MiB, OBSMOUNT


@pytest.mark.parametrize("dialect", ["v2", "v4"])
def test_s3_dialect_with_small_parts_is_refused_at_mount_time(obs_local, tmp_path, dialect):
    result = subprocess.run([str(OBSMOUNT), obs_local.bucket, str(tmp_path), "-f", "-o",
                             f"url={obs_local.url},dialect={dialect},part_size=1M"],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert f"must be at least 5120K with dialect={dialect}" in result.stderr
    assert "'part_size=1048576'" in result.stderr


def test_obs_local_refuses_v4_parts_under_5_mib(obs_local):
    key = "small-v4-" + uuid.uuid4().hex[:8]
    s3 = obs_local.s3  # signs in V4
    upload = s3.create_multipart_upload(Bucket=obs_local.bucket, Key=key)["UploadId"]
    try:
        parts = [s3.upload_part(Bucket=obs_local.bucket, Key=key, UploadId=upload, PartNumber=number, Body=body)["ETag"]
                 for number, body in ((1, b"a" * MiB), (2, b"tail"))]
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            s3.complete_multipart_upload(Bucket=obs_local.bucket, Key=key, UploadId=upload, MultipartUpload={
                "Parts": [{"PartNumber": n + 1, "ETag": etag} for n, etag in enumerate(parts)]})
        assert refused.value.response["Error"]["Code"] == "EntityTooSmall"
    finally:
        s3.abort_multipart_upload(Bucket=obs_local.bucket, Key=key, UploadId=upload)
