#!/usr/bin/env python3
"""Checks for the benchmarks: digests of the payload, and objects on the server (boto3, S3 V4).

  bench_s3.py digest FILE CHUNK_BYTES
      prints two words: the MD5 of FILE (hex) and the composite ETag a multipart upload of FILE in
      parts of CHUNK_BYTES has (md5(md5_1 || ... || md5_n)-n).
  bench_s3.py check --url URL --bucket B --key K --size N [--etag E | --composite] [--md5 M]
      HEAD of the object: its size must be N; its ETag must equal E, or with --composite have the
      form <32 hex>-<parts>; with --md5, GETs the object and compares the MD5 of its bytes.
      Prints "ok ETAG" (and the part count for a composite ETag), or one line on stderr and exit 1.
  bench_s3.py wait --url URL --bucket B (--key K --size N | --prefix P --count N --size S) --timeout T
      waits until the object K has N bytes, or until N objects of S bytes are listed under P
      (polled every 0.1 s). Prints "0" when that was so at the first look, else the time (Unix
      epoch seconds) of the first look that saw it; exit 1 after T seconds.
  bench_s3.py populate --url URL --bucket B --prefix P --count N
      writes P (a directory marker) and N objects P/fNNNNN of 4 KiB, with the POSIX metadata s3fs
      writes (mode, uid, gid, mtime), 16 at a time.

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (never from arguments, so that they
stay out of `ps`); the region from AWS_DEFAULT_REGION (default us-east-1). Path-style addressing.
"""
import argparse
import hashlib
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

READ_BYTES = 8 << 20


def digest(path, chunk_bytes):
    whole = hashlib.md5()
    part_digests = []
    with open(path, "rb", buffering=0) as handle:
        while True:
            chunk = handle.read(chunk_bytes)
            if not chunk:
                break
            whole.update(chunk)
            part_digests.append(hashlib.md5(chunk).digest())
    composite = hashlib.md5(b"".join(part_digests)).hexdigest()
    print(whole.hexdigest(), f"{composite}-{len(part_digests)}")


def client(url):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=url,
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}, max_pool_connections=16))


def check(options):
    s3 = client(options.url)
    head = s3.head_object(Bucket=options.bucket, Key=options.key)
    size, etag = head["ContentLength"], head["ETag"].strip('"')
    where = f"{options.bucket}/{options.key}"
    if size != options.size:
        sys.exit(f"{where}: size {size}, expected {options.size}")
    parts = ""
    if options.composite:
        match = re.fullmatch(r"[0-9a-f]{32}-([0-9]+)", etag)
        if not match:
            sys.exit(f"{where}: ETag {etag} is not a composite (multipart) ETag")
        parts = f" ({match.group(1)} parts)"
    elif options.etag and etag != options.etag:
        sys.exit(f"{where}: ETag {etag}, expected {options.etag}")
    if options.md5:
        body = s3.get_object(Bucket=options.bucket, Key=options.key)["Body"]
        content = hashlib.md5()
        for chunk in iter(lambda: body.read(READ_BYTES), b""):
            content.update(chunk)
        if content.hexdigest() != options.md5:
            sys.exit(f"{where}: MD5 of the bytes {content.hexdigest()}, expected {options.md5}")
    print(f"ok {etag}{parts}")


def complete(s3, options):
    """Whether the object, or the objects under the prefix, are on the server as wanted."""
    if options.key is not None:
        try:
            return s3.head_object(Bucket=options.bucket, Key=options.key)["ContentLength"] == options.size
        except s3.exceptions.ClientError:
            return False
    found = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=options.bucket, Prefix=options.prefix):
        found += sum(1 for item in page.get("Contents", []) if item["Size"] == options.size)
    return found == options.count


def wait(options):
    s3 = client(options.url)
    if complete(s3, options):
        print("0")
        return
    deadline = time.monotonic() + options.timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if complete(s3, options):
            print(f"{time.time():.3f}")
            return
    sys.exit(f"{options.bucket}/{options.key or options.prefix}: not complete after {options.timeout} s")


def populate(options):
    s3 = client(options.url)
    metadata = {"uid": str(os.getuid()), "gid": str(os.getgid()), "mtime": "1600000000"}
    items = [(options.prefix.rstrip("/") + "/", b"", "16877")]  # S_IFDIR | 0755
    items += [(f"{items[0][0]}f{index:05}", b"x" * 4096, "33188") for index in range(options.count)]  # S_IFREG | 0644

    def put(item):
        key, body, mode = item
        s3.put_object(Bucket=options.bucket, Key=key, Body=body, Metadata=dict(metadata, mode=mode))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, items))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    digest_parser = commands.add_parser("digest")
    digest_parser.add_argument("file")
    digest_parser.add_argument("chunk_bytes", type=int)
    check_parser = commands.add_parser("check")
    check_parser.add_argument("--url", required=True)
    check_parser.add_argument("--bucket", required=True)
    check_parser.add_argument("--key", required=True)
    check_parser.add_argument("--size", type=int, required=True)
    expected = check_parser.add_mutually_exclusive_group()
    expected.add_argument("--etag")
    expected.add_argument("--composite", action="store_true")
    check_parser.add_argument("--md5")
    wait_parser = commands.add_parser("wait")
    populate_parser = commands.add_parser("populate")
    for server_parser in (wait_parser, populate_parser):
        server_parser.add_argument("--url", required=True)
        server_parser.add_argument("--bucket", required=True)
    wanted = wait_parser.add_mutually_exclusive_group(required=True)
    wanted.add_argument("--key")
    wanted.add_argument("--prefix")
    wait_parser.add_argument("--count", type=int)
    wait_parser.add_argument("--size", type=int, required=True)
    wait_parser.add_argument("--timeout", type=float, required=True)
    populate_parser.add_argument("--prefix", required=True)
    populate_parser.add_argument("--count", type=int, required=True)
    options = parser.parse_args()
    if options.command == "digest":
        digest(options.file, options.chunk_bytes)
        return
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        {"check": check, "wait": wait, "populate": populate}[options.command](options)
    except (BotoCoreError, ClientError) as error:
        sys.exit(f"{options.bucket}/{getattr(options, 'key', None) or options.prefix}: {error}")


if __name__ == "__main__":
    main()
