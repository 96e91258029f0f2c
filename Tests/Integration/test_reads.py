"""Reading through a real mount: sequential reads served by prefetch (GETs counted in obs-local's
request log), random reads at 1,000 offsets against the source, concurrent readers of one file,
and a reader whose object another client replaces (EIO, never bytes of two versions)."""
import errno
import json
import os
import random
import threading
import time
import uuid

import pytest

from conftest import EVERY_SERVER, MiB, named_server


# Every test of this file runs on obs-local (OBS dialect), its parallel file system bucket and SeaweedFS (V4).
server = pytest.fixture(name="server", params=EVERY_SERVER)(named_server)


def random_bytes(size, seed):
    generator = random.Random(seed)
    return generator.randbytes(size)


def put(server, key, body):
    server.s3.put_object(Bucket=server.bucket, Key=key, Body=body)


def gets_of(server, key):
    """GetObject requests for `key` in obs-local's request log."""
    lines = server.request_log.read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry.get("operation") == "GetObject" and entry.get("key") == key]


def test_sequential_and_random_reads_match_the_object(server, mount_factory):
    key = f"reads-{uuid.uuid4().hex[:8]}/data.bin"
    source = random_bytes(40 * MiB + 123, seed=1)
    put(server, key, source)
    mount = mount_factory(server, ["read_ahead=16M", "read_memory_budget=64M"])
    path = mount.path / key

    with open(path, "rb") as file:
        chunks = []
        while chunk := file.read(1 * MiB):
            chunks.append(chunk)
    assert b"".join(chunks) == source
    # kernel_read_ahead= (default 1M) was applied at the first open: the kernel asked in 1 MiB reads.
    device = os.stat(mount.path).st_dev
    bdi = f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb"
    assert open(bdi).read().strip() == "1024"
    if server.request_log:
        gets = gets_of(server, key)
        # Prefetch: GETs of 1, 2, 4, then 8 MiB, not one per kernel read (320 of 128 KiB).
        assert 5 <= len(gets) <= 12, [entry["bytesOut"] for entry in gets]
        assert sum(entry["bytesOut"] for entry in gets) <= len(source) + 8 * MiB

    generator = random.Random(2)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        for _ in range(1000):
            offset = generator.randrange(0, len(source) + 1000)
            count = generator.randrange(1, 65536)
            assert os.pread(descriptor, count, offset) == source[offset:offset + count], (offset, count)
    finally:
        os.close(descriptor)


