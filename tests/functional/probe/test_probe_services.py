"""Probe services through the Flask test client: the exact shapes and JSON
types the Go client decodes (probe-protocol.md §3), and 4xx JSON for every
kind of bad input."""
import datetime as dt
import json
import re

import jwt
import pytest

from tests.mmdb_writer import write_asn_db, write_country_db
from tests.prio_support import insert_measurements

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
REPORT_ID = re.compile(r"^\d{8}T\d{6}Z_[a-z0-9]+_[A-Z]{2}_\d+_n1_[A-Za-z0-9]{16}$")
IT_IP = "10.2.3.4"


@pytest.fixture
def papp(cfg, db, notifier, tmp_path):
    from ooniapi.core.app import create_app
    write_country_db(tmp_path / "cc.mmdb", {"10.0.0.0/8": "IT", "2001:db8::/32": "DE"})
    write_asn_db(tmp_path / "asn.mmdb", {"10.0.0.0/8": (30722, "Vodafone Italia S.p.A.")})
    c = cfg.with_overrides(GEOIP_CC_DB=str(tmp_path / "cc.mmdb"),
                           GEOIP_ASN_DB=str(tmp_path / "asn.mmdb"),
                           RATE_LIMIT_ENABLED="false",
                           # tests change citizenlab between requests
                           PRIORITIZATION_CACHE_SECONDS="0")
    a = create_app(c, db=db, notify_fastpath=notifier)
    a.testing = True
    return a


@pytest.fixture
def pc(papp):
    return papp.test_client()


@pytest.fixture
def citizenlab(db):
    db.insert("citizenlab", ["domain", "url", "cc", "category_code"], [
        ["www.bbc.com", "https://www.bbc.com/", "ZZ", "NEWS"],
        ["www.example.it", "https://www.example.it/", "it", "POLR"],
        ["www.example.de", "https://www.example.de/", "de", "NEWS"],
        ["casino.example", "https://casino.example/", "ZZ", "GMB"],
    ])


CHECKIN = {"charging": True, "on_wifi": True, "platform": "linux", "probe_asn": "AS30722",
           "probe_cc": "IT", "run_type": "timed", "software_name": "ooniprobe-cli",
           "software_version": "3.31.0-alpha", "web_connectivity": {"category_codes": []}}


