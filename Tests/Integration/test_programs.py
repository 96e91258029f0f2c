"""Programs that read back what they write, on a real mount: a database created, filled in
transactions and checked after a remount; an archive written in place and tested."""
import hashlib
import mmap
import subprocess
import sys
import tempfile
import uuid

import pytest

from conftest import EVERY_SERVER, named_server


# Every test of this file runs on obs-local (OBS dialect), its parallel file system bucket and SeaweedFS (V4).
server = pytest.fixture(name="server", params=EVERY_SERVER)(named_server)


def name(stem):
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def test_sqlite_database_survives_a_remount(server, mount_factory):
    mount = mount_factory(server)
    key = name("db") + ".sqlite"
    statements = ["create table t(x integer, y text);"]
    for batch in range(5):
        statements.append("begin;")
        statements += [f"insert into t values({batch * 2000 + row}, 'row {row}');" for row in range(2000)]
        statements.append("commit;")
    subprocess.run(["sqlite3", str(mount.path / key)], input="\n".join(statements), text=True, check=True)
    mount.unmount()
    again = mount_factory(server)
    result = subprocess.run(["sqlite3", str(again.path / key), "select count(*), sum(x) from t; pragma integrity_check;"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["10000|49995000", "ok"]
    stored = server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read()
    assert stored == (again.path / key).read_bytes()


def test_sqlite_in_wal_mode_survives_a_remount(server, mount_factory):
    """WAL mode maps its `-shm` file shared and writable: without `writeback_cache` that needs the
    kernel's FUSE_DIRECT_IO_ALLOW_MMAP (Linux 6.6), which obsmount asks for itself."""
    mount = mount_factory(server)
    key = name("wal") + ".sqlite"
    statements = ["pragma journal_mode=wal;", "create table t(x integer);", "begin;"]
    statements += [f"insert into t values({row});" for row in range(3000)] + ["commit;"]
    subprocess.run(["sqlite3", str(mount.path / key)], input="\n".join(statements), text=True, check=True, capture_output=True)
    mount.unmount()
    again = mount_factory(server)
    result = subprocess.run(["sqlite3", str(again.path / key), "select count(*), sum(x) from t; pragma integrity_check;"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["3000|4498500", "ok"]
    with tempfile.NamedTemporaryFile(suffix=".sqlite") as copy:  # the stored object alone holds every row
        copy.write(server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read())
        copy.flush()
        result = subprocess.run(["sqlite3", copy.name, "select count(*) from t;"], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["3000"]


def test_a_new_file_sized_by_ftruncate_and_written_through_a_shared_mapping(server, mount_factory):
    """The kernel reads a mapped page before it is written: a length set ahead of the bytes reads
    as zeros (it ended the mapping with SIGBUS)."""
    mount = mount_factory(server)
    key = name("mapped")
    # In a child: a SIGBUS would end it, not the test run.
    writer = """
import mmap, os, sys
descriptor = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(descriptor, 3 * mmap.PAGESIZE)
mapped = mmap.mmap(descriptor, 3 * mmap.PAGESIZE)
mapped[0:5] = b"hello"
mapped[2 * mmap.PAGESIZE:2 * mmap.PAGESIZE + 3] = b"end"
mapped.flush()
mapped.close()
os.close(descriptor)
"""
    assert subprocess.run([sys.executable, "-c", writer, str(mount.path / key)], timeout=60).returncode == 0
    expected = bytearray(3 * mmap.PAGESIZE)
    expected[0:5] = b"hello"
    expected[2 * mmap.PAGESIZE:2 * mmap.PAGESIZE + 3] = b"end"
    assert server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() == bytes(expected)


def test_zip_into_the_mount_passes_unzip_t(server, mount_factory, tmp_path):
    mount = mount_factory(server)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    for index in range(20):
        (tree / "sub" / f"f{index}.bin").write_bytes(hashlib.sha256(str(index).encode()).digest() * (index * 1000 + 1))
    key = name("archive") + ".zip"
    subprocess.run(["zip", "-qr", str(mount.path / key), "tree"], cwd=tmp_path, check=True)
    subprocess.run(["unzip", "-tq", str(mount.path / key)], check=True)
    local = tmp_path / "local.zip"
    local.write_bytes(server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read())
    subprocess.run(["unzip", "-tq", str(local)], check=True)
