"""Issue 9's "must show" cases of reading back and changing stored objects, on real mounts with the
bytes checked on the server: a 300 MiB file written, remounted and compared through the mount (every
server, including a parallel file system bucket); `>>` onto a 20 MiB and a 50 KiB object; 1 MiB
`dd conv=notrunc` into the middle of a 100 MiB object with the bytes on the wire counted in
obs-local's request log; `truncate -s` up and down; `sed -i`; `pwrite` backwards into a 50 MiB new
file; a failure while composing (close() fails, the previous object stays); native modify and
truncate on a parallel file system bucket; a read-only open of a file another descriptor is
streaming (it reads what was written so far, and the writer goes on by composition, as
mount-options/write-semantics.md says)."""
import errno
import hashlib
import json
import mmap
import os
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from conftest import EVERY_SERVER, MiB, KiB, md5_of_file, server_md5, uploads_in_progress, write_random, named_server


# Every test of this file runs on obs-local (OBS dialect), its parallel file system bucket and SeaweedFS (V4).
server = pytest.fixture(name="server", params=EVERY_SERVER)(named_server)


def name(stem):
    return f"changes-{stem}-{uuid.uuid4().hex[:8]}"


def body(server, key):
    return server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read()


def requests_for(server, key, after_line=0):
    """obs-local's request log entries for `key`, from line `after_line` on."""
    lines = server.request_log.read_text().splitlines()[after_line:]
    return [entry for entry in map(json.loads, lines) if entry.get("key") == key]


def log_length(server):
    return len(server.request_log.read_text().splitlines()) if server.request_log else 0


def wire_bytes(entries):
    return sum(entry.get("bytesIn", 0) + entry.get("bytesOut", 0) for entry in entries)


def standard_mount(server, mount_factory, *extra):
    return mount_factory(server, [f"part_size={server.part_size}", "parallel=4", "memory_budget=64M", *extra])


def test_300_mib_written_remounted_and_compared_through_the_mount(every_server, mount_factory, tmp_path):
    server = every_server
    source = write_random(tmp_path / "src.bin", 300 * MiB + 4321, seed=30)
    key = name("large")
    first = standard_mount(server, mount_factory)
    subprocess.run(["cp", str(source), str(first.path / key)], check=True)
    assert server_md5(server, key) == md5_of_file(source)
    first.unmount()

    second = standard_mount(server, mount_factory)
    subprocess.run(["cmp", str(source), str(second.path / key)], check=True)
    summed = subprocess.run(["md5sum", str(second.path / key)], check=True, capture_output=True, text=True)
    assert summed.stdout.split()[0] == md5_of_file(source)


@pytest.mark.parametrize("size", [20 * MiB, 50 * KiB], ids=["20MiB", "50KiB"])
def test_shell_append_onto_an_existing_object(server, mount_factory, tmp_path, size):
    key = name("append")
    original = os.urandom(size)
    server.s3.put_object(Bucket=server.bucket, Key=key, Body=original)
    extra = write_random(tmp_path / "extra.bin", MiB + 13, seed=31)
    mount = standard_mount(server, mount_factory)
    before = log_length(server)
    subprocess.run(["bash", "-c", f'cat "{extra}" >> "{mount.path / key}"'], check=True)
    expected = original + extra.read_bytes()
    assert body(server, key) == expected
    assert (mount.path / key).stat().st_size == len(expected)
    assert uploads_in_progress(server, key) == []
    if server.name == "obs-local-pfs":
        # Appended in place: one native write of the new bytes.
        ours = requests_for(server, key, before)
        assert [entry["operation"] for entry in ours if entry.get("bytesIn", 0) > 0] == ["ModifyObject"]
    elif server.request_log:
        ours = requests_for(server, key, before)
        uploaded = sum(entry.get("bytesIn", 0) for entry in ours if entry["operation"] == "UploadPart")
        if size > MiB:
            # The 20 MiB stay on the server (UploadPartCopy); only the new bytes are sent.
            assert uploaded < 2 * MiB, uploaded
            assert any(entry["operation"] == "UploadPartCopy" for entry in ours)
        else:
            # Smaller than a part: read into the first part buffer and sent with the new bytes.
            assert uploaded < len(expected) + 64 * KiB, uploaded


