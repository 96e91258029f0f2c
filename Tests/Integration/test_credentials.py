"""Credentials renewed without a remount: after a key rotation (the old keys revoked) or with fresh
temporary credentials, the new ones written to passwd_file= are used from the first request the
service refuses; before, every request failed with EACCES until the remount."""
import re
import socket
import subprocess
import time

from conftest import OBS_LOCAL, MiB, Server, s3_client


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_obs_local_with_keys(directory, port, access_key, secret_key):
    """obs-local on `port` over `directory`'s data, accepting only these keys."""
    log_path = directory / f"obs-local-{access_key}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(OBS_LOCAL), "--listen", f"127.0.0.1:{port}", "--data-dir", str(directory / "data"),
                                    "--bucket", "itest", "--access-key", access_key, "--secret-key", secret_key],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not re.search(r"obs-local listening on", log_path.read_text()):
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    server = Server("obs-local", url, "itest", access_key, secret_key, "us-east-1", "obs", MiB, process)
    server.s3 = s3_client(url, access_key, secret_key, "us-east-1")
    return server


def stop(server):
    server.process.terminate()
    server.process.wait(10)


def test_keys_rotated_in_the_password_file_are_used_without_a_remount(tmp_path, mount_factory):
    port = free_port()
    first = start_obs_local_with_keys(tmp_path, port, "ak-first", "sk-first-secret")
    second = None
    try:
        mount = mount_factory(first, [])
        (mount.path / "before").write_bytes(b"one")
        assert first.s3.get_object(Bucket="itest", Key="before")["Body"].read() == b"one"
        # The rotation: the server accepts only the new keys; the agent rewrites the file.
        stop(first)
        second = start_obs_local_with_keys(tmp_path, port, "ak-second", "sk-second-secret")
        password = tmp_path / "passwd"  # the file the mount was given (conftest.Mount)
        password.write_text("ak-second:sk-second-secret\n")
        assert password.stat().st_mode & 0o077 == 0
        second.s3.put_object(Bucket="itest", Key="remote/made-elsewhere", Body=b"x")
        (mount.path / "after").write_bytes(b"two" * MiB)
        assert second.s3.get_object(Bucket="itest", Key="after")["Body"].read() == b"two" * MiB
        assert sorted(p.name for p in (mount.path / "remote").iterdir()) == ["made-elsewhere"]
        assert (mount.path / "remote" / "made-elsewhere").read_bytes() == b"x"
        log = mount.log_text()
        assert "renewed credentials (access key ak-second)" in log
        assert "sk-second-secret" not in log and "sk-first-secret" not in log
    finally:
        for server in (first, second):
            if server is not None and server.process.poll() is None:
                stop(server)


def test_an_unusable_password_file_is_said_so_and_the_next_good_one_is_used(tmp_path, mount_factory):
    """Rewritten half-way (or with a mode others may read): requests fail with EACCES and the log
    says why; once the file is right, the next request uses it."""
    port = free_port()
    first = start_obs_local_with_keys(tmp_path, port, "ak-first", "sk-first-secret")
    second = None
    try:
        mount = mount_factory(first, [])
        stop(first)
        second = start_obs_local_with_keys(tmp_path, port, "ak-second", "sk-second-secret")
        password = tmp_path / "passwd"
        password.write_text("ak-second-without-a-secret\n")
        try:
            (mount.path / "refused").write_bytes(b"x")
            raise AssertionError("written with keys the server no longer accepts")
        except PermissionError:
            pass
        assert "passwd_file changed but cannot be used" in mount.log_text() and "expected one line AK:SK or AK:SK:TOKEN" in mount.log_text()
        password.write_text("ak-second:sk-second-secret\n")
        (mount.path / "accepted").write_bytes(b"y")
        assert second.s3.get_object(Bucket="itest", Key="accepted")["Body"].read() == b"y"
    finally:
        for server in (first, second):
            if server is not None and server.process.poll() is None:
                stop(server)
