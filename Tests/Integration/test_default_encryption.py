"""A bucket whose default encryption is SSE-KMS (common on OBS and S3) answers ETags that are not
MD5s for objects that asked for no encryption; the mount must accept uploads into it (the client
decides integrity from the reply, which says the data is KMS-encrypted)."""
import hashlib

import pytest

from conftest import MiB, md5_of_file, server_md5, start_obs_local, stop_server, uploads_in_progress, write_random


@pytest.fixture
def kms_obs_local(tmp_path):
    server = start_obs_local(tmp_path, ["--kms-bucket", "kms-default"], bucket="kms-default")
    yield server
    stop_server(server)


def test_obs_local_answers_non_md5_etags_in_a_kms_bucket(kms_obs_local):
    reply = kms_obs_local.s3.put_object(Bucket=kms_obs_local.bucket, Key="probe", Body=b"probe")
    assert reply["ETag"].strip('"') != hashlib.md5(b"probe").hexdigest()
    assert reply["ServerSideEncryption"] == "aws:kms"


def test_the_mount_uploads_into_a_bucket_encrypted_by_default(kms_obs_local, mount_factory, tmp_path):
    mount = mount_factory(kms_obs_local, ["part_size=1M", "parallel=2", "memory_budget=32M", "retry_timeout=5s"])
    source = write_random(tmp_path / "src", 3 * MiB + 11)
    with open(source, "rb") as data, open(mount.path / "secret.bin", "wb") as out:
        out.write(data.read())
    assert server_md5(kms_obs_local, "secret.bin") == md5_of_file(source)
    head = kms_obs_local.s3.head_object(Bucket=kms_obs_local.bucket, Key="secret.bin")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert uploads_in_progress(kms_obs_local) == []
