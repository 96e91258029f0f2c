"""The fault matrix of issue 11: in the OBS and the V4 dialect, each request of an upload
(initiate, part, complete, abort) × {5xx once, 5xx persistent, connection reset mid-body, a reply
delayed beyond stall_timeout= once and for ever, connections refused for 4 s and for longer than
retry_timeout=, the server SIGKILLed and restarted on the same port and data directory}.

Every case checks the invariants: close() returned 0 ⇒ the object's bytes are exactly right;
close() failed ⇒ no object was created and, once the server answers again, no upload of it
remains within the bounded background retry (CLEANUP); close() answers within BOUND, the
documented bound (mount-options/README.md, Outages) with slack for a loaded machine.

"Connections refused": obs-local resets every connection of the case's key as soon as its request
head arrives (a "refuse" rule triggered by the operation); the kill cases add real refused
connections until the restart. "For longer than retry_timeout": the issue says 2 minutes, i.e.
longer than the default retry_timeout=60s; here the mounts use retry_timeout=8s, so LONG_OUTAGE
(14 s) is the same case in proportion: close() fails, and the upload is aborted once the outage
ends. "Delay beyond the timeout": stall_timeout=3s, replies held for 6 s; a complete awaits work
on the server and may stay silent for 10 minutes (mount-options/README.md), so a held complete
costs time, not data. The mounts whose server is killed retry for 20 s (a restart on a loaded
machine can take a few seconds).
SIGKILL and SIGTERM of the mount mid-write are in test_orphans.py (the orphan listed by
`obsmount uploads` and aborted by the next mount; SIGTERM mid-write leaves no upload and no
object; SIGTERM during a close() lets it complete and answer).

The cases run concurrently (a module fixture): per dialect one mount of the session's obs-local
for the faults scoped to a key, each case in a directory of its own, and one mount of a private
obs-local for the kills, one after the other; each test then asserts its case's recorded
outcome. Nothing forks while the cases' files are open (see `outcomes`)."""
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import botocore.exceptions
import pytest

from conftest import OBS_LOCAL, OBS_LOCAL_KEYS, PFS_BUCKET, MiB, Mount, Server, s3_client, uploads_in_progress

RETRY_TIMEOUT = 8  # retry_timeout= of the mounts (s): above the 4 s outage, below LONG_OUTAGE
STALL_TIMEOUT = 3  # stall_timeout= (s): a reply that does not come within it is retried
DELAY_MS = (STALL_TIMEOUT + 3) * 1000
SHORT_OUTAGE = 4
LONG_OUTAGE = RETRY_TIMEOUT + 6
KILL_RETRY_TIMEOUT = 20  # retry_timeout= of the mounts whose server is killed and restarted
# close() fails at most retry_timeout + 2 s + two attempts (each at most stall_timeout here) after
# the store went bad; 8 s of slack for writing the file and for a loaded machine.
SLACK = 8
BOUND = RETRY_TIMEOUT + 2 + 2 * STALL_TIMEOUT + SLACK
KILL_BOUND = KILL_RETRY_TIMEOUT + 2 + 2 * STALL_TIMEOUT + SLACK
CLEANUP = 30  # the background abort's retries (1 s, 2 s, 4 s, …) after the server answers again

# dialect → (part_size, file size): two full parts and a tail (S3 dialects: 5 MiB parts at least)
DIALECTS = {"obs": (1 * MiB, 3 * MiB + 99), "v4": (5 * MiB, 10 * MiB + 99)}
OPERATIONS = ["InitiateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"]

# fault kind → (rule fields, whether it lasts until the test removes it, whether the write survives it)
KINDS = {
    "5xx-once": ({"action": "error", "code": "InternalError", "times": 1}, False, True),
    "5xx-persistent": ({"action": "error", "code": "InternalError", "times": 0}, True, False),
    "reset-mid-body": ({"action": "cut", "afterBytes": 1000, "times": 1}, False, True),
    "delay-once": ({"action": "delay", "delayMs": DELAY_MS, "times": 1}, False, True),
    "delay-persistent": ({"action": "delay", "delayMs": DELAY_MS, "times": 0}, True, False),
    "refused-4s": ({"action": "refuse", "seconds": SHORT_OUTAGE}, False, True),
    "refused-beyond-retry-timeout": ({"action": "refuse", "seconds": LONG_OUTAGE}, False, False),
    "killed-restarted": ({"action": "kill"}, False, True),
}
CASES = [(dialect, operation, kind) for dialect in DIALECTS for operation in OPERATIONS for kind in KINDS]


