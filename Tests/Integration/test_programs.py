"""Programs that read back what they write, on a real mount: a database created, filled in
transactions and checked after a remount; an archive written in place and tested."""
import hashlib
import subprocess
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
