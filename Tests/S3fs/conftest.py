"""Fixtures of the s3fs test: an obs-local server and s3fs mounts of one of its buckets.

Run through scripts/test, which sets OBSMOUNT_BIN_DIR to the build's bin directory.
Every process started here gets SIGKILL when pytest dies (parent-death signal), and every
mount is unmounted in a finally.
"""
import contextlib
import ctypes
import dataclasses
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when the thread that started it ends."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def stop(process, grace=10):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclasses.dataclass(frozen=True)
class Endpoint:
    url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def wait_for_line(log_path, process, prefix, timeout):
    """The first line of log_path that starts with prefix, waiting while process runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(
        f"no line starting with {prefix!r} from {process.args[0]} "
        f"(exit status {process.poll()}); output:\n{log_path.read_text(errors='replace')[-2000:]}")


@pytest.fixture(scope="module")
def obs_local(tmp_path_factory):
    """obs-local on a free loopback port with fresh keys and one bucket, on disk in a temp dir."""
    bin_dir = os.environ.get("OBSMOUNT_BIN_DIR")
    binary = Path(bin_dir) / "obs-local" if bin_dir else None
    if binary is None or not binary.is_file():
        pytest.skip(f"obs-local is not built ({binary or 'OBSMOUNT_BIN_DIR is not set'})")
    work = tmp_path_factory.mktemp("obs-local")
    endpoint_keys = dict(access_key="AK" + secrets.token_hex(9).upper(), secret_key=secrets.token_urlsafe(30))
    bucket = "s3fs-test"
    log_path = work / "obs-local.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(binary), "--listen", "127.0.0.1:0", "--data-dir", str(work / "data"), "--bucket", bucket,
             "--access-key", endpoint_keys["access_key"]],
            # The secret goes through the environment, never the command line (ps).
            env=dict(os.environ, OBS_LOCAL_SECRET_KEY=endpoint_keys["secret_key"]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    try:
        line = wait_for_line(log_path, process, "obs-local listening on http://127.0.0.1:", timeout=30)
        url = line.split()[3]
        yield Endpoint(url=url, bucket=bucket, **endpoint_keys)
    finally:
        stop(process)


class S3fsMount:
    """s3fs in the foreground (-f), so that it is our child and dies with us."""

    def __init__(self, endpoint, mount_point, work_dir, extra_options=()):
        self.mount_point = mount_point
        self.log_path = work_dir / f"s3fs-{mount_point.name}.log"
        passwd = work_dir / "s3fs-passwd"
        passwd.write_text(f"{endpoint.access_key}:{endpoint.secret_key}\n")
        passwd.chmod(0o600)
        options = ",".join([
            f"url={endpoint.url}", "use_path_request_style", "sigv4", f"endpoint={endpoint.region}",
            f"passwd_file={passwd}", "enable_content_md5", "multipart_size=10", "parallel_count=5",
            "dbglevel=warn", *extra_options,
        ])
        mount_point.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["s3fs", endpoint.bucket, str(mount_point), "-f", "-o", options],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 30
        while not os.path.ismount(mount_point):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.unmount()
                raise AssertionError(f"s3fs did not mount {mount_point}; log:\n{self.log()}")
            time.sleep(0.1)

    def log(self):
        return self.log_path.read_text(errors="replace")[-3000:]

    def copy(self, source, target, timeout):
        """`cp source target`, one of them under the mount. A cp stuck in a FUSE request cannot be
        killed while s3fs holds the request, so on timeout s3fs is killed first."""
        cp = subprocess.Popen(["cp", str(source), str(target)], stdin=subprocess.DEVNULL)
        try:
            status = cp.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            cp.kill()
            cp.wait()
            raise AssertionError(f"cp {source} {target} took over {timeout} s; s3fs log:\n{self.log()}")
        assert status == 0, f"cp {source} {target} failed with status {status}; s3fs log:\n{self.log()}"

    def unmount(self):
        """Unmounts (lazily when busy; s3fs then exits by itself), waits 30 s for s3fs, then kills it."""
        if os.path.ismount(self.mount_point):
            if subprocess.run(["fusermount3", "-u", str(self.mount_point)], check=False).returncode != 0:
                subprocess.run(["fusermount3", "-u", "-z", str(self.mount_point)], check=False)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def s3fs_mount(tmp_path):
    """Mounts endpoint's bucket with s3fs: `with s3fs_mount(endpoint, name) as mount:` (an S3fsMount)."""

    @contextlib.contextmanager
    def mount(endpoint, name):
        mounted = S3fsMount(endpoint, tmp_path / name, tmp_path)
        try:
            yield mounted
        finally:
            mounted.unmount()

    return mount
