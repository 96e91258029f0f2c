#!/usr/bin/env python3
"""Generate AWS Signature V4 test vectors with botocore, for the Swift signer and verifier tests.

Signs a fixed set of S3 requests with fixed credentials, region and clock using botocore's own
S3SigV4Auth, and writes one JSON object a line to
Tests/OBSProtocolTests/Fixtures/v4-botocore.jsonl:

  label, method, path (percent-encoded), query (encoded, as on the wire), headers (as sent,
  Host included, Authorization left out), body, token (security token or null),
  canonical_request and authorization (botocore's).

Lines with "date_only": true carry a Date header and no x-amz-date, which is how the official
OBS SDK signs V4; botocore signs the Date header when one is present.

Run with any Python that has botocore (PyPI `botocore`, installed with boto3 or awscli):
    python3 scripts/gen-v4-vectors.py
"""
import datetime
import email.utils
import hashlib
import json
import os
import sys
from urllib.parse import quote

import botocore.auth
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FQoGZXIvYXdzEXAMPLEtoken//+=="
REGION = "cn-north-4"
HOST = "127.0.0.1:9000"
CLOCK = datetime.datetime(2026, 11, 21, 10, 21, 4)

# botocore reads the clock through this function; a fixed clock makes the vectors reproducible.
botocore.auth.get_current_datetime = lambda remove_tzinfo=True: CLOCK
# botocore writes a Date header as `… -0000`; the OBS SDK (whose V4 the date-only lines mimic)
# writes `… GMT`.
botocore.auth.formatdate = lambda timeval: email.utils.formatdate(timeval, usegmt=True)


class RecordingSigner(S3SigV4Auth):
    """botocore's S3 signer, keeping the canonical request it signed."""

    def canonical_request(self, request):
        self.signed_canonical_request = super().canonical_request(request)
        return self.signed_canonical_request

COMPLETE_BODY = ('<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"e1"</ETag></Part>'
                 '<Part><PartNumber>2</PartNumber><ETag>"e2"</ETag></Part></CompleteMultipartUpload>')
ACL_BODY = ('<AccessControlPolicy><Owner><ID>owner</ID></Owner><AccessControlList><Grant>'
            '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group">'
            '<URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission>'
            '</Grant></AccessControlList></AccessControlPolicy>')
UA = {"User-Agent": "Boto3/1.44 md/vectors"}


def encode_query(items):
    """The query string as S3 clients send it: strict percent-encoding, bare keys for no value."""
    parts = []
    for name, value in items:
        key = quote(name, safe="-_.~")
        parts.append(key if value is None else key + "=" + quote(value, safe="-_.~"))
    return "&".join(parts)


