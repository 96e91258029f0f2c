"""`user.obs.*` upload options through real mounts (mount-options/xattrs.md).

Every parameter is set three ways (mount option, directory xattr, file xattr), a multi-part file
is written, and the object is read back with the official SDK (OBS dialect, obs-local) and with
boto3 (V4, SeaweedFS, for what SeaweedFS keeps). Then: changes while a file uploads, closed
objects, validation errnos, inheritance, remounts, cp and rsync.
"""
import errno
import hashlib
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from obs import ObsClient, SseCHeader

from conftest import MiB, Mount, uploads_in_progress

SSE_C_KEY = hashlib.sha256(b"obsmount xattr test key").digest()
FILE_SIZE = 2 * MiB + 300 * 1024  # three parts of the 1 MiB parts every mount here uses
PART_OPTIONS = ["part_size=1M" , "parallel=2", "memory_budget=16M"]
S3_PART_OPTIONS = ["part_size=5M", "parallel=2", "memory_budget=32M"]
S3_FILE_SIZE = 11 * MiB  # three parts of 5 MiB (S3's smallest part)
LOCK_UNTIL = (datetime.now(timezone.utc) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def unique(stem):
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def sdk(server):
    return ObsClient(access_key_id=server.access_key, secret_access_key=server.secret_key, server=server.url,
                     path_style=True, is_signature_negotiation=False, client_mode="local")


def sdk_call(server, method, key, **kwargs):
    client = sdk(server)
    try:
        reply = getattr(client, method)(server.bucket, key, **kwargs)
    finally:
        client.close()
    assert reply.status < 300, (method, key, reply.status, reply.errorCode, reply.errorMessage)
    return reply


def sdk_headers(server, key, **kwargs):
    """HEAD through the SDK: its header list (prefixes x-obs- and x-obs-meta- stripped)."""
    return dict(sdk_call(server, "getObjectMetadata", key, **kwargs).header)


def sdk_grants(server, key):
    acl = sdk_call(server, "getObjectAcl", key).body
    return {(grant["grantee"].get("grantee_id") or grant["grantee"].get("group"), grant["permission"]) for grant in acl["grants"]}


def expiry_days(header):
    date = parsedate_to_datetime(header.split('expiry-date="')[1].split('"')[0])
    return (date - datetime.now(timezone.utc)).total_seconds() / 86400


# Each parameter: the attributes that set it (the last one is the parameter; any before it are
# what it needs), the check of the object on obs-local with the SDK, and on SeaweedFS with boto3
# (None where SeaweedFS does not keep the value).

@dataclass
class Parameter:
    id: str
    attributes: list
    check_obs: object
    check_s3: object = None

    def mount_options(self):
        return [f"{name if name.startswith(('meta.', 'persistent.')) else name.replace('-', '_')}={value.replace(',', chr(92) + ',')}"
                for name, value in self.attributes]


PARAMETERS = [
    Parameter("acl", [("acl", "public-read")],
              lambda s, k: ("Everyone", "READ") in sdk_grants(s, k)),
    *[Parameter(grant, [(grant, "id=domain1,id=domain2")],
                lambda s, k, p=permission: {("domain1", p), ("domain2", p)} <= sdk_grants(s, k))
      for grant, permission in [("grant-read", "READ"), ("grant-read-acp", "READ_ACP"), ("grant-write-acp", "WRITE_ACP"),
                                ("grant-full-control", "FULL_CONTROL")]],
    Parameter("storage-class", [("storage-class", "WARM")],
              lambda s, k: sdk_call(s, "getObjectMetadata", k).body["storageClass"] == "WARM",
              lambda s, k: s.s3.head_object(Bucket=s.bucket, Key=k)["StorageClass"] == "STANDARD_IA"),
    Parameter("meta", [("meta.color", "blue")],
              lambda s, k: sdk_headers(s, k)["color"] == "blue",
              lambda s, k: s.s3.head_object(Bucket=s.bucket, Key=k)["Metadata"] == {"color": "blue"}),
    Parameter("meta-non-ascii", [("meta.owner", "Zoë 50%")],
              lambda s, k: sdk_headers(s, k)["owner"] in ("Zoë 50%", "Zo%C3%AB 50%25")),
    Parameter("content-type", [("content-type", "text/x-obsmount")],
              lambda s, k: sdk_call(s, "getObjectMetadata", k).body["contentType"] == "text/x-obsmount",
              lambda s, k: s.s3.head_object(Bucket=s.bucket, Key=k)["ContentType"] == "text/x-obsmount"),
    Parameter("content-encoding", [("content-encoding", "gzip")],
              lambda s, k: sdk_headers(s, k)["content-encoding"] == "gzip",
              lambda s, k: s.s3.head_object(Bucket=s.bucket, Key=k)["ContentEncoding"] == "gzip"),
    Parameter("website-redirect", [("website-redirect", "/elsewhere.html")],
              lambda s, k: sdk_headers(s, k)["website-redirect-location"] == "/elsewhere.html"),
    Parameter("sse-obs", [("sse", "obs")],
              lambda s, k: sdk_headers(s, k)["server-side-encryption"] == "AES256",
              lambda s, k: s.s3.head_object(Bucket=s.bucket, Key=k)["ServerSideEncryption"] == "AES256"),
    Parameter("sse-kms-key-id", [("sse", "kms"), ("sse-kms-key-id", "region:domain:key/abc")],
              lambda s, k: (sdk_headers(s, k)["server-side-encryption"], sdk_headers(s, k)["server-side-encryption-kms-key-id"])
              == ("kms", "region:domain:key/abc")),
    # obs-local keeps the KMS key id but does not echo the bucket-key flag (real OBS does not
    # either); the mount reads it back from what it initiated with (checked below).
    Parameter("sse-kms-bucket-key", [("sse-kms-key-id", "k1"), ("sse-kms-bucket-key", "true")],
              lambda s, k: sdk_headers(s, k)["server-side-encryption-kms-key-id"] == "k1"),
    Parameter("sse-c", [("sse", "c")],
              lambda s, k: sdk_headers(s, k, sseHeader=SseCHeader(encryption="AES256", key=SSE_C_KEY))["server-side-encryption-customer-algorithm"] == "AES256"),
    Parameter("expires", [("expires", "30")],
              lambda s, k: 29 <= expiry_days(sdk_call(s, "getObjectMetadata", k).body["expiration"]) <= 32),
    Parameter("tagging", [("tagging", "team=ops&tier=1")],
              lambda s, k: [(tag["key"], tag["value"]) for tag in sdk_call(s, "getObjectTagging", k).body["tags"]] == [("team", "ops"), ("tier", "1")],
              lambda s, k: s.s3.get_object_tagging(Bucket=s.bucket, Key=k)["TagSet"] == [{"Key": "team", "Value": "ops"}, {"Key": "tier", "Value": "1"}]),
    # The SDK's reply drops headers it does not know: the persistent header is read from the raw reply.
    Parameter("persistent-header", [("persistent.x-app-mode", "fast")],
              lambda s, k: s.s3.head_object(Bucket=s.bucket, Key=k)["ResponseMetadata"]["HTTPHeaders"]["x-app-mode"] == "fast"),
    Parameter("object-lock", [("object-lock-mode", "COMPLIANCE"), ("object-lock-retain-until", LOCK_UNTIL)],
              lambda s, k: (sdk_headers(s, k)["object-lock-mode"], sdk_headers(s, k)["object-lock-retain-until-date"]) == ("COMPLIANCE", LOCK_UNTIL)),
]


def cases(ways):
    out = []
    for server in ("obs-local", "seaweedfs"):
        for parameter in PARAMETERS:
            if server == "seaweedfs" and parameter.check_s3 is None:
                continue
            for way in ways:
                out.append(pytest.param(server, parameter, way, id=f"{server}-{way}-{parameter.id}"))
    return out


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "sse-c.key"
    path.write_bytes(SSE_C_KEY)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def module_mounts(tmp_path_factory):
    mounts = {}
    yield mounts
    for mount in mounts.values():
        mount.unmount()


def shared_mount(request, server_name, module_mounts, key_file, tmp_path_factory, options=()):
    """One mount per server (and option set) for the whole module, under its own prefix."""
    index = (server_name, tuple(options))
    if index not in module_mounts:
        server = request.getfixturevalue("obs_local" if server_name == "obs-local" else "seaweedfs")
        parts = PART_OPTIONS if server_name == "obs-local" else S3_PART_OPTIONS
        prefix = unique("xattrs")
        module_mounts[index] = Mount(server, tmp_path_factory.mktemp("mounts"), [*parts, f"sse_c_key_file={key_file}", *options], prefix=prefix)
        module_mounts[index].prefix = prefix
    return module_mounts[index]


def prefixed_mount(mount_factory, server, options):
    prefix = unique("mnt")
    mount = mount_factory(server, options, prefix=prefix)
    mount.prefix = prefix
    return mount


def file_size(server):
    return FILE_SIZE if server.name == "obs-local" else S3_FILE_SIZE


def write_file(path, size, attributes=(), chunk=256 * 1024):
    """Creates `path`, sets `attributes` on the open file before any byte, writes `size` bytes,
    closes; returns the MD5 of what was written."""
    md5 = hashlib.md5()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for name, value in attributes:
            os.setxattr(descriptor, f"user.obs.{name}", value.encode())
        block = os.urandom(chunk)
        written = 0
        while written < size:
            piece = block[: min(chunk, size - written)]
            os.write(descriptor, piece)
            md5.update(piece)
            written += len(piece)
    finally:
        os.close(descriptor)
    return md5.hexdigest()


def make_directory(mount, name):
    """A directory exists when a key lies under it: a marker object (obsmount has no mkdir yet)."""
    mount.server.s3.put_object(Bucket=mount.server.bucket, Key=f"{mount.prefix}/{name}/", Body=b"")
    return mount.path / name


def check(server, parameter, key):
    checker = parameter.check_obs if server.name == "obs-local" else parameter.check_s3
    assert checker(server, key), f"{parameter.id} not on {key}"
    size = file_size(server)
    reply = server.s3.head_object(Bucket=server.bucket, Key=key,
                                  **({"SSECustomerAlgorithm": "AES256", "SSECustomerKey": SSE_C_KEY} if parameter.id == "sse-c" else {}))
    assert reply["ContentLength"] == size
    assert reply["ETag"].strip('"').endswith("-3"), reply["ETag"]


@pytest.mark.parametrize("server_name,parameter,way", cases(["mount-option", "directory", "file"]))
def test_every_parameter_reaches_the_server(request, server_name, parameter, way, module_mounts, key_file, tmp_path_factory, mount_factory):
    if way == "mount-option":
        server = request.getfixturevalue("obs_local" if server_name == "obs-local" else "seaweedfs")
        parts = PART_OPTIONS if server_name == "obs-local" else S3_PART_OPTIONS
        mount = prefixed_mount(mount_factory, server, [*parts, f"sse_c_key_file={key_file}", *parameter.mount_options()])
        target, attributes = mount.path / "f.bin", ()
    else:
        mount = shared_mount(request, server_name, module_mounts, key_file, tmp_path_factory)
        if way == "directory":
            directory = make_directory(mount, unique(parameter.id))
            for name, value in parameter.attributes:
                os.setxattr(directory, f"user.obs.{name}", value.encode())
            target, attributes = directory / "f.bin", ()
        else:
            target, attributes = mount.path / unique(parameter.id), parameter.attributes
    write_file(target, file_size(mount.server), attributes)
    key = f"{mount.prefix}/{target.relative_to(mount.path)}"
    check(mount.server, parameter, key)
    # The mount reads the value back from the object.
    for name, value in parameter.attributes:
        assert os.getxattr(target, f"user.obs.{name}").decode() == value
