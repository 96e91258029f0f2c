"""Real-mount tests of obsmount: fixtures for servers, mounts and server-side checks.

Environment (exported by scripts/test):
  OBSMOUNT_BIN_DIR        directory holding obsmount and obs-local (default: .build/debug)
  OBSMOUNT_TEST_S3_URL, OBSMOUNT_TEST_S3_BUCKET, OBSMOUNT_TEST_S3_ACCESS_KEY,
  OBSMOUNT_TEST_S3_SECRET_KEY, OBSMOUNT_TEST_S3_REGION
                          a SeaweedFS S3 endpoint (V4); tests on it are skipped when unset.
obs-local is started here, once per session, on a free loopback port, with bucket `itest` and the
parallel file system bucket `itest-pfs` (fixture `obs_local_pfs`). Every mount is unmounted when its
test ends, whether it passed or not.
"""
import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("OBSMOUNT_BIN_DIR", REPO / ".build" / "debug"))
# Mount options added to every test mount (`OBSMOUNT_TEST_MOUNT_OPTIONS=writeback_cache` runs the
# suites with the kernel's writeback cache).
EXTRA_MOUNT_OPTIONS = [option for option in os.environ.get("OBSMOUNT_TEST_MOUNT_OPTIONS", "").split(",") if option]
OBSMOUNT = BIN_DIR / "obsmount"
OBS_LOCAL = BIN_DIR / "obs-local"
OBS_LOCAL_KEYS = ("obs-local-dev-ak", "obs-local-dev-sk")

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
MAX_OBJECT = 48_800_000_000_000
MAX_PART = 5 * GiB
PFS_BUCKET = "itest-pfs"


@dataclass
class Server:
    """An S3/OBS endpoint with one bucket and a boto3 client for server-side checks."""
    name: str
    url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str
    dialect: str  # the dialect obsmount mounts it with
    part_size: int  # the part size tests mount it with (S3 servers refuse parts under 5 MiB)
    process: subprocess.Popen | None = None
    s3: object = field(default=None, repr=False)
    request_log: Path | None = None  # obs-local's --request-log file (JSON lines)

    def admin(self):
        return self.url + "/_obs-local/faults"


def s3_client(url, access_key, secret_key, region):
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                        region_name=region, config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                                                          signature_version="s3v4"))


