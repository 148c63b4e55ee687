"""A probe's side of the anonymous-credential protocol, played with
ooniauth-py's client (``UserState``) against any HTTP-like client: the
Flask test client in functional tests, a small urllib wrapper in the e2e
test and the benchmark. Mirrors what the probe's FFI does
(docs/probe-protocol.md)."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Callable

import ooniauth_py

# (method, path, json body or None) -> (status, decoded JSON body)
Http = Callable[[str, str, Any], tuple[int, Any]]


def measurement(cc: str = "IT", asn: str = "AS30722", test_name: str = "web_connectivity",
                inp: str = "https://example.org/", **extra) -> dict:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    m = {"annotations": {}, "data_format_version": "0.2.0", "input": inp,
         "measurement_start_time": now, "probe_asn": asn, "probe_cc": cc,
         "probe_network_name": "Vodafone Italia S.p.A.", "software_name": "ooniprobe-cli",
         "software_version": "3.24.0", "test_keys": {}, "test_name": test_name,
         "test_runtime": 1.0, "test_start_time": now, "test_version": "0.5.28"}
    m.update(extra)
    return m


class Probe:
    def __init__(self, http: Http):
        self.http = http
        self.manifest: dict | None = None
        self.user: ooniauth_py.UserState | None = None
        self.version: str | None = None
        self.emission_day: int | None = None

    def get_manifest(self) -> dict:
        status, m = self.http("GET", "/api/v1/manifest", None)
        assert status == 200, (status, m)
        self.manifest = m
        return m

    def register(self) -> dict:
        m = self.get_manifest()
        self.user = ooniauth_py.UserState(m["manifest"]["public_parameters"])
        self.version = m["meta"]["version"]
        req = self.user.make_registration_request()
        status, j = self.http("POST", "/api/v1/sign_credential",
                              {"manifest_version": self.version, "credential_sign_request": req})
        assert status == 200, (status, j)
        self.user.handle_registration_response(j["credential_sign_response"])
        self.emission_day = j["emission_day"]
        return j

    def policy(self, cc: str, asn: str) -> tuple[tuple[int, int], int]:
        for p in self.manifest["manifest"]["submission_policy"]:
            if p["match"]["probe_cc"] in ("*", cc) and p["match"]["probe_asn"] in ("*", asn):
                age = p["policy"]["age"]
                return (age[0], age[1]), p["policy"]["min_measurement_count"]
        raise AssertionError("no policy matches")

    def submit_body(self, msm: dict, version: str | None = None) -> tuple[dict, str]:
        """The submit_measurement body with a fresh proof, and the content
        string the proof binds."""
        content = json.dumps(msm)
        ar, count = self.policy(msm["probe_cc"], msm["probe_asn"])
        sr = self.user.make_submit_request_with_hash(msm["probe_cc"], msm["probe_asn"], content,
                                                     ar, count)
        return ({"format": "json", "content": content, "nym": sr.nym, "zkp_request": sr.request,
                 "manifest_version": version or self.version,
                 "protocol_version": ooniauth_py.get_protocol_version()}, content)

    def submit(self, msm: dict, body: dict | None = None) -> dict:
        body = body or self.submit_body(msm)[0]
        status, j = self.http("POST", "/api/v1/submit_measurement", body)
        assert status == 200, (status, j)
        if j.get("verification_status") == "verified":
            self.user.handle_submit_response(j["submit_response"])
        return j

    def update_credential(self) -> dict:
        """After a key rotation: re-issue the credential under the new manifest."""
        old = self.version
        m = self.get_manifest()
        self.user.set_public_params(m["manifest"]["public_parameters"])
        req = self.user.make_credential_update_request()
        status, j = self.http("POST", "/api/v1/update_credential",
                              {"old_manifest_version": old, "manifest_version": m["meta"]["version"],
                               "update_request": req})
        assert status == 200, (status, j)
        self.user.handle_credential_update_response(j["update_response"])
        self.version = m["meta"]["version"]
        return j
