"""Checks shared by the namespace tests (issue 8): a local reference tree, what `stat` shows of a
tree, what the server holds under a prefix, and how obsmount stores POSIX metadata (s3fs's
format: decimal `mode`, `uid`, `gid`, `mtime` in seconds with optional nanoseconds, and `xattr`
as percent-encoded JSON of Base64 values)."""
import base64
import hashlib
import json
import os
import pprint
import stat
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import MiB, uploads_in_progress, write_random

# 2020-09-13 12:26:40.123456789 UTC and later: whole seconds and nanoseconds both appear.
BASE_MTIME_NS = 1_600_000_000_123_456_789


def unique(stem):
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def make_reference_tree(root, large_size=6 * MiB):
    """A tree with subdirectories, modes, owners, nanosecond mtimes, an empty file, an empty
    directory, a file of several parts (`large_size`) and two symlinks. Returns `root`."""
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    files = {
        "top.txt": (b"top level\n" * 100, 0o644, None),
        "run.sh": (b"#!/bin/sh\necho hi\n", 0o755, None),
        "secret": (b"only the owner\n", 0o600, (1234, 5678)),
        "empty": (b"", 0o640, None),
        "sub/note.txt": (b"a note in sub\n" * 10, 0o664, (4321, 0)),
        "sub/deep/readme": (b"deep\n", 0o444, None),
    }
    for offset, (relative, (body, mode, owner)) in enumerate(sorted(files.items())):
        path = root / relative
        path.write_bytes(body)
        path.chmod(mode)
        if owner:
            os.chown(path, *owner)
        os.utime(path, ns=(BASE_MTIME_NS, BASE_MTIME_NS + offset * 1_000_000_007))
    large = write_random(root / "sub" / "deep" / "large.bin", large_size, seed=8)
    large.chmod(0o640)
    os.utime(large, ns=(BASE_MTIME_NS, BASE_MTIME_NS + 77))
    (root / "sub" / "to-top").symlink_to("../top.txt")
    (root / "dangling").symlink_to("does/not/exist yet")
    modes = {"sub/deep": 0o700, "sub": 0o750, "empty-dir": 0o755}
    for offset, (relative, mode) in enumerate(modes.items()):  # deepest first: children change parents' mtimes
        directory = root / relative
        directory.chmod(mode)
        os.utime(directory, ns=(BASE_MTIME_NS, BASE_MTIME_NS - (offset + 1) * 3_000_000_000))
    return root


def tree_stat(root, mtimes=True, owners=True):
    """relative path → what lstat and readlink show: type, permission bits, owner, size (files
    and links), mtime in ns (not for links: their times are not preserved by every tool),
    link target, a device's number. `.` is the root itself (its mode only)."""
    seen = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            kind = stat.S_IFMT(info.st_mode)
            entry = {"type": kind, "mode": oct(stat.S_IMODE(info.st_mode))}
            if owners:
                entry["owner"] = (info.st_uid, info.st_gid)
            if kind != stat.S_IFDIR:
                entry["size"] = info.st_size
            if mtimes and kind != stat.S_IFLNK:
                entry["mtime_ns"] = info.st_mtime_ns
            if kind == stat.S_IFLNK:
                entry["target"] = os.readlink(path)
            if kind in (stat.S_IFCHR, stat.S_IFBLK):
                entry["rdev"] = info.st_rdev
            seen[os.path.relpath(path, root)] = entry
    return seen


def server_objects(server, prefix):
    """key below `prefix` (prefix removed) → object summary of the listing (Size, ETag, …); the
    marker of the prefix itself (key `prefix`) is left out."""
    found = {}
    for page in server.s3.get_paginator("list_objects_v2").paginate(Bucket=server.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"][len(prefix):]] = item
    found.pop("", None)
    return found


def server_body(server, key):
    return server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read()


def deleted_after_release(server, key, seconds=10):
    """Whether `key` is gone from the server within `seconds`: the kernel sends the release of a
    closed file after `close()` has returned."""
    directory, name = key.rsplit("/", 1)
    deadline = time.monotonic() + seconds
    while name in server_objects(server, directory + "/"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def metadata(server, key):
    """The object's user metadata (names without x-amz-meta-/x-obs-meta-)."""
    return server.s3.head_object(Bucket=server.bucket, Key=key)["Metadata"]


def stored_mode(server, key):
    return int(metadata(server, key)["mode"])


def stored_xattrs(server, key):
    """name → bytes of the object's `xattr` metadata (s3fs's format)."""
    text = metadata(server, key).get("xattr")
    if text is None:
        return {}
    return {name: base64.b64decode(value) for name, value in json.loads(urllib.parse.unquote(text)).items()}


def md5(data):
    return hashlib.md5(data).hexdigest()


def check_tree_on_server(server, prefix, local_root):
    """The server holds exactly `local_root` under `prefix`: each file with its size and MD5, each
    directory as a `d/` marker carrying its mode, each symlink as an object whose body is the
    target and whose mode has S_IFLNK; no other key (temporary files of rsync, …)."""
    expected = {}
    for directory, dirnames, filenames in os.walk(local_root):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, local_root)
            info = os.lstat(path)
            expected[relative + "/" if stat.S_ISDIR(info.st_mode) else relative] = (path, info)
    objects = server_objects(server, prefix)
    assert sorted(objects) == sorted(expected)

    def check(item):
        relative, (path, info) = item
        key = prefix + relative
        mode = stored_mode(server, key)
        assert stat.S_IMODE(mode) == stat.S_IMODE(info.st_mode), (key, oct(mode), oct(info.st_mode))
        if stat.S_ISDIR(info.st_mode):
            assert objects[relative]["Size"] == 0 and stat.S_IFMT(mode) in (0, stat.S_IFDIR), (key, oct(mode))
        elif stat.S_ISLNK(info.st_mode):
            assert stat.S_IFMT(mode) == stat.S_IFLNK, (key, oct(mode))
            assert server_body(server, key) == os.readlink(path).encode()
        else:
            assert stat.S_IFMT(mode) == stat.S_IFREG, (key, oct(mode))
            assert objects[relative]["Size"] == info.st_size, key
            with open(path, "rb") as local:
                assert md5(server_body(server, key)) == md5(local.read()), key

    # Files and links first, then directories (on SeaweedFS only directory metadata is known to fail).
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(check, [item for item in expected.items() if not item[0].endswith("/")]))
        list(pool.map(check, [item for item in expected.items() if item[0].endswith("/")]))


def assert_same_tree(seen, expected):
    """Two tree views (tree_stat) are equal: files and links compared first, then directories;
    a failure lists every differing field as (seen, expected)."""
    assert sorted(seen) == sorted(expected)
    for want_directories in (False, True):
        differences = {}
        for relative in sorted(expected):
            if (expected[relative]["type"] == stat.S_IFDIR) != want_directories:
                continue
            fields = set(seen[relative]) | set(expected[relative])
            differing = {field: (seen[relative].get(field), expected[relative].get(field)) for field in sorted(fields)
                         if seen[relative].get(field) != expected[relative].get(field)}
            if differing:
                differences[relative] = differing
        assert not differences, ("directories" if want_directories else "files and links") + " differ (seen, expected):\n" + \
            pprint.pformat(differences, width=150)


def assert_no_upload_left(server, prefix):
    """No multipart upload under `prefix`, waiting up to 10 s: an upload of an unlinked file is
    aborted when the kernel releases the file, which close() does not wait for."""
    deadline = time.monotonic() + 10
    while uploads_in_progress(server, prefix) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert uploads_in_progress(server, prefix) == []
