"""The close rules of mount-options/write-semantics.md, on a real mount."""
import os
import subprocess
import time
import uuid

import pytest

from conftest import MiB, head, uploads_in_progress


def name(stem):
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def test_dup_and_fork_complete_exactly_once(mount):
    key = name("dupfork")
    path = mount.path / key
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b"a" * (6 * MiB))
    duplicate = os.dup(fd)
    child = os.fork()
    if child == 0:  # the child closes its copies without writing
        os.close(duplicate)
        os.close(fd)
        os._exit(0)
    assert os.waitpid(child, 0)[1] == 0
    assert uploads_in_progress(mount.server, key) != []  # the child's flushes completed nothing
    os.write(duplicate, b"b" * MiB)
    os.close(duplicate)  # fd still holds the file writable: this close completes nothing
    assert uploads_in_progress(mount.server, key) != []
    os.close(fd)  # the opener's last descriptor: completes
    assert head(mount.server, key)["ContentLength"] == 7 * MiB
    assert uploads_in_progress(mount.server, key) == []
    body = mount.server.s3.get_object(Bucket=mount.server.bucket, Key=key)["Body"].read()
    assert body == b"a" * (6 * MiB) + b"b" * MiB


def test_a_second_writer_joins_the_first(mount):
    """`open(..., "wb")` twice: as on a local disk, both succeed and the last bytes written win
    (test_changes.py compares more cases with a local directory)."""
    key = name("busy")
    with open(mount.path / key, "wb") as first:
        first.write(b"12")
        first.flush()
        with open(mount.path / key, "wb") as second:
            second.write(b"3")
    assert head(mount.server, key)["ContentLength"] == 1
    assert mount.server.s3.get_object(Bucket=mount.server.bucket, Key=key)["Body"].read() == b"3"


def test_pwrite_backwards_into_a_new_file_is_composed_at_close(mount):
    server, part = mount.server, mount.server.part_size
    key = name("seek")
    data = bytearray(os.urandom(part * 2 + 1000))
    fd = os.open(mount.path / key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, bytes(data))
    os.pwrite(fd, b"y", part * 2 + 10)  # inside the unsent third part
    os.pwrite(fd, b"x", 10)  # inside the first part, already sent: continued by composition
    os.write(fd, b"tail")
    os.close(fd)
    data[part * 2 + 10] = ord("y")
    data[10] = ord("x")
    assert server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() == bytes(data) + b"tail"
    assert uploads_in_progress(server, key) == []


def test_appending_to_an_existing_object_composes_it_on_the_server(mount):
    key = name("existing")
    mount.server.s3.put_object(Bucket=mount.server.bucket, Key=key, Body=b"old")
    fd = os.open(mount.path / key, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"more")
    os.close(fd)
    assert mount.server.s3.get_object(Bucket=mount.server.bucket, Key=key)["Body"].read() == b"oldmore"
    with open(mount.path / key, "wb") as out:  # O_TRUNC replaces it
        out.write(b"new")
    assert mount.server.s3.get_object(Bucket=mount.server.bucket, Key=key)["Body"].read() == b"new"


def test_shell_redirections_keep_every_byte(mount):
    key = name("shell")
    script = f"""
set -e
cd {mount.path}
{{ echo one; echo two; }} > {key}
exec 3>>{key}; echo three >&3; echo four >&3; exec 3>&-
(echo five; sh -c 'echo six') >> {key} 2>&1
"""
    subprocess.run(["bash", "-c", script], check=True)
    body = mount.server.s3.get_object(Bucket=mount.server.bucket, Key=key)["Body"].read()
    assert body == b"one\ntwo\nthree\nfour\nfive\nsix\n"


def test_a_descriptor_closed_by_exec_does_not_hang_the_exec(mount):
    """Python's `open()` sets close-on-exec; `os.system` forks and the child's `execve` closes that
    descriptor, a flush sent while the exec holds its locks. The flush once read
    /proc/CHILD/fd/N, which waits for those locks: the exec and the flush waited for each other."""
    key = name("cloexec")
    script = f"""
import os
f = open({str(mount.path / key)!r}, "w")
f.write("hello\\n"); f.flush()
assert os.system("true") == 0
f.write("world\\n"); f.close()
"""
    subprocess.run(["python3", "-c", script], check=True, timeout=60)
    assert mount.server.s3.get_object(Bucket=mount.server.bucket, Key=key)["Body"].read() == b"hello\nworld\n"


