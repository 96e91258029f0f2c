"""Interoperability with Debian's s3fs on one obs-local bucket (issue 8): a tree written through
one tool is listed and stat'ed identically through the other (types, modes, owners, sizes,
nanosecond mtimes, symlink targets, a FIFO and a device node, user.* xattrs), both tools
freshly mounted."""
import importlib.util
import os
import shutil
import stat

import pytest

from conftest import REPO, MiB
from namespace_checks import BASE_MTIME_NS, assert_same_tree, make_reference_tree, tree_stat, unique

if shutil.which("s3fs") is None:
    pytest.skip("Debian's s3fs is not installed (scripts/setup installs it)", allow_module_level=True)

_spec = importlib.util.spec_from_file_location("s3fs_fixtures", REPO / "Tests" / "S3fs" / "conftest.py")
_s3fs_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_s3fs_fixtures)


def s3fs_mount(server, path):
    """s3fs on the server's bucket with its POSIX metadata and xattrs on (`use_xattr`)."""
    return _s3fs_fixtures.S3fsMount(server, path, path.parent, extra_options=["use_xattr"])


def write_tree(root):
    """The reference tree plus a FIFO and a device node, and user.* xattrs on a file and a directory."""
    make_reference_tree(root, large_size=2 * MiB)
    os.mkfifo(root / "pipe", 0o640)
    os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    for offset, name in enumerate(["pipe", "null"]):
        os.utime(root / name, ns=(BASE_MTIME_NS, BASE_MTIME_NS + (offset + 1) * 5_000_000_011))
    os.setxattr(root / "top.txt", "user.foo", b"bar")
    os.setxattr(root / "top.txt", "user.binary", bytes(range(256)))
    os.setxattr(root / "sub" / "deep", "user.dir-note", b"on a directory")


def view(root):
    """What stat, readlink, listdir and getxattr show of the tree (user.* xattrs, less obsmount's own
    `user.obs.*`, which show the object's upload options: mount-options/xattrs.md)."""
    entries = tree_stat(root)
    for relative, entry in entries.items():
        entry.pop("rdev", None)  # s3fs keeps no device number (it shows 0); obsmount's own: test_namespace
        path = root / relative
        if entry["type"] in (stat.S_IFREG, stat.S_IFDIR):  # user.* xattrs exist on files and directories only
            entry["xattrs"] = {name: os.getxattr(path, name) for name in os.listxattr(path) 
                              if name.startswith("user.") and not name.startswith("user.obs.")}
        if entry["type"] == stat.S_IFDIR:
            entry["names"] = sorted(os.listdir(path))
    return entries


@pytest.fixture
def tree(tmp_path):
    """A local copy of the tree, written with the same calls: what both views must show."""
    write_tree(tmp_path / "reference")
    return view(tmp_path / "reference")


def views_through_both(obs_local, mount_factory, tmp_path, top):
    mounted_s3fs = s3fs_mount(obs_local, tmp_path / unique("s3fs"))
    try:
        through_s3fs = view(mounted_s3fs.mount_point / top)
    finally:
        mounted_s3fs.unmount()
    through_obsmount = view(mount_factory(obs_local).path / top)
    return through_s3fs, through_obsmount


def test_tree_written_by_s3fs_looks_the_same_through_obsmount(obs_local, mount_factory, tmp_path, tree):
    top = unique("by-s3fs")
    writer = s3fs_mount(obs_local, tmp_path / "s3fs-writer")
    try:
        write_tree(writer.mount_point / top)
    finally:
        writer.unmount()
    through_s3fs, through_obsmount = views_through_both(obs_local, mount_factory, tmp_path, top)
    assert_same_tree(through_s3fs, tree)  # s3fs kept everything: the comparison below means something
    assert_same_tree(through_obsmount, through_s3fs)


def test_tree_written_by_obsmount_looks_the_same_through_s3fs(obs_local, mount_factory, tmp_path, tree):
    top = unique("by-obsmount")
    writer = mount_factory(obs_local)
    write_tree(writer.path / top)
    writer.unmount()
    through_s3fs, through_obsmount = views_through_both(obs_local, mount_factory, tmp_path, top)
    assert_same_tree(through_obsmount, tree)
    assert_same_tree(through_s3fs, through_obsmount)
