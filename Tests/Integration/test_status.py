"""`obsmount status` over the mount's control socket while files are being written, and the mount
as a systemd service: READY=1 / STATUS= / STOPPING=1 notifications, the journal's log format,
log_file= reopened on SIGHUP."""
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import MiB, OBSMOUNT, head, is_mounted


@pytest.fixture
def runtime_dir(monkeypatch):
    """The control sockets of this test's mounts (OBSMOUNT_RUNTIME_DIR, inherited by obsmount).
    Under /tmp, not the test's own directory: a Unix socket's path has at most 107 bytes, and a
    checkout's test directory can be deeper than that."""
    parent = tempfile.mkdtemp(prefix="obsm-", dir="/tmp")
    path = Path(parent) / "run"
    monkeypatch.setenv("OBSMOUNT_RUNTIME_DIR", str(path))
    yield path
    shutil.rmtree(parent, ignore_errors=True)


def status(mountpoint, *args, user=None):
    command = [str(OBSMOUNT), "status", str(mountpoint), *args]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def status_json(mountpoint):
    result = status(mountpoint, "--json")
    assert result.returncode == 0, result.stderr
    [reply] = json.loads(result.stdout)
    return reply


class SlowWriter(threading.Thread):
    """Writes `total` bytes into `path` in 256 KiB writes, pausing between them, until `stop`."""

    def __init__(self, path, total, pause=0.02):
        super().__init__(daemon=True)
        self.path, self.total, self.pause = path, total, pause
        self.written = 0
        self.error = None

    def run(self):
        try:
            chunk = os.urandom(256 * 1024)
            with open(self.path, "wb") as file:
                while self.written < self.total:
                    file.write(chunk)
                    file.flush()
                    self.written += len(chunk)
                    time.sleep(self.pause)
        except Exception as error:  # reported by the test
            self.error = error


def test_status_json_shows_every_open_upload_growing(obs_local, mount_factory, runtime_dir):
    mount = mount_factory(obs_local, ["part_size=1M", "parallel=2", "memory_budget=64M"])
    names = [f"big-{index}-{uuid.uuid4().hex[:6]}.bin" for index in range(4)]
    # 96 writes of 256 KiB each, 60 ms apart: about 6 s per file.
    writers = [SlowWriter(mount.path / name, 24 * MiB, pause=0.06) for name in names]
    for writer in writers:
        writer.start()
    time.sleep(1.5)
    first = status_json(mount.path)
    time.sleep(1.5)
    second = status_json(mount.path)
    assert all(writer.is_alive() for writer in writers), "the writers finished before the second sample"
    for writer in writers:
        writer.join(120)
        assert writer.error is None, writer.error

    assert first["mountpoint"] == str(mount.path) and first["source"] == obs_local.bucket
    for reply in (first, second):
        assert sorted(upload["path"] for upload in reply["uploads"]) == sorted("/" + name for name in names), reply
    before = {upload["path"]: upload for upload in first["uploads"]}
    for upload in second["uploads"]:
        earlier = before[upload["path"]]
        assert upload["uploadID"] == earlier["uploadID"] and upload["uploadID"]
        assert upload["bytesWritten"] > earlier["bytesWritten"] > 0
        assert upload["bytesDurable"] > 0 and upload["bytesDurable"] <= upload["bytesWritten"]
        assert upload["bytesDurable"] >= earlier["bytesDurable"]
        assert upload["partsUploaded"] >= 1 and upload["partsRetried"] == 0
        assert upload["bytesPerSecond"] > 0
    assert second["totals"]["openUploads"] == 4
    assert 0 < second["totals"]["memoryInUse"] <= second["totals"]["memoryBudget"] == 64 * MiB

    # Closed: no open upload; the totals match the objects on the server exactly.
    after = status_json(mount.path)
    assert after["uploads"] == []
    sizes = [head(obs_local, name)["ContentLength"] for name in names]
    assert sizes == [24 * MiB] * 4
    assert after["totals"]["bytesUploaded"] == sum(sizes)
    assert after["totals"]["objectsCompleted"] == 4 and after["totals"]["uploadsFailed"] == 0
    assert after["totals"]["partsUploaded"] == 4 * 24


