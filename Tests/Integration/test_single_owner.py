"""One owner per data directory and per mountpoint (issue 13): a second obs-local on a data
directory exits 2 naming the holder, a killed server leaves nothing to clean up, obsmount refuses
an occupied mountpoint, `scripts/run` twice mounts once, and mounts naming one data directory
share one embedded server."""
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from conftest import BIN_DIR, OBS_LOCAL, OBS_LOCAL_KEYS, OBSMOUNT, REPO, is_mounted, s3_client, start_obs_local, stop_server


def mount_count(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mounts:
        return sum(1 for line in mounts if line.split()[4] == path)


def wait_for(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def obsmount_processes(mountpoint):
    """PIDs of the obsmount processes whose command line names `mountpoint`."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError):
            continue  # not a process, or it ended
        if arguments[0].endswith("/obsmount") and str(mountpoint) in arguments:
            pids.append(int(entry.name))
    return pids


def put_objects(server, count=4):
    written = {}
    for index in range(count):
        key = f"owner/{index}-{uuid.uuid4().hex[:6]}"
        written[key] = os.urandom(1000 + index * 70_000)
        server.s3.put_object(Bucket=server.bucket, Key=key, Body=written[key])
    # And one multipart object (two parts).
    key = "owner/multipart-" + uuid.uuid4().hex[:6]
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1234)]
    upload = server.s3.create_multipart_upload(Bucket=server.bucket, Key=key)["UploadId"]
    etags = [server.s3.upload_part(Bucket=server.bucket, Key=key, UploadId=upload, PartNumber=n + 1, Body=body)["ETag"]
             for n, body in enumerate(parts)]
    server.s3.complete_multipart_upload(Bucket=server.bucket, Key=key, UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": n + 1, "ETag": etag} for n, etag in enumerate(etags)]})
    written[key] = b"".join(parts)
    return written


def assert_serves(server, written):
    listed = {item["Key"] for item in server.s3.list_objects_v2(Bucket=server.bucket, Prefix="owner/").get("Contents", [])}
    assert listed == set(written)
    for key, body in written.items():
        assert server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() == body, key


def test_second_obs_local_on_a_data_directory_exits_2(private_obs_local, tmp_path):
    server = private_obs_local
    written = put_objects(server)
    data = tmp_path / "data"
    assert (data / "obs-local.lock").read_text() == f"{server.process.pid}\n"

    started = time.monotonic()
    second = subprocess.run([str(OBS_LOCAL), "--listen", "127.0.0.1:0", "--data-dir", str(data), "--bucket", "itest"],
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert second.returncode == 2, second
    assert second.stderr.splitlines() == [f"obs-local: data directory {data} is in use by process {server.process.pid}"]
    assert "listening" not in second.stdout
    assert time.monotonic() - started < 10

    assert server.process.poll() is None
    assert_serves(server, written)
    server.s3.put_object(Bucket=server.bucket, Key="owner/after", Body=b"still serving")
    written["owner/after"] = b"still serving"
    assert_serves(server, written)


def test_sigkilled_server_releases_its_lock(private_obs_local, tmp_path):
    written = put_objects(private_obs_local)
    private_obs_local.process.send_signal(signal.SIGKILL)
    private_obs_local.process.wait(10)

    successor = start_obs_local(tmp_path)  # the same data directory, tmp_path/data
    try:
        assert (tmp_path / "data" / "obs-local.lock").read_text() == f"{successor.process.pid}\n"
        assert_serves(successor, written)
    finally:
        stop_server(successor)


def test_mount_on_an_obsmount_mountpoint_is_refused(obs_local, mount_factory, tmp_path):
    mount = mount_factory(obs_local)
    password = tmp_path / "passwd"
    options = f"url={obs_local.url},passwd_file={password}"
    again = subprocess.run([str(OBSMOUNT), obs_local.bucket, str(mount.path), "-f", "-o", options],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert again.returncode == 1, again.stderr
    lines = [line for line in again.stderr.splitlines() if line.startswith("obsmount:")]
    assert lines == [f"obsmount: {mount.path} is already mounted (obs:{obs_local.bucket}, fuse.obsmount): unmount it first "
                     f"(fusermount3 -u {mount.path}), or mount over it with -o allow_over_mount"], again.stderr
    assert mount_count(mount.path) == 1
    key = "refused-" + uuid.uuid4().hex[:6]
    (mount.path / key).write_bytes(b"first mount still works")
    assert obs_local.s3.get_object(Bucket=obs_local.bucket, Key=key)["Body"].read() == b"first mount still works"

    # Asked for explicitly, the second mount goes on top of the first.
    log = open(tmp_path / "over.log", "w")
    over = subprocess.Popen([str(OBSMOUNT), obs_local.bucket, str(mount.path), "-f", "-o", options + ",allow_over_mount"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: mount_count(mount.path) == 2 or over.poll() is not None, "no second mount")
        assert mount_count(mount.path) == 2, (tmp_path / "over.log").read_text()
    finally:
        subprocess.run(["fusermount3", "-u", str(mount.path)], check=False)
        assert over.wait(30) == 0, (tmp_path / "over.log").read_text()
        log.close()
    assert mount_count(mount.path) == 1


def test_scripts_run_twice_mounts_once(tmp_path):
    mountpoint = tmp_path / "mnt"
    data = tmp_path / "xdg" / "obsmount"
    env = {**os.environ, "OBSMOUNT_BIN_DIR": str(BIN_DIR), "XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    env.pop("OBS_ACCESS_KEY_ID", None)
    env.pop("OBS_SECRET_ACCESS_KEY", None)

    def run():
        return subprocess.run([str(REPO / "scripts" / "run"), "twice", str(mountpoint), "-o", f"log_file={tmp_path / 'log'}"],
                              capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)

    first = run()
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        assert is_mounted(mountpoint)
        owners = obsmount_processes(mountpoint)
        assert len(owners) == 1, owners

        second = run()
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"Bucket twice is already mounted at {mountpoint}: nothing started" in second.stdout
        assert "Mount:" not in second.stdout
        assert mount_count(mountpoint) == 1
        assert obsmount_processes(mountpoint) == owners
        # One server: the mount's own, holding the data directory.
        assert (data / "obs-local.lock").read_text() == f"{owners[0]}\n"
        assert json.loads((data / "server.json").read_text())["pid"] == owners[0]
        (mountpoint / "once.txt").write_text("one mount")
        assert (mountpoint / "once.txt").stat().st_size == 9
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)
    wait_for(lambda: not obsmount_processes(mountpoint), "obsmount did not exit after the unmount")
    assert not (data / "server.json").exists()


def test_embedded_server_refuses_a_data_directory_held_by_obs_local(private_obs_local, tmp_path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    data = tmp_path / "data"
    result = subprocess.run([str(OBSMOUNT), "embedded", str(mountpoint), "-f", "-o", f"data_dir={data}"],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("obsmount:")]
    assert lines == [f"obsmount: data directory {data} is in use by process {private_obs_local.process.pid}, which is not "
                     "an obsmount's embedded server: stop it, or mount from it with url="], result.stderr
    assert not is_mounted(mountpoint)
    assert private_obs_local.process.poll() is None


class Foreground:
    """`obsmount BUCKET MOUNTPOINT -f -o data_dir=DATA` without url=, until `unmount`."""

    def __init__(self, tmp_path, bucket, data, env=None):
        self.path = tmp_path / ("mnt-" + uuid.uuid4().hex[:6])
        self.path.mkdir()
        self.log_path = tmp_path / (self.path.name + ".log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([str(OBSMOUNT), bucket, str(self.path), "-f", "-o", f"data_dir={data}"],
                                        stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env={**os.environ, **(env or {})})
        wait_for(lambda: is_mounted(self.path) or self.process.poll() is not None, "not mounted")
        assert is_mounted(self.path), self.log_text()

    def log_text(self):
        return self.log_path.read_text()

    def unmount(self):
        if is_mounted(self.path):
            subprocess.run(["fusermount3", "-u", str(self.path)], check=False)


def test_mounts_naming_one_data_directory_share_its_embedded_server(tmp_path):
    data = tmp_path / "data"
    mounts = []
    try:
        owner = Foreground(tmp_path, "shared", data)
        mounts.append(owner)
        address_file = data / "server.json"
        assert address_file.stat().st_mode & 0o777 == 0o600
        address = json.loads(address_file.read_text())
        assert address["pid"] == owner.process.pid and address["accessKey"] == OBS_LOCAL_KEYS[0]
        assert OBS_LOCAL_KEYS[1] not in address_file.read_text()
        s3 = s3_client(address["url"], *OBS_LOCAL_KEYS, "us-east-1")

        joined = Foreground(tmp_path, "shared", data)
        mounts.append(joined)
        assert f"using the embedded obs-local server of process {owner.process.pid} at {address['url']}" in joined.log_text()
        other_bucket = Foreground(tmp_path, "another", data)  # joins too, and creates its bucket there
        mounts.append(other_bucket)
        assert (data / "obs-local.lock").read_text() == f"{owner.process.pid}\n"

        (joined.path / "from-joined.txt").write_bytes(b"through the second mount")
        assert s3.get_object(Bucket="shared", Key="from-joined.txt")["Body"].read() == b"through the second mount"
        assert "from-joined.txt" in os.listdir(owner.path)
        (other_bucket.path / "other.txt").write_bytes(b"other bucket")
        assert s3.get_object(Bucket="another", Key="other.txt")["Body"].read() == b"other bucket"

        # Other credentials than the server's: refused before mounting.
        refused = subprocess.run([str(OBSMOUNT), "shared", str(tmp_path), "-f", "-o", f"data_dir={data}"], capture_output=True,
                                 text=True, timeout=60, stdin=subprocess.DEVNULL,
                                 env={**os.environ, "OBS_ACCESS_KEY_ID": "someone-else", "OBS_SECRET_ACCESS_KEY": "secret-x"})
        assert refused.returncode == 1
        assert f"accepts access key {OBS_LOCAL_KEYS[0]} only" in refused.stderr and "secret-x" not in refused.stderr

        # The owner unmounted: its process keeps serving the joined mounts.
        owner.unmount()
        wait_for(lambda: "other mounts use the embedded obs-local server" in owner.log_text(), "owner did not wait")
        assert owner.process.poll() is None
        (joined.path / "after-owner.txt").write_bytes(b"owner unmounted")
        assert s3.get_object(Bucket="shared", Key="after-owner.txt")["Body"].read() == b"owner unmounted"

        joined.unmount()
        assert joined.process.wait(30) == 0, joined.log_text()
        assert owner.process.poll() is None  # one joined mount is left
        other_bucket.unmount()
        assert other_bucket.process.wait(30) == 0, other_bucket.log_text()
        assert owner.process.wait(30) == 0, owner.log_text()
        assert not address_file.exists()
    finally:
        for mount in mounts:
            mount.unmount()
            if mount.process.poll() is None:
                try:
                    mount.process.wait(30)
                except subprocess.TimeoutExpired:
                    mount.process.kill()
                    mount.process.wait()
            mount.log.close()