@pytest.mark.parametrize("header", [b"", b"header\n"])
def test_the_last_holder_stores_what_it_wrote_after_the_opener_closed(mount, header):
    """`Popen(cmd, stdout=f); f.close(); wait()`: the opener's close came before the commands wrote.
    The close of the last process holding the file stores it, so the file is complete on the
    server and through the mount once the command has exited (not only after the release that
    the kernel sends a moment later), and a truncate right after stays."""
    body = b"x" * (20 * MiB) + b"\nend\n"
    for trial in range(3):
        key = name("inherited")
        path = mount.path / key
        with open(path, "wb") as f:
            f.write(header)
            f.flush()
            child = subprocess.Popen(["sh", "-c", f"head -c {20 * MiB} /dev/zero | tr '\\0' x; echo; sleep 0.1; echo end"], stdout=f)
        assert child.wait(timeout=120) == 0
        assert os.stat(path).st_size == len(header) + len(body), trial
        assert path.read_bytes() == header + body, trial
        assert mount.server.s3.get_object(Bucket=mount.server.bucket, Key=key)["Body"].read() == header + body
        os.truncate(path, 3)
        time.sleep(0.5)  # a release composing the old changes would land by now
        assert mount.server.s3.get_object(Bucket=mount.server.bucket, Key=key)["Body"].read() == (header + body)[:3]


def test_an_o_dsync_write_is_stored_when_it_returns(mount):
    """`O_DSYNC`/`O_SYNC` (databases, `dd oflag=dsync`): each write returns once stored, as an
    `fsync` after it would (it was stored only at close)."""
    key = name("dsync")
    data = os.urandom(2 * MiB)
    mount.server.s3.put_object(Bucket=mount.server.bucket, Key=key, Body=data)
    for flag, patch in ((os.O_DSYNC, b"dsync"), (os.O_SYNC, b"sync!")):
        fd = os.open(mount.path / key, os.O_RDWR | flag)
        try:
            assert os.pwrite(fd, patch, 5000) == len(patch)
            data = data[:5000] + patch + data[5000 + len(patch):]
            assert mount.server.s3.get_object(Bucket=mount.server.bucket, Key=key)["Body"].read() == data
        finally:
            os.close(fd)


def test_dd_conv_notrunc_sends_only_the_change(mount):
    key = name("notrunc")
    data = os.urandom(12 * MiB)
    mount.server.s3.put_object(Bucket=mount.server.bucket, Key=key, Body=data)
    patch = os.urandom(MiB)
    subprocess.run(["dd", f"of={mount.path / key}", "bs=1M", "seek=5", "conv=notrunc", "status=none"], input=patch, check=True)
    expected = data[:5 * MiB] + patch + data[6 * MiB:]
    assert mount.server.s3.get_object(Bucket=mount.server.bucket, Key=key)["Body"].read() == expected
    with open(mount.path / key, "rb") as back:
        assert back.read() == expected
    subprocess.run(["truncate", "-s", str(3 * MiB), str(mount.path / key)], check=True)
    assert mount.server.s3.get_object(Bucket=mount.server.bucket, Key=key)["Body"].read() == expected[:3 * MiB]


def test_fsync_then_close(mount):
    key = name("fsync")
    with open(mount.path / key, "wb") as out:
        out.write(b"q" * (13 * MiB))
        os.fsync(out.fileno())
    assert head(mount.server, key)["ContentLength"] == 13 * MiB


def test_unlink_of_a_file_being_written_leaves_nothing(mount):
    key = name("unlink")
    with open(mount.path / key, "wb") as out:
        out.write(b"1" * (6 * MiB))
        out.flush()
        os.unlink(mount.path / key)  # as on a local filesystem: the name goes at once
        assert key not in os.listdir(mount.path)
        out.write(b"2")
    assert key not in os.listdir(mount.path)
    assert mount.server.s3.list_objects(Bucket=mount.server.bucket, Prefix=key).get("Contents", []) == []
    deadline = time.monotonic() + 15  # the kernel does not wait for the release that aborts
    while uploads_in_progress(mount.server, key) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert uploads_in_progress(mount.server, key) == []
    assert "unlinked while open for writing" in mount.log_text()


def test_sigterm_aborts_open_uploads(server, mount_factory):
    mount = mount_factory(server)
    key = name("term")
    out = open(mount.path / key, "wb")
    out.write(b"t" * (7 * MiB))
    out.flush()
    mount.process.terminate()
    assert mount.process.wait(30) == 0
    with pytest.raises(OSError):
        out.close()
    assert uploads_in_progress(server, key) == []
    assert f"aborted upload of {key}" in mount.log_text()