def start_obs_local(directory, extra_args=(), bucket="itest"):
    """An obs-local process on a free loopback port with bucket `itest` and parallel file system bucket
    `itest-pfs` (and whatever `extra_args` create; `bucket` names the one tests use); stop it with
    `stop_server`."""
    if not OBS_LOCAL.exists():
        pytest.fail(f"obs-local not built at {OBS_LOCAL}")
    log_path = directory / "obs-local.log"
    request_log = directory / "requests.jsonl"
    log = open(log_path, "w")
    process = subprocess.Popen([str(OBS_LOCAL), "--listen", "127.0.0.1:0", "--data-dir", str(directory / "data"),
                                "--bucket", "itest", "--pfs-bucket", PFS_BUCKET, "--request-log", str(request_log), *extra_args],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = None
    deadline = time.monotonic() + 30
    while url is None and time.monotonic() < deadline:
        match = re.search(r"obs-local listening on (http://127\.0\.0\.1:\d+)", log_path.read_text())
        url = match.group(1) if match else None
        if url is None:
            assert process.poll() is None, "obs-local exited: " + log_path.read_text()
            time.sleep(0.1)
    if url is None:
        process.kill()
        pytest.fail("obs-local printed no listening line")
    server = Server("obs-local", url, bucket, *OBS_LOCAL_KEYS, "us-east-1", "obs", 1 * MiB, process,
                    request_log=request_log)
    server.s3 = s3_client(url, *OBS_LOCAL_KEYS, "us-east-1")
    return server


def stop_server(server):
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def obs_local(tmp_path_factory):
    server = start_obs_local(tmp_path_factory.mktemp("obs-local"))
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def obs_local_pfs(obs_local):
    """The session's obs-local, through its parallel file system bucket (native rename, modify, truncate)."""
    return dataclasses.replace(obs_local, name="obs-local-pfs", bucket=PFS_BUCKET)


@pytest.fixture
def private_obs_local(tmp_path):
    """An obs-local of this test alone (it may be killed)."""
    server = start_obs_local(tmp_path)
    yield server
    if server.process.poll() is None:
        stop_server(server)


@pytest.fixture(scope="session")
def seaweedfs():
    url = os.environ.get("OBSMOUNT_TEST_S3_URL")
    if not url:
        pytest.skip("OBSMOUNT_TEST_S3_URL not set (scripts/test starts SeaweedFS)")
    server = Server("seaweedfs", url, os.environ["OBSMOUNT_TEST_S3_BUCKET"], os.environ["OBSMOUNT_TEST_S3_ACCESS_KEY"],
                    os.environ["OBSMOUNT_TEST_S3_SECRET_KEY"], os.environ.get("OBSMOUNT_TEST_S3_REGION", "us-east-1"), "v4", 5 * MiB)
    server.s3 = s3_client(url, server.access_key, server.secret_key, server.region)
    return server


@pytest.fixture(params=["obs-local", "seaweedfs"])
def server(request):
    """Each test using it runs against obs-local (OBS dialect) and SeaweedFS (V4)."""
    return request.getfixturevalue("obs_local" if request.param == "obs-local" else "seaweedfs")


EVERY_SERVER = ["obs-local", "obs-local-pfs", "seaweedfs"]


def named_server(request):
    """The server fixture `request.param` names (one of EVERY_SERVER). A test module whose every
    test runs on all of them defines `server` as
    `pytest.fixture(name="server", params=EVERY_SERVER)(named_server)`."""
    return request.getfixturevalue(request.param.replace("-", "_"))


@pytest.fixture(params=EVERY_SERVER)
def every_server(request):
    """Like `server`, and obs-local's parallel file system bucket too."""
    return named_server(request)


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == path for line in mounts)


class Mount:
    """A running `obsmount -f` on a fresh directory; `unmount` is idempotent."""

    def __init__(self, server, workdir, options=(), prefix=None):
        self.server = server
        self.path = workdir / ("mnt-" + uuid.uuid4().hex[:8])
        self.path.mkdir()
        self.log_path = workdir / (self.path.name + ".log")
        password = workdir / "passwd"
        password.write_text(f"{server.access_key}:{server.secret_key}\n")
        password.chmod(0o600)
        source = server.bucket + (f":/{prefix}" if prefix else "")
        # The upload journal under the test's directory (shared by the test's mounts), not /var/lib.
        self.state_dir = workdir / "state"
        opts = [f"url={server.url}", f"dialect={server.dialect}", f"region={server.region}", f"passwd_file={password}",
                f"state_dir={self.state_dir}", *EXTRA_MOUNT_OPTIONS, *options]
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([str(OBSMOUNT), source, str(self.path), "-f", "-o", ",".join(opts)],
                                        stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not is_mounted(self.path):
            if self.process.poll() is not None:
                raise AssertionError(f"obsmount exited with {self.process.returncode}: {self.log_text()}")
            if time.monotonic() > deadline:
                self.unmount()
                raise AssertionError("not mounted after 30 s: " + self.log_text())
            time.sleep(0.05)

    def log_text(self):
        return self.log_path.read_text()

    def unmount(self, timeout=60):
        if is_mounted(self.path):
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)], check=False)
        if self.process.poll() is None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait()
        self.log.close()


@pytest.fixture
def mount_factory(tmp_path):
    mounts = []

    def make(server, options=(), prefix=None):
        mount = Mount(server, tmp_path, options, prefix)
        mounts.append(mount)
        return mount

    yield make
    for mount in mounts:
        mount.unmount()