def _post(pc, path, body, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return pc.post(path, data=data, content_type="application/json", **kw)


def assert_checkin_shape(j):
    assert type(j["v"]) is int
    assert isinstance(j["probe_cc"], str) and isinstance(j["probe_asn"], str)
    assert RFC3339_Z.match(j["utc_time"])
    assert set(j["conf"]) == {"features", "test_helpers"}
    assert j["conf"]["features"] and all(type(v) is bool for v in j["conf"]["features"].values())
    for name, lst in j["conf"]["test_helpers"].items():
        for h in lst:
            assert all(isinstance(v, str) for v in h.values()), (name, h)
    wc = j["tests"]["web_connectivity"]
    assert isinstance(wc["report_id"], str) and REPORT_ID.match(wc["report_id"])
    for u in wc["urls"]:
        assert set(u) == {"category_code", "country_code", "url"}
        assert all(isinstance(v, str) for v in u.values())


def test_checkin_shape_and_urls(pc, citizenlab):
    r = _post(pc, "/api/v1/check-in", CHECKIN, headers={"X-Real-IP": IT_IP})
    assert r.status_code == 200, r.data
    assert "no-cache" in r.headers["Cache-Control"]
    j = r.get_json()
    assert_checkin_shape(j)
    assert (j["v"], j["probe_cc"], j["probe_asn"]) == (1, "IT", "AS30722")
    assert j["probe_network_name"] == "Vodafone Italia S.p.A."
    # OONI production's flags at the reference commit (issue 11).
    assert j["conf"]["features"] == {"torsf_enabled": False, "vanilla_tor_enabled": False,
                                     "webconnectivity_0.5": True, "openvpn_enabled": False}
    urls = {u["url"]: u for u in j["tests"]["web_connectivity"]["urls"]}
    assert set(urls) == {"https://www.bbc.com/", "https://www.example.it/",
                         "https://casino.example/"}
    assert urls["https://www.bbc.com/"]["country_code"] == "XX"
    assert urls["https://www.example.it/"]["country_code"] == "IT"
    assert len(j["tests"]) == 21
    for t, v in j["tests"].items():
        assert REPORT_ID.match(v["report_id"]), t
        assert "_IT_30722_n1_" in v["report_id"]


def test_checkin_category_filter_and_limits(pc, citizenlab, db):
    body = dict(CHECKIN, web_connectivity={"category_codes": ["news"]})
    urls = _post(pc, "/api/v1/check-in", body).get_json()["tests"]["web_connectivity"]["urls"]
    assert [u["url"] for u in urls] == ["https://www.bbc.com/"]
    body = dict(CHECKIN, web_connectivity={"category_codes": "GMB,NEWS"})
    urls = _post(pc, "/api/v1/check-in", body).get_json()["tests"]["web_connectivity"]["urls"]
    assert {u["category_code"] for u in urls} == {"GMB", "NEWS"}
    # not charging, timed: 20 URLs at most
    db.insert("citizenlab", ["domain", "url", "cc", "category_code"],
              [[f"n{i}.example", f"https://n{i}.example/", "ZZ", "NEWS"] for i in range(150)])
    j = _post(pc, "/api/v1/check-in", dict(CHECKIN, charging=False)).get_json()
    assert len(j["tests"]["web_connectivity"]["urls"]) == 20
    j = _post(pc, "/api/v1/check-in", CHECKIN).get_json()
    assert len(j["tests"]["web_connectivity"]["urls"]) == 100
    j = _post(pc, "/api/v1/check-in", dict(CHECKIN, run_type="manual", charging=False)).get_json()
    assert len(j["tests"]["web_connectivity"]["urls"]) == 153


def test_checkin_uses_geolocation_when_probe_does_not_know(pc, citizenlab):
    r = _post(pc, "/api/v1/check-in", {}, headers={"X-Real-IP": IT_IP})
    j = r.get_json()
    assert (j["probe_cc"], j["probe_asn"]) == ("IT", "AS30722")
    assert "_IT_30722_" in j["tests"]["web_connectivity"]["report_id"]
    # claimed location wins over geolocation for lists and report ids
    body = dict(CHECKIN, probe_cc="DE", probe_asn="AS3320")
    j = _post(pc, "/api/v1/check-in", body, headers={"X-Real-IP": IT_IP}).get_json()
    assert (j["probe_cc"], j["probe_asn"]) == ("IT", "AS30722")
    assert "_DE_3320_" in j["tests"]["web_connectivity"]["report_id"]
    urls = [u["url"] for u in j["tests"]["web_connectivity"]["urls"]]
    assert "https://www.example.de/" in urls and "https://www.example.it/" not in urls


def test_checkin_unknown_location(pc, citizenlab):
    j = _post(pc, "/api/v1/check-in", {}, headers={"X-Real-IP": "192.0.2.1"}).get_json()
    assert (j["probe_cc"], j["probe_asn"], j["probe_network_name"]) == ("ZZ", "AS0", None)
    assert_checkin_shape(j)


def test_checkin_without_geoip_files(client, citizenlab):
    r = _post(client, "/api/v1/check-in", CHECKIN)
    assert r.status_code == 200
    j = r.get_json()
    assert (j["probe_cc"], j["probe_asn"]) == ("ZZ", "AS0")
    assert len(j["tests"]["web_connectivity"]["urls"]) == 3


def test_checkin_db_failure_still_answers(pc, citizenlab, papp, monkeypatch):
    from ooni_common.db import DatabaseError

    from ooniapi.prioritization import cache as prioritizer

    def boom(*a, **k):
        raise DatabaseError("down")
    monkeypatch.setattr(prioritizer, "fetch_counts", boom)
    r = _post(pc, "/api/v1/check-in", CHECKIN)
    assert r.status_code == 200
    assert r.get_json()["tests"]["web_connectivity"]["urls"] == []


@pytest.mark.parametrize("body,msg", [
    (b"not json", "JSON expected"),
    (b"", "JSON expected"),
    (b"[1, 2]", "JSON expected"),
    (b"null", "JSON expected"),
    ({"probe_cc": "QQ"}, "probe_cc"),
    ({"probe_cc": "ITA"}, "probe_cc"),
    ({"probe_cc": 39}, "probe_cc"),
    ({"probe_asn": "30722"}, "probe_asn"),
    ({"probe_asn": 30722}, "probe_asn"),
    ({"probe_asn": "AS-1"}, "probe_asn"),
    ({"probe_asn": "AS99999999999"}, "probe_asn"),
    ({"charging": "yes"}, "charging"),
    ({"on_wifi": 1}, "on_wifi"),
    ({"run_type": "sometimes"}, "run_type"),
    ({"platform": ["linux"]}, "platform"),
    ({"software_name": "x" * 500}, "software_name"),
    ({"software_version": "1.0\n"}, "software_version"),
    ({"web_connectivity": []}, "web_connectivity"),
    ({"web_connectivity": {"category_codes": ["NEWS", "NE WS"]}}, "category_codes"),
    ({"web_connectivity": {"category_codes": ["NEWS"] * 101}}, "category_codes"),
    ({"web_connectivity": {"category_codes": [1]}}, "category_codes"),
    ({"web_connectivity": {"category_codes": {"a": 1}}}, "category_codes"),
])
@pytest.mark.parametrize("path", ["/api/v1/check-in", "/api/_/check-in"])
def test_checkin_bad_input(pc, path, body, msg):
    r = _post(pc, path, body)
    assert r.status_code == 400, (body, r.data)
    assert msg in r.get_json()["error"]


def test_checkin_huge_body(pc):
    r = _post(pc, "/api/v1/check-in", {"platform": "linux", "pad": "x" * 100_000})
    assert r.status_code == 413
    assert "error" in r.get_json()


def test_checkin_without_content_type(pc, citizenlab):
    r = pc.post("/api/v1/check-in", data=json.dumps(CHECKIN))
    assert r.status_code == 200


def test_private_checkin_v2(pc, citizenlab):
    r = _post(pc, "/api/_/check-in", CHECKIN, headers={"X-Real-IP": "10.34.1.1"})
    j = r.get_json()
    assert j["v"] == 2 and "tests" not in j
    # The v2 check-in serves the configured flags too (no octet rollout).
    assert j["conf"]["features"]["webconnectivity_0.5"] is True
    assert j["conf"]["features"]["vanilla_tor_enabled"] is False
    names = [n["test_name"] for n in j["nettests"]]
    assert len(names) == 33 and names[0] == "bridge_reachability"
    for n in j["nettests"]:
        assert set(n) == {"test_name", "report_id", "targets"}
    by = {n["test_name"]: n for n in j["nettests"]}
    assert len(by["dnscheck"]["targets"]) == 42
    assert by["stunreachability"]["targets"][0] == {
        "attributes": {}, "input": "stun://stun.voip.blackberry.com:3478", "options": {}}
    wc = by["web_connectivity"]["targets"]
    assert {t["input"] for t in wc} == {"https://www.bbc.com/", "https://www.example.it/",
                                        "https://casino.example/"}
    assert set(wc[0]["attributes"]) == {"category_code", "country_code"}
    assert by["tor"]["targets"] == []


def test_checkin_measured_url_drops(pc, citizenlab, db):
    insert_measurements(db, "https://www.bbc.com/", "IT", 30722, 30)
    urls = _post(pc, "/api/v1/check-in", CHECKIN).get_json()["tests"]["web_connectivity"]["urls"]
    assert urls[-1]["url"] == "https://www.bbc.com/"


# --- test helpers, collectors, bouncer -------------------------------------

def test_test_helpers(pc):
    r = pc.get("/api/v1/test-helpers")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "max-age=0"
    j = r.get_json()
    assert set(j) == {"dns", "http-return-json-headers", "ssl", "tcp-echo", "traceroute",
                      "web-connectivity"}
    assert j["tcp-echo"][0]["type"] == "legacy"
    assert j["http-return-json-headers"][0]["type"] == "legacy"
    wc = j["web-connectivity"]
    assert {h["address"] for h in wc[:2]} == {"https://6.th.ooni.org", "https://5.th.ooni.org"}
    assert wc[2] == {"address": "https://d33d1gs9kpq1c5.cloudfront.net",
                     "front": "d33d1gs9kpq1c5.cloudfront.net", "type": "cloudfront"}


def test_collectors_and_bouncer(pc):
    r = pc.get("/api/v1/collectors")
    assert r.headers["Cache-Control"] == "max-age=3600"
    assert len(r.get_json()) == 3
    body = {"net-tests": [{"name": "web_connectivity", "version": "0.0.1",
                           "input-hashes": None, "test-helpers": ["web-connectivity"]}]}
    r = pc.post("/bouncer/net-tests", data=json.dumps(body))
    nt = r.get_json()["net-tests"][0]
    assert (nt["name"], nt["version"]) == ("web_connectivity", "0.0.1")
    assert nt["collector"] == "httpo://guegdifjy7bjpequ.onion"
    for bad in [b"xx", b"{}", json.dumps({"net-tests": []}),
                json.dumps({"net-tests": [{"name": "x"}]}), json.dumps({"net-tests": "x"})]:
        r = pc.post("/bouncer/net-tests", data=bad)
        assert (r.status_code, r.get_json()) == (400, {"error": "Malformed request"})


def test_check_report_id(pc):
    r = pc.get("/api/_/check_report_id?report_id=x")
    assert r.get_json() == {"v": 0, "found": True}
    assert r.headers["Cache-Control"] == "max-age=1"


# --- geolookup ---------------------------------------------------------------

def test_geolookup(pc):
    body = {"addresses": [IT_IP, "2001:db8::1", "192.0.2.1", "not-an-ip", "::1"]}
    r = pc.post("/api/v1/geolookup", data=json.dumps(body))
    assert r.status_code == 200
    g = r.get_json()["geolocation"]
    assert g[IT_IP] == {"cc": "IT", "asn": 30722, "as_name": "Vodafone Italia S.p.A."}
    assert g["2001:db8::1"] == {"cc": "DE", "asn": None, "as_name": None}
    for a in ("192.0.2.1", "not-an-ip", "::1"):
        assert g[a] == {"cc": None, "asn": None, "as_name": None}


@pytest.mark.parametrize("body", [b"nope", b"{}", b'{"addresses": "1.2.3.4"}',
                                  b'{"addresses": [1]}',
                                  json.dumps({"addresses": ["1.1.1.1"] * 1001}).encode()])
def test_geolookup_bad_input(pc, body):
    r = pc.post("/api/v1/geolookup", data=body)
    assert r.status_code == 400 and "error" in r.get_json()


# --- register / login / token-gated routes -----------------------------------

REGISTER = {"platform": "miniooni", "probe_asn": "AS0", "probe_cc": "ZZ",
            "software_name": "miniooni", "software_version": "0.1.0-dev",
            "supported_tests": ["web_connectivity"], "password": "a" * 64}


def _token(pc):
    cid = _post(pc, "/api/v1/register", REGISTER).get_json()["client_id"]
    r = _post(pc, "/api/v1/login", {"username": cid, "password": "a" * 64})
    assert r.status_code == 200
    return r.get_json()


def test_register_login(pc):
    r = _post(pc, "/api/v1/register", REGISTER)
    assert r.status_code == 200 and "no-cache" in r.headers["Cache-Control"]
    cid = r.get_json()["client_id"]
    assert isinstance(cid, str) and cid
    j = _token(pc)
    assert isinstance(j["token"], str) and j["token"]
    assert RFC3339_Z.match(j["expire"])
    expire = dt.datetime.strptime(j["expire"], "%Y-%m-%dT%H:%M:%SZ")
    assert expire > dt.datetime.utcnow() + dt.timedelta(days=6)


@pytest.mark.parametrize("body,ctype", [
    (REGISTER, "text/plain"),
    (b"{", "application/json"),
    (dict(REGISTER, probe_cc="XQ"), "application/json"),
    (dict(REGISTER, probe_asn="0"), "application/json"),
    (dict(REGISTER, supported_tests="web_connectivity"), "application/json"),
    (dict(REGISTER, supported_tests=["x"] * 500), "application/json"),
    (dict(REGISTER, password=12), "application/json"),
])
def test_register_bad_input(pc, body, ctype):
    data = body if isinstance(body, bytes) else json.dumps(body)
    r = pc.post("/api/v1/register", data=data, content_type=ctype)
    assert r.status_code == 400 and "error" in r.get_json()


def test_login_errors(pc, cfg):
    assert _post(pc, "/api/v1/login", b"{{").status_code == 400
    assert _post(pc, "/api/v1/login", {"username": 5}).status_code == 400
    assert _post(pc, "/api/v1/login", {"username": "x", "password": ["a"]}).status_code == 400
    forged = jwt.encode({"iat": 1, "aud": "probe_login"}, "not-our-key-" + "z" * 32,
                        algorithm="HS256")
    r = _post(pc, "/api/v1/login", {"username": forged, "password": "x"})
    assert (r.status_code, r.get_json()) == (401, {"error": "Invalid credentials"})
    # a legacy (non-JWT) username still logs in
    assert _post(pc, "/api/v1/login", {"username": "legacy", "password": "x"}).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/test-list/psiphon-config",
                                  "/api/v1/test-list/tor-targets?country_code=IT"])
