"""The namespace of issue 8 through a real mount, as ordinary programs use it (mkdir -p, rmdir,
rm -r, cp -r, rsync -a, tar xf, git, mv, chmod/chown/touch, ln -s, setfattr, unlink of an open
file, mknod, ln), on obs-local (OBS dialect) and SeaweedFS (V4); the mv tests on obs-local's
parallel file system bucket too (native rename). Every result is checked on the
server (keys, sizes, MD5 of the bodies, the s3fs-format metadata), and what must persist is
checked again through a fresh mount. File contents are checked on the server, not read back through
the mount (git alone reads through it)."""
import errno
import json
import os
import socket
import stat
import subprocess
import time
import unicodedata
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import EVERY_SERVER, PFS_BUCKET, MiB, fault_admin, head, uploads_in_progress, named_server
from namespace_checks import (assert_no_upload_left, assert_same_tree, check_tree_on_server, deleted_after_release, make_reference_tree, md5,
                              metadata, server_body, server_objects, stored_mode, stored_xattrs, tree_stat, unique)


BUG_SEAWEEDFS_MARKER_METADATA = ("BUG: SeaweedFS keeps no user metadata on `d/` markers (HEAD shows none), so a directory's "
                                 "mode, owner, times and xattrs are lost: mkdir keeps none, and obsmount answers "
                                 "chmod/chown/utimens/setxattr of a directory with EOPNOTSUPP there")


# Every test of this file runs on obs-local (OBS dialect), its parallel file system bucket and SeaweedFS (V4).
server = pytest.fixture(name="server", params=EVERY_SERVER)(named_server)


@pytest.fixture
def directory_metadata(request, server):
    """The test checks metadata of directories, which SeaweedFS loses."""
    if server.name == "seaweedfs":
        request.applymarker(pytest.mark.xfail(strict=True, reason=BUG_SEAWEEDFS_MARKER_METADATA))


def run(*command, cwd=None):
    """Runs a command; fails the test with its output (and nothing else) when it fails."""
    result = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(map(str, command))} exited {result.returncode}: {result.stderr}{result.stdout}"
    return result.stdout


def make_base(mount):
    path = mount.path / unique("ns")
    path.mkdir()
    return path


@pytest.fixture
def base(mount):
    """A fresh directory of the test at the mount's root (made through the mount: its marker
    exists); its key prefix is `base.name + '/'`."""
    return make_base(mount)


@pytest.fixture
def any_mount(every_server, mount_factory):
    """Like `mount`, and on obs-local's parallel file system bucket too (native rename)."""
    return mount_factory(every_server, [f"part_size={every_server.part_size}", "parallel=4", "memory_budget=64M"])


@pytest.fixture
def any_base(any_mount):
    """`base` in `any_mount`."""
    return make_base(any_mount)


def remount(mount, mount_factory):
    """Unmounts (every upload completed or aborted) and mounts the same bucket afresh."""
    mount.unmount()
    return mount_factory(mount.server)


def errno_of(call, *args):
    with pytest.raises(OSError) as raised:
        call(*args)
    return raised.value.errno


# Directories -----------------------------------------------------------------------------------

def test_mkdir_p_writes_markers_with_mode_and_owner(mount, base, directory_metadata):
    server, prefix = mount.server, base.name + "/"
    run("mkdir", "-p", base / "a" / "b" / "c")
    run("mkdir", "-m", "0750", base / "a" / "private")
    run("mkdir", "-p", base / "a" / "b")  # existing: nothing to do, no error
    objects = server_objects(server, prefix)
    assert sorted(objects) == ["a/", "a/b/", "a/b/c/", "a/private/"]
    for key, mode in [("a/", 0o755), ("a/b/", 0o755), ("a/b/c/", 0o755), ("a/private/", 0o750)]:
        assert objects[key]["Size"] == 0
        stored = metadata(server, prefix + key)
        assert stat.S_IMODE(int(stored["mode"])) == mode, (key, stored)
        assert (stored["uid"], stored["gid"]) == (str(os.getuid()), str(os.getgid())), (key, stored)
        assert "mtime" in stored, (key, stored)
    assert stat.S_ISDIR((base / "a" / "b" / "c").stat().st_mode)


def test_objects_other_tools_stored_show_s3fs_modes(mount, base):
    """Objects without `mode` metadata and implied directories show s3fs's 0640 and 0750, the
    mount root 0755 (s3fs's test_external_directory_creation: `aws s3 cp - d/f; stat d` is 750)."""
    server, prefix = mount.server, base.name + "/"
    server.s3.put_object(Bucket=server.bucket, Key=prefix + "elsewhere/f", Body=b"data\n")  # no marker, no metadata
    assert "elsewhere" in os.listdir(base)
    assert stat.S_IMODE(os.stat(base / "elsewhere").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(base / "elsewhere" / "f").st_mode) == 0o640
    assert (base / "elsewhere" / "f").read_bytes() == b"data\n"
    assert stat.S_IMODE(os.stat(mount.path).st_mode) == 0o755


def test_another_clients_new_names_are_seen_after_a_second(mount, base):
    """With the default negative_timeout= (1 s) another client's new file is found a second and
    a half after this mount looked its name up missing, and its new directory in a directory
    this mount made just before (s3fs's test_external_creation and
    test_external_directory_creation; with 5 s both stayed missing)."""
    server, prefix = mount.server, base.name + "/"
    (base / "made").mkdir()
    assert not (base / "made" / "f").exists()
    server.s3.put_object(Bucket=server.bucket, Key=prefix + "made/f", Body=b"data\n")
    server.s3.put_object(Bucket=server.bucket, Key=prefix + "made/directory/g", Body=b"more\n")
    time.sleep(1.5)
    assert (base / "made" / "f").read_bytes() == b"data\n"
    assert stat.S_IMODE(os.stat(base / "made" / "directory").st_mode) == 0o750
    assert (base / "made" / "directory" / "g").read_bytes() == b"more\n"


