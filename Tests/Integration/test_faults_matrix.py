"""The fault matrix of issue 11 on obs-local (OBS dialect): each request of an upload (initiate,
part, complete, abort) × {5xx once, 5xx persistent, connection reset mid-body}, each case checking
the invariants: close() returned 0 ⇒ the object's bytes are exactly right; the write failed ⇒ no
object was created and, once the server answers again, no upload of it remains (the background
abort gets its bounded time); no case takes longer than its bound."""
import json
import time
import urllib.request
import uuid

import pytest

from conftest import MiB, md5_of_file, server_md5, uploads_in_progress, write_random

RETRY_TIMEOUT = 3  # seconds (retry_timeout=): persistent failures fail fast
BOUND = 30  # seconds any case may take until close() answers


def admin(server, method, rule=None):
    data = json.dumps(rule).encode() if rule is not None else None
    request = urllib.request.Request(server.admin(), data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as reply:
        return reply.read()


@pytest.fixture
def faulty(obs_local, mount_factory):
    admin(obs_local, "DELETE")
    mount = mount_factory(obs_local, ["part_size=1M", "parallel=2", "memory_budget=32M", f"retry_timeout={RETRY_TIMEOUT}s"])
    yield mount
    admin(obs_local, "DELETE")


ERROR = {"action": "error", "code": "InternalError"}
CUT = {"action": "cut", "afterBytes": 1000}

# (operation, fault, how many times it fires (0: for ever), whether the file must be written)
CASES = [
    ("InitiateMultipartUpload", ERROR, 1, True),
    ("InitiateMultipartUpload", ERROR, 0, False),
    ("UploadPart", ERROR, 1, True),
    ("UploadPart", ERROR, 0, False),
    ("UploadPart", CUT, 1, True),
    ("CompleteMultipartUpload", ERROR, 1, True),
    ("CompleteMultipartUpload", ERROR, 0, False),
    ("CompleteMultipartUpload", CUT, 1, True),
]


@pytest.mark.parametrize("operation,fault,times,succeeds", CASES,
                         ids=[f"{op}-{fault['action']}-{'once' if times else 'persistent'}" for op, fault, times, _ in CASES])
def test_fault_matrix(faulty, tmp_path, operation, fault, times, succeeds):
    server = faulty.server
    key = f"matrix-{uuid.uuid4().hex[:8]}"
    admin(server, "POST", {"operation": operation, "key": key, "nth": 2 if operation == "UploadPart" else 1, "times": times, **fault})
    source = write_random(tmp_path / "src", 3 * MiB + 99)
    started = time.monotonic()
    closed_ok = False
    try:
        with open(source, "rb") as data, open(faulty.path / key, "wb") as out:
            out.write(data.read())
        closed_ok = True
    except OSError:
        pass
    assert time.monotonic() - started < BOUND
    check_invariants(server, key, source, closed_ok)
    assert closed_ok == succeeds, faulty.log_text()[-3000:]


@pytest.mark.parametrize("abort_times", [1, 0], ids=["abort-5xx-once", "abort-5xx-persistent"])
def test_a_failing_abort_is_retried_until_the_upload_is_gone(faulty, tmp_path, abort_times):
    server = faulty.server
    key = f"matrix-abort-{uuid.uuid4().hex[:8]}"
    admin(server, "POST", [{"operation": "UploadPart", "key": key, "nth": 2, "times": 0, **ERROR},
                           {"operation": "AbortMultipartUpload", "key": key, "times": abort_times, **ERROR}])
    source = write_random(tmp_path / "src", 3 * MiB + 99)
    started = time.monotonic()
    with pytest.raises(OSError):
        with open(source, "rb") as data, open(faulty.path / key, "wb") as out:
            out.write(data.read())
    assert time.monotonic() - started < BOUND
    if abort_times == 0:
        time.sleep(1)
        assert [u["Key"] for u in uploads_in_progress(server, key)] == [key]  # the abort is still refused
        admin(server, "DELETE")  # the server answers again
    check_invariants(server, key, source, False)
    assert "aborting upload" in faulty.log_text() or "aborted upload" in faulty.log_text()


def check_invariants(server, key, source, closed_ok):
    if closed_ok:
        assert server_md5(server, key) == md5_of_file(source)
    else:
        assert not server.s3.list_objects_v2(Bucket=server.bucket, Prefix=key).get("Contents")
    deadline = time.monotonic() + 30  # the background abort's first retries: 1 s, 2 s, 4 s, …
    while uploads_in_progress(server, key) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert uploads_in_progress(server, key) == []
