"""The requests the official SDK sent (../shared/vectors/*.jsonl, signed with testak/testsk)
replayed against obs-local at their recorded Date: the clock is shifted with --clock-offset, and
every request must pass the signature check (any answer but a signature or clock refusal)."""
import email.utils
import glob
import http.client
import json
import os
import tempfile
import time

import pytest

from conftest import start_server

VECTOR_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "vectors")
SIGNATURE_REFUSALS = (b"<Code>SignatureDoesNotMatch</Code>", b"<Code>AccessDenied</Code>",
                      b"<Code>RequestTimeTooSkewed</Code>", b"<Code>InvalidAccessKeyId</Code>")


def vector_files():
    directory = os.environ.get("OBSMOUNT_VECTOR_DIR", VECTOR_DIR)
    files = sorted(glob.glob(os.path.join(directory, "*.jsonl")))
    if not files:
        pytest.fail(f"no signature vectors in {directory} (set OBSMOUNT_VECTOR_DIR)")
    return files


def load(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def replay(port, vector):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest(vector["method"], vector["path"], skip_host=True, skip_accept_encoding=True)
    for name, value in vector["headers"].items():
        connection.putheader(name, value)
    connection.endheaders(vector["body"].encode() if vector["body"] else None)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


@pytest.mark.parametrize("path", vector_files(), ids=os.path.basename)
def test_recorded_requests_pass_the_signature_check_at_their_date(path):
    vectors = load(path)
    recorded = email.utils.parsedate_to_datetime(vectors[0]["headers"]["Date"]).timestamp()
    offset = round(recorded - time.time())
    with tempfile.TemporaryDirectory(prefix="obs-local-vectors-") as tmp:
        server = start_server(tmp, access_key="testak", secret_key="testsk", clock_offset=offset, buckets=("bkt",))
        try:
            for vector in vectors:
                status, body = replay(server.port, vector)
                assert not any(refusal in body for refusal in SIGNATURE_REFUSALS), f"{vector['label']}: {status} {body[:300]}"
                assert status != 403, f"{vector['label']}: {status} {body[:300]}"
        finally:
            server.stop()


@pytest.mark.parametrize("path", vector_files(), ids=os.path.basename)
def test_recorded_requests_are_refused_with_a_skewed_clock(path):
    vectors = load(path)
    recorded = email.utils.parsedate_to_datetime(vectors[0]["headers"]["Date"]).timestamp()
    # Put the server's clock an hour away from the recorded Date.
    offset = round(recorded - time.time()) + 3600
    with tempfile.TemporaryDirectory(prefix="obs-local-vectors-") as tmp:
        server = start_server(tmp, access_key="testak", secret_key="testsk", clock_offset=offset, buckets=("bkt",))
        try:
            status, body = replay(server.port, vectors[0])
            assert status == 403 and b"<Code>RequestTimeTooSkewed</Code>" in body
        finally:
            server.stop()
