"""A mount of obs-local's parallel file system bucket: obsmount finds out at mount (HEAD bucket) and
says so, an ordinary bucket is not taken for one, and files written through the mount land on the
server as on any bucket."""
import os

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