def test_dd_notrunc_into_a_100_mib_object_sends_a_fraction(server, mount_factory):
    key = name("notrunc")
    data = os.urandom(100 * MiB)
    server.s3.put_object(Bucket=server.bucket, Key=key, Body=data)
    mount = standard_mount(server, mount_factory)
    patch = os.urandom(MiB)
    before = log_length(server)
    subprocess.run(["dd", f"of={mount.path / key}", "bs=1M", "seek=50", "conv=notrunc", "status=none"], input=patch, check=True)
    expected = data[:50 * MiB] + patch + data[51 * MiB:]
    if server.request_log:
        crossed = wire_bytes(requests_for(server, key, before))
        # OBS dialect: 1 MiB uploaded, the rest copied on the server (plus the HEAD and XML); on
        # a parallel file system bucket 1 MiB written in place.
        assert crossed < 3 * MiB, crossed
    assert hashlib.md5(body(server, key)).hexdigest() == hashlib.md5(expected).hexdigest()
    assert uploads_in_progress(server, key) == []


def test_truncate_up_and_down(server, mount_factory):
    key = name("truncate")
    data = os.urandom(3 * MiB + 7)
    server.s3.put_object(Bucket=server.bucket, Key=key, Body=data)
    mount = standard_mount(server, mount_factory)
    path = mount.path / key
    subprocess.run(["truncate", "-s", str(5 * MiB), str(path)], check=True)
    assert body(server, key) == data + bytes(5 * MiB - len(data))
    assert path.stat().st_size == 5 * MiB
    subprocess.run(["truncate", "-s", "1000", str(path)], check=True)
    assert body(server, key) == data[:1000]
    with open(path, "r+b") as file:  # ftruncate on an open descriptor, then a write past the end
        file.truncate(10)
        file.seek(20)
        file.write(b"end")
    assert body(server, key) == data[:10] + bytes(10) + b"end"
    subprocess.run(["truncate", "-s", "0", str(path)], check=True)
    assert body(server, key) == b""


def test_sed_in_place(server, mount_factory):
    key = name("sed")
    lines = "".join(f"line {number} unchanged\n" for number in range(5000))
    server.s3.put_object(Bucket=server.bucket, Key=key, Body=lines.encode())
    mount = standard_mount(server, mount_factory)
    subprocess.run(["sed", "-i", "s/^line 4242 unchanged$/line 4242 CHANGED/", str(mount.path / key)], check=True)
    assert body(server, key).decode() == lines.replace("line 4242 unchanged\n", "line 4242 CHANGED\n")
    # sed wrote a temporary file beside it and renamed it over the original: nothing else is left.
    listed = server.s3.list_objects_v2(Bucket=server.bucket, Prefix="changes-sed-").get("Contents", [])
    assert [item["Key"] for item in listed if item["Key"] == key] == [key]
    assert not [item["Key"] for item in server.s3.list_objects_v2(Bucket=server.bucket, Prefix="sed").get("Contents", [])]


def test_pwrite_backwards_into_a_50_mib_new_file(server, mount_factory):
    key = name("pwrite")
    data = bytearray(os.urandom(50 * MiB))
    mount = standard_mount(server, mount_factory)
    fd = os.open(mount.path / key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:written + 4 * MiB])
        for offset, patch in ((0, b"HEADER"), (25 * MiB - 3, b"middle!"), (len(data) - 2, b"zz")):
            os.pwrite(fd, patch, offset)
            data[offset:offset + len(patch)] = patch
    finally:
        os.close(fd)
    assert hashlib.md5(body(server, key)).hexdigest() == hashlib.md5(bytes(data)).hexdigest()
    assert uploads_in_progress(server, key) == []