def read_pty(descriptor, seconds):
    output = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([descriptor], [], [], 0.2)
        if ready:
            try:
                output += os.read(descriptor, 65536)
            except OSError:
                break
    return output.decode(errors="replace")


def test_status_watch_redraws_progress_bars_in_place(obs_local, mount_factory, runtime_dir):
    mount = mount_factory(obs_local, ["part_size=1M", "parallel=2", "memory_budget=64M"])
    name = f"watched-{uuid.uuid4().hex[:6]}.bin"
    writer = SlowWriter(mount.path / name, 40 * MiB, pause=0.05)
    writer.start()
    time.sleep(1)
    controller, terminal = pty.openpty()
    process = subprocess.Popen([str(OBSMOUNT), "status", str(mount.path), "--watch", "--interval", "0.5"],
                               stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True)
    os.close(terminal)
    try:
        output = read_pty(controller, 4)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)
        os.close(controller)
        writer.join(120)
    assert writer.error is None
    # Each redraw homes the cursor and clears the screen, then draws the table again.
    frames = [frame for frame in output.split("\x1b[H\x1b[J") if frame.strip()]
    assert len(frames) >= 4, output
    bars = [re.search(r"\[([#-]{20})\] (\S+ \S+) durable of (\S+ \S+) written", frame) for frame in frames if name in frame]
    bars = [bar for bar in bars if bar]
    assert len(bars) >= 4, output
    assert len({bar.group(3) for bar in bars}) >= 2, "the written bytes did not change between redraws: " + output


