"""obs-local's command line: a bad --listen or --data-dir (and any usage error) is one line on
stderr and exit status 2, before anything listens or is created."""
import os
import subprocess

import pytest

from conftest import obs_local_binary


def run_obs_local(*args, timeout=20):
    return subprocess.run([obs_local_binary(), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def not_a_directory(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    return path


@pytest.fixture
def read_only_directory(tmp_path):
    path = tmp_path / "ro"
    path.mkdir(mode=0o500)
    if os.access(path, os.W_OK):
        pytest.skip("running as a user that can write anywhere (root)")
    return path


@pytest.mark.parametrize("listen", ["127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536", "127.0.0.1:-1", ":9000", ""])
def test_malformed_listen_is_a_usage_error(tmp_path, listen):
    result = run_obs_local("--listen", listen, "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("obs-local: --listen must be HOST:PORT"), result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("case", ["empty", "file", "under-file", "read-only"])
def test_bad_data_dir_is_a_usage_error(request, tmp_path, case):
    data_dir = {
        "empty": lambda: "",
        "file": lambda: str(request.getfixturevalue("not_a_directory")),
        "under-file": lambda: str(request.getfixturevalue("not_a_directory") / "data"),
        "read-only": lambda: str(request.getfixturevalue("read_only_directory") / "data"),
    }[case]()
    result = run_obs_local("--listen", "127.0.0.1:0", "--data-dir", data_dir)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("obs-local: --data-dir"), result.stderr
    assert result.stdout == ""


def test_other_usage_errors_exit_2(tmp_path):
    for args in (["--memory", "--data-dir", str(tmp_path)], ["--no-such-option"], ["--listen"]):
        result = run_obs_local(*args)
        assert result.returncode == 2, (args, result)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("obs-local: "), (args, result.stderr)


def test_missing_data_dir_is_created(tmp_path):
    """A data directory that does not exist yet is valid: it is created when the server starts."""
    data_dir = tmp_path / "new" / "data"
    process = subprocess.Popen([obs_local_binary(), "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith("obs-local listening on http://127.0.0.1:"):
                break
        else:
            pytest.fail(process.stderr.read())
        assert data_dir.is_dir()
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
