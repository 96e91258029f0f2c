"""obsmount's command line: exit statuses, one-line diagnoses, daemon mode, embedded server."""
import http.server
import os
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import OBSMOUNT, head, is_mounted


def run_obsmount(args, env=None, timeout=60):
    return subprocess.run([str(OBSMOUNT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def password_file(tmp_path, text, mode=0o600):
    path = tmp_path / ("pw-" + uuid.uuid4().hex[:6])
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("option", ["bogus", "part_size=1K", "parallel=0", "dialect=v9", "url=ftp://x", "ro=yes"])
def test_bad_option_exits_2_naming_it(tmp_path, option):
    result = run_obsmount(["bucket", str(tmp_path), "-f", "-o", option])
    assert result.returncode == 2
    assert f"'{option}'" in result.stderr


@pytest.mark.parametrize("subcommand", ["", "uploads", "status"])
def test_help_of_the_command_and_its_subcommands(subcommand):
    """`obsmount help [SUBCOMMAND]`, which `--help` offers, shows help: it mounted a bucket named
    help (starting an embedded server) before."""
    result = run_obsmount(["help", subcommand] if subcommand else ["help"])
    assert result.returncode == 0, result.stderr
    assert f"USAGE: obsmount {subcommand}".rstrip() in result.stdout
    assert "mounted" not in result.stderr and "obs-local" not in result.stderr


def test_bad_source_exits_2(tmp_path):
    result = run_obsmount(["Bad_Bucket", str(tmp_path), "-f"])
    assert result.returncode == 2
    assert "Bad_Bucket" in result.stderr


def one_line_failure(result):
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("obsmount:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_wrong_secret_key_exits_1(obs_local, tmp_path):
    pw = password_file(tmp_path, f"{obs_local.access_key}:wrong-secret\n")
    line = one_line_failure(run_obsmount([obs_local.bucket, str(tmp_path), "-f", "-o", f"url={obs_local.url},passwd_file={pw}"]))
    assert "SignatureDoesNotMatch" in line and "request-id" in line


def test_unknown_access_key_exits_1(obs_local, tmp_path):
    pw = password_file(tmp_path, "nobody:secret\n")
    line = one_line_failure(run_obsmount([obs_local.bucket, str(tmp_path), "-f", "-o", f"url={obs_local.url},passwd_file={pw}"]))
    assert "InvalidAccessKeyId" in line


def test_missing_bucket_exits_1(obs_local, tmp_path):
    pw = password_file(tmp_path, f"{obs_local.access_key}:{obs_local.secret_key}\n")
    line = one_line_failure(run_obsmount(["no-such-bucket", str(tmp_path), "-f", "-o", f"url={obs_local.url},passwd_file={pw}"]))
    assert "NoSuchBucket" in line


def test_unreachable_endpoint_exits_1(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pw = password_file(tmp_path, "ak:sk\n")
    started = time.monotonic()
    line = one_line_failure(run_obsmount(["bucket", str(tmp_path), "-f", "-o", f"url=http://127.0.0.1:{port},passwd_file={pw}"]))
    assert "unreachable" in line
    assert time.monotonic() - started < 30


def test_readable_password_file_is_refused(obs_local, tmp_path):
    pw = password_file(tmp_path, f"{obs_local.access_key}:{obs_local.secret_key}\n", mode=0o644)
    line = one_line_failure(run_obsmount([obs_local.bucket, str(tmp_path), "-f", "-o", f"url={obs_local.url},passwd_file={pw}"]))
    assert "chmod 600" in line
    assert obs_local.secret_key not in line


def proc_file(process, name):
    """/proc/PROCESS/NAME, or nothing when the process is gone."""
    try:
        with open(f"/proc/{process}/{name}", "rb") as file:
            return file.read()
    except OSError:
        return b""


def test_an_endpoint_that_is_no_object_store_is_said_so(tmp_path):
    """A web server or proxy answering a bare 404 is not reported as OBS's NoSuchBucket, a code
    nobody sent: the line says what came back and what to check."""
    class NotFound(http.server.BaseHTTPRequestHandler):
        def answer(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = answer

        def log_message(self, *arguments):
            pass
    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        mountpoint = tmp_path / "mnt"
        mountpoint.mkdir()
        result = run_obsmount(["bkt", str(mountpoint), "-f", "-o", f"url=http://127.0.0.1:{server.server_port}",
                               "-o", f"passwd_file={password_file(tmp_path, 'ak:sk')}"])
    finally:
        server.shutdown()
    assert result.returncode == 1, result.stderr
    assert "answered HTTP 404 without a request ID: check url=" in result.stderr
    assert "NoSuchBucket" not in result.stderr


def test_credentials_from_environment_and_daemon_mode(obs_local, tmp_path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    env = {"OBS_ACCESS_KEY_ID": obs_local.access_key, "OBS_SECRET_ACCESS_KEY": obs_local.secret_key}
    log = tmp_path / "daemon.log"
    result = run_obsmount([obs_local.bucket, str(mountpoint), "-o", f"url={obs_local.url},log_file={log}"], env=env)
    try:
        assert result.returncode == 0, result.stderr
        assert is_mounted(mountpoint)  # ready when the foreground process exits
        key = "daemon-" + uuid.uuid4().hex[:8]
        (mountpoint / key).write_bytes(b"from the daemon")
        assert head(obs_local, key)["ContentLength"] == 15
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert obs_local.secret_key not in ps
        # Nor in the daemon's environment (`ps e`): its starting block is wiped, not only unset.
        daemons = [entry for entry in os.listdir("/proc") if entry.isdigit() and str(mountpoint).encode() in proc_file(entry, "cmdline")]
        assert daemons
        for daemon in daemons:
            assert obs_local.secret_key.encode() not in proc_file(daemon, "environ")
        assert f"{key}: complete" in log.read_text()
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)
    deadline = time.monotonic() + 20
    while any(str(mountpoint) in line for line in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()):
        assert time.monotonic() < deadline, "the daemon did not exit after fusermount3 -u"
        time.sleep(0.2)
    assert not is_mounted(mountpoint)


def test_embedded_server_without_url(tmp_path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    log = open(tmp_path / "log", "w")
    process = subprocess.Popen([str(OBSMOUNT), "embedded", str(mountpoint), "-f"], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path)})
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(mountpoint):
            assert process.poll() is None, (tmp_path / "log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        (mountpoint / "hello.txt").write_text("hello")
        assert (mountpoint / "hello.txt").stat().st_size == 5
        text = (tmp_path / "log").read_text()
        assert "started the embedded obs-local server at http://127.0.0.1:" in text
        assert str(tmp_path / "data" / "obsmount") in text
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False)
        status = process.wait(30)
        log.close()
    # After the unmount obsmount stops its embedded server (no leaked promise, no warning) and exits 0.
    text = (tmp_path / "log").read_text()
    assert status == 0, text
    assert "Fatal error" not in text and "stopping the embedded obs-local server" not in text, text
