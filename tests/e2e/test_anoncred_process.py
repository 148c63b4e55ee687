"""Anonymous credentials over HTTP against the real ``ooni-backend run``,
as a probe does it (probe-protocol.md §2.2 step 3 and docs/probe-protocol.md):
manifest, sign_credential, verified single-shot submissions, a forged one,
a plain one, and the collector path (open report, consistent and
inconsistent uploads). The fastpath of the standalone process scores them;
/api/v1/measurements answers each one's verification_status. A restart
keeps the generated keys; a rotation keeps the old credential working."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from ooniapi.probe import anoncred
from tests.e2e.standalone_process import standalone
from tests.functional.probe.anoncred_client import Probe, measurement

pytestmark = pytest.mark.e2e

UA = "ooniprobe-cli/3.24.0 ooniprobe-engine/3.24.0"


def http_for(base: str):
    def http(method: str, path: str, body):
        headers = {"User-Agent": UA}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
    return http


def wait_statuses(http, uids: set[str], timeout: float = 90) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    got: dict[str, str] = {}
    while time.monotonic() < deadline:
        status, d = http("GET", "/api/v1/measurements?probe_cc=IT&limit=100", None)
        assert status == 200, d
        got = {r["measurement_uid"]: r["verification_status"] for r in d["results"]}
        if uids <= set(got):
            return got
        time.sleep(0.3)
    pytest.fail(f"never scored: {uids - set(got)}")


def test_probe_with_credentials(tmp_path, port, subprocess_env):
    data_dir = tmp_path / "data"
    env = dict(subprocess_env, OONI_JOB_START_DELAY="3600")
    with standalone(tmp_path, port, env, data_dir) as base:
        http = http_for(base)
        probe = Probe(http)
        probe.register()
        expect: dict[str, str] = {}
        for i in range(2):
            j = probe.submit(measurement(inp=f"https://example.org/{i}"))
            assert j["verification_status"] == "verified", j
            expect[j["measurement_uid"]] = "verified"
        body, _ = probe.submit_body(measurement(inp="https://example.org/forged"))
        body["zkp_request"] = body["zkp_request"][:-8] + "AAAAAAAA"
        status, j = http("POST", "/api/v1/submit_measurement", body)
        assert status == 200 and j["verification_status"] == "failed", j
        expect[j["measurement_uid"]] = "failed"
        plain = {"format": "json", "content": json.dumps(measurement(inp="https://example.org/p")),
                 "nym": None, "zkp_request": None, "manifest_version": None,
                 "protocol_version": None}
        status, j = http("POST", "/api/v1/submit_measurement", plain)
        assert status == 200 and j["verification_status"] == "unverified", j
        expect[j["measurement_uid"]] = "unverified"

        # The collector path: report id, consistent and inconsistent bodies.
        status, rep = http("POST", "/report", {
            "probe_cc": "IT", "probe_asn": "AS30722", "test_name": "web_connectivity",
            "software_name": "ooniprobe-cli", "software_version": "3.24.0",
            "test_start_time": "2026-01-01 00:00:00", "test_version": "0.5.28",
            "data_format_version": "0.2.0", "format": "json"})
        rid = rep["report_id"]
        m = measurement(inp="https://example.org/collector", report_id=rid)
        status, j = http("POST", f"/report/{rid}", {"format": "json", "content": m})
        assert status == 200, j
        expect[j["measurement_uid"]] = "unverified"
        for field, value in (("probe_cc", "DE"), ("probe_asn", "AS3320"), ("test_name", "ndt")):
            status, j = http("POST", f"/report/{rid}",
                             {"format": "json", "content": {**m, field: value}})
            assert (status, j) == (400, {"error": "Inconsistent measurement"})

        got = wait_statuses(http, set(expect))
        assert got == expect
        v1 = probe.version

    # Restart: the generated keys are kept, the credential still verifies
    # (also when a proof is the first credential call of the new process).
    keys = data_dir / "secrets" / "anoncred_keys.json"
    before = keys.read_bytes()
    with standalone(tmp_path, port, env, data_dir) as base:
        probe.http = http_for(base)
        assert probe.get_manifest()["meta"]["version"] == v1
        j = probe.submit(measurement())
        assert j["verification_status"] == "verified", (j, (tmp_path / "backend.log").read_text()[-3000:])
    assert keys.read_bytes() == before

    # Rotation with the operator command: old credential accepted, then moved.
    assert anoncred.main(["rotate", str(keys)]) == 0
    with standalone(tmp_path, port, env, data_dir) as base:
        probe.http = http_for(base)
        body, _ = probe.submit_body(measurement())
        status, j = probe.http("POST", "/api/v1/submit_measurement", body)
        assert j["verification_status"] == "verified", j
        probe.user.handle_submit_response(j["submit_response"])
        probe.update_credential()
        assert probe.version != v1
        assert probe.submit(measurement())["verification_status"] == "verified"
