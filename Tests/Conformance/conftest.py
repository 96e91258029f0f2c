"""Fixtures of the obs-local conformance suite.

The obs-local binary comes from the directory in env OBSMOUNT_BIN_DIR (the output of
`swift build --show-bin-path`). Each server listens on 127.0.0.1 port 0 with a temporary data
directory, and is stopped with SIGTERM when its fixture ends.

Clock injection (replaying recorded requests only): `start_server(clock_offset=N)` passes
`--clock-offset N`, which shifts obs-local's clock by N seconds.
"""
import os
import re
import signal
import subprocess
import tempfile
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from obs import ObsClient

ACCESS_KEY = "conformance-ak"
SECRET_KEY = "conformance-sk"
BUCKET = "conformance"


class Server:
    def __init__(self, process, port, data_dir, request_log):
        self.process = process
        self.port = port
        self.data_dir = data_dir
        self.request_log = request_log
        self.endpoint = f"http://127.0.0.1:{port}"

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def obs_local_binary():
    bin_dir = os.environ.get("OBSMOUNT_BIN_DIR")
    if not bin_dir:
        pytest.fail("set OBSMOUNT_BIN_DIR to the output of `swift build --show-bin-path`")
    path = os.path.join(bin_dir, "obs-local")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no obs-local executable at {path}")
    return path


def start_server(tmp_dir, access_key=ACCESS_KEY, secret_key=SECRET_KEY, clock_offset=None, buckets=(BUCKET,), extra=()):
    data_dir = os.path.join(tmp_dir, "data")
    request_log = os.path.join(tmp_dir, "requests.jsonl")
    args = [obs_local_binary(), "--listen", "127.0.0.1:0", "--data-dir", data_dir,
            "--access-key", access_key, "--request-log", request_log, *extra]
    for bucket in buckets:
        args += ["--bucket", bucket]
    if clock_offset is not None:
        args.append(f"--clock-offset={int(clock_offset)}")
    env = dict(os.environ, OBS_LOCAL_SECRET_KEY=secret_key)
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = re.search(r"obs-local listening on http://127\.0\.0\.1:(\d+)", line)
        if match:
            return Server(process, int(match.group(1)), data_dir, request_log)
    process.kill()
    pytest.fail("obs-local did not report its address: " + (process.stdout.read() or ""))


@pytest.fixture(scope="session")
def server():
    with tempfile.TemporaryDirectory(prefix="obs-local-conformance-") as tmp:
        # The suite's multipart tests use 100 KiB parts in every dialect; obs-local's S3 default is 5 MiB.
        srv = start_server(tmp, extra=["--s3-min-part-size", "102400"])
        yield srv
        srv.stop()


@pytest.fixture
def prefix():
    """A key prefix of its own for each test."""
    return "t-" + uuid.uuid4().hex[:12] + "/"


def make_obs_client(server, mode, access_key=ACCESS_KEY, secret_key=SECRET_KEY):
    if mode == "obs":
        return ObsClient(access_key_id=access_key, secret_access_key=secret_key, server=server.endpoint,
                         path_style=True, is_signature_negotiation=False, client_mode="local")
    return ObsClient(access_key_id=access_key, secret_access_key=secret_key, server=server.endpoint,
                     path_style=True, signature=mode)


@pytest.fixture(params=["obs", "v2", "v4"])
def obs(request, server):
    """The official SDK in the OBS-native dialect, then in the S3 V2 and V4 dialects (its V4
    signs with `Date` only, no `x-amz-date`)."""
    client = make_obs_client(server, request.param)
    client.mode = request.param
    yield client
    client.close()


def make_s3_client(server, access_key=ACCESS_KEY, secret_key=SECRET_KEY, addressing="path"):
    return boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, region_name="us-east-1",
                        config=Config(s3={"addressing_style": addressing}, retries={"max_attempts": 1},
                                      signature_version="s3v4"))


@pytest.fixture
def s3(server):
    """boto3 with signature V4."""
    return make_s3_client(server)
