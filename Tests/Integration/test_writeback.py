"""`writeback_cache` (mount-options/write-semantics.md): the kernel gathers small writes in its page
cache and sends them in large batches; the close rule, appends, sizes, in-place changes and the
programs that read back what they write behave as without it."""
import ctypes
import errno
import mmap
import os
import re
import subprocess
import threading
import time
import uuid

import pytest

from conftest import MiB, head, uploads_in_progress
# The close rules and in-place changes of the suites without the option, run on this module's
# `mount` (with writeback_cache).
from test_semantics import (test_appending_to_an_existing_object_composes_it_on_the_server,  # noqa: F401
                            test_dd_conv_notrunc_sends_only_the_change, test_dup_and_fork_complete_exactly_once,
                            test_fsync_then_close, test_pwrite_backwards_into_a_new_file_is_composed_at_close,
                            test_a_second_writer_joins_the_first, test_shell_redirections_keep_every_byte,
                            test_unlink_of_a_file_being_written_leaves_nothing)
from test_changes import test_tail_follows_a_log_a_shell_redirection_writes  # noqa: F401
from test_write import test_cat_redirect, test_shell_redirect_of_a_command, test_stat_shows_growing_size_and_upload_id  # noqa: F401


def name(stem):
    return f"{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def mount(server, mount_factory):
    """A mount with writeback_cache and parts small enough that modest files have several."""
    return mount_factory(server, [f"part_size={server.part_size}", "parallel=4", "memory_budget=64M", "writeback_cache"])


def stored(mount, key):
    return mount.server.s3.get_object(Bucket=mount.server.bucket, Key=key)["Body"].read()


def write_requests(mount, key):
    """(requests, largest) of the daemon's per-file log line."""
    match = re.search(rf"\] {re.escape(key)}: (\d+) write requests, largest (\d+) bytes", mount.log_text())
    assert match, f"no write statistics for {key} in the log"
    return int(match.group(1)), int(match.group(2))


def test_dd_bs_4k_reaches_the_daemon_in_large_writes(mount, tmp_path):
    source = tmp_path / "source"
    source.write_bytes(os.urandom(8 * MiB + 1000))
    key = name("dd4k")
    subprocess.run(["dd", f"if={source}", f"of={mount.path / key}", "bs=4k", "status=none"], check=True)
    # close() returned: the object is complete, no upload left.
    assert stored(mount, key) == source.read_bytes()
    assert uploads_in_progress(mount.server, key) == []
    requests, largest = write_requests(mount, key)
    assert largest >= 128 * 1024
    assert f"{key}: write at" not in mount.log_text()  # pages admitted in order: nothing composed
    assert requests <= (8 * MiB) // (128 * 1024) + 2  # 2,049 write(2) calls of 4 KiB


def test_without_the_option_each_small_write_is_a_request(server, mount_factory):
    mount = mount_factory(server, [f"part_size={server.part_size}", "no_writeback_cache"])
    key = name("direct")
    subprocess.run(["dd", "if=/dev/zero", f"of={mount.path / key}", "bs=4k", "count=256", "status=none"], check=True)
    assert write_requests(mount, key) == (256, 4096)


def test_appends_onto_existing_objects_and_new_files(mount):
    server = mount.server
    existing = name("existing")
    server.s3.put_object(Bucket=server.bucket, Key=existing, Body=b"old\n")
    fresh = name("fresh")
    script = f"""
set -e
cd {mount.path}
echo more >> {existing}
printf abc >> {existing}
printf 1 >> {fresh}
printf 2 >> {fresh}
"""
    subprocess.run(["bash", "-c", script], check=True)
    assert stored(mount, existing) == b"old\nmore\nabc"
    assert stored(mount, fresh) == b"12"
    assert os.stat(mount.path / existing).st_size == len(b"old\nmore\nabc")
    # O_APPEND honoured by the kernel from its own size, even after a seek.
    fd = os.open(mount.path / fresh, os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"3")
    os.close(fd)
    assert stored(mount, fresh) == b"123"