# label, method, key (None: bucket-level), query items, headers, body, options
REQUESTS = [
    ("initiate with headers", "POST", "dir/a b+~é.bin", [("uploads", None)],
     {**UA, "Content-Type": "application/x-foo", "x-amz-acl": "private", "x-amz-storage-class": "STANDARD_IA",
      "x-amz-meta-Mk": "v%C3%A9 %25", "x-obs-expires": "3", "x-amz-server-side-encryption": "aws:kms",
      "x-amz-server-side-encryption-aws-kms-key-id": "kmskeyid", "x-amz-grant-read": "id=uid1",
      "x-amz-website-redirect-location": "/other", "x-amz-tagging": "a%20b=c&flag"}, b"", {}),
    ("upload part", "PUT", "dir/a b+~é.bin", [("partNumber", "1"), ("uploadId", "UPLOAD0001")],
     {**UA, "Content-MD5": "DMF1ucDxtqgxw5niaXcmYQ==",
      "x-amz-server-side-encryption-customer-algorithm": "AES256",
      "x-amz-server-side-encryption-customer-key": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
      "x-amz-server-side-encryption-customer-key-MD5": "hRasmdxgYDKV3nvbahU1MA=="}, b"aaaaaaaaaa", {}),
    ("complete", "POST", "dir/a b+~é.bin", [("uploadId", "UPLOAD0001")],
     {**UA, "Content-Type": "application/xml"}, COMPLETE_BODY.encode(), {}),
    ("abort", "DELETE", "k.bin", [("uploadId", "UPLOAD0001")], dict(UA), b"", {}),
    ("list parts paging", "GET", "k.bin", [("uploadId", "UPLOAD0001"), ("max-parts", "2"), ("part-number-marker", "1"),
                                             ("encoding-type", "url")], dict(UA), b"", {}),
    ("list uploads paging", "GET", None, [("uploads", None), ("prefix", "dir/a b"), ("delimiter", "/"), ("max-uploads", "5"),
                                           ("key-marker", "dir/a b+é"), ("upload-id-marker", "U0")], dict(UA), b"", {}),
    ("list objects unicode marker", "GET", None, [("prefix", "dir/a b é/"), ("marker", "dir/a b é/ü 1+2~x"), ("delimiter", "/"),
                                                   ("max-keys", "100"), ("encoding-type", "url")], dict(UA), b"", {}),
    ("get range", "GET", "p q/é.txt", [("versionId", "v1")],
     {**UA, "Range": "bytes=0-9", "If-Match": '"e"'}, b"", {}),
    ("head", "HEAD", "p.txt", [], dict(UA), b"", {}),
    ("delete", "DELETE", "p.txt", [], dict(UA), b"", {}),
    ("copy", "PUT", "dst.txt", [],
     {**UA, "x-amz-copy-source": "/srcb/src%20dir/%C3%A9.txt?versionId=sv1", "x-amz-metadata-directive": "REPLACE",
      "x-amz-meta-x": "y", "Content-Type": "text/z"}, b"", {}),
    ("copy part", "PUT", "big.bin", [("partNumber", "2"), ("uploadId", "UPLOAD0001")],
     {**UA, "x-amz-copy-source": "/srcb/big.bin", "x-amz-copy-source-range": "bytes=0-104857599"}, b"", {}),
    ("put acl", "PUT", "p.txt", [("acl", None)], {**UA, "Content-Type": "application/xml"}, ACL_BODY.encode(), {}),
    ("put metadata", "PUT", "p.txt", [("metadata", None)],
     {**UA, "x-amz-metadata-directive": "REPLACE_NEW", "x-amz-meta-m": "n", "Cache-Control": "no-cache",
      "Content-Type": "text/y"}, b"", {}),
    ("security token", "GET", "p.txt", [], {**UA, "x-amz-meta-spaced": "  a   b  c "}, b"", {"token": TOKEN}),
    ("unsigned payload put", "PUT", "u.bin", [], dict(UA), b"unsigned body", {"unsigned": True}),
    # The official OBS SDK's V4: Date instead of x-amz-date, UNSIGNED-PAYLOAD.
    ("date only put", "PUT", "d.txt", [], {**UA, "Date": "x", "Content-Type": "text/plain"}, b"hello",
     {"unsigned": True}),
    ("date only initiate", "POST", "d.bin", [("uploads", None)],
     {**UA, "Date": "x", "x-amz-storage-class": "GLACIER"}, b"", {"unsigned": True}),
    ("date only get", "GET", "d.txt", [], {**UA, "Date": "x", "Range": "bytes=5-"}, b"", {"unsigned": True, "token": TOKEN}),
]


def sign(label, method, key, query, headers, body, options):
    path = "/bkt" if key is None else "/bkt/" + quote(key, safe="/~")
    encoded_query = encode_query(query)
    url = "http://" + HOST + path + ("?" + encoded_query if encoded_query else "")
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    if options.get("unsigned"):
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, options.get("token"))
    signer = RecordingSigner(credentials, "s3", REGION)
    signer.add_auth(request)
    canonical = signer.signed_canonical_request
    sent = {name: value for name, value in request.headers.items() if name != "Authorization"}
    sent["Host"] = HOST
    return {
        "label": label,
        "method": method,
        "path": path,
        "query": encoded_query,
        "headers": sent,
        "body": body.decode(),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "token": options.get("token"),
        "date_only": "Date" in headers,
        "canonical_request": canonical,
        "authorization": request.headers["Authorization"],
    }


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "Tests", "OBSProtocolTests", "Fixtures", "v4-botocore.jsonl")
    lines = [json.dumps(sign(*spec), ensure_ascii=False) for spec in REQUESTS]
    with open(out, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} vectors to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
