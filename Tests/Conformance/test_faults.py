"""The fault-injection admin interface (`/_obs-local/faults`, see FaultInjector.swift) seen from
the official SDK, which retries 5xx replies and broken connections, and the request log."""
import http.client
import json

from conftest import BUCKET, make_obs_client


def admin(server, method, rules=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    body = json.dumps(rules).encode() if rules is not None else None
    connection.request(method, "/_obs-local/faults", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data) if data else None


def log_lines(server, key):
    with open(server.request_log) as handle:
        return [entry for entry in map(json.loads, handle) if entry.get("key") == key]


def test_sdk_retries_through_injected_errors_and_cuts(server, prefix):
    obs = make_obs_client(server, "obs")
    try:
        key = prefix + "retried.bin"
        status, added = admin(server, "POST", [
            {"operation": "PutObject", "key": prefix + "*.bin", "times": 2, "action": "error", "status": 503, "code": "SlowDown"},
        ])
        assert status == 200 and len(added["ids"]) == 1
        assert obs.putContent(BUCKET, key, b"x" * 100_000).status == 200
        attempts = [(entry["status"], entry.get("code")) for entry in log_lines(server, key)]
        assert attempts == [(503, "SlowDown"), (503, "SlowDown"), (200, None)]

        cut_key = prefix + "cut.bin"
        admin(server, "POST", {"operation": "PutObject", "key": cut_key, "action": "cut", "afterBytes": 1000})
        assert obs.putContent(BUCKET, cut_key, b"y" * 100_000).status == 200
        assert [entry["status"] for entry in log_lines(server, cut_key)] == [0, 200]

        status, rules = admin(server, "GET")
        assert status == 200 and [rule["fired"] for rule in rules] == [2, 1]
        assert admin(server, "DELETE")[0] == 204
        assert admin(server, "GET")[1] == []
    finally:
        admin(server, "DELETE")
        obs.close()
