"""FUSE interrupts: a signal to a process whose request waits in the mount ends the wait at once.

A writer waiting for a part buffer (its parts' uploads are held up by obs-local's fault admin, so
no buffer comes back) is answered EINTR when SIGINT arrives: it ends within a second or two, its
place in the buffer queue goes to the next writer, and that writer's file is exact on the server.
A close() waiting for CompleteMultipartUpload is answered EINTR too, but the upload is not lost:
it completes at release (mount-options/write-semantics.md, "Interrupted calls")."""
import hashlib
import signal
import subprocess
import sys
import time
import uuid

from conftest import MiB, fault_admin, server_md5, uploads_in_progress

DELAY_MS = 6000  # how long the stuck file's part uploads (or its complete) are held up
BOUND = 2  # seconds from SIGINT until the interrupted process has ended

# Writes 1 MiB chunks for ever, saying after each write how many returned.
STUCK_WRITER = r"""
import os, sys
descriptor = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
written = 0
while True:
    os.write(descriptor, b"s" * (1 << 20))
    written += 1
    print(written, flush=True)
"""

# Opens its file (reserving its part buffer), says so, then writes what stdin brings and closes.
WAITING_WRITER = r"""
import os, sys
descriptor = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
print("open", flush=True)
os.write(descriptor, sys.stdin.buffer.read())
os.close(descriptor)
"""

# Writes its file, says so, then closes it.
CLOSING_WRITER = r"""
import os, sys
descriptor = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(descriptor, b"c" * int(sys.argv[2]))
print("closing", flush=True)
os.close(descriptor)
print("closed", flush=True)
"""


def wait_for_line(process, expected, timeout):
    """Reads the process's stdout until `expected`; returns the lines read."""
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline().strip()
        if not line:
            break
        lines.append(line)
        if line == expected:
            return lines
    raise AssertionError(f"no {expected!r} within {timeout} s: {lines}")


def interrupt_and_time(process):
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.wait(30)
    return time.monotonic() - started


def test_sigint_ends_a_writer_waiting_for_a_part_buffer(private_obs_local, mount_factory):
    server = private_obs_local
    # 2 MiB of buffers for two writers: the stuck file's two held part uploads fill the pool.
    mount = mount_factory(server, ["part_size=1M", "memory_budget=2M", "parallel=2"])
    stuck_key = f"stuck-{uuid.uuid4().hex[:8]}"
    other_key = f"other-{uuid.uuid4().hex[:8]}"
    fault_admin(server, "POST", {"operation": "UploadPart", "key": stuck_key, "times": 0, "action": "delay", "delayMs": DELAY_MS})
    other = subprocess.Popen([sys.executable, "-c", WAITING_WRITER, str(mount.path / other_key)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    wait_for_line(other, "open", 10)  # its buffer reserved before the pool fills
    stuck = subprocess.Popen([sys.executable, "-c", STUCK_WRITER, str(mount.path / stuck_key)], stdout=subprocess.PIPE, text=True)
    other_data = "o" * (3 * MiB) + "tail"
    try:
        # Two writes fill two parts whose uploads are held; the third waits for a buffer.
        wait_for_line(stuck, "2", 10)
        time.sleep(1)
        assert stuck.poll() is None
        # The other writer now waits in the pool's queue behind the stuck one.
        other.stdin.write(other_data)
        other.stdin.close()
        time.sleep(0.5)
        assert other.poll() is None
        elapsed = interrupt_and_time(stuck)
        assert elapsed < BOUND, f"the interrupted writer took {elapsed:.1f} s to end"
        assert stuck.stdout.read().strip() == "", "a write returned after the interrupt"
        # Nobody starved: the other writer is served once the stuck file's uploads return buffers.
        assert other.wait(DELAY_MS / 1000 + 20) == 0
    finally:
        for process in (stuck, other):
            if process.poll() is None:
                process.kill()
        fault_admin(server, "DELETE")
    assert server_md5(server, other_key) == hashlib.md5(other_data.encode()).hexdigest()
    # The stuck file holds exactly the two writes that returned; the interrupted one never went in.
    deadline = time.monotonic() + DELAY_MS / 1000 + 20
    while uploads_in_progress(server, stuck_key) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server_md5(server, stuck_key) == hashlib.md5(b"s" * (2 * MiB)).hexdigest()
    assert "interrupted while waiting for a part buffer" in mount.log_text()
    # The mount is still healthy.
    (mount.path / "after").write_bytes(b"healthy")
    assert (mount.path / "after").read_bytes() == b"healthy"
    assert server.s3.get_object(Bucket=server.bucket, Key="after")["Body"].read() == b"healthy"


def test_sigint_ends_a_close_waiting_for_the_upload_which_still_completes(private_obs_local, mount_factory):
    server = private_obs_local
    mount = mount_factory(server, ["part_size=1M", "memory_budget=8M", "parallel=2"])
    key = f"closing-{uuid.uuid4().hex[:8]}"
    size = 3 * MiB + 17
    fault_admin(server, "POST", {"operation": "CompleteMultipartUpload", "key": key, "action": "delay", "delayMs": DELAY_MS})
    closing = subprocess.Popen([sys.executable, "-c", CLOSING_WRITER, str(mount.path / key), str(size)], stdout=subprocess.PIPE, text=True)
    try:
        wait_for_line(closing, "closing", 10)
        time.sleep(1)
        assert closing.poll() is None, "close() did not wait for the held CompleteMultipartUpload"
        elapsed = interrupt_and_time(closing)
        assert elapsed < BOUND, f"the interrupted close() took {elapsed:.1f} s to end"
        assert "closed" not in closing.stdout.read()
    finally:
        if closing.poll() is None:
            closing.kill()
    # The upload was not given up: it completes once the held complete is answered.
    deadline = time.monotonic() + DELAY_MS / 1000 + 20
    while uploads_in_progress(server, key) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert uploads_in_progress(server, key) == []
    assert server_md5(server, key) == hashlib.md5(b"c" * size).hexdigest()
    assert f"{key}: complete" in mount.log_text()
