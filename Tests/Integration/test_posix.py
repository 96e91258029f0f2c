"""POSIX behaviour that programs and filesystem test suites check, through a real mount on
obs-local: other users and their permissions (a mount made by root is shared, with the kernel
checking modes), and what a local filesystem does that object storage has no request for."""
import errno
import os
import subprocess
import time

import pytest

from conftest import EXTRA_MOUNT_OPTIONS, fault_admin, head, uploads_in_progress
from namespace_checks import deleted_after_release, server_body, server_objects, stored_mode, unique
# Shared writable mmap of an existing object, without writeback_cache (FUSE_DIRECT_IO_ALLOW_MMAP).
from test_writeback import test_mmap_writes_reach_the_object  # noqa: F401

NOBODY = 65534


def as_nobody(directory, action):
    """Runs `action(descriptor)` in a child process as user and group nobody, with `directory`
    opened before the switch (the test's own directories above the mount are root's alone);
    returns the errno it raised, 0 when it succeeded."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(reader)
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action(descriptor)
            outcome = 0
        except OSError as error:
            outcome = error.errno
        os.write(writer, str(outcome).encode())
        os._exit(0)
    os.close(writer)
    os.close(descriptor)
    outcome = os.read(reader, 64)
    os.close(reader)
    assert os.waitpid(child, 0)[1] == 0
    return int(outcome)


def read_file(name):
    return lambda directory: os.close(os.open(name, os.O_RDONLY, dir_fd=directory))


def test_a_root_mount_is_shared_and_modes_are_checked(mount):
    directory = mount.path / unique("shared")
    directory.mkdir()  # 0755 (umask 022); on SeaweedFS, which keeps no directory modes, as this mount remembers it
    assert os.stat(directory).st_mode & 0o777 == 0o755
    (directory / "public").write_bytes(b"for everyone")
    os.chmod(directory / "public", 0o644)
    (directory / "private").write_bytes(b"for root")
    os.chmod(directory / "private", 0o600)

    assert as_nobody(directory, read_file("public")) == 0
    assert as_nobody(directory, read_file("private")) == errno.EACCES
    assert as_nobody(directory, lambda d: os.open("public", os.O_WRONLY | os.O_APPEND, dir_fd=d)) == errno.EACCES
    assert as_nobody(directory, lambda d: os.open("new", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=d)) == errno.EACCES
    assert as_nobody(directory, lambda d: os.chmod("public", 0o666, dir_fd=d)) == errno.EPERM
    assert as_nobody(directory, lambda d: os.unlink("public", dir_fd=d)) == errno.EACCES
    assert sorted(os.listdir(directory)) == ["private", "public"]


def test_noallow_other_keeps_the_mount_to_its_user(server, mount_factory):
    private = mount_factory(server, options=["noallow_other"])
    assert as_nobody(private.path, os.listdir) == errno.EACCES
    assert as_nobody(private.path, read_file(".")) == errno.EACCES


def test_names_changed_in_a_directory_advance_its_times_and_tar_keeps_the_archived_ones(obs_local, mount_factory, tmp_path):
    # obs-local only: SeaweedFS keeps no times on directory markers (test_namespace.py).
    mount = mount_factory(obs_local)
    directory = mount.path / unique("times")
    directory.mkdir()
    os.utime(directory, (1_000_000_000, 1_000_000_000))
    for change in (lambda: (directory / "f").write_bytes(b"x"), lambda: os.rename(directory / "f", directory / "g"),
                   lambda: os.symlink("g", directory / "s"), lambda: os.unlink(directory / "s"),
                   lambda: os.mkdir(directory / "m"), lambda: os.rmdir(directory / "m")):
        os.utime(directory, (1_000_000_000, 1_000_000_000))
        before = os.stat(directory)
        change()
        after = os.stat(directory)
        assert after.st_mtime > before.st_mtime and after.st_ctime > before.st_ctime

    # tar sets each directory's archived times after filling it; those are the ones shown.
    source = tmp_path / "tree"
    (source / "inner").mkdir(parents=True)
    (source / "inner" / "file").write_bytes(b"archived")
    os.utime(source / "inner", (1_100_000_000, 1_100_000_000))
    os.utime(source, (1_200_000_000, 1_200_000_000))
    archive = tmp_path / "tree.tar"
    subprocess.run(["tar", "cf", str(archive), "-C", str(tmp_path), "tree"], check=True)
    target = mount.path / unique("untar")
    target.mkdir()
    subprocess.run(["tar", "xf", str(archive), "-C", str(target)], check=True)
    assert os.stat(target / "tree" / "inner").st_mtime == 1_100_000_000
    assert os.stat(target / "tree").st_mtime == 1_200_000_000


def test_a_file_unlinked_while_open_is_read_to_the_end_and_deleted_at_its_last_close(mount):
    directory = mount.path / unique("unlinked")
    directory.mkdir()
    body = os.urandom(3 * 1024 * 1024 + 5)
    (directory / "f").write_bytes(body)
    key = f"{directory.name}/f"
    with open(directory / "f", "rb") as reader:
        start = reader.read(1000)
        os.unlink(directory / "f")
        assert not os.path.exists(directory / "f") and os.listdir(directory) == []
        assert server_body(mount.server, key) == body  # kept for the open descriptor
        assert start + reader.read() == body
    assert deleted_after_release(mount.server, key)


def test_a_new_file_unlinked_while_written_and_read_leaves_nothing_after_both_close(obs_local, mount_factory):
    """A reader opened during the stream (and not read yet), the file unlinked, the writer closed
    first: its release completes the upload (hidden, for the reader), and the reader's release
    must not delete the object before that completion ends. The DELETE came first and the object
    stayed on the server, shown again after a remount (found by helperC's stress: 3 of 3 runs;
    here the completion is held back 1.5 s so that the reader's release always comes during it)."""
    mount = mount_factory(obs_local)
    directory = mount.path / unique("unlinked-stream")
    directory.mkdir()
    key = f"{directory.name}/f"
    fault_admin(obs_local, "POST", {"operation": "CompleteMultipartUpload", "key": key, "times": 1, "action": "delay", "delayMs": 1500})
    try:
        writer = os.open(directory / "f", os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
        reader = os.open(directory / "f", os.O_RDONLY)
        try:
            os.pwrite(writer, os.urandom(800_000), 0)
            os.unlink(directory / "f")
        finally:
            os.close(writer)
            time.sleep(0.5)  # the writer's release is completing the upload, held back
            os.close(reader)
        deadline = time.monotonic() + 10
        while f"{key}: deleted (unlinked while open, now closed)" not in mount.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        fault_admin(obs_local, "DELETE")
    time.sleep(0.5)
    assert "f" not in server_objects(obs_local, directory.name + "/")
    assert uploads_in_progress(obs_local, key) == []
    assert os.listdir(directory) == []


def test_stat_while_changing_shows_the_new_mtime_which_stays_after_close(mount):
    # stat during an in-place change showed the old mtime, which the kernel then kept for
    # attr_timeout after close() (make and rsync saw no change).
    path = mount.path / unique("mtime")
    path.write_bytes(b"abc")
    os.utime(path, ns=(5 * 10**9, 5 * 10**9))
    started = time.time()
    descriptor = os.open(path, os.O_RDWR)
    os.pwrite(descriptor, b"X", 0)
    during = os.fstat(descriptor).st_mtime
    os.close(descriptor)
    after = os.stat(path).st_mtime
    assert during >= started - 1 and after == during
    assert float(head(mount.server, path.name)["Metadata"]["mtime"]) == pytest.approx(during, abs=1e-3)


def test_reading_a_directory_removed_while_a_process_is_in_it_lists_nothing(mount):
    directory = mount.path / unique("removed")
    directory.mkdir()
    probe = "import os; os.rmdir(os.getcwd()); print(os.listdir('.'))"
    result = subprocess.run(["python3", "-c", probe], cwd=directory, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "[]\n", result.stderr


def test_names_longer_than_name_max_answer_enametoolong_as_on_ext4(mount):
    # pjdfstest open/02, mkdir/02, unlink/02, rmdir/02, rename/01: a 255-byte name works; a
    # 256-byte one is refused, and a missing one is ENAMETOOLONG too (it was ENOENT).
    directory = mount.path / unique("names")
    directory.mkdir()
    longest, longer = "n" * 255, "n" * 256
    (directory / longest).write_bytes(b"255")
    assert server_body(mount.server, f"{directory.name}/{longest}") == b"255"
    for call in (lambda: os.open(directory / longer, os.O_CREAT | os.O_WRONLY, 0o644), lambda: os.mkdir(directory / longer),
                 lambda: os.unlink(directory / longer), lambda: os.rmdir(directory / longer), lambda: os.stat(directory / longer),
                 lambda: os.rename(directory / longer, directory / "x"), lambda: os.rename(directory / longest, directory / longer)):
        with pytest.raises(OSError) as raised:
            call()
        assert raised.value.errno == errno.ENAMETOOLONG
    assert sorted(server_objects(mount.server, directory.name + "/")) == [longest]


def test_a_missing_name_whose_key_would_pass_the_stores_limit_is_missing(mount):
    # Found by a pjdfstest run: in a directory another client made (so the mount does not know it
    # is empty), a lookup of a name whose key would be over 1,024 bytes answered EIO (the store
    # refuses the HEAD). It is missing (ENOENT, as on ext4), and making it is ENAMETOOLONG.
    server = mount.server
    deep = unique("deep") + "/" + "/".join(f"d{index}" + "x" * 120 for index in range(7))
    server.s3.put_object(Bucket=server.bucket, Key=deep + "/present", Body=b"p")
    directory = mount.path / deep
    assert os.listdir(directory) == ["present"]
    name = "f" * (1030 - len(deep) - 1)
    assert len(f"{deep}/{name}".encode()) == 1030
    for call, expected in ((lambda: os.stat(directory / name), errno.ENOENT),
                           (lambda: os.open(directory / name, os.O_CREAT | os.O_WRONLY, 0o644), errno.ENAMETOOLONG),
                           (lambda: os.mkdir(directory / name), errno.ENAMETOOLONG)):
        with pytest.raises(OSError) as raised:
            call()
        assert raised.value.errno == expected
    assert list(server_objects(server, deep + "/")) == ["present"]
    assert "answered EIO" not in mount.log_text()


def test_fallocate_extends_with_zeros_and_refuses_holes(mount):
    directory = mount.path / unique("fallocate")
    directory.mkdir()
    key = f"{directory.name}/f"
    subprocess.run(["fallocate", "-l", "1M", str(directory / "f")], check=True)
    assert server_body(mount.server, key) == bytes(1024 * 1024)
    (directory / "g").write_bytes(b"start")
    with open(directory / "g", "r+b") as changed:
        os.posix_fallocate(changed.fileno(), 0, 4096)
    assert server_body(mount.server, f"{directory.name}/g") == b"start" + bytes(4091)
    punch = subprocess.run(["fallocate", "-p", "-o", "0", "-l", "4096", str(directory / "g")], capture_output=True, text=True)
    assert punch.returncode != 0 and "unsupported" in punch.stderr  # EOPNOTSUPP
    assert server_body(mount.server, f"{directory.name}/g") == b"start" + bytes(4091)


def test_a_file_renamed_while_open_is_read_on_and_read_under_its_new_name(mount):
    directory = mount.path / unique("renamed")
    directory.mkdir()
    body = os.urandom(40 * 1024 * 1024)
    (directory / "old").write_bytes(body)  # several parts: its ETag is not its copy's
    with open(directory / "old", "rb") as reader:
        start = reader.read(1000)
        os.rename(directory / "old", directory / "new")
        assert os.listdir(directory) == ["new"]
        assert (directory / "new").read_bytes() == body
        assert start + reader.read() == body
    assert deleted_after_release(mount.server, f"{directory.name}/old")
    assert set(server_objects(mount.server, directory.name + "/")) == {"new"}
    assert server_body(mount.server, f"{directory.name}/new") == body


def test_readers_follow_a_native_rename_on_a_parallel_file_system_bucket(obs_local_pfs, mount_factory):
    """The bucket moves the object in one request, so its old key is gone at once: descriptors
    opened before go on reading it under the new key (before, they got ENOENT)."""
    mount = mount_factory(obs_local_pfs, [f"part_size={obs_local_pfs.part_size}"])
    directory = mount.path / unique("pfs-renamed")
    directory.mkdir()
    body = os.urandom(20 * 1024 * 1024)
    (directory / "f").write_bytes(body)
    (directory / "sub").mkdir()
    (directory / "sub" / "g").write_bytes(body)
    with open(directory / "f", "rb") as reader, open(directory / "sub" / "g", "rb") as inner:
        starts = reader.read(1000), inner.read(1000)
        os.rename(directory / "f", directory / "renamed")
        os.rename(directory / "sub", directory / "moved")
        assert starts[0] + reader.read() == body
        assert starts[1] + inner.read() == body
    assert server_body(obs_local_pfs, f"{directory.name}/renamed") == body
    assert server_body(obs_local_pfs, f"{directory.name}/moved/g") == body


def test_rm_r_removes_a_directory_while_a_file_in_it_is_open(mount):
    directory = mount.path / unique("held")
    (directory / "sub").mkdir(parents=True)
    (directory / "sub" / "log").write_bytes(b"being read")
    with open(directory / "sub" / "log", "rb"):
        subprocess.run(["rm", "-r", str(directory)], check=True)
        assert not directory.exists()
    assert server_objects(mount.server, directory.name + "/") == {}


def test_a_log_is_rotated_while_its_writer_goes_on_writing(mount):
    """logrotate's `mv log log.1` beside the program that holds `log` open for appending: the
    rename stores what was written, and every later line lands in log.1 (it answered EBUSY)."""
    directory = mount.path / unique("rotate")
    directory.mkdir()
    (directory / "log").write_bytes(b"old\n")
    with open(directory / "log", "ab", buffering=0) as appending:
        appending.write(b"new\n")
        os.rename(directory / "log", directory / "log.1")
        if "writeback_cache" not in EXTRA_MOUNT_OPTIONS:  # with it, the kernel still holds the line
            assert server_body(mount.server, f"{directory.name}/log.1") == b"old\nnew\n"
        assert sorted(os.listdir(directory)) == ["log.1"]
        for number in range(50):
            appending.write(b"line %d\n" % number)
    expected = b"old\nnew\n" + b"".join(b"line %d\n" % number for number in range(50))
    assert server_body(mount.server, f"{directory.name}/log.1") == expected
    assert set(server_objects(mount.server, directory.name + "/")) == {"log.1"}
    assert (directory / "log.1").read_bytes() == expected


def test_a_file_being_written_is_renamed_before_its_close(mount):
    """s3fs's test_rename_before_close, and a writer that goes on after the rename: a new file
    being streamed is completed as it stands, moved, and what follows is stored under the new
    name by the shell's close."""
    directory = mount.path / unique("rename-open")
    directory.mkdir()
    subprocess.run(["bash", "-c", "(echo foo; mv f f.new; echo bar) > f"], cwd=directory, check=True)
    assert server_body(mount.server, f"{directory.name}/f.new") == b"foo\nbar\n"
    # The child's exit closes the empty file first (stored empty), then the rename, then the
    # write: it was stored under the old name, and the new one read EIO (found by helper-40).
    subprocess.run(["bash", "-c", "(sleep 0.1; mv e e.new; echo bar) > e"], cwd=directory, check=True)
    assert server_body(mount.server, f"{directory.name}/e.new") == b"bar\n"
    assert (directory / "e.new").read_bytes() == b"bar\n"
    assert set(server_objects(mount.server, directory.name + "/")) == {"f.new", "e.new"}
    body = os.urandom(20 * 1024 * 1024)
    with open(directory / "big", "wb") as writer:
        writer.write(body[:12 * 1024 * 1024])  # parts sent
        os.rename(directory / "big", directory / "big.moved")
        writer.write(body[12 * 1024 * 1024:])
    assert server_body(mount.server, f"{directory.name}/big.moved") == body
    assert set(server_objects(mount.server, directory.name + "/")) == {"f.new", "e.new", "big.moved"}


def test_a_file_being_written_is_replaced_by_a_rename(mount):
    """`mv new.log app.log` while a program still appends to app.log: the rename replaces it (it
    answered EBUSY), and what the program writes afterwards goes nowhere, as on a local disk."""
    directory = mount.path / unique("replace-open")
    directory.mkdir()
    (directory / "app.log").write_bytes(b"old\n")
    (directory / "new.log").write_bytes(b"new\n")
    with open(directory / "app.log", "ab", buffering=0) as appending:
        appending.write(b"held\n")
        os.rename(directory / "new.log", directory / "app.log")
        appending.write(b"late\n")
    assert server_body(mount.server, f"{directory.name}/app.log") == b"new\n"
    assert set(server_objects(mount.server, directory.name + "/")) == {"app.log"}
    assert (directory / "app.log").read_bytes() == b"new\n"


def test_a_directory_is_renamed_while_files_in_it_are_being_written(mount):
    """`mv build build.old` during the build: the file being streamed and the log being appended
    are stored as they stand, moved with the directory, and what the programs write next lands
    under the new names (it answered EBUSY)."""
    directory = mount.path / unique("rename-dir-open")
    (directory / "build").mkdir(parents=True)
    (directory / "build" / "log").write_bytes(b"old\n")
    body = os.urandom(12 * 1024 * 1024)
    with open(directory / "build" / "log", "ab", buffering=0) as log, open(directory / "build" / "out", "wb") as out:
        log.write(b"started\n")
        out.write(body[:8 * 1024 * 1024])
        os.rename(directory / "build", directory / "build.old")
        assert sorted(os.listdir(directory)) == ["build.old"]
        log.write(b"done\n")
        out.write(body[8 * 1024 * 1024:])
    prefix = f"{directory.name}/build.old"
    assert server_body(mount.server, f"{prefix}/log") == b"old\nstarted\ndone\n"
    assert server_body(mount.server, f"{prefix}/out") == body
    assert set(server_objects(mount.server, directory.name + "/")) == {"build.old/", "build.old/log", "build.old/out"}


def test_a_file_closed_by_its_opener_is_renamed_while_a_child_still_holds_it(mount):
    """close() returned, but a child process keeps the descriptor (no release yet): the rename
    goes through, and what the child writes later lands under the new name."""
    directory = mount.path / unique("rotate-held")
    directory.mkdir()
    (directory / "log").write_bytes(b"old\n")
    descriptor = os.open(directory / "log", os.O_WRONLY | os.O_APPEND)
    os.write(descriptor, b"new\n")
    child = subprocess.Popen(["bash", "-c", f"read line; echo more >&{descriptor}"], pass_fds=[descriptor],
                             stdin=subprocess.PIPE)
    os.close(descriptor)  # the opener's close stores the append
    assert server_body(mount.server, f"{directory.name}/log") == b"old\nnew\n"
    os.rename(directory / "log", directory / "log.1")
    child.communicate(b"go\n", timeout=30)  # its write, then its exit: the release composes
    assert child.returncode == 0
    deadline = time.monotonic() + 20
    while server_body(mount.server, f"{directory.name}/log.1") != b"old\nnew\nmore\n" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server_body(mount.server, f"{directory.name}/log.1") == b"old\nnew\nmore\n"
    assert set(server_objects(mount.server, directory.name + "/")) == {"log.1"}
    assert (directory / "log.1").read_bytes() == b"old\nnew\nmore\n"


def through_descriptor(name, flags, act):
    """An action for `as_nobody`: opens `name` with `flags`, runs `act(descriptor)`, closes."""
    def action(directory):
        descriptor = os.open(name, flags, dir_fd=directory)
        try:
            act(descriptor)
        finally:
            os.close(descriptor)
    return action


def append_byte(name):
    return through_descriptor(name, os.O_WRONLY | os.O_APPEND, lambda d: os.write(d, b"+"))


def rewrite(name):
    return through_descriptor(name, os.O_WRONLY | os.O_TRUNC, lambda d: os.write(d, b"new"))


def truncate_to_one(name):
    return through_descriptor(name, os.O_WRONLY, lambda d: os.ftruncate(d, 1))


@pytest.mark.parametrize("cache", [[], ["writeback_cache"]], ids=["direct-io", "writeback_cache"])
def test_writes_truncates_and_chowns_drop_set_id_bits_as_on_a_local_disk(server, mount_factory, cache):
    """Linux drops S_ISUID (and S_ISGID where the group may execute) when a user other than root
    writes or truncates a file, and on every chown. obsmount does it itself (it asks the kernel
    to leave it to the filesystem); before, a write through direct I/O dropped nothing."""
    mount = mount_factory(server, [f"part_size={server.part_size}"] + cache)
    directory = mount.path / unique("setid")
    directory.mkdir()
    path = directory / "s"
    path.write_bytes(b"x")
    os.chown(path, NOBODY, NOBODY)
    key = f"{directory.name}/s"

    def after(permissions, action, as_root=False):
        os.chmod(path, permissions)
        if as_root:
            descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                action(descriptor)
            finally:
                os.close(descriptor)
        else:
            assert as_nobody(directory, action) == 0
        shown = os.stat(path).st_mode & 0o7777
        assert stored_mode(server, key) & 0o7777 == shown  # the object says the same
        return shown

    assert after(0o6777, append_byte("s")) == 0o0777
    assert after(0o6777, rewrite("s")) == 0o0777
    assert after(0o6777, truncate_to_one("s")) == 0o0777
    assert after(0o2744, append_byte("s")) == 0o2744  # the group may not execute, and is nobody's
    assert after(0o6755, append_byte("s"), as_root=True) == 0o6755
    assert after(0o6755, lambda d: os.chown("s", 1, -1, dir_fd=d), as_root=True) == 0o0755
    assert after(0o2744, lambda d: os.chown("s", NOBODY, -1, dir_fd=d), as_root=True) == 0o2744
    assert path.read_bytes() == server_body(server, key)


@pytest.mark.parametrize("prefix", [None, "rooted"], ids=["bucket", "prefix"])
def test_the_mount_root_keeps_its_mode_owner_and_times_across_mounts(private_obs_local, mount_factory, prefix):
    # What test suites and admins do first: open the mount to other users.
    mount = mount_factory(private_obs_local, prefix=prefix)
    os.chmod(mount.path, 0o1777)
    os.chown(mount.path, 1234, 5678)
    os.utime(mount.path, (1_000_000_000, 1_000_000_000))
    assert as_nobody(mount.path, lambda d: os.close(os.open("by-nobody", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=d))) == 0
    os.setxattr(mount.path, "user.note", b"kept")
    # The create advanced the root's mtime, which the xattr change stored with the marker.
    shown = os.stat(mount.path).st_mtime
    assert shown > 1_000_000_000
    mount.unmount()
    marker = f"{prefix}/" if prefix else ".obsmount-root"
    assert server_body(private_obs_local, marker) == b""
    assert stored_mode(private_obs_local, marker) & 0o7777 == 0o1777

    again = mount_factory(private_obs_local, prefix=prefix)
    root = os.stat(again.path)
    assert (root.st_mode & 0o7777, root.st_uid, root.st_gid) == (0o1777, 1234, 5678)
    assert root.st_mtime == pytest.approx(shown, abs=1e-6)
    assert os.getxattr(again.path, "user.note") == b"kept"
    assert os.listdir(again.path) == ["by-nobody"]  # the marker is never listed
    assert not os.path.exists(again.path / ".obsmount-root")