def test_inode_numbers_stay_across_remounts_and_listings_show_them(mount, mount_factory, base, tmp_path):
    """A path keeps its inode number after the kernel drops its caches and after a remount, and
    readdir's d_ino is that number: `tar --listed-incremental` finds nothing new the second time
    (helper-50: "Directory has been renamed" for every directory, everything archived again),
    `ls -i` agrees with `stat`."""
    run("mkdir", "-p", base / "tree" / "sub")
    for name in ("tree/a", "tree/sub/b"):
        (base / name).write_bytes(b"x" * 100)
    snapshot, first = tmp_path / "snapshot", tmp_path / "first.tar"
    run("tar", "-C", base, "--listed-incremental", snapshot, "-cf", first, "tree")
    numbers = {name: os.stat(base / name).st_ino for name in ("tree", "tree/sub", "tree/a", "tree/sub/b")}
    with os.scandir(base / "tree") as listing:
        assert {entry.name: entry.inode() for entry in listing} == {"a": numbers["tree/a"], "sub": numbers["tree/sub"]}
    subprocess.run(["sh", "-c", "sync; echo 2 > /proc/sys/vm/drop_caches"], check=True)
    assert {name: os.stat(base / name).st_ino for name in numbers} == numbers
    fresh = remount(mount, mount_factory)
    again = fresh.path / base.name
    with os.scandir(again / "tree" / "sub") as listing:
        assert {entry.name: entry.inode() for entry in listing} == {"b": numbers["tree/sub/b"]}
    assert {name: os.stat(again / name).st_ino for name in numbers} == numbers
    second = tmp_path / "second.tar"
    result = subprocess.run(["tar", "-C", again, "--listed-incremental", snapshot, "-cvf", second, "tree"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "renamed" not in result.stderr, result.stderr
    assert sorted(result.stdout.split()) == ["tree/", "tree/sub/"]  # directories only: no file changed


def test_rmdir_removes_empty_directory_and_refuses_non_empty(mount, base):
    server, prefix = mount.server, base.name + "/"
    server.s3.put_object(Bucket=server.bucket, Key=prefix + "implied/only-key", Body=b"x")  # no marker
    # base was made by this mount moments ago: another client's name in it is seen once a listing
    # shows it (or after negative_timeout=), mount-options/semantics.md.
    assert "implied" in os.listdir(base)
    (base / "empty").mkdir()
    (base / "full").mkdir()
    (base / "full" / "file").write_bytes(b"content")
    os.rmdir(base / "empty")
    assert not (base / "empty").exists()
    assert "empty/" not in server_objects(server, prefix)
    assert errno_of(os.rmdir, base / "full") == errno.ENOTEMPTY
    assert errno_of(os.rmdir, base / "implied") == errno.ENOTEMPTY
    assert sorted(server_objects(server, prefix)) == ["full/", "full/file", "implied/only-key"]


def test_rm_r_removes_markers_files_and_implied_directories(mount, base):
    server, prefix = mount.server, base.name + "/"
    for key in ["tree/implied/a", "tree/implied/deeper/b", "tree/c"]:  # written by another client
        server.s3.put_object(Bucket=server.bucket, Key=prefix + key, Body=b"from elsewhere")
    run("mkdir", "-p", base / "tree" / "made" / "inner")
    (base / "tree" / "made" / "inner" / "f").write_bytes(b"f" * 1000)
    (base / "tree" / "made" / "g").write_bytes(b"")
    os.symlink("inner/f", base / "tree" / "made" / "link")
    run("rm", "-r", base / "tree")
    assert server_objects(server, prefix) == {}
    assert os.listdir(base) == []


# Copying trees in ------------------------------------------------------------------------------

def copy_and_compare(mount, mount_factory, base, tmp_path, command, mtimes=True):
    """Runs `command(source, target)` into a local directory and into the mount, then checks
    that the server holds the local result exactly and that a fresh mount stats it identically."""
    source = make_reference_tree(tmp_path / "source")
    local = tmp_path / "local"
    run(*command(source, local))
    run(*command(source, base / "copy"))
    check_tree_on_server(mount.server, base.name + "/copy/", local)
    expected = tree_stat(local, mtimes=mtimes)
    assert_same_tree(tree_stat(base / "copy", mtimes=mtimes), expected)
    fresh = remount(mount, mount_factory)
    assert_same_tree(tree_stat(fresh.path / base.name / "copy", mtimes=mtimes), expected)


def test_cp_r(mount, mount_factory, base, tmp_path, directory_metadata):
    # Without -p cp gives new files the source's mode less the umask and new times.
    copy_and_compare(mount, mount_factory, base, tmp_path, lambda source, target: ["cp", "-r", source, target],
                     mtimes=False)


@pytest.mark.parametrize("inplace", [False, True], ids=["temp-file-and-rename", "inplace"])
def test_rsync_a(mount, mount_factory, base, tmp_path, inplace, directory_metadata):
    options = ["-a"] + (["--inplace"] if inplace else [])
    copy_and_compare(mount, mount_factory, base, tmp_path,
                     lambda source, target: ["rsync", *options, f"{source}/", target])
    assert uploads_in_progress(mount.server, base.name + "/") == []


def test_tar_xf_with_directories(mount, mount_factory, base, tmp_path, directory_metadata):
    archive = tmp_path / "tree.tar"

    def extract(source, target):
        if not archive.exists():
            run("tar", "cf", archive, "-C", source, ".")
        target.mkdir()
        return ["tar", "xf", archive, "-C", target]

    copy_and_compare(mount, mount_factory, base, tmp_path, extract)


def test_git_init_add_commit(mount, base):
    repo = base / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "README").write_text("hello\n")
    (repo / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    git = ["git", "-c", "user.name=obsmount test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main"]
    for step in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "first"]):
        run(*git, *step, cwd=repo)
    assert run(*git, "status", "--porcelain", cwd=repo) == ""
    run(*git, "fsck", "--strict", cwd=repo)
    server, prefix = mount.server, base.name + "/repo/"
    assert server_body(server, prefix + ".git/HEAD") == b"ref: refs/heads/main\n"
    commit = server_body(server, prefix + ".git/refs/heads/main").decode().strip()
    assert len(commit) == 40
    assert f".git/objects/{commit[:2]}/{commit[2:]}" in server_objects(server, prefix)
    assert not any(key.endswith(".lock") for key in server_objects(server, prefix))


# Rename ----------------------------------------------------------------------------------------

