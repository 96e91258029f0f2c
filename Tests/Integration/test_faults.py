"""Failures injected by obs-local: retried parts, persistent failures, failing complete, an
unreachable server. close() must report every failure and leave no upload in progress."""
import errno
import json
import os
import time
import urllib.request
import uuid

import pytest

from conftest import MiB, head, md5_of_file, server_md5, uploads_in_progress, write_random


def inject(server, rule):
    request = urllib.request.Request(server.admin(), data=json.dumps(rule).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as reply:
        return json.load(reply)


@pytest.fixture
def faulty(obs_local, mount_factory):
    urllib.request.urlopen(urllib.request.Request(obs_local.admin(), method="DELETE"))
    mount = mount_factory(obs_local, ["part_size=1M", "parallel=2", "memory_budget=32M", "retry_timeout=2s"])
    yield mount
    urllib.request.urlopen(urllib.request.Request(obs_local.admin(), method="DELETE"))


def key_for(stem):
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def test_a_failed_part_is_retried_and_the_object_is_intact(faulty, tmp_path):
    key = key_for("retry")
    inject(faulty.server, {"operation": "UploadPart", "key": key, "nth": 2, "times": 1, "action": "error", "code": "InternalError"})
    source = write_random(tmp_path / "src", 5 * MiB + 17)
    with open(source, "rb") as data, open(faulty.path / key, "wb") as out:
        out.write(data.read())
    assert head(faulty.server, key)["ContentLength"] == os.path.getsize(source)
    assert server_md5(faulty.server, key) == md5_of_file(source)


def test_a_persistently_failing_part_fails_close_and_aborts(faulty, tmp_path):
    key = key_for("persistent")
    inject(faulty.server, {"operation": "UploadPart", "key": key, "nth": 2, "times": 0, "action": "error", "code": "InternalError"})
    out = open(faulty.path / key, "wb")
    with pytest.raises(OSError):
        for _ in range(6):
            out.write(b"p" * MiB)
            out.flush()
        out.close()
    if not out.closed:
        with pytest.raises(OSError):
            out.close()
    assert uploads_in_progress(faulty.server, key) == []
    assert "InternalError" in faulty.log_text()


def test_a_failing_complete_fails_close(faulty):
    key = key_for("complete")
    inject(faulty.server, {"operation": "CompleteMultipartUpload", "key": key, "times": 0, "action": "error", "code": "InternalError"})
    out = open(faulty.path / key, "wb")
    out.write(b"c" * (3 * MiB))
    with pytest.raises(OSError):
        out.close()
    assert uploads_in_progress(faulty.server, key) == []
    text = faulty.log_text()
    assert f"aborted upload of {key}" in text and "request-id" in text


def test_an_unreachable_server_fails_close_in_bounded_time(private_obs_local, mount_factory):
    mount = mount_factory(private_obs_local, ["part_size=1M", "parallel=2", "memory_budget=32M", "retry_timeout=5s"])
    key = key_for("unreachable")
    out = open(mount.path / key, "wb")
    out.write(b"u" * (2 * MiB + 5))
    out.flush()
    private_obs_local.process.kill()  # mid-write: the server is gone
    private_obs_local.process.wait()
    started = time.monotonic()
    with pytest.raises(OSError):
        out.write(b"u" * (2 * MiB))
        out.flush()
        out.close()
    if not out.closed:
        with pytest.raises(OSError):
            out.close()
    assert time.monotonic() - started < 60
    assert "Couldn't connect" in mount.log_text() or "connect" in mount.log_text().lower()


def test_after_a_failed_close_stat_shows_what_the_store_kept(faulty):
    """A failed close leaves the store as it was, and `stat` says so at once: a new file is
    missing, a rewritten one has its old size (helper-50: for attr_timeout= the new file stated
    as an empty file that open could not find, the rewrite as its new size)."""
    server = faulty.server
    fresh, rewritten = key_for("failednew"), key_for("failedrewrite")
    server.s3.put_object(Bucket=server.bucket, Key=rewritten, Body=b"old content\n")
    assert (faulty.path / rewritten).stat().st_size == 12
    inject(server, {"operation": "CompleteMultipartUpload", "times": 0, "action": "error", "code": "InternalError"})
    for key in (fresh, rewritten):
        with pytest.raises(OSError) as raised:
            with open(faulty.path / key, "wb") as out:
                out.write(b"new bytes that are not stored")
        assert raised.value.errno == errno.EIO
    with pytest.raises(FileNotFoundError):
        os.stat(faulty.path / fresh)
    assert fresh not in os.listdir(faulty.path)
    assert (faulty.path / rewritten).stat().st_size == 12
    assert (faulty.path / rewritten).read_bytes() == b"old content\n"
