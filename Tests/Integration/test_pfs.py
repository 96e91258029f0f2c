"""A mount of obs-local's parallel file system bucket: obsmount finds out at mount (HEAD bucket) and
says so, an ordinary bucket is not taken for one, and files written through the mount land on the
server as on any bucket."""
import json
import os

import pytest

from conftest import MiB, md5_of_file, server_md5, write_random


def test_mount_detects_a_parallel_file_system_bucket(obs_local, obs_local_pfs, mount_factory, tmp_path):
    marker = "(a parallel file system bucket: native rename, modify, truncate)"
    pfs = mount_factory(obs_local_pfs, ["part_size=1M"])
    plain = mount_factory(obs_local, ["part_size=1M"])
    assert marker in pfs.log_text()
    assert "mounted" in plain.log_text() and marker not in plain.log_text()

    source = write_random(tmp_path / "src.bin", 3 * MiB + 17, seed=9)
    name = "pfs-" + os.urandom(4).hex() + ".bin"
    with open(source, "rb") as data, open(pfs.path / name, "wb") as out:
        out.write(data.read())
    assert server_md5(obs_local_pfs, name) == md5_of_file(source)
    assert name in os.listdir(pfs.path)
    assert name not in os.listdir(plain.path)


@pytest.mark.parametrize("bucket", ["obs_local", "obs_local_pfs"])
def test_mv_of_a_file_and_a_directory(bucket, request, mount_factory, tmp_path):
    """`mv` of a file and of a directory, checked on the server, on an ordinary and a parallel file
    system bucket: there each is one native RenameObject request, elsewhere copies and deletes."""
    server = request.getfixturevalue(bucket)
    mount = mount_factory(server, [f"part_size={server.part_size}"])
    top = "mv-" + os.urandom(4).hex()
    tree = mount.path / top / "tree"
    (tree / "sub").mkdir(parents=True)
    source = write_random(tmp_path / "src.bin", 2 * MiB + 5, seed=4)
    for name in ("a.bin", "sub/b.bin"):
        with open(source, "rb") as data, open(tree / name, "wb") as out:
            out.write(data.read())
    os.rename(tree / "a.bin", tree / "sub" / "c.bin")
    os.rename(tree, mount.path / top / "moved")
    keys = sorted(item["Key"] for item in server.s3.list_objects_v2(Bucket=server.bucket, Prefix=top + "/").get("Contents", []))
    assert keys == [f"{top}/", f"{top}/moved/", f"{top}/moved/sub/", f"{top}/moved/sub/b.bin", f"{top}/moved/sub/c.bin"]
    for key in keys[3:]:
        assert server_md5(server, key) == md5_of_file(source)
    with open(server.request_log) as log:
        ours = [entry for entry in map(json.loads, log) if (entry.get("key") or "").startswith(top + "/")]
    operations = [entry["operation"] for entry in ours if entry["operation"] in ("RenameObject", "CopyObject")]
    if bucket == "obs_local_pfs":
        assert operations == ["RenameObject", "RenameObject"]
    else:
        # The file, then the tree's 2 files are copied; its 2 markers are written again (PutObject).
        assert operations == ["CopyObject"] * 3
        markers = [entry for entry in ours if entry["operation"] == "PutObject" and entry["key"].endswith("/") and "/moved/" in entry["key"] + "/"]
        assert len(markers) == 2
