"""The Debian package (scripts/package): install it with dpkg, mount through mount(8) with
`-t fuse.obsmount` and through an fstab line, write a file and find it on the server, purge the
package cleanly. Also `--version` of both executables and the service template's verification.

Installs into this machine's root (needs root and dpkg); the package is removed at the end even
when the test fails. scripts/package --debug is used: a release build takes far longer (see the
README's Packaging section); the Swift standard library is linked statically either way.
"""
import contextlib
import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import BIN_DIR, OBS_LOCAL, OBSMOUNT, REPO, is_mounted

needs_root_and_dpkg = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("dpkg") is None,
                                         reason="installs a .deb: needs root and dpkg")


def git_commit():
    result = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


@pytest.mark.parametrize("executable", [OBSMOUNT, OBS_LOCAL])
def test_version_names_version_and_commit(executable):
    result = subprocess.run([str(executable), "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    version = (REPO / "VERSION").read_text().strip()
    line = result.stdout.strip()
    assert line.startswith(f"{executable.name} {version} ("), line
    commit = git_commit()
    assert (f"(commit {commit}" in line) if commit else line.endswith("(unknown commit)"), line


def dpkg(*args):
    """dpkg, waiting for its lock while another dpkg or apt holds it."""
    deadline = time.monotonic() + 120
    while True:
        result = subprocess.run(["dpkg", *args], capture_output=True, text=True, timeout=300)
        if result.returncode == 0 or "lock" not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(2)


def wait_unmounted_and_gone(mountpoint, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        if not is_mounted(mountpoint) and str(mountpoint) not in processes:
            return
        assert time.monotonic() < deadline, f"{mountpoint} still mounted or served: {processes}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def installed_package(tmp_path_factory):
    """scripts/package --debug, installed with dpkg -i; removed with dpkg --purge afterwards."""
    output = tmp_path_factory.mktemp("package")
    started = time.monotonic()
    result = subprocess.run([str(REPO / "scripts" / "package"), "--debug", "--output", str(output)],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"scripts/package --debug took {time.monotonic() - started:.0f} s")
    deb = result.stdout.strip().splitlines()[-1]
    info = subprocess.run(["dpkg-deb", "--field", deb, "Depends"], capture_output=True, text=True, check=True).stdout
    for needed in ("libfuse3-3", "fuse3", "libcurl4", "libssl3"):
        assert needed in info, info
    assert "swift" not in info
    installed = dpkg("-i", deb)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    try:
        yield deb
    finally:
        removed = dpkg("--purge", "obsmount")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        for path in ("/usr/bin/obsmount", "/usr/bin/obs-local", "/sbin/mount.fuse.obsmount",
                     "/lib/systemd/system/obsmount@.service", "/usr/share/man/man1/obsmount.1.gz"):
            assert not os.path.exists(path), f"{path} left after dpkg --purge"
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "obsmount"], capture_output=True, text=True)
        assert status.returncode != 0 or status.stdout.endswith("not-installed"), status.stdout


@needs_root_and_dpkg
def test_installed_executables_need_no_swift_runtime(installed_package):
    for executable in ("/usr/bin/obsmount", "/usr/bin/obs-local"):
        libraries = subprocess.run(["ldd", executable], capture_output=True, text=True, check=True).stdout
        assert "swift" not in libraries and "not found" not in libraries, libraries
        version = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30)
        assert version.returncode == 0 and version.stdout.startswith(os.path.basename(executable) + " "), version
    pages = subprocess.run(["dpkg", "-L", "obsmount"], capture_output=True, text=True, check=True).stdout
    for page in ("man1/obsmount.1.gz", "man1/obs-local.1.gz", "man5/obsmount.5.gz"):
        assert page in pages


def password_file(tmp_path, server):
    path = tmp_path / "passwd"
    path.write_text(f"{server.access_key}:{server.secret_key}\n")
    path.chmod(0o600)
    return path


def write_and_check(obs_local, mountpoint, name, key):
    """Writes `name` into the mount and finds its bytes under `key` on the server."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    (mountpoint / name).write_bytes(data)
    body = obs_local.s3.get_object(Bucket=obs_local.bucket, Key=key)["Body"].read()
    assert body == data


@contextlib.contextmanager
def mounted_by_mount8(command, mountpoint):
    """Runs mount(8) with `command`; unmounts with umount(8) and waits until obsmount is gone."""
    result = subprocess.run(["mount", *command], capture_output=True, text=True, timeout=60)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert is_mounted(mountpoint)
        yield
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)
    wait_unmounted_and_gone(mountpoint)


@needs_root_and_dpkg
def test_mount_t_fuse_obsmount(installed_package, obs_local, tmp_path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    passwd = password_file(tmp_path, obs_local)
    options = f"url={obs_local.url},passwd_file={passwd},part_size=1M,_netdev,rw,nodev,nosuid,x-systemd.mount-timeout=30"
    with mounted_by_mount8(["-t", "fuse.obsmount", obs_local.bucket, str(mountpoint), "-o", options], mountpoint):
        mountinfo = next(line for line in open("/proc/self/mountinfo") if line.split()[4] == str(mountpoint))
        assert "nodev" in mountinfo and "nosuid" in mountinfo and "fuse.obsmount" in mountinfo, mountinfo
        name = "package-mount-" + uuid.uuid4().hex[:8]
        write_and_check(obs_local, mountpoint, name, name)


@needs_root_and_dpkg
def test_fstab_line(installed_package, obs_local, tmp_path):
    mountpoint = tmp_path / "fstab-mnt"
    mountpoint.mkdir()
    passwd = password_file(tmp_path, obs_local)
    fstab = tmp_path / "fstab"
    fstab.write_text(f"# test fstab\n{obs_local.bucket}:/fstab-prefix {mountpoint} fuse.obsmount "
                     f"_netdev,nofail,defaults,url={obs_local.url},passwd_file={passwd},part_size=1M 0 0\n")
    with mounted_by_mount8(["--fstab", str(fstab), str(mountpoint)], mountpoint):
        name = "fstab-" + uuid.uuid4().hex[:8]
        write_and_check(obs_local, mountpoint, name, f"fstab-prefix/{name}")


@needs_root_and_dpkg
def test_failed_mount_through_mount8_says_what_to_do(installed_package, obs_local, tmp_path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    passwd = tmp_path / "wrong"
    passwd.write_text(f"{obs_local.access_key}:not-the-secret\n")
    passwd.chmod(0o600)
    result = subprocess.run(["mount", "-t", "fuse.obsmount", obs_local.bucket, str(mountpoint), "-o",
                             f"url={obs_local.url},passwd_file={passwd}"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "the secret key is wrong" in result.stderr and "check the SK in passwd_file=" in result.stderr, result.stderr
    assert not is_mounted(mountpoint)


@needs_root_and_dpkg
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_service_template_verifies(installed_package, tmp_path):
    # An instance of the installed template, with the configuration file it names.
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    shutil.copy("/lib/systemd/system/obsmount@.service", unit_dir / "obsmount@.service")
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit_dir / "obsmount@backup.service")],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "obsmount@" in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
