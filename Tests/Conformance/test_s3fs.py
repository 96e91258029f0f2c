"""Debian's s3fs (s3fs-fuse, a third-party S3 client) mounts a bucket of obs-local: a 200 MiB file
copied in (multipart through FUSE) and out again (ranged GETs) is intact."""
import hashlib
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import ACCESS_KEY, BUCKET, SECRET_KEY

SIZE = 200 * 1024 * 1024


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Mount:
    def __init__(self, server, workdir):
        self.point = os.path.join(workdir, "mnt")
        os.makedirs(self.point, exist_ok=True)
        passwd = os.path.join(workdir, "passwd")
        with open(passwd, "w") as handle:
            handle.write(f"{ACCESS_KEY}:{SECRET_KEY}\n")
        os.chmod(passwd, 0o600)
        subprocess.run(["s3fs", BUCKET, self.point, "-o", f"url={server.endpoint}", "-o", "use_path_request_style",
                        "-o", f"passwd_file={passwd}", "-o", "multipart_size=20", "-o", "parallel_count=4"],
                       check=True, timeout=30)
        deadline = time.time() + 20
        while not os.path.ismount(self.point):
            if time.time() > deadline:
                raise RuntimeError("s3fs did not mount")
            time.sleep(0.1)

    def unmount(self):
        subprocess.run(["fusermount3", "-u", self.point], check=False, timeout=30)


@pytest.mark.skipif(shutil.which("s3fs") is None or not os.path.exists("/dev/fuse"), reason="needs s3fs and /dev/fuse")
def test_s3fs_copies_200_mib_in_and_out(server, s3, prefix):
    with tempfile.TemporaryDirectory(prefix="obs-local-s3fs-") as workdir:
        source = os.path.join(workdir, "source.bin")
        with open(source, "wb") as handle:
            for _ in range(SIZE // (8 << 20)):
                handle.write(os.urandom(8 << 20))
        expected = sha256_of(source)
        name = prefix.rstrip("/") + "-200mib.bin"
        mount = Mount(server, workdir)
        try:
            shutil.copyfile(source, os.path.join(mount.point, name))
        finally:
            mount.unmount()
        # The object is whole through the S3 API...
        head = s3.head_object(Bucket=BUCKET, Key=name)
        assert head["ContentLength"] == SIZE
        # ...and through a fresh mount.
        mount = Mount(server, workdir)
        try:
            copy = os.path.join(workdir, "copy.bin")
            shutil.copyfile(os.path.join(mount.point, name), copy)
            assert os.path.getsize(copy) == SIZE
            assert sha256_of(copy) == expected
        finally:
            mount.unmount()
