#!/usr/bin/env python3
"""Checks for scripts/bench: digests of the payload, and objects on the server (boto3, S3 V4).

  bench_s3.py digest FILE CHUNK_BYTES
      prints two words: the MD5 of FILE (hex) and the composite ETag a multipart upload of FILE in
      parts of CHUNK_BYTES has (md5(md5_1 || ... || md5_n)-n).
  bench_s3.py check --url URL --bucket B --key K --size N [--etag E | --composite] [--md5 M]
      HEAD of the object: its size must be N; its ETag must equal E, or with --composite have the
      form <32 hex>-<parts>; with --md5, GETs the object and compares the MD5 of its bytes.
      Prints "ok ETAG" (and the part count for a composite ETag), or one line on stderr and exit 1.

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (never from arguments, so that they
stay out of `ps`); the region from AWS_DEFAULT_REGION (default us-east-1). Path-style addressing.
"""
import argparse
import hashlib
import re
import sys

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
                                      retries={"max_attempts": 1}))


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
    options = parser.parse_args()
    if options.command == "digest":
        digest(options.file, options.chunk_bytes)
    else:
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            check(options)
        except (BotoCoreError, ClientError) as error:
            sys.exit(f"{options.bucket}/{options.key}: {error}")


if __name__ == "__main__":
    main()
