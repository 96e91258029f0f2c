"""The opt-in metrics endpoint (`metrics=`): scraped during an upload and after it, its counters
match the object on the server; request latencies per operation and retries by error code."""
import json
import os
import socket
import time
import urllib.request
import tempfile
import uuid
from pathlib import Path

from conftest import MiB, head


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse(text):
    """Prometheus text format -> {'name{labels}': value} (comments skipped)."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(reply.read().decode())


def inject(server, rule):
    request = urllib.request.Request(server.admin(), data=json.dumps(rule).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).close()


def test_metrics_during_and_after_an_upload_match_the_server(private_obs_local, mount_factory):
    server = private_obs_local
    port = free_port()
    mount = mount_factory(server, ["part_size=1M", "parallel=2", "memory_budget=16M", f"metrics=127.0.0.1:{port}"])
    url = f"http://127.0.0.1:{port}/metrics"
    key = f"metered-{uuid.uuid4().hex[:8]}.bin"
    # The 3rd part upload fails once with a retryable error: one retry, counted by its code.
    inject(server, {"operation": "UploadPart", "key": key, "nth": 3, "times": 1, "action": "error", "code": "InternalError"})
    total = 12 * MiB
    chunk = os.urandom(256 * 1024)
    during = []
    with open(mount.path / key, "wb") as file:
        for index in range(total // len(chunk)):
            file.write(chunk)
            file.flush()
            time.sleep(0.05)
            if index in (24, 40):  # after 6 and 10 MiB written
                during.append(scrape(url))
    assert head(server, key)["ContentLength"] == total
    after = scrape(url)

    for sample in during:
        assert sample["obsmount_open_uploads"] == 1
        assert 0 < sample["obsmount_uploaded_bytes_total"] < total
        # All parts are part_size (1 MiB) here: bytes and parts agree.
        assert sample["obsmount_uploaded_bytes_total"] == sample["obsmount_uploaded_parts_total"] * MiB
        assert sample["obsmount_part_buffer_bytes"] > 0
    assert during[1]["obsmount_uploaded_bytes_total"] > during[0]["obsmount_uploaded_bytes_total"]

    assert after["obsmount_uploaded_bytes_total"] == total
    assert after["obsmount_uploaded_parts_total"] == total // MiB
    assert after["obsmount_objects_completed_total"] == 1
    assert after["obsmount_uploads_failed_total"] == 0 and after["obsmount_uploads_aborted_total"] == 0
    assert after["obsmount_open_uploads"] == 0
    assert after["obsmount_part_buffer_budget_bytes"] == 16 * MiB
    assert after['obsmount_request_retries_total{operation="UploadPart",code="InternalError"}'] == 1
    # Every attempt has a latency: 12 parts plus the failed one; one initiation, one completion.
    assert after['obsmount_request_duration_seconds_count{operation="UploadPart"}'] == total // MiB + 1
    assert after['obsmount_request_duration_seconds_count{operation="InitiateMultipartUpload"}'] == 1
    assert after['obsmount_request_duration_seconds_count{operation="CompleteMultipartUpload"}'] == 1
    assert after['obsmount_request_duration_seconds_sum{operation="UploadPart"}'] > 0
    buckets = [name for name in after if name.startswith("obsmount_request_duration_seconds_bucket{") and 'operation="UploadPart"' in name]
    assert buckets and after[next(name for name in buckets if 'le="+Inf"' in name)] == total // MiB + 1


def test_metrics_on_a_unix_socket(obs_local, mount_factory, tmp_path):
    # Under /tmp: a Unix socket's path has at most 107 bytes, and the test's directory may be deeper.
    directory = tempfile.mkdtemp(prefix="obsm-", dir="/tmp")
    path = Path(directory) / "metrics.sock"
    mount = mount_factory(obs_local, ["part_size=1M", f"metrics=unix:{path}"])
    (mount.path / f"small-{uuid.uuid4().hex[:6]}").write_bytes(b"z" * 3000)
    assert os.stat(path).st_mode & 0o777 == 0o600
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
        client.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        reply = b""
        while chunk := client.recv(65536):
            reply += chunk
    head_text, _, body = reply.decode().partition("\r\n\r\n")
    assert head_text.startswith("HTTP/1.1 200 OK")
    values = parse(body)
    assert values["obsmount_objects_completed_total"] == 1
    assert values["obsmount_uploaded_bytes_total"] == 3000
    mount.unmount()
    assert not path.exists()
    os.rmdir(directory)


def test_metrics_endpoint_must_be_loopback(obs_local, tmp_path):
    from test_cli import run_obsmount
    result = run_obsmount([obs_local.bucket, str(tmp_path), "-f", "-o", "metrics=0.0.0.0:9464"])
    assert result.returncode == 2 and "metrics=0.0.0.0:9464" in result.stderr
