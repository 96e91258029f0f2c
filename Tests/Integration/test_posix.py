"""POSIX behaviour that programs and filesystem test suites check, through a real mount on
obs-local: other users and their permissions (a mount made by root is shared, with the kernel
checking modes), and what a local filesystem does that object storage has no request for."""
import errno
import os

from namespace_checks import unique

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
    directory.mkdir()
    os.chmod(directory, 0o755)
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