def test_concurrent_readers_of_one_file(server, mount_factory):
    key = f"reads-{uuid.uuid4().hex[:8]}/shared.bin"
    source = random_bytes(24 * MiB, seed=3)
    put(server, key, source)
    mount = mount_factory(server, ["read_ahead=8M", "read_memory_budget=32M"])
    results = {}

    def reader(index):
        with open(mount.path / key, "rb", buffering=0) as file:
            file.seek(index * 3 * MiB)
            head = file.read(len(source))
            file.seek(0)
            results[index] = file.read(index * 3 * MiB) + head

    threads = [threading.Thread(target=reader, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(results) == list(range(6))
    assert all(result == source for result in results.values())


@pytest.mark.parametrize("replacement_mib", [32, 1], ids=["same-size", "shorter"])
def test_object_replaced_by_another_client_fails_with_eio(server, mount_factory, replacement_mib):
    # A shorter replacement: fstat (or the kernel's own refresh) gave the open file the new size,
    # and the kernel ended the read there, silently (a cp or md5sum exited 0, truncated).
    key = f"reads-{uuid.uuid4().hex[:8]}/replaced.bin"
    old = random_bytes(32 * MiB, seed=4)
    new = random_bytes(replacement_mib * MiB, seed=5)
    put(server, key, old)
    # attr_timeout=0: the open after the failure asks the store for the version again.
    mount = mount_factory(server, ["read_ahead=4M", "read_memory_budget=16M", "attr_timeout=0"])
    returned = bytearray()
    with open(mount.path / key, "rb", buffering=0) as file:
        returned += file.read(1 * MiB)
        put(server, key, new)
        assert os.fstat(file.fileno()).st_size == len(old)  # the descriptor keeps its version
        with pytest.raises(OSError) as failure:
            while len(returned) < len(old):
                chunk = file.read(256 * 1024)
                assert chunk, "reached the end without noticing the new version"
                returned += chunk
    assert failure.value.errno == errno.EIO
    assert bytes(returned) == old[:len(returned)]
    assert "changed on the store since it was opened" in mount.log_text()
    # The name shows the new version, and a new open reads it.
    assert os.stat(mount.path / key).st_size == len(new)
    with open(mount.path / key, "rb") as file:
        assert file.read(16) == new[:16]


def test_an_open_reads_what_another_client_stored_after_open_revalidate(server, mount_factory):
    # s3fs's test_external_modification (`echo old > f; sleep 1; aws s3 cp - f; cmp`) read EIO
    # until attr_timeout= (10 s) passed. A descriptor still reading the old version keeps it
    # (its read past the replacement fails with EIO), and an open beside it reads the new one.
    mount = mount_factory(server, ["open_revalidate=0.5"])
    base = f"reads-{uuid.uuid4().hex[:8]}"
    path = mount.path / base / "f"
    path.parent.mkdir()
    path.write_bytes(b"old\n")
    time.sleep(0.7)
    put(server, f"{base}/f", b"new new\n")
    assert path.read_bytes() == b"new new\n"
    with open(path, "rb") as reader:
        assert reader.read(4) == b"new "
        time.sleep(0.7)
        put(server, f"{base}/f", b"newest\n")
        assert path.read_bytes() == b"newest\n"  # the kernel's retry after ESTALE: invisible
    assert "replaced by another client while open for reading" in mount.log_text()


def test_an_append_after_another_clients_replacement_appends_to_it(server, mount_factory):
    # `echo x >> f` right after another client's upload of f: the composition on the version the
    # mount knew failed at close (EIO) and the line was lost.
    mount = mount_factory(server)
    base = f"reads-{uuid.uuid4().hex[:8]}"
    path = mount.path / base / "f"
    path.parent.mkdir()
    path.write_bytes(b"abc\n")
    assert path.read_bytes() == b"abc\n"
    put(server, f"{base}/f", b"vwxyz\n")
    with open(path, "ab") as file:
        file.write(b"!\n")
    body = server.s3.get_object(Bucket=server.bucket, Key=f"{base}/f")["Body"].read()
    assert body == b"vwxyz\n!\n"
    assert path.read_bytes() == b"vwxyz\n!\n"


def test_a_follower_reads_every_append_and_no_append_is_lost(server, mount_factory):
    """`tail -f` beside `echo line >> f` (found by fio's neighbours): a descriptor opened before
    the appends reads each one. It read on in the version it opened, got 0 bytes past its end,
    the kernel cut the file's size there, and the next append overwrote the one before."""
    key = f"reads-{uuid.uuid4().hex[:8]}/app.log"
    put(server, key, b"start\n")
    mount = mount_factory(server, [])
    path = mount.path / key
    lines = [f"line {index}\n".encode() for index in range(12)]
    followed = bytearray()
    with open(path, "rb", buffering=0) as follower:
        followed += follower.read()
        for line in lines:
            with open(path, "ab") as appender:
                appender.write(line)
            chunk = follower.read()
            assert chunk == line
            followed += chunk
            assert os.stat(path).st_size == len(followed)
    expected = b"start\n" + b"".join(lines)
    assert bytes(followed) == expected
    assert server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() == expected


def test_readers_of_an_empty_file_read_what_an_appender_adds(server, mount_factory):
    """`: > log; tail -f log & echo x >> log`: an append to an existing empty file is a change
    to it, as to any other, so its readers (opened before or after the appender) read the new
    bytes; it was streamed as a new upload and they got EBUSY (tail gave up)."""
    key = f"reads-{uuid.uuid4().hex[:8]}/empty.log"
    put(server, key, b"")
    mount = mount_factory(server, [])
    path = mount.path / key
    early = os.open(path, os.O_RDONLY)
    appender = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(appender, b"x1\n")
        assert os.read(early, 100) == b"x1\n"
        late = os.open(path, os.O_RDONLY)
        assert os.read(late, 100) == b"x1\n"
        os.close(late)
        os.write(appender, b"x2\n")
        assert os.read(early, 100) == b"x2\n"
    finally:
        os.close(appender)
        os.close(early)
    assert server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() == b"x1\nx2\n"


def test_a_reader_reads_what_other_descriptors_change_and_store(server, mount_factory):
    """A read-only descriptor open while another descriptor of the mount changes the file reads
    its writes at once (as on a local disk), and after its fsyncs and close the stored version,
    never the bytes it fetched ahead from the old one and never EIO for the old one's 412."""
    key = f"reads-{uuid.uuid4().hex[:8]}/changed.bin"
    size = 16 * MiB
    source = random_bytes(size, seed=7)
    put(server, key, source)
    mount = mount_factory(server, [])
    path = mount.path / key
    expected = bytearray(source)
    generator = random.Random(8)
    reader = os.open(path, os.O_RDONLY)
    try:
        assert os.pread(reader, 4096, 0) == source[:4096]
        writer = os.open(path, os.O_RDWR)
        for round in range(6):
            offsets = [0, size - 8192] + [generator.randrange(0, size - 4096) for _ in range(3)]
            for offset in offsets:
                block = random_bytes(4096, seed=100 + round * 10 + offset % 97)
                os.pwrite(writer, block, offset)
                expected[offset:offset + 4096] = block
            for offset in offsets:
                assert os.pread(reader, 4096, offset) == expected[offset:offset + 4096]
            if round % 2 == 0:
                os.fsync(writer)
            for offset in offsets + [size // 2]:
                assert os.pread(reader, 4096, offset) == expected[offset:offset + 4096]
        os.close(writer)
        for offset in (0, size // 3, size - 8192):
            assert os.pread(reader, 4096, offset) == expected[offset:offset + 4096]
    finally:
        os.close(reader)
    assert server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() == bytes(expected)
    assert "answered EIO" not in mount.log_text()
