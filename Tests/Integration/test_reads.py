"""Reading through a real mount: sequential reads served by prefetch (GETs counted in obs-local's
request log), random reads at 1,000 offsets against the source, concurrent readers of one file,
and a reader whose object another client replaces (EIO, never bytes of two versions)."""
import errno
import json
import os
import random
import threading
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


def test_object_replaced_by_another_client_fails_with_eio(server, mount_factory):
    key = f"reads-{uuid.uuid4().hex[:8]}/replaced.bin"
    old = random_bytes(32 * MiB, seed=4)
    put(server, key, old)
    # attr_timeout=0: the open after the failure asks the store for the version again.
    mount = mount_factory(server, ["read_ahead=4M", "read_memory_budget=16M", "attr_timeout=0"])
    returned = bytearray()
    with open(mount.path / key, "rb", buffering=0) as file:
        returned += file.read(1 * MiB)
        put(server, key, random_bytes(32 * MiB, seed=5))
        with pytest.raises(OSError) as failure:
            while len(returned) < len(old):
                chunk = file.read(256 * 1024)
                assert chunk, "reached the end without noticing the new version"
                returned += chunk
    assert failure.value.errno == errno.EIO
    assert bytes(returned) == old[:len(returned)]
    assert "changed on the store since it was opened" in mount.log_text()
    # A new open reads the new version.
    with open(mount.path / key, "rb") as file:
        assert file.read(16) == random_bytes(32 * MiB, seed=5)[:16]