@pytest.fixture
def mount(server, mount_factory):
    """obsmount on `server`, with parts small enough that modest files have several."""
    return mount_factory(server, [f"part_size={server.part_size}", "parallel=4", "memory_budget=64M"])


# Server-side checks ---------------------------------------------------------------------------

PARTS_PER_DOUBLING = 4


def part_size_at(index, initial, cap, flat):
    """Size of part index+1 in Sources/ObsFS/PartSizeSchedule.swift: `initial` for the first `flat`
    parts, then doubling every 4 parts up to `cap`."""
    if index < flat:
        return initial
    return min(cap, initial << min((index - flat) // PARTS_PER_DOUBLING + 1, 17))


def flat_parts(initial):
    """The largest K for which 10,000 parts (5 GiB cap) reach 48.8 TB."""
    def total(flat):
        return sum(part_size_at(i, initial, MAX_PART, flat) for i in range(10_000))
    low, high = 0, 10_000
    while low < high:
        middle = (low + high + 1) // 2
        if total(middle) >= MAX_OBJECT:
            low = middle
        else:
            high = middle - 1
    return low


def part_sizes(size, initial, memory_budget):
    """Sizes of the parts obsmount cuts a `size`-byte file into."""
    cap = min(MAX_PART, memory_budget // 2)
    flat = flat_parts(initial)
    sizes, index = [], 0
    while size > 0:
        part = part_size_at(index, initial, cap, flat)
        sizes.append(min(part, size))
        size -= part
        index += 1
    return sizes


def composite_etag(path, sizes):
    """The composite ETag of a local file uploaded in parts of these sizes."""
    digests = []
    with open(path, "rb") as source:
        for size in sizes:
            md5 = hashlib.md5()
            remaining = size
            while remaining:
                chunk = source.read(min(remaining, 8 * MiB))
                md5.update(chunk)
                remaining -= len(chunk)
            digests.append(md5.digest())
    return hashlib.md5(b"".join(digests)).hexdigest() + f"-{len(digests)}"


def md5_of_file(path):
    md5 = hashlib.md5()
    with open(path, "rb") as source:
        while chunk := source.read(8 * MiB):
            md5.update(chunk)
    return md5.hexdigest()


def server_md5(server, key):
    md5 = hashlib.md5()
    body = server.s3.get_object(Bucket=server.bucket, Key=key)["Body"]
    while chunk := body.read(8 * MiB):
        md5.update(chunk)
    return md5.hexdigest()


def head(server, key):
    return server.s3.head_object(Bucket=server.bucket, Key=key)


# The POSIX metadata every object obsmount writes carries (s3fs's names; mount-options/semantics.md).
POSIX_METADATA = {"mode", "rdev", "uid", "gid", "mtime", "atime", "ctime", "xattr"}


def user_metadata(head_reply):
    """A HEAD reply's metadata without the POSIX names."""
    return {name: value for name, value in head_reply["Metadata"].items() if name not in POSIX_METADATA}


def uploads_in_progress(server, prefix=""):
    reply = server.s3.list_multipart_uploads(Bucket=server.bucket, Prefix=prefix)
    return reply.get("Uploads", [])


def fault_admin(server, method, rule=None):
    """obs-local's fault admin (Sources/OBSLocalServer/FaultInjector.swift): POST a rule, GET the
    rules, DELETE them all."""
    data = json.dumps(rule).encode() if rule is not None else None
    request = urllib.request.Request(server.admin(), data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as reply:
        return reply.read()


def write_random(path, size, seed=0):
    """A local file of `size` pseudo-random bytes (fast: a random block repeated with a counter)."""
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    with open(path, "wb") as out:
        written, counter = 0, 0
        while written < size:
            chunk = counter.to_bytes(8, "little") + block[8:]
            chunk = chunk[: size - written]
            out.write(chunk)
            written += len(chunk)
            counter += 1
    return path