def test_mv_file_keeps_body_and_metadata(any_mount, any_base):
    mount, base = any_mount, any_base
    server, prefix = mount.server, base.name + "/"
    body = os.urandom(3 * MiB)
    (base / "a").write_bytes(body)
    os.chmod(base / "a", 0o640)
    (base / "dir").mkdir()
    run("mv", base / "a", base / "b")
    assert not (base / "a").exists() and (base / "b").stat().st_size == len(body)
    run("mv", base / "b", base / "dir")
    assert sorted(server_objects(server, prefix)) == ["dir/", "dir/b"]
    assert md5(server_body(server, prefix + "dir/b")) == md5(body)
    assert stored_mode(server, prefix + "dir/b") == stat.S_IFREG | 0o640
    assert stat.S_IMODE((base / "dir" / "b").stat().st_mode) == 0o640


def test_a_renamed_file_gets_the_content_type_of_its_new_name(mount, base, tmp_path):
    # rsync writes `.photo.jpg.XXXXXX` (no known extension) and renames it; s3fs's
    # test_multipart_copy renames `x.txt` to `x.txt-copy`. A type set by hand stays.
    server, prefix = mount.server, base.name + "/"
    (tmp_path / "photo.jpg").write_bytes(os.urandom(1000))
    run("rsync", "-a", tmp_path / "photo.jpg", base)
    (base / "notes.txt").write_text("notes\n")
    run("mv", base / "notes.txt", base / "notes.txt-copy")
    (base / "page.txt").write_text("<p>\n")
    os.setxattr(base / "page.txt", "user.obs.content-type", b"text/x-set")
    run("mv", base / "page.txt", base / "page.html")
    types = [head(server, prefix + name)["ContentType"] for name in ("photo.jpg", "notes.txt-copy", "page.html")]
    assert types == ["image/jpeg", "application/octet-stream", "text/x-set"]


def test_names_in_nfc_and_nfd_are_two_files(any_mount, any_base):
    # Linux and the store compare names byte for byte; Swift's String equality (canonical
    # equivalence) made the second spelling open and overwrite the first.
    mount, base = any_mount, any_base
    server, prefix = mount.server, base.name + "/"
    composed, decomposed = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    (base / composed).write_bytes(b"NFC")
    assert errno_of(os.stat, base / decomposed) == errno.ENOENT
    (base / decomposed).write_bytes(b"NFD!")
    assert (base / composed).read_bytes() == b"NFC" and (base / decomposed).read_bytes() == b"NFD!"
    assert sorted(os.listdir(base)) == sorted([composed, decomposed])
    assert server_body(server, prefix + composed) == b"NFC"
    assert server_body(server, prefix + decomposed) == b"NFD!"


def test_names_starting_with_a_combining_mark(any_mount, any_base, mount_factory):
    # In Swift a `/` followed by U+0301 is one Character: keys cut by Characters listed such a
    # name without its first letter, and `mv` of its directory stored it under that name.
    mount, base = any_mount, any_base
    server, prefix = mount.server, base.name + "/"
    marked = "\u0301x"
    (base / "d").mkdir()
    (base / "d" / marked).write_bytes(b"marked")
    (base / "d" / "x").write_bytes(b"plain")
    fresh = remount(mount, mount_factory)
    moved = fresh.path / base.name
    assert sorted(os.listdir(moved / "d")) == sorted([marked, "x"])
    run("mv", moved / "d", moved / "e")
    assert sorted(server_objects(server, prefix)) == sorted(["e/", "e/" + marked, "e/x"])
    assert server_body(server, prefix + "e/" + marked) == b"marked" and server_body(server, prefix + "e/x") == b"plain"
    assert (moved / "e" / marked).read_bytes() == b"marked"


def test_mv_onto_existing_file_replaces_it(any_mount, any_base):
    mount, base = any_mount, any_base
    server, prefix = mount.server, base.name + "/"
    (base / "new").write_bytes(b"new contents, longer than the old ones\n")
    (base / "old").write_bytes(b"old\n")
    run("mv", base / "new", base / "old")
    assert sorted(server_objects(server, prefix)) == ["old"]
    assert server_body(server, prefix + "old") == b"new contents, longer than the old ones\n"
    assert (base / "old").stat().st_size == len(b"new contents, longer than the old ones\n")
    assert not (base / "new").exists()


def test_files_below_a_moved_directory_are_read_and_changed_at_once(any_mount, any_base, mount_factory):
    # A copy of a multipart or composed object has another ETag; the mount kept the old one
    # for the files below a moved directory, so reads and changes failed with EIO (fsstress),
    # and a descriptor reading across the rename read ENOENT once the source was deleted.
    mount, base = any_mount, any_base
    server, prefix = mount.server, base.name + "/"
    big = os.urandom(20 * MiB)
    (base / "a").mkdir()
    (base / "a" / "big").write_bytes(big)
    (base / "a" / "changed").write_bytes(b"A" * 300_000)
    with open(base / "a" / "changed", "r+b") as changed:
        changed.seek(1000)
        changed.write(b"X" * 5000)
    fresh = remount(mount, mount_factory)  # nothing of the file in the kernel's cache
    base = fresh.path / base.name
    with open(base / "a" / "big", "rb") as reader:
        assert os.pread(reader.fileno(), 4096, 18 * MiB) == big[18 * MiB:18 * MiB + 4096]
        run("mv", base / "a", base / "b")
        assert os.pread(reader.fileno(), 4096, 2 * MiB) == big[2 * MiB:2 * MiB + 4096]
    assert (base / "b" / "big").read_bytes() == big
    with open(base / "b" / "changed", "r+b") as changed:
        changed.seek(0)
        changed.write(b"Y")
    expected = b"Y" + b"A" * 999 + b"X" * 5000 + b"A" * (300_000 - 6000)
    assert (base / "b" / "changed").read_bytes() == expected
    assert server_body(server, prefix + "b/changed") == expected


def test_mv_onto_a_directory_of_files_with_the_same_names_and_sizes_answers_enotempty(mount, base):
    """Written through the mount, both files are multipart uploads (ETags that are no MD5s): the
    rename took the target for the leftover of an earlier rename of the source and overwrote
    its file (found by a helper's stress run). Only a target holding the record of an
    interrupted rename of this source is completed."""
    server, prefix = mount.server, base.name + "/"
    (base / "a").mkdir()
    (base / "a" / "x").write_bytes(b"hello")
    (base / "b").mkdir()
    (base / "b" / "x").write_bytes(b"OLD!!")
    result = subprocess.run(["mv", "-T", str(base / "a"), str(base / "b")], capture_output=True, text=True)
    assert result.returncode != 0 and "not empty" in result.stderr, result.stderr
    assert server_body(server, prefix + "b/x") == b"OLD!!"
    assert server_body(server, prefix + "a/x") == b"hello"
    assert (base / "b" / "x").read_bytes() == b"OLD!!"


