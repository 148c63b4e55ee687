"""Anonymous credentials end to end inside one app: a probe played with
ooniauth-py's client registers, submits verified measurements (its
credential updated each time), forges and replays proofs, and lives through
a key rotation; the stored wrapper carries is_verified, the real fastpath
scores it into the row, and /api/v1/measurements and measurement_meta
answer verification_status."""
from __future__ import annotations

import base64
import json
import os
import stat

import ooniauth_py
import pytest

from fastpath.daemon import FastpathDaemon
from ooni_common.config import ConfigError
from ooni_common.metrics import Metrics
from ooni_common.spool import Spool
from ooniapi.core.app import create_app
from ooniapi.probe import anoncred

from tests.functional.probe.anoncred_client import Probe, measurement

JSON = {"Content-Type": "application/json"}


def flask_http(client):
    def http(method, path, body):
        r = client.open(path, method=method, data=None if body is None else json.dumps(body),
                        headers=JSON)
        return r.status_code, r.get_json()
    return http


@pytest.fixture
def probe(client):
    return Probe(flask_http(client))


def stored(cfg, uid) -> dict:
    return json.loads(Spool(cfg.spool_dir).read(uid))


def spooled(cfg) -> list:
    return sorted(p.name for p in Spool(cfg.spool_dir).root.rglob("*.post"))


@pytest.fixture
def score(cfg, db, notifier):
    """Scores everything the API spooled with the real fastpath daemon."""
    d = FastpathDaemon(cfg.with_overrides(FASTPATH_SPOOL_SCAN_INTERVAL="3600"), db,
                       Metrics("fastpath", enabled=False), workers=0)
    d.start()

    def run():
        for uid, body in notifier.calls:
            assert d.submit(uid, body)
        assert d.wait_idle(30)
    yield run
    d.stop()


def test_manifest_shape(client, cfg):
    r = client.get("/api/v1/manifest")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "max-age=60"
    m = r.get_json()
    keys = json.loads((cfg.data_dir / "secrets" / "anoncred_keys.json").read_text())
    cur = keys["versions"][-1]
    assert m["meta"]["version"] == m["version"] == cur["version"]
    assert m["manifest"]["public_parameters"] == m["public_parameters"] == cur["public_parameters"]
    assert m["manifest"]["nym_scope"] == "ooni.org/{probe_cc}/{probe_asn}"
    assert m["meta"]["library_version"] == ooniauth_py.__version__
    assert m["meta"]["manifest_url"] == "https://api.ooni.io/api/v1/manifest"
    (pol,) = m["manifest"]["submission_policy"]
    assert pol["match"] == {"probe_cc": "*", "probe_asn": "*"}
    today = ooniauth_py.ServerState.today()
    assert pol["policy"] == {"age": [cur["created_day"] - 1, today + 1],
                             "min_measurement_count": 0}
    assert "secret_key" not in json.dumps(m)


def test_keys_generated_once_private(cfg, db, notifier):
    p = cfg.data_dir / "secrets" / "anoncred_keys.json"
    a1 = create_app(cfg, db=db, notify_fastpath=notifier)
    first = p.read_bytes()
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    a2 = create_app(cfg, db=db, notify_fastpath=notifier)
    assert p.read_bytes() == first
    v1 = a1.test_client().get("/api/v1/manifest").get_json()["version"]
    assert a2.test_client().get("/api/v1/manifest").get_json()["version"] == v1


def test_configured_key_file_must_exist(cfg, db, notifier, tmp_path):
    with pytest.raises(ConfigError, match="ANONCRED_KEYS_FILE"):
        create_app(cfg.with_overrides(ANONCRED_KEYS_FILE=str(tmp_path / "nope.json")),
                   db=db, notify_fastpath=notifier)


def test_register_and_submit_verified_twice(probe, client, cfg, notifier, score):
    reg = probe.register()
    assert reg["emission_day"] == ooniauth_py.ServerState.today()
    cred0 = probe.user.get_credential()
    uids = []
    for i in range(2):
        j = probe.submit(measurement(inp=f"https://example.org/{i}"))
        assert j["verification_status"] == "verified", j
        assert isinstance(j["submit_response"], str) and "error" not in j
        assert j["protocol_version"] == ooniauth_py.get_protocol_version()
        doc = stored(cfg, j["measurement_uid"])
        # The verdict is the server's wrapper field; the proof is not stored.
        assert set(doc) == {"format", "content", "is_verified"} and doc["is_verified"] == "t"
        assert doc["content"]["report_id"] == j["report_id"]
        uids.append(j["measurement_uid"])
    # Each accepted submission re-issued the credential (count + 1).
    assert probe.user.get_credential() != cred0
    score()
    rows = client.get("/api/v1/measurements", query_string={"probe_cc": "IT"}).get_json()
    got = {r["measurement_uid"]: r["verification_status"] for r in rows["results"]}
    assert got == {u: "verified" for u in uids}
    meta = client.get("/api/v1/measurement_meta",
                      query_string={"measurement_uid": uids[0]}).get_json()
    assert meta["verification_status"] == "verified"