def admin(server, method, rule=None, path=""):
    data = json.dumps(rule).encode() if rule is not None else None
    request = urllib.request.Request(server.admin() + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as reply:
        body = reply.read()
        return json.loads(body) if body else None


@dataclass
class Outcome:
    key: str
    closed_ok: bool
    seconds: float  # open to close() answered
    expected_md5: str
    server_md5: str | None  # None: no object
    uploads_left: list
    abort_refused_seen: bool = False  # a persistent abort fault kept the upload until removed
    restarted: bool = False  # the server was killed and restarted during the case
    all_rules_fired: bool = False  # every fault rule of the case acted on a request
    error: str = ""


# Runs obs-local and starts it again, on the same port and data directory, whenever it ends by
# SIGKILL; prints the URL once. A process of its own, started before any file of the mounts is
# open: a fork of the test process would inherit (and on exec close, that is flush) every open file.
RESTARTER = r"""
import re, signal, subprocess, sys, time
obs_local, directory, pfs_bucket = sys.argv[1:4]
listen, process = "127.0.0.1:0", None
def stop(*_):  # obs-local stops; the wait below returns, not by SIGKILL: the end
    if process is None:
        sys.exit(0)
    process.terminate()
signal.signal(signal.SIGTERM, stop)
for run in range(1, 100):
    log = f"{directory}/obs-local.log.{run}"
    with open(log, "w") as output:
        process = subprocess.Popen([obs_local, "--listen", listen, "--data-dir", f"{directory}/data", "--bucket", "itest",
                                    "--pfs-bucket", pfs_bucket, "--request-log", f"{directory}/requests.jsonl"],
                                   stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    while listen.endswith(":0"):
        match = re.search(r"listening on http://(127\.0\.0\.1:\d+)", open(log).read())
        if match:
            listen = match.group(1)
            print("http://" + listen, flush=True)
        time.sleep(0.02)
    if process.wait() != -signal.SIGKILL:
        sys.exit(process.returncode)
"""


class KillSeries:
    """A private obs-local that a "kill" rule ends, restarted at once by RESTARTER."""

    def __init__(self, directory, dialect, part_size):
        self.restarter = subprocess.Popen([sys.executable, "-c", RESTARTER, str(OBS_LOCAL), str(directory), PFS_BUCKET],
                                          stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        url = self.restarter.stdout.readline().strip()
        assert url.startswith("http://"), f"obs-local did not start: see {directory}"
        self.server = Server("obs-local", url, "itest", *OBS_LOCAL_KEYS, "us-east-1", dialect, part_size,
                             s3=s3_client(url, *OBS_LOCAL_KEYS, "us-east-1"))
        self.directory = directory

    def restarts(self):
        return len(list(self.directory.glob("obs-local.log.*"))) - 1

    def stop(self):
        self.restarter.terminate()
        self.restarter.wait(15)


def fault_rules(operation, kind, key):
    fields, _, _ = KINDS[kind]
    rule = {"operation": operation, "key": key, **fields}
    if operation == "UploadPart":
        rule["nth"] = 2
    if operation != "AbortMultipartUpload":
        return [rule]
    # An abort happens when the upload fails: the second part fails for ever (the rule removed
    # once close() has failed).
    return [{"operation": "UploadPart", "key": key, "nth": 2, "times": 0, "action": "error", "code": "InternalError"}, rule]


def run_case(server, mount, prefix, dialect, operation, kind):
    _, persistent, _ = KINDS[kind]
    # A directory per case: a create waits for its initiation, and the kernel holds the
    # directory's lock meanwhile, so cases sharing one would wait for each other's faults.
    name = f"{operation}-{kind}-{uuid.uuid4().hex[:6]}/file"
    (mount.path / name).parent.mkdir()
    key = f"{prefix}/{name}"
    data = os.urandom(DIALECTS[dialect][1])
    ids = admin(server, "POST", fault_rules(operation, kind, key))["ids"]
    started = time.monotonic()
    closed_ok, error = False, ""
    try:
        with open(mount.path / name, "wb") as out:
            out.write(data)
        closed_ok = True
    except OSError as failure:
        error = str(failure)
    seconds = time.monotonic() - started
    abort_refused_seen = False
    if operation == "AbortMultipartUpload" and persistent:
        time.sleep(1)
        abort_refused_seen = [upload["Key"] for upload in uploads_in_progress(server, key)] == [key]
    all_rules_fired = kind == "killed-restarted"  # a restarted server has no rules left: see `restarted`
    if kind != "killed-restarted":
        all_rules_fired = all(rule["fired"] > 0 for rule in admin(server, "GET") if rule["id"] in ids)
        for rule_id in ids:  # the server answers again
            admin(server, "DELETE", path=f"/{rule_id}")
    deadline = time.monotonic() + CLEANUP
    while time.monotonic() < deadline:
        try:
            if not uploads_in_progress(server, key):
                break
        except botocore.exceptions.EndpointConnectionError:
            pass  # a killed server is still being restarted (a few seconds under load)
        time.sleep(0.5)
    listed = server.s3.list_objects_v2(Bucket=server.bucket, Prefix=key).get("Contents")
    body = server.s3.get_object(Bucket=server.bucket, Key=key)["Body"].read() if listed else None
    return Outcome(key, closed_ok, seconds, hashlib.md5(data).hexdigest(), body and hashlib.md5(body).hexdigest(),
                   uploads_in_progress(server, key), abort_refused_seen, all_rules_fired=all_rules_fired, error=error)


def mount_options(part_size, retry_timeout=RETRY_TIMEOUT):
    return [f"part_size={part_size}", "parallel=2", f"memory_budget={40 * 3 * part_size}",
            f"retry_timeout={retry_timeout}s", f"stall_timeout={STALL_TIMEOUT}s"]


@pytest.fixture(scope="module")
def outcomes(request, obs_local, tmp_path_factory):
    """Runs the selected cases concurrently and returns {(dialect, operation, kind): Outcome}: per
    dialect one mount of the session's obs-local for the faults scoped to a key, and one of a
    private obs-local for the kills, one after the other. Every server and mount is started
    before the first file is opened (a fork while files are open would flush them)."""
    selected = {(item.callspec.params["dialect"], item.callspec.params["operation"], item.callspec.params["kind"])
                for item in request.session.items if item.module.__name__ == __name__ and item.originalname == "test_fault_matrix"}
    mounts, series, results = [], [], {}

    def kill_series(kills, mount, prefix, dialect, operations):
        outcomes = {}
        for operation in operations:
            restarts = kills.restarts()
            outcomes[operation] = run_case(kills.server, mount, prefix, dialect, operation, "killed-restarted")
            outcomes[operation].restarted = kills.restarts() == restarts + 1
        return outcomes

    try:
        work = []  # (case or (dialect, "killed-restarted"), function, arguments)
        for dialect, (part_size, _) in DIALECTS.items():
            cases = [case for case in CASES if case in selected and case[0] == dialect]
            prefix = f"matrix-{dialect}-{uuid.uuid4().hex[:8]}"
            keyed = [case for case in cases if case[2] != "killed-restarted"]
            if keyed:
                mount = Mount(dataclasses.replace(obs_local, dialect=dialect), tmp_path_factory.mktemp(f"matrix-{dialect}"),
                              mount_options(part_size), prefix=prefix)
                mounts.append(mount)
                work += [(case, run_case, (obs_local, mount, prefix, *case)) for case in keyed]
            killed = [operation for _, operation, kind in cases if kind == "killed-restarted"]
            if killed:
                kills = KillSeries(tmp_path_factory.mktemp(f"matrix-kill-{dialect}"), dialect, part_size)
                series.append(kills)
                # A restart under load can take a few seconds: more retry time than the key faults.
                mount = Mount(kills.server, tmp_path_factory.mktemp(f"matrix-kill-mount-{dialect}"),
                              mount_options(part_size, KILL_RETRY_TIMEOUT), prefix=prefix)
                mounts.append(mount)
                work.append(((dialect, "killed-restarted"), kill_series, (kills, mount, prefix, dialect, killed)))
        with ThreadPoolExecutor(max_workers=len(work)) as pool:
            jobs = {case: pool.submit(function, *arguments) for case, function, arguments in work}
            for case, job in jobs.items():
                if case[1] == "killed-restarted":
                    results.update({(case[0], operation, "killed-restarted"): outcome for operation, outcome in job.result().items()})
                else:
                    results[case] = job.result()
        yield results
    finally:
        for mount in mounts:
            mount.unmount()
        for kills in series:
            kills.stop()


@pytest.mark.parametrize("dialect,operation,kind", CASES, ids=[f"{d}-{o}-{k}" for d, o, k in CASES])
def test_fault_matrix(outcomes, dialect, operation, kind):
    outcome = outcomes[(dialect, operation, kind)]
    _, persistent, survives = KINDS[kind]
    # An abort happens only after a failure; a complete waits out a held reply (server work).
    succeeds = (survives or (operation == "CompleteMultipartUpload" and kind.startswith("delay"))) and operation != "AbortMultipartUpload"
    bound = KILL_BOUND if kind == "killed-restarted" else BOUND
    assert outcome.seconds < bound, f"close() answered after {outcome.seconds:.1f} s"
    if outcome.closed_ok:
        assert outcome.server_md5 == outcome.expected_md5, f"{outcome.key}: close() returned 0 but the object is wrong or missing"
    else:
        assert outcome.server_md5 is None, f"{outcome.key}: close() failed ({outcome.error}) but an object was created"
    assert outcome.uploads_left == [], f"{outcome.key}: the upload remains {CLEANUP} s after the server answered again"
    assert outcome.closed_ok == succeeds, f"{outcome.key}: close() {'returned 0' if outcome.closed_ok else 'failed: ' + outcome.error}"
    assert outcome.all_rules_fired, "a fault rule of the case never fired: the case proves nothing"
    if kind == "killed-restarted":
        assert outcome.restarted, "the server was not killed and restarted once: the case proves nothing"
    if operation == "AbortMultipartUpload" and persistent:
        assert outcome.abort_refused_seen, "the upload was gone while its abort was refused: the case proves nothing"