def test_a_directory_rename_stopped_during_its_copies_is_completed_by_running_it_again(obs_local, mount_factory):
    """A copy refused half-way: the rename fails, the target holds part of the source and the
    rename's record; `mv -T` right after completes it (no ENOTEMPTY, and no name the kernel
    still took for missing), and the record goes."""
    mount = mount_factory(obs_local, [f"part_size={obs_local.part_size}", "parallel=4", "memory_budget=64M"])
    base = make_base(mount)
    prefix = base.name + "/"
    (base / "a").mkdir()
    bodies = {f"f{index}": bytes([index]) * (1000 + index) for index in range(6)}
    for name, body in bodies.items():
        (base / "a" / name).write_bytes(body)
    fault_admin(obs_local, "POST", {"operation": "CopyObject", "key": f"{prefix}b/f3", "action": "error", "code": "AccessDenied"})
    try:
        # rename(2) itself: `mv` would look again and, finding the target, complete it at once.
        with pytest.raises(PermissionError):
            os.rename(base / "a", base / "b")
    finally:
        fault_admin(obs_local, "DELETE")
    left = server_objects(obs_local, prefix)
    assert "b/.obsmount-rename" in left and "a/f3" in left and "b/f3" not in left
    assert server_body(obs_local, prefix + "b/.obsmount-rename") == f"{prefix}a/".encode()
    run("mv", "-T", base / "a", base / "b")
    assert sorted(server_objects(obs_local, prefix)) == ["b/"] + [f"b/{name}" for name in sorted(bodies)]
    for name, body in bodies.items():
        assert server_body(obs_local, f"{prefix}b/{name}") == body
    assert sorted(os.listdir(base / "b")) == sorted(bodies)
    assert "holds part of an earlier rename" in mount.log_text()


def test_directory_renames_failing_half_way_beside_lookups_never_hang_the_mount(obs_local, mount_factory):
    """Each failed rename tells the kernel to forget the target's name, which waits for the
    directory's lock that lookups there hold while waiting for answers. Sent from the task pool
    while holding the notification lock, it starved both pool threads and the mount hung (clean-
    clone CI timed out in test_namespace_concurrency). 10 s of renames whose copies are refused,
    beside lookups and listings of the same directory, must all end."""
    mount = mount_factory(obs_local, [f"part_size={obs_local.part_size}", "parallel=4", "memory_budget=64M"])
    base = make_base(mount)
    for index in range(3):
        (base / f"src{index}").mkdir()
        for name in ("f0", "f1", "f2"):
            (base / f"src{index}" / name).write_bytes(b"x" * 100)
    fault_admin(obs_local, "POST", {"operation": "CopyObject", "key": f"{base.name}/dst*/f2", "action": "error", "code": "AccessDenied", "times": 0})
    deadline = time.monotonic() + 10

    def rename_again_and_again(index):
        failed = 0
        while time.monotonic() < deadline:
            try:
                os.rename(base / f"src{index}", base / f"dst{index}")
            except PermissionError:
                failed += 1
        return failed

    def look_again_and_again(_):
        looked = 0
        while time.monotonic() < deadline:
            for name in os.listdir(base):
                try:
                    os.stat(base / name)
                except FileNotFoundError:
                    pass
                looked += 1
        return looked

    try:
        with ThreadPoolExecutor(6) as pool:
            renames = [pool.submit(rename_again_and_again, index) for index in range(3)]
            lookups = [pool.submit(look_again_and_again, index) for index in range(3)]
            failed = [future.result(timeout=120) for future in renames]
            looked = [future.result(timeout=120) for future in lookups]
    finally:
        fault_admin(obs_local, "DELETE")
    assert all(count > 0 for count in failed) and all(count > 0 for count in looked)
    run("mv", "-T", base / "src0", base / "dst0")  # the interrupted rename completes
    assert sorted(os.listdir(base / "dst0")) == ["f0", "f1", "f2"]


def test_mv_onto_an_empty_directory_replaces_it(mount, base):
    server, prefix = mount.server, base.name + "/"
    (base / "a").mkdir()
    (base / "a" / "f").write_bytes(b"moved")
    (base / "b").mkdir()
    run("mv", "-T", base / "a", base / "b")
    assert sorted(server_objects(server, prefix)) == ["b/", "b/f"]
    assert (base / "b" / "f").read_bytes() == b"moved"
    # An empty target is replaced; only a target holding part of the source is an earlier
    # rename being completed (the log once said so for every replaced empty directory).
    log = mount.log_text()
    if server.bucket != PFS_BUCKET:  # a parallel file system bucket renames natively
        assert f"renaming directory {prefix}a/ to {prefix}b/: 2 keys to copy (replacing an empty directory)" in log
    assert "earlier rename" not in log


def test_mv_directory_of_200_files(any_mount, any_base):
    mount, base = any_mount, any_base
    server, prefix = mount.server, base.name + "/"
    (base / "d" / "sub").mkdir(parents=True)
    bodies = {f"d/f{index:03}": f"file {index}\n".encode() * (index + 1) for index in range(200)}
    bodies["d/sub/inner"] = b"inner\n"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: server.s3.put_object(Bucket=server.bucket, Key=prefix + item[0], Body=item[1]),
                      bodies.items()))
    run("mv", base / "d", base / "e")
    objects = server_objects(server, prefix)
    moved = {"e/" + key[2:]: body for key, body in bodies.items()}
    assert sorted(objects) == sorted([*moved, "e/", "e/sub/"])
    for key, body in moved.items():
        assert objects[key]["ETag"].strip('"') == md5(body), key
    assert not (base / "d").exists()
    assert len(os.listdir(base / "e")) == 201


# POSIX metadata --------------------------------------------------------------------------------

TOUCH_TIME = "2020-01-02 03:04:05.123456789 UTC"
TOUCH_NS = 1_577_934_245_123_456_789