def test_token_gated_routes(pc, path, cfg):
    tok = _token(pc)["token"]
    r = pc.get(path, headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.data
    assert "no-cache" in r.headers["Cache-Control"]
    assert isinstance(r.get_json(), dict)
    r = pc.get(path)
    assert (r.status_code, r.get_json()) == (401, {"error": "Invalid credentials"})
    r = pc.get(path, headers={"Authorization": tok})
    assert r.status_code == 400
    forged = jwt.encode({"aud": "probe_token"}, "bad-key-" + "q" * 32, algorithm="HS256")
    r = pc.get(path, headers={"Authorization": f"Bearer {forged}"})
    assert (r.status_code, r.get_json()) == (401, {"error": "Invalid JWT signature"})
    cid = _post(pc, "/api/v1/register", REGISTER).get_json()["client_id"]
    r = pc.get(path, headers={"Authorization": f"Bearer {cid}"})
    assert (r.status_code, r.get_json()) == (401, {"error": "Invalid credentials"})


def test_tor_targets_shape(pc):
    tok = _token(pc)["token"]
    j = pc.get("/api/v1/test-list/tor-targets?country_code=ZZ",
               headers={"Authorization": f"Bearer {tok}"}).get_json()
    assert j
    for t in j.values():
        for k in ("address", "name", "protocol", "source"):
            assert isinstance(t[k], str)
        assert t["params"] is None or all(
            isinstance(v, list) and all(isinstance(x, str) for x in v)
            for v in t["params"].values())
    r = pc.get("/api/v1/test-list/tor-targets?country_code=XYZ",
               headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 400


def test_config_files_missing_or_broken(cfg, db, notifier, tmp_path):
    from ooniapi.core.app import create_app
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    a = create_app(cfg.with_overrides(PSIPHON_CONFFILE=str(tmp_path / "missing.json"),
                                      TOR_TARGETS_CONFFILE=str(bad)),
                   db=db, notify_fastpath=notifier)
    c = a.test_client()
    tok = _token(c)["token"]
    h = {"Authorization": f"Bearer {tok}"}
    r = c.get("/api/v1/test-list/psiphon-config", headers=h)
    assert r.status_code == 500 and "missing" in r.get_json()["error"]
    r = c.get("/api/v1/test-list/tor-targets", headers=h)
    assert r.status_code == 500 and "not a JSON object" in r.get_json()["error"]


def test_probe_routes_have_docs(papp):
    from ooniapi.prioritization import routes as prioritization
    from ooniapi.probe import routes as probe_services
    for mod in (probe_services, prioritization):
        for name in dir(mod):
            fn = getattr(mod, name)
            if callable(fn) and getattr(fn, "__module__", "") == mod.__name__ \
                    and f"{mod.bp.name}.{name}" in papp.view_functions:
                assert fn.__doc__ and "---" in fn.__doc__, name
