"""The official OBS SDK (esdk-obs-python) on parallel file system buckets of obs-local, in every
dialect (fixture `obs`): a bucket created with `isPFS`, HEAD bucket's answer, and the SDK's
renameFile, modifyFile and truncateFile, each result read back; on an ordinary bucket the three
answer 405 MethodNotAllowed."""
import os

from obs import CreateBucketHeader

from conftest import BUCKET


def ok(resp):
    assert resp.status < 300, f"{resp.status} {resp.errorCode} {resp.errorMessage}"
    return resp.body


def read(obs, bucket, key):
    return ok(obs.getObject(bucket, key, loadStreamInMemory=True)).buffer


def file_interface(resp):
    """`x-obs-fs-file-interface` of a HEAD bucket reply (the SDK drops the `x-obs-` prefix)."""
    ok(resp)
    return dict(resp.header).get("fs-file-interface")


def test_pfs_bucket_rename_modify_truncate(obs, prefix):
    bucket = "pfs-" + os.urandom(4).hex() + "-" + obs.mode
    ok(obs.createBucket(bucket, header=CreateBucketHeader(isPFS=True)))
    assert file_interface(obs.headBucket(bucket)) == "Enabled"
    assert file_interface(obs.headBucket(BUCKET)) is None

    data = os.urandom(300 * 1024)
    key = prefix + "dir/file.bin"
    ok(obs.putContent(bucket, key, data))
    patch = os.urandom(1000)
    modified = obs.modifyFile(bucket, key, 100 * 1024 - 10, patch)
    ok(modified)
    expected = data[:100 * 1024 - 10] + patch + data[100 * 1024 - 10 + 1000:]
    assert read(obs, bucket, key) == expected
    ok(obs.modifyFile(bucket, key, len(expected), b"tail"))
    expected += b"tail"
    assert read(obs, bucket, key) == expected

    ok(obs.truncateFile(bucket, key, 1000))
    assert read(obs, bucket, key) == expected[:1000]
    ok(obs.truncateFile(bucket, key, 1500))
    assert read(obs, bucket, key) == expected[:1000] + bytes(500)

    renamed = obs.renameFile(bucket, key, prefix + "dir/renamed é+.bin")
    assert renamed.status == 204, f"{renamed.status} {renamed.errorCode}"
    assert obs.getObject(bucket, key, loadStreamInMemory=True).status == 404
    assert read(obs, bucket, prefix + "dir/renamed é+.bin") == expected[:1000] + bytes(500)
    ok(obs.renameFile(bucket, prefix + "dir", prefix + "moved"))
    listed = ok(obs.listObjects(bucket, prefix=prefix))
    assert [content.key for content in listed.contents] == [prefix + "moved/renamed é+.bin"]
    missing = obs.renameFile(bucket, prefix + "nothing", prefix + "x")
    assert (missing.status, missing.errorCode) == (404, "NoSuchKey")


def test_ordinary_bucket_refuses_the_file_system_calls(obs, prefix):
    key = prefix + "plain"
    ok(obs.putContent(BUCKET, key, b"12345"))
    for resp in (obs.renameFile(BUCKET, key, prefix + "other"), obs.modifyFile(BUCKET, key, 0, b"x"),
                 obs.truncateFile(BUCKET, key, 1)):
        assert (resp.status, resp.errorCode) == (405, "MethodNotAllowed"), f"{resp.status} {resp.errorCode} {resp.errorMessage}"
    assert read(obs, BUCKET, key) == b"12345"