def test_chmod_chown_touch_survive_remount(mount, mount_factory, base, directory_metadata):
    server, prefix = mount.server, base.name + "/"
    body = os.urandom(2 * MiB)
    (base / "file").write_bytes(body)
    (base / "dir").mkdir()
    content_type = head(server, prefix + "file")["ContentType"]
    for path, mode, owner in [(base / "file", "0640", "1234:5678"), (base / "dir", "0700", "4321:8765")]:
        run("chmod", mode, path)
        run("chown", owner, path)
        run("touch", "-d", TOUCH_TIME, path)
    file_meta, dir_meta = metadata(server, prefix + "file"), metadata(server, prefix + "dir/")
    assert int(file_meta["mode"]) == stat.S_IFREG | 0o640 and (file_meta["uid"], file_meta["gid"]) == ("1234", "5678")
    assert stat.S_IMODE(int(dir_meta["mode"])) == 0o700 and (dir_meta["uid"], dir_meta["gid"]) == ("4321", "8765")
    for stored in (file_meta, dir_meta):
        assert stored["mtime"] == "1577934245.123456789", stored
    # The metadata was changed in place: same body, same Content-Type.
    assert md5(server_body(server, prefix + "file")) == md5(body)
    assert head(server, prefix + "file")["ContentType"] == content_type
    fresh = remount(mount, mount_factory)
    for name, mode, owner in [("file", 0o640, (1234, 5678)), ("dir", 0o700, (4321, 8765))]:
        info = os.stat(fresh.path / base.name / name)
        assert (stat.S_IMODE(info.st_mode), (info.st_uid, info.st_gid), info.st_mtime_ns) == (mode, owner, TOUCH_NS), name


def test_chmod_and_touch_keep_the_tags_and_the_acl(mount, base):
    # OBS's PUT ?metadata resets the tags unless they are sent again, a copy onto itself (the S3
    # dialects) resets the ACL: each dialect reads back only what its request must send again.
    server, key = mount.server, base.name + "/file"
    path = base / "file"
    path.write_bytes(b"tagged\n")
    os.setxattr(path, "user.obs.tagging", b"team=ops")
    os.setxattr(path, "user.obs.acl", b"public-read")
    offset = len(server.request_log.read_text().splitlines()) if server.request_log else 0
    os.chmod(path, 0o640)
    if server.request_log:
        operations = [json.loads(line)["operation"] for line in server.request_log.read_text().splitlines()[offset:]]
        assert sorted(operations) == ["GetObjectTagging", "HeadObject", "SetObjectMetadata"]
    run("touch", "-d", TOUCH_TIME, path)
    assert server.s3.get_object_tagging(Bucket=server.bucket, Key=key)["TagSet"] == [{"Key": "team", "Value": "ops"}]
    grants = server.s3.get_object_acl(Bucket=server.bucket, Key=key)["Grants"]
    assert any(grant["Grantee"].get("URI", "").endswith("AllUsers") and grant["Permission"] == "READ" for grant in grants), grants
    stored = metadata(server, key)
    assert (int(stored["mode"]), stored["mtime"]) == (stat.S_IFREG | 0o640, "1577934245.123456789")
    assert path.read_bytes() == b"tagged\n"


def test_directory_metadata_changes_are_refused_where_the_store_drops_them(mount, base):
    """SeaweedFS drops metadata on `d/` markers: obsmount learns it at the first mkdir and answers
    chmod, chown, utimens and setxattr of a directory with EOPNOTSUPP, never a success without
    effect. Elsewhere they work (test_chmod_chown_touch_survive_remount)."""
    (base / "dir").mkdir(mode=0o700)
    before = os.stat(base / "dir")
    changes = [lambda: os.chmod(base / "dir", 0o750), lambda: os.chown(base / "dir", 4321, 8765),
               lambda: os.utime(base / "dir", ns=(TOUCH_NS, TOUCH_NS)),
               lambda: os.setxattr(base / "dir", "user.tag", b"v")]
    if mount.server.name != "seaweedfs":
        for change in changes:
            change()
        after = os.stat(base / "dir")
        assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_gid, after.st_mtime_ns) == (0o750, 4321, 8765, TOUCH_NS)
        assert os.getxattr(base / "dir", "user.tag") == b"v"
        return
    for change in changes:
        with pytest.raises(OSError) as raised:
            change()
        assert raised.value.errno == errno.EOPNOTSUPP
    after = os.stat(base / "dir")
    assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (before.st_mode, before.st_uid, before.st_mtime_ns)
    (base / "dir" / "file").write_bytes(b"x")
    os.chmod(base / "dir" / "file", 0o600)  # files keep their metadata
    assert stat.S_IMODE(os.stat(base / "dir" / "file").st_mode) == 0o600


def test_chmod_of_a_file_being_written_rides_on_the_upload(mount, base):
    server, key = mount.server, base.name + "/written"
    with open(base / "written", "wb") as out:
        out.write(b"w" * (3 * server.part_size))
        os.fchmod(out.fileno(), 0o600)
        os.utime(out.fileno(), ns=(TOUCH_NS, TOUCH_NS))
    stored = metadata(server, key)
    assert int(stored["mode"]) == stat.S_IFREG | 0o600 and stored["mtime"] == "1577934245.123456789", stored
    assert head(server, key)["ContentLength"] == 3 * server.part_size


# Symlinks, xattrs ------------------------------------------------------------------------------

def test_ln_s_and_readlink(mount, mount_factory, base):
    server, prefix = mount.server, base.name + "/"
    targets = {"to-file": "file", "dangling": "../no/such thing", "absolute": "/etc/hostname"}
    (base / "file").write_bytes(b"the target\n")
    for name, target in targets.items():
        run("ln", "-s", target, base / name)
        assert run("readlink", base / name) == target + "\n"
    for name, target in targets.items():
        assert server_body(server, prefix + name) == target.encode()
        assert stat.S_IFMT(stored_mode(server, prefix + name)) == stat.S_IFLNK, name
    fresh = remount(mount, mount_factory)
    for name, target in targets.items():
        path = fresh.path / base.name / name
        assert stat.S_ISLNK(os.lstat(path).st_mode) and os.readlink(path) == target
    assert os.stat(fresh.path / base.name / "to-file").st_size == len(b"the target\n")  # followed


