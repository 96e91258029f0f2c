"""Writers are bounded at their first write, not at open nor in the middle of a write: a program
writing round-robin to more files than memory_budget= holds parts for gets ENOMEM at the first
write of the excess files (with a log line naming the budget) and finishes the others; it never
blocks for ever in write(). Files opened and not written hold nothing."""
import errno
import hashlib
import json
import subprocess
import sys
import time
import uuid

from conftest import MiB, head, server_md5

WRITER = r"""
import errno, json, os, sys
directory, count, chunks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = [(index, os.open(os.path.join(directory, f"rr-{index}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
         for index in range(count)]
refused = {}
for chunk in range(chunks):
    for index, descriptor in files:
        if index in refused:
            continue
        try:
            os.write(descriptor, bytes([index]) * (1 << 20))
        except OSError as error:
            assert chunk == 0, (index, chunk, error)
            refused[index] = errno.errorcode[error.errno]
for index, descriptor in files:
    os.close(descriptor)
print(json.dumps({"written": [index for index, _ in files if index not in refused], "refused": sorted(refused.items())}))
"""


def test_round_robin_writer_over_12_files_finishes_or_is_refused_at_first_write(obs_local, mount_factory):
    prefix = f"rr-{time.time_ns()}"
    mount = mount_factory(obs_local, ["part_size=4M", "memory_budget=32M", "parallel=4"], prefix=prefix)
    chunks = 10  # 10 MiB per file: two full 4 MiB parts and a tail each
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", WRITER, str(mount.path), "12", str(chunks)],
                            capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    # 32 MiB hold eight 4 MiB parts: eight writers, the first writes of the other four refused.
    assert outcome["written"] == list(range(8))
    assert outcome["refused"] == [[index, "ENOMEM"] for index in range(8, 12)]
    assert elapsed < 60
    assert "cannot write" in mount.log_text() and "memory_budget=33554432" in mount.log_text()
    for index in outcome["written"]:
        key = f"{prefix}/rr-{index}"
        assert server_md5(obs_local, key) == hashlib.md5(bytes([index]) * (chunks * MiB)).hexdigest()
    for index in range(8, 12):  # refused, then closed: empty, as the write left them
        assert head(obs_local, f"{prefix}/rr-{index}")["ContentLength"] == 0


def test_a_writer_closing_its_file_frees_its_reservation(obs_local, mount_factory):
    prefix = f"free-{time.time_ns()}"
    mount = mount_factory(obs_local, ["part_size=4M", "memory_budget=8M", "parallel=1"], prefix=prefix)
    first = open(mount.path / "first", "wb", buffering=0)
    second = open(mount.path / "second", "wb", buffering=0)
    third = open(mount.path / "third", "wb", buffering=0)
    first.write(b"1")
    second.write(b"2")
    try:
        third.write(b"3")
        raise AssertionError("a third writer fit into two parts' budget")
    except OSError as error:
        assert error.errno == errno.ENOMEM
    first.write(b"1" * (5 * MiB))
    first.close()
    third.write(b"3" * MiB)  # the first's part is free again
    third.close()
    second.close()
    assert head(obs_local, f"{prefix}/third")["ContentLength"] == MiB
    assert head(obs_local, f"{prefix}/first")["ContentLength"] == 5 * MiB + 1


def test_more_files_open_for_writing_than_the_budget_holds_parts(obs_local, mount_factory):
    """CPython's test_tempfile `test_basic_many` holds 100 files open for writing; with 64 parts'
    worth of budget (the defaults) the 65th open failed with ENOMEM."""
    prefix = f"many-{time.time_ns()}"
    mount = mount_factory(obs_local, ["part_size=4M", "memory_budget=16M"], prefix=prefix)
    files = [open(mount.path / f"t{index}", "wb") for index in range(100)]
    files[42].write(b"forty-two")
    for file in files:
        file.close()
    assert head(obs_local, f"{prefix}/t42")["ContentLength"] == 9
    assert head(obs_local, f"{prefix}/t99")["ContentLength"] == 0


def peak_rss_kib(process):
    with open(f"/proc/{process.pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def test_many_writers_at_once_stay_within_the_budget_in_memory(obs_local, mount_factory):
    """48 files written at once with memory_budget=48M: the daemon's peak RSS stays within its
    start, the budget, 1 MiB of held write per writer and some slack. It reached about 6 MiB per
    writer beyond that (487 MB for 64 writers of a 64M budget) while glibc kept the freed 1 MiB
    blocks of held writes in its per-thread arenas."""
    writers = 48
    mount = mount_factory(obs_local, ["memory_budget=48M", "part_size=1M", "parallel=2"])
    start = peak_rss_kib(mount.process)
    prefix = "rss-" + uuid.uuid4().hex[:6]
    running = [subprocess.Popen(["dd", "if=/dev/zero", f"of={mount.path / f'{prefix}-{index}'}", "bs=1M", "count=12", "status=none"])
               for index in range(writers)]
    assert all(process.wait(timeout=300) == 0 for process in running)
    for index in range(writers):
        assert head(obs_local, f"{prefix}-{index}")["ContentLength"] == 12 * MiB
    peak = peak_rss_kib(mount.process)
    bound = start + 48 * 1024 + writers * 1024 + 64 * 1024
    assert peak <= bound, f"peak RSS {peak} KiB, bound {bound} KiB (start {start} KiB)"
