"""No garbage: a mount killed mid-write leaves its upload in its journal; `obsmount uploads` lists
it and the next mount of the bucket and prefix aborts it. `obsmount uploads --abort --older-than`
aborts only uploads older than asked, whoever started them. SIGTERM of the mount mid-write leaves
nothing; during a close() it lets the close complete and answer. The mount tests run in the OBS
and the V4 dialect (part of issue 11's fault matrix, with test_faults_matrix.py)."""
import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest

from conftest import OBSMOUNT, MiB, uploads_in_progress


def run_uploads(server, workdir, source, *arguments):
    password = workdir / "uploads-passwd"
    password.write_text(f"{server.access_key}:{server.secret_key}\n")
    password.chmod(0o600)
    return subprocess.run([str(OBSMOUNT), "uploads", source, "-o",
                           f"url={server.url},dialect={server.dialect},region={server.region},passwd_file={password}", *arguments],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def listed(result):
    """The upload lines of `obsmount uploads`: (key, upload ID, initiated, parts, bytes)."""
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    return [(key, upload_id, initiated, int(parts), int(size)) for key, upload_id, initiated, parts, size in
            (row for row in rows if len(row) == 5)]


PART_SIZES = {"obs": 1 * MiB, "v4": 5 * MiB}  # S3 dialects: parts of 5 MiB at least


@pytest.fixture(params=list(PART_SIZES))
def dialect_server(request, obs_local):
    """The session's obs-local through the OBS or the V4 dialect, and a part size for it."""
    return dataclasses.replace(obs_local, dialect=request.param), PART_SIZES[request.param]


def wait_until(predicate, seconds, message):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


def test_an_upload_of_a_killed_mount_is_listed_and_aborted_by_the_next_mount(dialect_server, mount_factory, tmp_path):
    server, part = dialect_server
    prefix = "orphan-" + uuid.uuid4().hex[:8]
    options = [f"part_size={part}", "parallel=2", f"memory_budget={8 * part}"]
    mount = mount_factory(server, options, prefix=prefix)
    out = open(mount.path / "big.bin", "wb")
    out.write(b"k" * (3 * part + 7))
    out.flush()
    key = f"{prefix}/big.bin"

    def parts_uploaded():
        uploads = uploads_in_progress(server, key)
        return uploads and len(server.s3.list_parts(Bucket=server.bucket, Key=key,
                                                       UploadId=uploads[0]["UploadId"]).get("Parts", [])) >= 3
    wait_until(parts_uploaded, 30, "the parts written were not uploaded")
    upload_id = uploads_in_progress(server, key)[0]["UploadId"]
    mount.process.send_signal(signal.SIGKILL)
    mount.process.wait()
    try:
        out.close()
    except OSError:
        pass  # the mount is gone
    mount.unmount()
    assert [upload["UploadId"] for upload in uploads_in_progress(server, key)] == [upload_id]

    rows = listed(run_uploads(server, tmp_path, f"{server.bucket}:/{prefix}"))
    assert [(row[0], row[1], row[3], row[4]) for row in rows] == [(key, upload_id, 3, 3 * part)]
    assert rows[0][2].endswith("Z")

    successor = mount_factory(server, options, prefix=prefix)
    wait_until(lambda: not uploads_in_progress(server, key), 30, "the next mount did not abort the orphan")
    log = successor.log_text()
    assert "left open by an earlier mount" in log and upload_id in log
    wait_until(lambda: f"aborted upload {upload_id}" in successor.log_text(), 10, successor.log_text())
    assert listed(run_uploads(server, tmp_path, f"{server.bucket}:/{prefix}")) == []


def backdate(server, upload_id, seconds):
    request = urllib.request.Request(server.url + "/_obs-local/uploads/backdate", method="POST",
                                     data=json.dumps({"bucket": server.bucket, "uploadId": upload_id, "seconds": seconds}).encode())
    with urllib.request.urlopen(request) as reply:
        assert reply.status == 204


def test_abort_older_than_touches_only_older_uploads(obs_local, tmp_path):
    prefix = "aged-" + uuid.uuid4().hex[:8]
    s3 = obs_local.s3
    old_key, young_key, outside_key = f"{prefix}/old", f"{prefix}/young", f"other-{prefix}/old"
    old = s3.create_multipart_upload(Bucket=obs_local.bucket, Key=old_key)["UploadId"]
    s3.upload_part(Bucket=obs_local.bucket, Key=old_key, UploadId=old, PartNumber=1, Body=b"x" * 1000)
    young = s3.create_multipart_upload(Bucket=obs_local.bucket, Key=young_key)["UploadId"]
    outside = s3.create_multipart_upload(Bucket=obs_local.bucket, Key=outside_key)["UploadId"]
    backdate(obs_local, old, 2 * 3600)
    backdate(obs_local, outside, 2 * 3600)
    try:
        source = f"{obs_local.bucket}:/{prefix}"
        everything = listed(run_uploads(obs_local, tmp_path, source))
        assert sorted((row[0], row[1], row[3], row[4]) for row in everything) == [(old_key, old, 1, 1000), (young_key, young, 0, 0)]
        assert listed(run_uploads(obs_local, tmp_path, source, "--older-than", "1h")) == [row for row in everything if row[0] == old_key]

        result = run_uploads(obs_local, tmp_path, source, "--older-than", "1h", "--abort")
        assert result.returncode == 0, result.stderr
        assert f"aborted\t{old_key}\t{old}" in result.stdout.splitlines()
        assert [upload["UploadId"] for upload in uploads_in_progress(obs_local, prefix + "/")] == [young]
        # Outside the prefix nothing is touched, however old.
        assert [upload["UploadId"] for upload in uploads_in_progress(obs_local, f"other-{prefix}/")] == [outside]
    finally:
        for key, upload_id in ((young_key, young), (outside_key, outside)):
            s3.abort_multipart_upload(Bucket=obs_local.bucket, Key=key, UploadId=upload_id)


def test_bad_older_than_exits_2(obs_local, tmp_path):
    result = run_uploads(obs_local, tmp_path, obs_local.bucket, "--older-than", "soon")
    assert result.returncode == 2
    assert "soon" in result.stderr


def test_sigterm_of_the_mount_mid_write_leaves_no_upload(dialect_server, mount_factory):
    server, part = dialect_server
    prefix = "sigterm-" + uuid.uuid4().hex[:8]
    mount = mount_factory(server, [f"part_size={part}", "parallel=2", f"memory_budget={8 * part}"], prefix=prefix)
    key = f"{prefix}/open.bin"
    out = open(mount.path / "open.bin", "wb")
    out.write(b"t" * (2 * part + 3))
    out.flush()
    wait_until(lambda: uploads_in_progress(server, key), 30, "no upload started")
    mount.process.send_signal(signal.SIGTERM)
    mount.process.wait(60)
    with pytest.raises(OSError):  # the mount is gone and the file was not written
        out.close()
    mount.unmount()
    assert uploads_in_progress(server, key) == []
    assert not server.s3.list_objects_v2(Bucket=server.bucket, Prefix=key).get("Contents")
    assert "not written" in mount.log_text()
    # A clean end with nothing left open removes the mount's journal file.
    assert not list(mount.state_dir.glob("journal/*/*.journal"))


def test_sigterm_of_the_mount_with_a_file_open_for_changes_keeps_the_object_and_says_so(dialect_server, mount_factory):
    server, part = dialect_server
    prefix = "sigterm-" + uuid.uuid4().hex[:8]
    key = f"{prefix}/changed.bin"
    server.s3.put_object(Bucket=server.bucket, Key=key, Body=b"before\n")
    mount = mount_factory(server, [f"part_size={part}"], prefix=prefix)
    out = open(mount.path / "changed.bin", "ab")
    out.write(b"after\n")
    out.flush()
    mount.process.send_signal(signal.SIGTERM)
    mount.process.wait(60)
    with pytest.raises(OSError):
        out.close()
    mount.unmount()
    assert server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() == b"before\n"
    assert f"unmount: {key}: changes not stored" in mount.log_text()


def fault_rules(server, method="GET", body=None, path=""):
    request = urllib.request.Request(server.admin() + path, method=method, headers={"Content-Type": "application/json"},
                                     data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(request) as reply:
        text = reply.read()
        return json.loads(text) if text else None


def test_sigterm_of_the_mount_during_close_finishes_or_fails_the_file_cleanly(dialect_server, mount_factory):
    """SIGTERM while a close() is completing (its complete held for 2 s by the server): the
    completion goes on, and the close() gets its answer, before the mount ends (the device was
    closed first, and a close() failed with ENOTCONN for an object that was written). The
    invariants: close() returned 0 ⇒ the object is exact; close() failed ⇒ no object; no upload
    left; the mount gone within 30 s."""
    server, part = dialect_server
    prefix = "sigterm-close-" + uuid.uuid4().hex[:8]
    mount = mount_factory(server, [f"part_size={part}", "parallel=2", f"memory_budget={8 * part}"], prefix=prefix)
    key = f"{prefix}/closing.bin"
    rule = fault_rules(server, "POST", {"operation": "CompleteMultipartUpload", "key": key, "action": "delay", "delayMs": 2000})["ids"][0]
    data = os.urandom(3 * part + 11)
    out = open(mount.path / "closing.bin", "wb")
    out.write(data)
    closed = []

    def close():
        try:
            out.close()
            closed.append(True)
        except OSError:
            closed.append(False)
    closer = threading.Thread(target=close)
    closer.start()
    wait_until(lambda: next(r for r in fault_rules(server) if r["id"] == rule)["matched"] == 1, 30, "no complete was sent")
    mount.process.send_signal(signal.SIGTERM)
    mount.process.wait(30)
    closer.join(30)
    assert not closer.is_alive(), "close() hangs after the mount ended"
    mount.unmount()
    fault_rules(server, "DELETE", path=f"/{rule}")
    if closed == [True]:
        assert server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() == data
    else:
        assert not server.s3.list_objects_v2(Bucket=server.bucket, Prefix=key).get("Contents"), "close() failed but the object exists"
    assert uploads_in_progress(server, key) == []
    assert closed == [True], "the completing upload's close() got no answer"