def test_setfattr_user_xattrs_survive_remount(mount, mount_factory, base, directory_metadata):
    server, prefix = mount.server, base.name + "/"
    (base / "file").write_bytes(b"x" * 100)
    (base / "dir").mkdir()
    binary = bytes(range(256))
    for path in (base / "file", base / "dir"):
        run("setfattr", "-n", "user.foo", "-v", "bar", path)
        os.setxattr(path, "user.binary", binary)
        run("setfattr", "-n", "user.gone", "-v", "soon", path)
        run("setfattr", "-x", "user.gone", path)
        assert run("getfattr", "--only-values", "-n", "user.foo", path) == "bar"
        assert errno_of(os.setxattr, path, "security.foo", b"x") == errno.ENOTSUP
        assert errno_of(os.setxattr, path, "system.foo", b"x") == errno.ENOTSUP
    for key in (prefix + "file", prefix + "dir/"):
        assert stored_xattrs(server, key) == {"user.foo": b"bar", "user.binary": binary}, key
    assert md5(server_body(server, prefix + "file")) == md5(b"x" * 100)
    # The log names the metadata entry that holds them (it once said `mode` for any change).
    log = mount.log_text()
    assert f"{prefix}file: user.obs.meta.xattr changed" in log and f"{prefix}file: user.obs.meta.mode" not in log
    fresh = remount(mount, mount_factory)
    for name in ("file", "dir"):
        path = fresh.path / base.name / name
        assert os.getxattr(path, "user.foo") == b"bar" and os.getxattr(path, "user.binary") == binary
        assert {"user.foo", "user.binary"} <= set(os.listxattr(path))
        assert errno_of(os.getxattr, path, "user.gone") == errno.ENODATA


# Unlink of open files, refused node types -------------------------------------------------------

def test_unlink_of_a_file_open_for_writing(mount, base):
    server, key = mount.server, base.name + "/open"
    fd = os.open(base / "open", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"a" * (3 * server.part_size))  # parts are on their way
        os.unlink(base / "open")
        assert not (base / "open").exists() and os.listdir(base) == []
        os.write(fd, b"b" * server.part_size)  # the writer goes on, as on a local filesystem
    finally:
        os.close(fd)
    assert server_objects(server, base.name + "/") == {}
    assert_no_upload_left(server, key)


def test_a_file_unlinked_while_open_moves_with_its_renamed_directory(mount, base):
    """`mv d e` while a descriptor reads `d/f`, unlinked: it reads on, as on a local disk (the
    rename deleted the object with the sources: EIO; on a parallel file system bucket the object
    moved and showed up in `e` after the close), and nothing of `f` is left once it is closed."""
    server = mount.server
    body = os.urandom(32 * MiB + 7)
    (base / "d").mkdir()
    (base / "d" / "f").write_bytes(body)
    (base / "d" / "g").write_bytes(b"g")
    with open(base / "d" / "f", "rb") as reader:
        assert reader.read(100) == body[:100]
        os.unlink(base / "d" / "f")
        os.rename(base / "d", base / "e")
        assert os.listdir(base / "e") == ["g"]
        assert os.pread(reader.fileno(), 1000, 30 * MiB) == body[30 * MiB:30 * MiB + 1000]  # beyond what was prefetched
        assert os.pread(reader.fileno(), len(body), 0) == body
    assert deleted_after_release(server, base.name + "/e/f")
    assert {key for key in server_objects(server, base.name + "/") if not key.endswith("/")} == {"e/g"}
    assert os.listdir(base / "e") == ["g"]


def test_another_mounts_new_file_under_a_hidden_name_stays(server, mount_factory):
    """A reader holds `f`, unlinked here; another mount then writes a new `f`: the reader's last
    close deletes only the version it kept (it deleted the other mount's new file)."""
    here, there = mount_factory(server), mount_factory(server)
    base = here.path / unique("hidden")
    base.mkdir()
    (base / "f").write_bytes(b"old")
    with open(base / "f", "rb") as reader:
        assert reader.read() == b"old"
        os.unlink(base / "f")
        (there.path / base.name / "f").write_bytes(b"new from the other mount")
    deadline = time.monotonic() + 10
    while "another client stored a new object under the name" not in here.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server_body(server, base.name + "/f") == b"new from the other mount"


