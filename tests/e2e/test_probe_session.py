"""A whole probe session as the Go client plays it (probe-protocol.md §2),
over HTTP against the real ``ooni-backend run`` process: test helpers,
register, login, check-in, psiphon and tor config with the token, open
report, submit, close, and the single-shot submission. Every field the
client decodes is checked with its JSON type."""
from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.standalone_process import standalone
from tests.mmdb_writer import write_asn_db, write_country_db

pytestmark = pytest.mark.e2e

UA = "ooniprobe-android/5.0.0 ooniprobe-engine/3.31.0-alpha"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
PROBE_IP = "10.2.3.4"  # Italy, AS30722 in the test's MMDB files


def call(base: str, method: str, path: str, body=None, token: str | None = None):
    """The Go client's httpclientx rules: Content-Type on POST, gzip offered,
    bearer only where needed, status must be exactly 200."""
    headers = {"User-Agent": UA, "X-Real-IP": PROBE_IP}
    data = None
    if body is not None:
        data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ok_json(status: int, data: bytes):
    assert status == 200, data[:500]
    doc = json.loads(data)
    assert doc is not None
    return doc


def _prepare_db(data_dir: Path, lists: Path) -> None:
    # chdb allows one engine per process: fill citizenlab in a child process
    # before the backend takes the database.
    script = (
        "import sys; sys.path.insert(0, sys.argv[3])\n"
        "from ooni_common.db import connect\n"
        "from ooni_common.schema import ensure_all\n"
        "from tests.prio_support import load_citizenlab\n"
        "db = connect('chdb://' + sys.argv[1]); ensure_all(db)\n"
        "print(load_citizenlab(db, sys.argv[2]))\n")
    out = subprocess.run([sys.executable, "-c", script, str(data_dir / "db"), str(lists),
                          str(REPO)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.fixture
def backend(tmp_path, subprocess_env, shared_data, port):
    lists = shared_data / "test-lists" / "lists"
    if not lists.is_dir():
        pytest.skip(f"{lists} not found")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _prepare_db(data_dir, lists)
    geo = tmp_path / "geo"
    geo.mkdir()
    write_country_db(geo / "cc.mmdb", {"10.0.0.0/8": "IT"})
    write_asn_db(geo / "asn.mmdb", {"10.0.0.0/8": (30722, "Vodafone Italia S.p.A.")})
    env = {**subprocess_env, "OONI_GEOIP_CC_DB": str(geo / "cc.mmdb"),
           "OONI_GEOIP_ASN_DB": str(geo / "asn.mmdb"), "OONI_JOB_START_DELAY": "3600"}
    with standalone(tmp_path, port, env, data_dir) as base:
        yield base


def assert_services(lst, legacy_first: bool = False):
    assert isinstance(lst, list) and lst
    for s in lst:
        assert isinstance(s["address"], str) and isinstance(s["type"], str)
        assert s.get("front") is None or isinstance(s["front"], str)
    if legacy_first:
        assert lst[0]["type"] == "legacy"


def test_probe_session(backend):
    base = backend
    # 1. bootstrap: test helpers
    th = ok_json(*call(base, "GET", "/api/v1/test-helpers"))
    assert isinstance(th, dict)
    assert_services(th["web-connectivity"])
    assert {s["type"] for s in th["web-connectivity"]} <= {"https", "cloudfront"}
    assert_services(th["http-return-json-headers"], legacy_first=True)
    assert_services(th["tcp-echo"], legacy_first=True)

    # 2. register + login (the engine's hard-coded metadata)
    reg = ok_json(*call(base, "POST", "/api/v1/register", {
        "platform": "miniooni", "probe_asn": "AS0", "probe_cc": "ZZ", "software_name": "miniooni",
        "software_version": "0.1.0-dev", "supported_tests": ["web_connectivity"],
        "password": "x" * 64}))
    assert isinstance(reg["client_id"], str) and reg["client_id"]
    login = ok_json(*call(base, "POST", "/api/v1/login",
                          {"username": reg["client_id"], "password": "x" * 64}))
    assert isinstance(login["token"], str) and login["token"]
    assert RFC3339.match(login["expire"])
    expire = dt.datetime.fromisoformat(login["expire"].replace("Z", "+00:00"))
    assert expire > dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30)

    # 3. check-in as the mobile app does it
    ci = ok_json(*call(base, "POST", "/api/v1/check-in", {
        "charging": True, "on_wifi": True, "platform": "android", "probe_asn": "AS30722",
        "probe_cc": "IT", "run_type": "timed", "software_name": "ooniprobe-android",
        "software_version": "5.0.0", "web_connectivity": {"category_codes": ["NEWS", "HUMR"]}}))
    assert type(ci["v"]) is int
    assert ci["probe_cc"] == "IT" and ci["probe_asn"] == "AS30722"
    assert RFC3339.match(ci["utc_time"]) and ci["utc_time"].endswith("Z")
    feats = ci["conf"]["features"]
    assert isinstance(feats, dict) and all(type(v) is bool for v in feats.values())
    for lst in ci["conf"]["test_helpers"].values():
        assert_services(lst)
    wc = ci["tests"]["web_connectivity"]
    assert isinstance(wc["report_id"], str) and wc["report_id"]
    assert len(wc["urls"]) == 100
    for u in wc["urls"]:
        assert set(u) == {"category_code", "country_code", "url"}
        assert all(isinstance(v, str) for v in u.values())
        assert u["category_code"] in ("NEWS", "HUMR")
        assert u["country_code"] in ("XX", "IT")

    # the web_connectivity task started without inputs checks in with defaults
    ci2 = ok_json(*call(base, "POST", "/api/v1/check-in", {
        "charging": False, "on_wifi": False, "platform": "android", "probe_asn": "AS30722",
        "probe_cc": "IT", "run_type": "timed", "software_name": "ooniprobe-android",
        "software_version": "5.0.0", "web_connectivity": {"category_codes": []}}))
    assert len(ci2["tests"]["web_connectivity"]["urls"]) == 20

    # 4. token-gated circumvention config
    tor = ok_json(*call(base, "GET", "/api/v1/test-list/tor-targets?country_code=IT",
                        token=login["token"]))
    assert isinstance(tor, dict)
    for t in tor.values():
        for k in ("address", "name", "protocol", "source"):
            assert isinstance(t[k], str)
        assert t["params"] is None or isinstance(t["params"], dict)
    status, data = call(base, "GET", "/api/v1/test-list/psiphon-config", token=login["token"])
    assert status == 200 and isinstance(json.loads(data), dict)
    status, data = call(base, "GET", "/api/v1/test-list/tor-targets?country_code=IT")
    assert status == 401 and json.loads(data)["error"]

    # 5. collector path: open, submit each URL's measurement, close
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    rep = ok_json(*call(base, "POST", "/report", {
        "data_format_version": "0.2.0", "format": "json", "probe_asn": "AS30722",
        "probe_cc": "IT", "software_name": "ooniprobe-android", "software_version": "5.0.0",
        "test_name": "web_connectivity", "test_start_time": now, "test_version": "0.4.3"}))
    assert "json" in rep["supported_formats"]
    assert isinstance(rep["backend_version"], str)
    rid = rep["report_id"]
    assert re.match(r"^[A-Za-z0-9_]+$", rid)
    uids = []
    for u in wc["urls"][:3]:
        content = {
            "annotations": {"engine_name": "ooniprobe-engine", "platform": "android"},
            "data_format_version": "0.2.0", "input": u["url"],
            "measurement_start_time": now, "probe_asn": "AS30722", "probe_cc": "IT",
            "probe_ip": "127.0.0.1", "probe_network_name": "Vodafone Italia S.p.A.",
            "report_id": rid, "resolver_asn": "AS30722", "resolver_ip": "91.80.36.88",
            "resolver_network_name": "Vodafone Italia S.p.A.",
            "software_name": "ooniprobe-android", "software_version": "5.0.0",
            "test_helpers": {"backend": th["web-connectivity"][0]},
            "test_keys": {"accessible": True, "blocking": False, "control_failure": None},
            "test_name": "web_connectivity", "test_runtime": 1.5, "test_start_time": now,
            "test_version": "0.4.3"}
        sub = ok_json(*call(base, "POST", f"/report/{rid}", {"format": "json", "content": content}))
        assert isinstance(sub["measurement_uid"], str) and sub["measurement_uid"]
        uids.append(sub["measurement_uid"])
    assert len(set(uids)) == 3
    assert call(base, "POST", f"/report/{rid}/close", {})[0] == 200

    # 6. single-shot path (desktop CLI): content as a JSON string, no report_id
    content = dict(content, input=wc["urls"][3]["url"])
    del content["report_id"]
    sub = ok_json(*call(base, "POST", "/api/v1/submit_measurement", {
        "format": "json", "content": json.dumps(content), "nym": None, "zkp_request": None,
        "manifest_version": None, "protocol_version": None}))
    assert isinstance(sub["measurement_uid"], str) and sub["measurement_uid"]