def test_plain_submission_is_unverified(client, cfg, score):
    body = {"format": "json", "content": json.dumps(measurement()), "nym": None,
            "zkp_request": None, "manifest_version": None, "protocol_version": None}
    j = client.post("/api/v1/submit_measurement", data=json.dumps(body), headers=JSON).get_json()
    assert j["verification_status"] == "unverified" and "submit_response" not in j
    assert stored(cfg, j["measurement_uid"])["is_verified"] == "u"
    score()
    (row,) = client.get("/api/v1/measurements", query_string={"probe_cc": "IT"}).get_json()["results"]
    assert row["verification_status"] == "unverified"


def _flip(b64: str, at: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def forgeries(probe: Probe):
    """(name, body) of submissions whose proof must not verify."""
    msm = measurement()
    good, content = probe.submit_body(msm)
    other = ooniauth_py.ServerState()
    stranger = ooniauth_py.UserState(other.get_public_parameters())
    stranger.handle_registration_response(
        other.handle_registration_request(stranger.make_registration_request()))
    ar, count = probe.policy("IT", "AS30722")
    sr = stranger.make_submit_request_with_hash("IT", "AS30722", content, ar, count)
    yield "forged_zkp_request", {**good, "zkp_request": _flip(good["zkp_request"], 100)}
    yield "zkp_request_garbage", {**good, "zkp_request": good["zkp_request"][:40]}
    yield "malformed_base64", {**good, "zkp_request": "not base64!!"}
    yield "truncated_nym", {**good, "nym": good["nym"][:-8]}
    yield "nym_of_someone_else", {**good, "nym": _flip(good["nym"], 3)}
    yield "wrong_manifest_version", {**good, "manifest_version": "999-deadbeef00"}
    yield "manifest_version_not_a_string", {**good, "manifest_version": 7}
    yield "proof_for_another_manifest", {**good, "nym": sr.nym, "zkp_request": sr.request}
    yield "content_changed", {**good, "content": content.replace("example.org", "example.com")}
    yield "content_as_object", {**good, "content": json.loads(content)}
    yield "nym_only", {**good, "zkp_request": None}
    yield "cc_lowercase", {**good, "content": json.dumps({**msm, "probe_cc": "it"})}
    yield "asn_leading_zero", {**good, "content": json.dumps({**msm, "probe_asn": "AS030722"})}
    yield "oversized_zkp_request", {**good, "zkp_request": "A" * (anoncred.MAX_ZKP_REQUEST + 4)}
    yield "huge_age_range", {**good, "age_range": [0, 2**40]}
    yield "age_range_past_policy", {**good, "age_range": [0, 2**32 - 1]}


def test_bad_proofs_are_stored_as_failed(probe, client, cfg, notifier, score):
    probe.register()
    cases = list(forgeries(probe))
    statuses = {}
    for name, body in cases:
        r = client.post("/api/v1/submit_measurement", data=json.dumps(body), headers=JSON)
        assert r.status_code == 200, (name, r.data)
        j = r.get_json()
        assert "submit_response" not in j, name
        statuses[name] = (j["verification_status"], stored(cfg, j["measurement_uid"])["is_verified"])
        assert j["error"], name
    assert statuses == {n: ("failed", "f") for n, _ in cases}
    # Nothing lost: every one of them was stored and handed to the fastpath.
    assert len(spooled(cfg)) == len(notifier.calls) == len(cases)
    score()
    for uid, _ in notifier.calls:
        meta = client.get("/api/v1/measurement_meta",
                          query_string={"measurement_uid": uid}).get_json()
        assert meta["verification_status"] == "failed", uid


def test_replayed_proof_fails(probe, client, cfg):
    probe.register()
    body, _ = probe.submit_body(measurement())
    first = probe.submit(measurement(), body)
    assert first["verification_status"] == "verified"
    r = client.post("/api/v1/submit_measurement", data=json.dumps(body), headers=JSON).get_json()
    assert (r["verification_status"], r["error"]) == ("failed", "replayed_request")
    assert stored(cfg, r["measurement_uid"])["is_verified"] == "f"
    # A retry with a fresh proof of the same measurement is fine.
    assert probe.submit(measurement())["verification_status"] == "verified"


def test_sign_credential_bad_input(probe, client):
    m = probe.get_manifest()
    v = m["meta"]["version"]
    user = ooniauth_py.UserState(m["manifest"]["public_parameters"])
    req = user.make_registration_request()
    other = ooniauth_py.ServerState()
    foreign = ooniauth_py.UserState(other.get_public_parameters()).make_registration_request()
    sub_user = Probe(probe.http)
    sub_user.register()
    zkp, _ = sub_user.submit_body(measurement())

    def post(body, raw=False):
        r = client.post("/api/v1/sign_credential", data=body if raw else json.dumps(body),
                        headers=JSON)
        assert r.status_code < 500, r.data
        return r.status_code, r.get_json()

    cases = [
        ({"manifest_version": "999", "credential_sign_request": req}, 400, "manifest_not_found"),
        ({"manifest_version": v, "credential_sign_request": "bad" + req[3:]}, 400,
         "deserialization_failed"),
        ({"manifest_version": v, "credential_sign_request": req[:40]}, 400, "deserialization_failed"),
        ({"manifest_version": v, "credential_sign_request": "@@@@"}, 400, "deserialization_failed"),
        ({"manifest_version": v, "credential_sign_request": zkp["zkp_request"][:4000]}, 400,
         "deserialization_failed"),
        ({"manifest_version": v, "credential_sign_request": "A" * 4096}, 400, "invalid_request"),
        ({"manifest_version": v, "credential_sign_request": foreign}, 403, "protocol_error"),
        ({"manifest_version": v, "credential_sign_request": "A" * 5000}, 413, "request_too_large"),
        ({"manifest_version": v}, 400, "bad_request"),
        ({"credential_sign_request": req}, 400, "bad_request"),
        ({"manifest_version": ["x"], "credential_sign_request": req}, 400, "bad_request"),
    ]
    for body, status, err in cases:
        got_status, j = post(body)
        assert got_status == status, (body, j)
        assert isinstance(j["error"], str)
        if err:
            assert j["err_str"] == err, (body, j)
    assert post(b"{nope", raw=True)[0] == 400
    assert post(b"[]", raw=True)[0] == 400
    # The real request still works once, and a replay of it is refused.
    assert post({"manifest_version": v, "credential_sign_request": req})[0] == 200
    status, j = post({"manifest_version": v, "credential_sign_request": req})
    assert (status, j["err_str"]) == (409, "replayed_request")


def test_disabled(cfg, db, notifier):
    a = create_app(cfg.with_overrides(ANONCRED_ENABLED="false"), db=db, notify_fastpath=notifier)
    c = a.test_client()
    assert c.get("/api/v1/manifest").status_code == 404
    assert c.post("/api/v1/sign_credential", json={}).status_code == 404
    body = {"format": "json", "content": json.dumps(measurement()), "nym": "x", "zkp_request": "y"}
    j = c.post("/api/v1/submit_measurement", json=body).get_json()
    assert j["verification_status"] == "unverified"


def test_rotation(cfg, db, notifier, tmp_path):
    """Old credentials verify until their version is retired; update_credential
    moves a credential to the new key."""
    keys = tmp_path / "keys.json"
    assert anoncred.main(["new", str(keys)]) == 0
    c1 = cfg.with_overrides(ANONCRED_KEYS_FILE=str(keys))
    app1 = create_app(c1, db=db, notify_fastpath=notifier)
    old_probe = Probe(flask_http(app1.test_client()))
    old_probe.register()
    mover = Probe(flask_http(app1.test_client()))
    mover.register()
    v1 = old_probe.version

    assert anoncred.main(["rotate", str(keys)]) == 0
    app2 = create_app(c1, db=db, notify_fastpath=notifier)
    c2 = app2.test_client()
    old_probe.http = mover.http = flask_http(c2)
    m = c2.get("/api/v1/manifest").get_json()
    v2 = m["meta"]["version"]
    assert v2 != v1 and v2.startswith("2-")
    # A credential of the old manifest still verifies (with its own policy).
    old_probe.get_manifest()
    old_probe.manifest["manifest"]["submission_policy"][0]["policy"]["age"][0] = \
        json.loads(keys.read_text())["versions"][0]["created_day"] - 1
    assert old_probe.submit(measurement())["verification_status"] == "verified"
    # New registrations and updated credentials use the new one.
    fresh = Probe(flask_http(c2))
    fresh.register()
    assert fresh.version == v2
    assert fresh.submit(measurement())["verification_status"] == "verified"
    mover.update_credential()
    assert mover.version == v2
    assert mover.submit(measurement())["verification_status"] == "verified"
    # A proof of the old credential against the new manifest fails.
    body, _ = old_probe.submit_body(measurement(), version=v2)
    j = c2.post("/api/v1/submit_measurement", json=body).get_json()
    assert j["verification_status"] == "failed"

    # Retired: old proofs are unverified (not failed), no new old credentials.
    app3 = create_app(c1.with_overrides(ANONCRED_RETIRED_VERSIONS=v1), db=db,
                      notify_fastpath=notifier)
    c3 = app3.test_client()
    body, _ = old_probe.submit_body(measurement())
    j = c3.post("/api/v1/submit_measurement", json=body).get_json()
    assert (j["verification_status"], j["error"]) == ("unverified", "manifest_retired")
    assert stored(cfg, j["measurement_uid"])["is_verified"] == "u"
    req = ooniauth_py.UserState(old_probe.manifest["manifest"]["public_parameters"]) \
        .make_registration_request()
    r = c3.post("/api/v1/sign_credential", json={"manifest_version": v1,
                                                  "credential_sign_request": req})
    assert (r.status_code, r.get_json()["err_str"]) == (400, "manifest_retired")
    # Retiring the current version is a configuration error.
    with pytest.raises(ConfigError):
        create_app(c1.with_overrides(ANONCRED_RETIRED_VERSIONS=v2), db=db,
                   notify_fastpath=notifier)


def test_update_credential_bad_input(probe, client):
    probe.register()
    v = probe.version
    for body, status in [
        ({}, 400),
        ({"old_manifest_version": v, "manifest_version": v, "update_request": "AAAA"}, 400),
        ({"old_manifest_version": "x", "manifest_version": v, "update_request": "AAAA"}, 400),
        ({"old_manifest_version": v, "manifest_version": v, "update_request": "A" * 9000}, 413),
    ]:
        r = client.post("/api/v1/update_credential", json=body)
        assert r.status_code == status, (body, r.data)
        assert isinstance(r.get_json()["error"], str)


def test_policy_min_count(cfg, db, notifier):
    """A policy asking for 2 earlier submissions: a new credential cannot
    prove it (failed), the manifest says so."""
    a = create_app(cfg.with_overrides(ANONCRED_POLICY="IT/*:0:2"), db=db,
                   notify_fastpath=notifier)
    p = Probe(flask_http(a.test_client()))
    p.register()
    pols = p.manifest["manifest"]["submission_policy"]
    assert [x["match"] for x in pols] == [{"probe_cc": "IT", "probe_asn": "*"},
                                          {"probe_cc": "*", "probe_asn": "*"}]
    assert pols[0]["policy"]["min_measurement_count"] == 2
    # Elsewhere the */* rule (count 0) applies and the credential counts up.
    for _ in range(2):
        assert p.submit(measurement(cc="DE", asn="AS3320"))["verification_status"] == "verified"
    # Two accepted submissions later, the IT rule is met.
    assert p.submit(measurement())["verification_status"] == "verified"
    q = Probe(p.http)
    q.register()
    with pytest.raises(ooniauth_py.CredentialError):
        # The client library refuses to prove what its credential lacks...
        q.submit_body(measurement())
    # ...and a proof made for a laxer policy does not satisfy the server.
    body, content = q.submit_body(measurement(cc="DE", asn="AS3320"))
    forged = {**body, "content": json.dumps({**json.loads(content), "probe_cc": "IT",
                                             "probe_asn": "AS30722"})}
    assert q.submit(measurement(), forged)["verification_status"] == "failed"
    it_content = json.dumps(measurement())
    ar, _ = q.policy("IT", "AS30722")
    for extra, err in (({"msm_range": [0, 10]}, "policy_not_satisfied"), ({}, "protocol_error")):
        sr = q.user.make_submit_request_with_hash("IT", "AS30722", it_content, ar, 0)
        lax = {**body, "content": it_content, "nym": sr.nym, "zkp_request": sr.request, **extra}
        j = q.submit(measurement(), lax)
        assert (j["verification_status"], j["error"]) == ("failed", err)


def test_verifier_fault_keeps_the_measurement(probe, client, cfg, app, monkeypatch):
    probe.register()
    body, _ = probe.submit_body(measurement())

    def boom(*a, **kw):
        raise RuntimeError("injected fault")
    monkeypatch.setattr(app.extensions["ooni"].extras["anoncred"], "verify_submission", boom)
    r = client.post("/api/v1/submit_measurement", data=json.dumps(body), headers=JSON)
    assert r.status_code == 200
    j = r.get_json()
    assert (j["verification_status"], j["error"]) == ("unverified", "verification_unavailable")
    assert stored(cfg, j["measurement_uid"])["is_verified"] == "u"