def test_a_temporary_file_is_read_back_and_changed_after_its_unlink(mount, base):
    """mkstemp then unlink (Python's TemporaryFile, sort, compilers): the descriptor reads back
    and changes what it wrote as on a local disk, and nothing is left on the server."""
    server, key = mount.server, base.name + "/tmp"
    data = os.urandom(2 * server.part_size + 10)
    fd = os.open(base / "tmp", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.unlink(base / "tmp")
        os.write(fd, data)
        assert os.pread(fd, len(data), 0) == data
        os.pwrite(fd, b"XY", 10)  # behind what was streamed
        os.ftruncate(fd, 1000)
        os.pwrite(fd, b"Z", 1000)
        assert os.fstat(fd).st_size == 1001
        assert os.pread(fd, 2000, 0) == data[:10] + b"XY" + data[12:1000] + b"Z"
        assert os.listdir(base) == []
    finally:
        os.close(fd)
    wait_until_no_object(server, base.name + "/")
    assert_no_upload_left(server, key)


def wait_until_no_object(server, prefix):
    """The last release (which deletes a hidden object) comes a moment after close()."""
    deadline = time.monotonic() + 20
    while server_objects(server, prefix) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server_objects(server, prefix) == {}


def test_a_name_that_is_not_utf8_is_refused_with_eilseq(mount, base):
    """Keys are UTF-8: such a name is refused, never stored under a repaired name."""
    server, prefix = mount.server, base.name + "/"
    bad = os.fsencode(str(base)) + b"/\x80\x81"
    assert errno_of(os.open, bad, os.O_WRONLY | os.O_CREAT, 0o600) == errno.EILSEQ
    assert errno_of(os.mkdir, bad) == errno.EILSEQ
    (base / "good").write_bytes(b"1")
    assert errno_of(os.rename, base / "good", bad) == errno.EILSEQ
    assert sorted(server_objects(server, prefix)) == ["good"]


def test_a_directory_at_the_key_length_limit_is_removed(mount, base):
    """Deep trees (stress-ng's dirdeep): rmdir of a directory whose legacy marker key
    (`d_$folder$`) would be longer than the store takes does not ask for it."""
    server, prefix = mount.server, base.name + "/"
    path = base
    while len(str(path.relative_to(mount.path))) < 1016:
        path = path / "0"
        path.mkdir()
    assert 1024 - len("/f") >= len(str(path.relative_to(mount.path))) > 1024 - len("_$folder$")
    (path / "f").write_bytes(b"deep")  # its directory is too deep for a hidden attributes object
    assert server_body(server, str(path.relative_to(mount.path)) + "/f") == b"deep"
    (path / "f").unlink()
    while path != base:
        path.rmdir()
        path = path.parent
    assert server_objects(server, prefix) == {}


def test_new_file_under_the_name_of_an_unlinked_open_file(mount, base):
    server, key = mount.server, base.name + "/name"
    fd = os.open(base / "name", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"old" * server.part_size)
        os.unlink(base / "name")
        (base / "name").write_bytes(b"the new file")
    finally:
        os.close(fd)  # the old upload is aborted; the new object stays
    assert server_body(server, key) == b"the new file"
    assert_no_upload_left(server, key)


def test_fifos_sockets_and_device_nodes_are_empty_objects_with_their_type(mount, base, mount_factory):
    """mkfifo, a bound Unix socket, mknod of devices and of a regular file: each an empty object
    whose mode names its type, as s3fs stores them (a device's number in rdev); a FIFO works as
    one (the kernel serves it), and everything survives chmod, rename and a remount."""
    server, prefix = mount.server, base.name + "/"
    os.mkfifo(base / "fifo", 0o640)
    os.mknod(base / "plain", stat.S_IFREG | 0o600)
    os.mknod(base / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.mknod(base / "disk", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    here = os.getcwd()
    os.chdir(base)  # a relative name: the whole path may pass the 107 bytes a socket address holds
    try:
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind("sock")
    finally:
        os.chdir(here)
    assert sorted(server_objects(server, prefix)) == ["disk", "fifo", "null", "plain", "sock"]
    for name, kind in [("fifo", stat.S_IFIFO), ("plain", stat.S_IFREG), ("null", stat.S_IFCHR), ("disk", stat.S_IFBLK), ("sock", stat.S_IFSOCK)]:
        assert head(server, prefix + name)["ContentLength"] == 0
        assert stat.S_IFMT(stored_mode(server, prefix + name)) == kind, name
    assert head(server, prefix + "null")["Metadata"]["rdev"] == str(os.makedev(1, 3))
    assert stat.S_ISFIFO(os.stat(base / "fifo").st_mode) and stat.S_ISSOCK(os.stat(base / "sock").st_mode)
    assert os.stat(base / "null").st_rdev == os.makedev(1, 3)

    # The kernel serves the FIFO: what one end writes, the other reads.
    reader = os.open(base / "fifo", os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(base / "fifo", os.O_WRONLY)
    os.write(writer, b"through the pipe")
    assert os.read(reader, 100) == b"through the pipe"
    os.close(writer)
    os.close(reader)

    os.chmod(base / "fifo", 0o604)
    os.rename(base / "null", base / "null2")
    assert stored_mode(server, prefix + "fifo") == stat.S_IFIFO | 0o604
    mount.unmount()
    fresh = mount_factory(server)
    again = fresh.path / base.name
    assert stat.S_IMODE(os.stat(again / "fifo").st_mode) == 0o604 and stat.S_ISFIFO(os.stat(again / "fifo").st_mode)
    moved = os.stat(again / "null2")
    assert stat.S_ISCHR(moved.st_mode) and moved.st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.stat(again / "disk").st_mode)
    for name in ["fifo", "null2", "disk", "sock", "plain"]:
        os.unlink(again / name)
    assert server_objects(server, prefix) == {}


def test_hard_link_refused(mount, base):
    server, prefix = mount.server, base.name + "/"
    (base / "file").write_bytes(b"one name")
    # EOPNOTSUPP, as s3fs answers (its test_hardlink looks for "Operation not supported"); a
    # directory's link is EPERM, answered by the kernel.
    assert errno_of(os.link, base / "file", base / "second") == errno.EOPNOTSUPP
    (base / "dir").mkdir()
    assert errno_of(os.link, base / "dir", base / "dir2") == errno.EPERM
    assert set(server_objects(server, prefix)) - {"dir/"} == {"file"}
    assert "hard links are not supported" in mount.log_text()


def test_renameat2_exchange_is_refused_with_one_log_line(mount, base):
    # fsstress calls it hundreds of times a run: a warning each flooded the log (helper-44).
    import ctypes
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    (base / "a").write_bytes(b"a")
    (base / "b").write_bytes(b"b")
    at_fdcwd, rename_exchange = -100, 2
    for _ in range(50):
        result = libc.renameat2(at_fdcwd, str(base / "a").encode(), at_fdcwd, str(base / "b").encode(), rename_exchange)
        assert (result, ctypes.get_errno()) == (-1, errno.EINVAL)
    assert (base / "a").read_bytes() == b"a" and (base / "b").read_bytes() == b"b"
    assert mount.log_text().count("RENAME_EXCHANGE is not supported") == 1


def test_mv_of_a_6_gib_object_is_a_multipart_copy(obs_local, mount_factory):
    """Above 5 GiB a single CopyObject is refused by the stores: the rename copies ranges in parallel."""
    mount = mount_factory(obs_local, ["part_size=64M", "memory_budget=512M"])
    size = 6 * 1024 * MiB
    stem = f"six-gib-{uuid.uuid4().hex[:8]}"
    subprocess.run(["dd", "if=/dev/zero", f"of={mount.path / stem}", "bs=4M", f"count={size // (4 * MiB)}", "status=none"], check=True)
    os.rename(mount.path / stem, mount.path / (stem + "-moved"))
    assert head(obs_local, stem + "-moved")["ContentLength"] == size
    assert obs_local.s3.list_objects_v2(Bucket=obs_local.bucket, Prefix=stem).get("KeyCount") == 1
    with open(obs_local.request_log) as log:
        copies = [line for line in log if '"UploadPartCopy"' in line and stem + "-moved" in line]
    assert len(copies) == 12  # 512 MiB ranges
    assert uploads_in_progress(obs_local, stem) == []


def test_ls_l_after_a_remount_asks_only_for_names_changed_since(obs_local, mount_factory):
    """The HEAD answers one mount fetched serve `ls -l` right after the next mount of the same
    bucket (state_dir=, saved_attr_timeout=): no HEAD for a name listed with the same ETag, size
    and Last-Modified; a name another client changed meanwhile is asked for (semantics.md)."""
    first = mount_factory(obs_local)
    base = make_base(first)
    for index in range(30):
        (base / f"f{index:02}").write_bytes(b"x" * index)
    os.chmod(base / "f03", 0o600)
    first.unmount()
    time.sleep(2.1)  # an answer fetched within 2 s of its object's change is not saved
    # The mount that wrote the files knew their attributes without a HEAD: the next one asks.
    listing = mount_factory(obs_local)
    before = run("ls", "-ln", "--time-style=+%s", listing.path / base.name)
    listing.unmount()
    # Another client sets f05's mode by a copy onto itself (S3's way): a later Last-Modified.
    key = f"{base.name}/f05"
    stored = metadata(obs_local, key)
    obs_local.s3.copy_object(Bucket=obs_local.bucket, Key=key, CopySource={"Bucket": obs_local.bucket, "Key": key},
                             MetadataDirective="REPLACE", Metadata={**stored, "mode": str(stat.S_IFREG | 0o640)})
    second = mount_factory(obs_local)
    (second.path / base.name).stat()  # the directory's own lookup is not what is counted
    log_start = len(obs_local.request_log.read_text().splitlines())
    after = run("ls", "-ln", "--time-style=+%s", second.path / base.name)
    entries = [json.loads(line) for line in obs_local.request_log.read_text().splitlines()[log_start:]]
    heads = sorted(entry["key"] for entry in entries if entry.get("operation") == "HeadObject")
    assert heads == [key]
    lines = {line.split()[-1]: line.split()[0] for line in after.splitlines()[1:]}
    assert lines["f03"] == "-rw-------" and lines["f05"] == "-rw-r-----" and lines["f06"] == "-rw-r--r--"
    # Everything else is shown as before the remount.
    assert [line for line in after.splitlines() if " f05" not in line] == [line for line in before.splitlines() if " f05" not in line]


def test_a_mode_and_times_set_while_a_file_is_written_ride_on_its_upload(obs_local, mount_factory):
    """`cp -p`, rsync: fchmod and futimens of a new file being written are stored with its upload,
    and the object is not asked for meanwhile (a HEAD answered 404 for each change)."""
    mount = mount_factory(obs_local)
    base = make_base(mount)
    key = f"{base.name}/kept"
    fd = os.open(base / "kept", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    log_start = len(obs_local.request_log.read_text().splitlines())
    try:
        os.write(fd, b"data")
        os.fchmod(fd, 0o600)
        os.utime(fd, (1577836800, 1577836800))
    finally:
        os.close(fd)
    entries = [json.loads(line) for line in obs_local.request_log.read_text().splitlines()[log_start:]]
    asked = [entry["operation"] for entry in entries if entry.get("key") == key]
    assert "HeadObject" not in asked, asked
    assert server_body(obs_local, key) == b"data"
    assert stored_mode(obs_local, key) & 0o7777 == 0o600
    assert int(float(metadata(obs_local, key)["mtime"])) == 1577836800
    status = os.stat(base / "kept")
    assert stat.S_IMODE(status.st_mode) == 0o600 and int(status.st_mtime) == 1577836800


def test_a_file_changed_in_place_is_read_without_asking_again(obs_local, mount_factory):
    """A chmod of a closed file on OBS changes its metadata in place (`PUT ?metadata` keeps the
    ETag): rsync's open after its chmod reads the object at once, without a HEAD, nor a lookup's
    three requests (HEAD, HEAD of `name_$folder$`, LIST of `name/`) as it once did. (The open's
    own check for other clients' changes, open_revalidate=, is kept out of the count.)"""
    mount = mount_factory(obs_local, ["open_revalidate=60"])
    base = make_base(mount)
    key = f"{base.name}/f"
    (base / "f").write_bytes(b"content")
    os.chmod(base / "f", 0o600)
    log_start = len(obs_local.request_log.read_text().splitlines())
    assert (base / "f").read_bytes() == b"content"
    entries = [json.loads(line) for line in obs_local.request_log.read_text().splitlines()[log_start:]]
    asked = [(entry["operation"], entry.get("key")) for entry in entries]
    assert asked == [("GetObject", key)], asked


def test_an_empty_file_is_renamed_truncated_and_read_right_after_its_close(mount, base):
    """close() returned: the kernel's release may come a moment later, and the empty file is the
    stored zero-byte object meanwhile (`sed -i` with an empty result, `touch f; mv f g`)."""
    server, prefix = mount.server, base.name + "/"
    (base / "lines").write_text("a\nb\n")
    run("sed", "-i", "d", base / "lines")
    assert server_body(server, prefix + "lines") == b""
    for index in range(20):
        os.close(os.open(base / f"e{index}", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644))
        os.rename(base / f"e{index}", base / f"moved{index}")
        os.close(os.open(base / f"t{index}", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644))
        os.truncate(base / f"t{index}", 10)
        assert (base / f"t{index}").read_bytes() == bytes(10)
    time.sleep(0.5)  # the last releases
    sizes = {name: item["Size"] for name, item in server_objects(server, prefix).items()}
    assert sorted(sizes) == sorted(["lines"] + [f"moved{index}" for index in range(20)] + [f"t{index}" for index in range(20)])
    assert all(sizes[f"moved{index}"] == 0 and sizes[f"t{index}"] == 10 for index in range(20))
    assert uploads_in_progress(server, prefix) == []


def test_rsync_x_copies_symlinks_and_xattrs_out_of_the_mount(mount, base, tmp_path):
    """A symlink lists no `user.obs.*` names: Linux answers `user.*` of a symlink itself
    (ENODATA), and `rsync -aX` failed (exit 23) on every name listed, leaving the link out."""
    (base / "file").write_bytes(b"body")
    os.setxattr(base / "file", "user.note", b"kept")
    os.symlink("file", base / "link")
    assert os.listxattr(base / "link", follow_symlinks=False) == []
    run("rsync", "-aX", f"{base}/", tmp_path / "copy")
    assert os.readlink(tmp_path / "copy" / "link") == "file"
    assert os.getxattr(tmp_path / "copy" / "file", "user.note") == b"kept"


def test_chown_minus_one_changes_the_ctime_alone(mount, base):
    """chown(f, -1, -1) moves the ctime (Linux does; POSIX suites check it), nothing else."""
    path = base / "f"
    path.write_bytes(b"x")
    os.chmod(path, 0o4755)
    before = os.stat(path)
    time.sleep(1.1)
    os.chown(path, -1, -1)
    after = os.stat(path)
    assert after.st_ctime_ns > before.st_ctime_ns
    assert (after.st_mtime_ns, after.st_mode, after.st_uid) == (before.st_mtime_ns, before.st_mode, before.st_uid)