def test_control_socket_refuses_other_users(obs_local, mount_factory, tmp_path, monkeypatch):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    # A runtime dir that another user could reach if its modes allowed.
    parent = tempfile.mkdtemp(prefix="obsmount-status-", dir="/tmp")
    try:
        os.chmod(parent, 0o711)
        runtime = os.path.join(parent, "run")
        monkeypatch.setenv("OBSMOUNT_RUNTIME_DIR", runtime)
        mount = mount_factory(obs_local, ["part_size=1M"])
        assert status(mount.path).returncode == 0
        assert os.stat(runtime).st_mode & 0o777 == 0o700
        [sock] = os.listdir(runtime)
        assert os.stat(os.path.join(runtime, sock)).st_mode & 0o777 == 0o600

        denied = status(mount.path, "--json", user=65534)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied.stderr
        # With the file modes opened up, the mount itself refuses the peer by its credentials.
        os.chmod(runtime, 0o711)
        os.chmod(os.path.join(runtime, sock), 0o666)
        refused = status(mount.path, "--json", user=65534)
        assert refused.returncode != 0 and "refused: only uid 0 and root" in refused.stderr, refused.stderr
        assert refused.stdout == ""
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_status_of_every_mount_removes_the_sockets_killed_mounts_left(obs_local, mount_factory, runtime_dir):
    """A mount killed with SIGKILL leaves its control socket; `obsmount status` without a
    mountpoint still shows the live mounts (it failed as a whole at the first stale socket), and
    removes such sockets without a word (helper-50: a line on stderr for each of 55 of them, at
    every call and every --watch redraw). One made in the last seconds (a mount starting) stays."""
    mount = mount_factory(obs_local)
    sockets = [runtime_dir / "0000stale.sock", runtime_dir / "0001starting.sock"]  # sort first
    for path in sockets:
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(path))  # nobody listens on it
        stale.close()
    a_minute_ago = time.time() - 60
    os.utime(sockets[0], (a_minute_ago, a_minute_ago))
    result = subprocess.run([str(OBSMOUNT), "status", "--json"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert [reply["mountpoint"] for reply in json.loads(result.stdout)] == [str(mount.path)]
    assert result.stderr == ""
    assert not sockets[0].exists() and sockets[1].exists()
    assert subprocess.run([str(OBSMOUNT), "status"], capture_output=True, text=True, timeout=30).stderr == ""


def test_status_without_a_mount_says_so(tmp_path, runtime_dir):
    result = status(tmp_path)
    assert result.returncode != 0
    assert f"{tmp_path} is not a mount point" in result.stderr


# systemd ----------------------------------------------------------------------------------------

def password_file(tmp_path, server):
    path = tmp_path / "passwd"
    path.write_text(f"{server.access_key}:{server.secret_key}\n")
    path.chmod(0o600)
    return path


def test_systemd_notifications_and_journal_format(obs_local, tmp_path, runtime_dir):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    notify_path = str(tmp_path / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(30)
    log_path = tmp_path / "journal.log"
    log = open(log_path, "w")
    stat = os.fstat(log.fileno())
    env = {**os.environ, "NOTIFY_SOCKET": notify_path, "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}
    passwd = password_file(tmp_path, obs_local)
    process = subprocess.Popen([str(OBSMOUNT), obs_local.bucket, str(mountpoint), "-f", "-o",
                                f"url={obs_local.url},passwd_file={passwd},part_size=1M"],
                               stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
    messages = []
    try:
        ready = notify.recv(4096).decode()
        messages.append(ready)
        assert "READY=1" in ready.splitlines() and is_mounted(mountpoint), ready
        (mountpoint / "under-systemd.bin").write_bytes(os.urandom(3 * MiB))
        # STATUS= comes every 5 s with the counters.
        deadline = time.monotonic() + 15
        while not any("objects" in message and "1 objects" in message for message in messages):
            assert time.monotonic() < deadline, messages
            messages.append(notify.recv(4096).decode())
        process.send_signal(signal.SIGTERM)
        while not any("STOPPING=1" in message for message in messages):
            messages.append(notify.recv(4096).decode())
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False, capture_output=True)
        log.close()
        notify.close()
    status_line = next(message for message in messages if "1 objects" in message)
    assert re.search(r"STATUS=0 uploads open, 3\.0 MiB uploaded, 1 objects, 0 failed", status_line), status_line
    text = log_path.read_text()
    lines = [line for line in text.splitlines() if line]
    # The journal stamps lines itself: a syslog priority prefix, no timestamp.
    assert lines and all(re.match(r"<[0-7]>", line) for line in lines), text
    assert any(line.startswith("<5>notice obsmount: mounted") or "<5>notice" in line for line in lines), text
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text), text


def test_sighup_reopens_log_file(obs_local, tmp_path, runtime_dir):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    log = tmp_path / "obsmount.log"
    passwd = password_file(tmp_path, obs_local)
    result = subprocess.run([str(OBSMOUNT), obs_local.bucket, str(mountpoint), "-o",
                             f"url={obs_local.url},passwd_file={passwd},part_size=1M,log_file={log}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    try:
        pid = status_json(mountpoint)["pid"]
        (mountpoint / "before-rotation").write_bytes(b"x" * 1000)
        rotated = tmp_path / "obsmount.log.1"
        os.rename(log, rotated)
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not log.exists():
            assert time.monotonic() < deadline, "SIGHUP did not reopen log_file="
            time.sleep(0.1)
        assert is_mounted(mountpoint)  # SIGHUP does not unmount
        (mountpoint / "after-rotation").write_bytes(b"y" * 1000)
        deadline = time.monotonic() + 10
        while "after-rotation: complete" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert "before-rotation: complete" in rotated.read_text()
        assert "after-rotation" not in rotated.read_text()
        assert "reopened" in log.read_text()
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)
    deadline = time.monotonic() + 20
    while is_mounted(mountpoint):
        assert time.monotonic() < deadline
        time.sleep(0.2)