def admin(server, method, rule=None):
    payload = json.dumps(rule).encode() if rule is not None else None
    request = urllib.request.Request(server.admin(), data=payload, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as reply:
        return reply.read()


@pytest.mark.parametrize("operation", ["UploadPartCopy", "CompleteMultipartUpload"])
def test_a_failure_while_composing_keeps_the_previous_object(obs_local, mount_factory, operation):
    server = obs_local
    key = name("composefault")
    original = os.urandom(12 * MiB)
    server.s3.put_object(Bucket=server.bucket, Key=key, Body=original)
    mount = mount_factory(server, ["part_size=1M", "retry_timeout=2s"])
    admin(server, "DELETE")
    admin(server, "POST", {"operation": operation, "key": key, "times": 0, "action": "error", "code": "InternalError"})
    try:
        started = time.monotonic()
        with pytest.raises(OSError) as raised:
            with open(mount.path / key, "ab") as out:
                out.write(b"appended")
        assert raised.value.errno == errno.EIO
        assert time.monotonic() - started < 30
        assert body(server, key) == original
    finally:
        admin(server, "DELETE")
    # The failed composition's upload is aborted (in the background, within its retry bound).
    deadline = time.monotonic() + 30
    while uploads_in_progress(server, key) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert uploads_in_progress(server, key) == []
    assert body(server, key) == original
    with open(mount.path / key, "ab") as out:  # the mount still works for this file
        out.write(b"later")
    assert body(server, key) == original + b"later"


def test_parallel_file_system_bucket_modifies_and_truncates_natively(obs_local_pfs, mount_factory):
    server = obs_local_pfs
    key = name("pfs")
    data = os.urandom(8 * MiB)
    server.s3.put_object(Bucket=server.bucket, Key=key, Body=data)
    mount = mount_factory(server, ["part_size=1M"])
    before = log_length(server)
    patch = os.urandom(MiB)
    subprocess.run(["dd", f"of={mount.path / key}", "bs=1M", "seek=3", "conv=notrunc", "status=none"], input=patch, check=True)
    expected = data[:3 * MiB] + patch + data[4 * MiB:]
    assert body(server, key) == expected
    subprocess.run(["truncate", "-s", str(2 * MiB + 5), str(mount.path / key)], check=True)
    assert body(server, key) == expected[:2 * MiB + 5]
    with open(mount.path / key, "ab") as out:
        out.write(b"appended")
    assert body(server, key) == expected[:2 * MiB + 5] + b"appended"
    operations = [entry["operation"] for entry in requests_for(server, key, before)]
    assert "ModifyObject" in operations and "TruncateObject" in operations, operations
    assert not {"InitiateMultipartUpload", "UploadPartCopy", "CopyObject"} & set(operations), operations


def test_closing_a_duplicated_descriptor_neither_stores_nor_composes(server, mount_factory):
    """A close whose process still holds the file writable through another descriptor (a dup)
    does nothing; the last one completes the file: `printf > f` stores no empty object first, and
    `exec 3>f; echo a >&3; ...; exec 3>&-` is one upload, nothing composed. A close of the
    original while a dup stays open (`exec 4>&3; exec 3>&-`) does not complete either."""
    mount = standard_mount(server, mount_factory)
    redirected, sequence, moved = name("printf"), name("exec"), name("moved")
    after = log_length(server)
    script = f"""
set -e
cd {mount.path}
printf abc > {redirected}
exec 3>{sequence}; echo a >&3; echo b >&3; echo c >&3; exec 3>&-
exec 3>{moved}; echo one >&3; exec 4>&3; exec 3>&-; echo two >&4; exec 4>&-
"""
    subprocess.run(["bash", "-c", script], check=True)
    assert body(server, redirected) == b"abc"
    assert body(server, sequence) == b"a\nb\nc\n"
    assert body(server, moved) == b"one\ntwo\n"
    if server.request_log:
        for key in (redirected, sequence, moved):
            operations = [entry["operation"] for entry in requests_for(server, key, after)
                          if entry["operation"] not in ("HeadObject", "ListObjects", "GetObject")]
            assert operations == ["InitiateMultipartUpload", "UploadPart", "CompleteMultipartUpload"], key
    for key in (redirected, sequence, moved):
        assert uploads_in_progress(server, key) == []


def test_processes_changing_one_file_share_their_changes(server, mount_factory):
    """Processes that open one object for changes at once (bonnie++'s seekers, a database opened
    twice) change one file, as on a local disk: each reads what the others wrote, and every close
    succeeds; before, every close but the first failed (the object had changed since its open)."""
    mount = standard_mount(server, mount_factory)
    key = name("shared")
    data = os.urandom(300 * KiB)
    server.s3.put_object(Bucket=server.bucket, Key=key, Body=data)
    path = mount.path / key
    script = """
import os, sys
path, offset, go = sys.argv[1], int(sys.argv[2]), sys.stdin
descriptor = os.open(path, os.O_RDWR)
os.pwrite(descriptor, bytes([offset % 251 + 1]) * 4096, offset)
print("written", flush=True)
go.readline()  # both have written
other = int(sys.argv[3])
print(os.pread(descriptor, 1, other).hex(), flush=True)
os.close(descriptor)
"""
    children = [subprocess.Popen([sys.executable, "-c", script, str(path), str(offset), str(other)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
                for offset, other in ((8192, 200 * KiB), (200 * KiB, 8192))]
    for child in children:
        assert child.stdout.readline() == "written\n"
    outputs = [child.communicate("go\n", timeout=60)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert outputs == [bytes([200 * KiB % 251 + 1]).hex() + "\n", bytes([8192 % 251 + 1]).hex() + "\n"]
    expected = bytearray(data)
    expected[8192:8192 + 4096] = bytes([8192 % 251 + 1]) * 4096
    expected[200 * KiB:200 * KiB + 4096] = bytes([200 * KiB % 251 + 1]) * 4096
    assert body(server, key) == bytes(expected)
    assert uploads_in_progress(server, key) == []


@pytest.mark.parametrize("truncating", [False, True], ids=["append", "truncate"])
def test_a_second_writer_of_a_file_being_written_loses_nothing(server, mount_factory, tmp_path, truncating):
    """Two descriptors writing one new file (the second opened while the first streams it) end
    with the bytes a local disk keeps; before, the second's close overwrote the first's bytes
    and both closes succeeded."""
    mount = standard_mount(server, mount_factory)
    key = name("two-writers")

    def two_writers(path):
        first = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(first, b"first-writer\n")
        second = os.open(path, os.O_WRONLY | (os.O_TRUNC if truncating else 0))
        os.pwrite(second, b"SECOND", 0)
        os.write(first, b"more\n")
        os.close(first)
        os.close(second)

    two_writers(tmp_path / key)
    local = (tmp_path / key).read_bytes()
    two_writers(mount.path / key)
    assert body(server, key) == local  # stored when close() returned
    assert uploads_in_progress(server, key) == []
    # KNOWN: once in a clean-clone CI run (O_TRUNC case) a read through the mount right after
    # the closes returned b'' while the releases were still arriving; not reproduced in 40
    # runs alone. The read is checked once the releases are done.
    deadline = time.monotonic() + 10
    while (mount.path / key).read_bytes() != local and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (mount.path / key).read_bytes() == local


def test_reading_a_file_another_descriptor_is_streaming(server, mount_factory):
    """`cmd > log` beside `tail -f log`: a read-only descriptor reads what the writer wrote so far
    (the upload is completed as it stands, and the writer goes on as changes to that object),
    then what it writes next; the object ends with every byte. It answered EBUSY until the close."""
    key = name("streaming")
    mount = standard_mount(server, mount_factory)
    path = mount.path / key
    first = os.urandom(2 * MiB + 5)
    reader = None
    try:
        with open(path, "wb") as writer:
            writer.write(first)
            writer.flush()
            reader = os.open(path, os.O_RDONLY)
            assert os.pread(reader, len(first) + 100, 0) == first
            assert server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() == first
            writer.write(b"end")
            writer.flush()
            assert os.pread(reader, 100, len(first)) == b"end"
            writer.write(b"!")
        assert os.pread(reader, len(first) + 100, 0) == first + b"end!"
    finally:
        if reader is not None:
            os.close(reader)
    assert server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() == first + b"end!"
    with open(path, "rb") as again:
        assert again.read() == first + b"end!"


def test_tail_follows_a_log_a_shell_redirection_writes(server, mount_factory):
    """`(for i in ...; do echo line $i; sleep 0.1; done) > log & tail -f log`: tail prints every
    line while the loop runs (it gave up with EBUSY), and the object holds them all."""
    key = name("tailed")
    mount = standard_mount(server, mount_factory)
    path = mount.path / key
    writer = subprocess.Popen(["bash", "-c", f"for i in $(seq 1 30); do echo line $i; sleep 0.05; done > {path}"])
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        tail = subprocess.Popen(["tail", "-s", "0.05", "-c", "+1", "-f", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert writer.wait(timeout=30) == 0
        time.sleep(0.5)
        tail.terminate()
        out, err = tail.communicate(timeout=10)
        expected = "".join(f"line {i}\n" for i in range(1, 31)).encode()
        assert out == expected, err
    finally:
        writer.kill()
    assert server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() == expected


def test_a_reader_opened_before_a_rewrite_reads_the_new_bytes(server, mount_factory):
    """A descriptor opened before another one rewrites the file (`O_TRUNC`) reads what the
    rewrite writes, during it and after its close, as on a local disk (helper-50: it read the old
    version's bytes cut at the new size, kept them after the close, and after an append's close
    answered EIO); `tail -f` of a log a redirection writes again prints the new lines."""
    mount = standard_mount(server, mount_factory)
    key = name("rewritten")
    path = mount.path / key
    path.write_bytes(b"O" * (3 * MiB))
    with open(path, "rb", buffering=0) as reader:
        with open(path, "wb", buffering=0) as writer:
            writer.write(b"short")
            assert os.pread(reader.fileno(), 10, 0) == b"short"
        assert os.pread(reader.fileno(), 10, 0) == b"short"
    assert body(server, key) == b"short"
    # After another descriptor's append and close, a rewrite cut by ftruncate reads zeros.
    with open(path, "ab", buffering=0) as appender:
        appender.write(b"A" * 143588)
        reader = open(path, "rb", buffering=0)
    with reader, open(path, "wb", buffering=0) as writer:
        writer.truncate(63091)
        assert os.pread(reader.fileno(), 16, 21363) == bytes(16)
    assert body(server, key) == bytes(63091)
    log = mount.path / name("log")
    log.write_text("".join(f"old line {i}\n" for i in range(1, 2001)))
    tail = subprocess.Popen(["tail", "-n", "0", "-s", "0.1", "---disable-inotify", "-f", str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1)
        subprocess.run(["bash", "-c", f"for i in 1 2 3; do echo new line $i; sleep 0.4; done > {log}"], check=True)
        time.sleep(1)
    finally:
        tail.terminate()
        out, _ = tail.communicate(timeout=10)
    assert out == b"new line 1\nnew line 2\nnew line 3\n"


def test_a_child_closing_an_inherited_new_file_first_loses_nothing(server, mount_factory, tmp_path):
    """`exec 3>f; /bin/true; echo a >> f; echo b >&3`, and the same from Python: a child's close
    of the inherited new file before any write stored the empty object, and a second open then
    changed that object beside the stream: one writer's bytes were lost (helper-52)."""
    mount = standard_mount(server, mount_factory)
    script = 'exec 3>"$1"; /bin/true; echo "appended by name" >> "$1"; echo "written through fd 3" >&3; exec 3>&-'
    program = ("import os, subprocess, sys\n"
               "w = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\n"
               "subprocess.run(['true'], pass_fds=[w], check=True)\n"
               "a = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n"
               "os.write(w, b'line from w\\n' * 1000)\n"
               "os.write(a, b'appended\\n')\n"
               "os.close(a); os.close(w)\n")
    for stem, command in (("shell", ["bash", "-c", script, "script"]), ("python", [sys.executable, "-c", program])):
        local, key = tmp_path / stem, name(stem)
        subprocess.run(command + [str(local)], check=True)
        subprocess.run(command + [str(mount.path / key)], check=True)
        expected = local.read_bytes()
        assert (mount.path / key).read_bytes() == expected, stem
        assert body(server, key) == expected, stem


def test_a_reader_of_a_file_renamed_then_unlinked_reads_the_changes(server, mount_factory):
    """A reader of a file renamed and unlinked while another descriptor changes it reads the
    changes after the writer's close, by read and by mmap (helper-52: EIO, and SIGBUS through
    mmap: it read the version stored here under the old key)."""
    mount = standard_mount(server, mount_factory)
    path = mount.path / name("renamedunlinked")
    old = os.urandom(400_000)
    path.write_bytes(old)
    model = bytearray(old)
    with open(path, "r+b", buffering=0) as writer, open(path, "rb", buffering=0) as reader:
        os.rename(path, f"{path}.2")
        os.unlink(f"{path}.2")
        patch = os.urandom(262_291)
        os.pwrite(writer.fileno(), patch, 138_903)
        model[138_903:138_903 + len(patch)] = patch
        writer.close()
        assert os.pread(reader.fileno(), 300_000, 87_588) == bytes(model[87_588:87_588 + 300_000])
        with mmap.mmap(reader.fileno(), len(model), prot=mmap.PROT_READ) as mapped:
            assert mapped[220_868:220_868 + 38_266] == bytes(model[220_868:220_868 + 38_266])
    assert not path.exists()


def test_an_unlinked_new_file_stays_for_a_child_holding_its_descriptor(server, mount_factory):
    """A new file's descriptor shared with a forked child: the parent closes it (its close stores
    the file) and unlinks the name; the child reads, writes and truncates on, and the object goes
    at its close (helper-52: ENOENT for the child, the object deleted at the unlink)."""
    mount = standard_mount(server, mount_factory)
    key = name("sharedfd")
    path = mount.path / key
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"x" * 526, 6310)
    go_read, go_write = os.pipe()
    child = os.fork()
    if child == 0:
        status = 2
        try:
            os.read(go_read, 1)
            os.pwrite(fd, b"y" * 100, 100)
            os.ftruncate(fd, 139_397)
            right = os.pread(fd, 4, 100) == b"yyyy" and os.pread(fd, 4, 6310) == b"xxxx" and os.fstat(fd).st_size == 139_397
            os.close(fd)
            status = 0 if right else 1
        finally:
            os._exit(status)
    os.close(fd)
    os.unlink(path)
    os.write(go_write, b"x")
    _, status = os.waitpid(child, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert not path.exists()
    deadline = time.monotonic() + 10
    while key in [entry["Key"] for entry in server.s3.list_objects(Bucket=server.bucket, Prefix=key).get("Contents", [])]:
        assert time.monotonic() < deadline, "the object outlived the last close"
        time.sleep(0.1)


def test_a_reader_reads_on_after_mv_log_log_1_and_a_new_log(server, mount_factory):
    """logrotate's way: a reader of `log`, `mv log log.1`, a new `log`: the reader reads on in its
    file (helper-52: EIO, it read the old key, which the new file replaced)."""
    mount = standard_mount(server, mount_factory)
    log = mount.path / name("log")
    old = os.urandom(1_033_820)
    log.write_bytes(old)
    with open(log, "rb", buffering=0) as reader:
        os.rename(log, f"{log}.1")
        log.write_bytes(b"new log\n")
        assert os.pread(reader.fileno(), 222_086, 14_998) == old[14_998:14_998 + 222_086]
    assert log.read_bytes() == b"new log\n" and open(f"{log}.1", "rb").read() == old
    assert body(server, log.name) == b"new log\n" and body(server, log.name + ".1") == old


def test_files_that_change_length_while_being_written(server, mount_factory, tmp_path):
    """`cp` of a sparse file (data, then ftruncate over the trailing hole) and `truncate -s` of a
    new file: completed as they stand, then extended by composition."""
    mount = standard_mount(server, mount_factory)
    sparse = tmp_path / "sparse.bin"
    head_bytes = os.urandom(300 * KiB)
    with open(sparse, "wb") as out:
        out.write(head_bytes)
        out.truncate(3 * MiB)
    key = name("sparse")
    subprocess.run(["cp", "--sparse=always", str(sparse), str(mount.path / key)], check=True)
    assert body(server, key) == head_bytes + bytes(3 * MiB - len(head_bytes))
    grown = name("grown")
    subprocess.run(["truncate", "-s", "1M", str(mount.path / grown)], check=True)
    assert body(server, grown) == bytes(MiB)
    assert uploads_in_progress(server, key) == [] and uploads_in_progress(server, grown) == []