def test_children_writing_through_an_inherited_descriptor(mount):
    key = name("children")
    script = f"cd {mount.path}; {{ for i in $(seq 1 200); do echo line $i; done; sh -c 'head -c 300000 /dev/zero'; }} > {key}"
    subprocess.run(["bash", "-c", script], check=True)
    expected = b"".join(f"line {i}\n".encode() for i in range(1, 201)) + bytes(300000)
    assert stored(mount, key) == expected


def test_size_while_writing_and_after_close(mount):
    key = name("size")
    path = mount.path / key
    with open(path, "wb") as out:
        out.write(b"x" * (3 * MiB + 5))
        out.flush()
        assert os.stat(path).st_size == 3 * MiB + 5
        assert os.fstat(out.fileno()).st_size == 3 * MiB + 5
        assert uploads_in_progress(mount.server, key) != []
    assert os.stat(path).st_size == 3 * MiB + 5
    assert head(mount.server, key)["ContentLength"] == 3 * MiB + 5


def test_read_back_through_the_writing_descriptor(mount):
    key = name("rw")
    data = os.urandom(3 * MiB + 100)
    with open(mount.path / key, "w+b") as file:
        file.write(data)
        file.seek(1000)
        assert file.read(5000) == data[1000:6000]
        file.seek(0, os.SEEK_END)
        file.write(b"tail")
    assert stored(mount, key) == data + b"tail"


def test_close_from_another_thread_of_the_opener(mount):
    key = name("thread")
    fd = os.open(mount.path / key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b"t" * (2 * MiB))
    closer = threading.Thread(target=os.close, args=(fd,))
    closer.start()
    closer.join()
    assert stored(mount, key) == b"t" * (2 * MiB)


def test_truncate_and_dd_conv_notrunc_on_existing_objects(mount):
    key = name("notrunc")
    data = os.urandom(6 * MiB)
    mount.server.s3.put_object(Bucket=mount.server.bucket, Key=key, Body=data)
    patch = os.urandom(10000)
    subprocess.run(["dd", f"of={mount.path / key}", "bs=4k", "seek=5", "conv=notrunc", "status=none"], input=patch, check=True)
    expected = data[:5 * 4096] + patch + data[5 * 4096 + len(patch):]
    assert stored(mount, key) == expected
    with open(mount.path / key, "rb") as back:
        assert back.read() == expected
    subprocess.run(["truncate", "-s", str(MiB + 3), str(mount.path / key)], check=True)
    assert stored(mount, key) == expected[:MiB + 3]
    assert os.stat(mount.path / key).st_size == MiB + 3
    with open(mount.path / key, "r+b") as file:
        file.truncate(100)
        file.seek(0, os.SEEK_END)
        file.write(b"end")
    assert stored(mount, key) == expected[:100] + b"end"


def test_mmap_writes_reach_the_object(mount):
    key = name("mmap")
    base = os.urandom(3 * 4096)
    mount.server.s3.put_object(Bucket=mount.server.bucket, Key=key, Body=base)
    with open(mount.path / key, "r+b") as file:
        mapped = mmap.mmap(file.fileno(), len(base))
        mapped[4096:4101] = b"hello"
        mapped.flush()
        mapped.close()
    assert stored(mount, key) == base[:4096] + b"hello" + base[4101:]


