"""Outages cost time, not data: requests are retried for retry_timeout= (not a count of attempts),
so a server refusing connections for a few seconds in the middle of a write only slows it down;
a longer outage fails close() within the documented bound (retry_timeout + one attempt + a few
quick abort attempts), and the upload it leaves is aborted in the background once the server is
reachable again."""
import json
import time
import urllib.request
import uuid

from conftest import MiB, md5_of_file, server_md5, uploads_in_progress, write_random


def admin(server, method, rule=None):
    data = json.dumps(rule).encode() if rule is not None else None
    request = urllib.request.Request(server.admin(), data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as reply:
        return reply.read()


def refuse(server, seconds):
    admin(server, "POST", {"action": "refuse", "seconds": seconds})


def test_a_4_second_outage_mid_write_costs_time_not_data(private_obs_local, mount_factory, tmp_path):
    mount = mount_factory(private_obs_local, ["part_size=1M", "parallel=2", "memory_budget=32M"])
    key = "outage-" + uuid.uuid4().hex[:8]
    source = write_random(tmp_path / "src", 8 * MiB + 123)
    with open(source, "rb") as data, open(mount.path / key, "wb") as out:
        out.write(data.read(3 * MiB))
        out.flush()
        refuse(private_obs_local, 4)
        started = time.monotonic()
        out.write(data.read())
    # close() returned 0: the object is complete and exact.
    assert time.monotonic() - started >= 3, "the outage was not felt: the test proves nothing"
    assert server_md5(private_obs_local, key) == md5_of_file(source)
    assert uploads_in_progress(private_obs_local, key) == []
    assert "retrying request" in mount.log_text()


def test_a_long_outage_fails_close_within_the_bound_and_leaves_no_upload(private_obs_local, mount_factory):
    retry_timeout = 5
    mount = mount_factory(private_obs_local, ["part_size=1M", "parallel=2", "memory_budget=32M", f"retry_timeout={retry_timeout}s"])
    key = "long-outage-" + uuid.uuid4().hex[:8]
    out = open(mount.path / key, "wb")
    out.write(b"o" * (2 * MiB + 5))
    out.flush()
    refuse(private_obs_local, 120)
    started = time.monotonic()
    failed = False
    try:
        for _ in range(4):
            out.write(b"o" * MiB)
            out.flush()
        out.close()
    except OSError:
        failed = True
    if not out.closed:
        try:
            out.close()
        except OSError:
            failed = True
    elapsed = time.monotonic() - started
    assert failed, "close() succeeded while the server refused every connection"
    # The bound of mount-options/README.md: retry_timeout + one attempt (refused: instant) + the
    # quick abort attempts (under 2 s); 5 s of slack for a loaded machine.
    assert elapsed < retry_timeout + 2 + 5, f"close() failed only after {elapsed:.1f} s"
    admin(private_obs_local, "DELETE")  # reachable again
    deadline = time.monotonic() + 30
    while uploads_in_progress(private_obs_local, key) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert uploads_in_progress(private_obs_local, key) == []
    assert not private_obs_local.s3.list_objects_v2(Bucket=private_obs_local.bucket, Prefix=key).get("Contents")


def test_stat_of_a_known_file_during_an_outage_fails_within_one_retry_time(private_obs_local, mount_factory):
    """The kernel revalidates a known name, and when that lookup fails looks it up once more: each
    waited retry_timeout=, so `stat` took twice the bound. Once a request got no answer for its
    whole retry time, the next one is not retried until the store answers again."""
    retry_timeout = 4
    mount = mount_factory(private_obs_local, [f"retry_timeout={retry_timeout}s", "attr_timeout=1"])
    key = "known-" + uuid.uuid4().hex[:8]
    (mount.path / key).write_bytes(b"known")
    assert (mount.path / key).stat().st_size == 5
    time.sleep(1.5)  # the kernel's entry and attributes expire: the next stat asks the mount
    refuse(private_obs_local, 120)
    started = time.monotonic()
    try:
        (mount.path / key).stat()
        raise AssertionError("stat succeeded while the server refused every connection")
    except OSError:
        pass
    elapsed = time.monotonic() - started
    assert elapsed < retry_timeout + 3, f"stat failed only after {elapsed:.1f} s"
    admin(private_obs_local, "DELETE")  # reachable again: the next stat is answered
    assert (mount.path / key).stat().st_size == 5