def test_sqlite_and_zip(mount, tmp_path):
    key = name("db") + ".sqlite"
    statements = ["create table t(x integer, y text);"]
    for batch in range(3):
        statements += ["begin;"] + [f"insert into t values({batch * 1000 + row}, 'row {row}');" for row in range(1000)] + ["commit;"]
    subprocess.run(["sqlite3", str(mount.path / key)], input="\n".join(statements), text=True, check=True)
    result = subprocess.run(["sqlite3", str(mount.path / key), "select count(*), sum(x) from t; pragma integrity_check;"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["3000|4498500", "ok"]
    database = tmp_path / "copy.sqlite"
    database.write_bytes(stored(mount, key))
    result = subprocess.run(["sqlite3", str(database), "select count(*) from t;"], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["3000"]
    tree = tmp_path / "tree"
    tree.mkdir()
    for index in range(10):
        (tree / f"f{index}.bin").write_bytes(os.urandom(index * 7000 + 1))
    archive = name("archive") + ".zip"
    subprocess.run(["zip", "-qr", str(mount.path / archive), "tree"], cwd=tmp_path, check=True)
    local = tmp_path / "local.zip"
    local.write_bytes(stored(mount, archive))
    subprocess.run(["unzip", "-tq", str(local)], check=True)


def test_another_clients_replacement_is_seen_after_attr_timeout(server, mount_factory):
    # The kernel trusts its own size of a cached file; a replaced object is a new inode for it.
    mount = mount_factory(server, [f"part_size={server.part_size}", "writeback_cache", "attr_timeout=0.5"])
    key = name("replaced")
    with open(mount.path / key, "wb") as out:
        out.write(b"written here")
    assert os.stat(mount.path / key).st_size == 12
    server.s3.put_object(Bucket=server.bucket, Key=key, Body=b"replaced by another client")
    time.sleep(1.5)
    assert os.stat(mount.path / key).st_size == 26
    assert (mount.path / key).read_bytes() == b"replaced by another client"


def drop_written_pages(fd, length):
    """Has the kernel send the file's dirty pages now (`sync_file_range`, no fsync: the upload goes
    on) and drop them from its cache, so that a read of them must come from the daemon."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    wait_before, write, wait_after = 1, 2, 4
    assert libc.sync_file_range(fd, 0, length, wait_before | write | wait_after) == 0, os.strerror(ctypes.get_errno())
    os.posix_fadvise(fd, 0, length, os.POSIX_FADV_DONTNEED)


def test_a_reader_of_a_file_being_streamed_shares_the_writers_pages(mount):
    # Another descriptor reads what the writer wrote: the pages still in the kernel's cache from
    # the cache, the ones it sent and dropped from the daemon (the upload completed as it stands,
    # the writer going on as changes); it never caches zeros (a short read) that the writer's next
    # write of the same page would send back. It was refused with EBUSY.
    key = name("reader")
    path = mount.path / key
    first = os.urandom(3 * MiB)
    with open(path, "wb") as out:
        out.write(first)
        out.flush()
        drop_written_pages(out.fileno(), len(first))
        out.write(b"dirty")
        out.flush()
        with open(path, "rb") as reader:
            assert reader.read() == first + b"dirty"
            assert stored(mount, key) == first  # the reader's read completed what the daemon had
            out.write(b"more")
            out.flush()
            assert os.pread(reader.fileno(), 100, len(first)) == b"dirtymore"
    assert stored(mount, key) == first + b"dirtymore"
    assert uploads_in_progress(mount.server, key) == []


def test_a_reader_of_a_file_being_changed_reads_the_changes(mount):
    existing = name("changed")
    mount.server.s3.put_object(Bucket=mount.server.bucket, Key=existing, Body=b"old")
    with open(mount.path / existing, "ab") as out:
        out.write(b"new")
        out.flush()
        with open(mount.path / existing, "rb") as reader:
            assert reader.read() == b"oldnew"
        out.write(b"!")
    assert stored(mount, existing) == b"oldnew!"


def test_rsync_inplace_and_ftruncate_ahead_of_the_cached_pages(mount, tmp_path):
    # The kernel sends ftruncate(size) before the pages it caches: the size holds, the bytes too.
    source = tmp_path / "src"
    source.mkdir()
    files = {"big.bin": os.urandom(3 * MiB + 7), "small.txt": b"small\n"}
    for file_name, body in files.items():
        (source / file_name).write_bytes(body)
    target = name("rsync")
    subprocess.run(["rsync", "-r", "--inplace", f"{source}/", f"{mount.path / target}/"], check=True)
    for file_name, body in files.items():
        assert stored(mount, f"{target}/{file_name}") == body
    (source / "small.txt").write_bytes(b"changed, and longer\n")
    subprocess.run(["rsync", "-r", "--inplace", "--no-whole-file", f"{source}/", f"{mount.path / target}/"], check=True)
    assert stored(mount, f"{target}/small.txt") == b"changed, and longer\n"
    key = name("ftruncate")
    fd = os.open(mount.path / key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b"z" * 5000)
    os.ftruncate(fd, 20000)
    assert os.fstat(fd).st_size == 20000
    os.close(fd)
    assert stored(mount, key) == b"z" * 5000 + bytes(15000)
