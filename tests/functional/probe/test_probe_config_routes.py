"""Check-in flags and helper lists from config, vpn-config, update, version."""
from __future__ import annotations

import json

import pytest

from ooni_common.config import ConfigError
from ooniapi.core.app import create_app

CHECKIN = {"probe_cc": "IT", "probe_asn": "AS30722", "on_wifi": True, "charging": True,
           "run_type": "timed", "software_name": "ooniprobe-cli", "software_version": "3.24.0"}


def make(cfg, db, notifier, **over):
    a = create_app(cfg.with_overrides(**over), db=db, notify_fastpath=notifier)
    return a.test_client()


def test_helpers_and_flags_from_config(cfg, db, notifier):
    c = make(cfg, db, notifier,
             CHECKIN_FEATURES="vanilla_tor_enabled=true,webconnectivity_0.5=false,newflag=on",
             TEST_HELPERS_WEB_CONNECTIVITY="https://th.example.net",
             TEST_HELPERS_NAMES="tcp-echo http-return-json-headers dnscheck",
             TEST_HELPERS_TCP_ECHO="192.0.2.1 192.0.2.2",
             TEST_HELPERS_HTTP_RETURN_JSON_HEADERS="legacy=http://192.0.2.3:80",
             TEST_HELPERS_DNSCHECK="https=https://dns.example.net/dns-query",
             CHECKIN_DNSCHECK_INPUTS="https://dns.example.net/dns-query dot://192.0.2.9:853/")
    want = {"tcp-echo": [{"address": "192.0.2.1", "type": "legacy"},
                         {"address": "192.0.2.2", "type": "legacy"}],
            "http-return-json-headers": [{"address": "http://192.0.2.3:80", "type": "legacy"}],
            "dnscheck": [{"address": "https://dns.example.net/dns-query", "type": "https"}],
            "web-connectivity": [{"address": "https://th.example.net", "type": "https"}]}
    assert c.get("/api/v1/test-helpers").get_json() == want
    j = c.post("/api/v1/check-in", json=CHECKIN).get_json()
    assert j["conf"]["test_helpers"] == want
    assert j["conf"]["features"] == {"torsf_enabled": False, "vanilla_tor_enabled": True,
                                     "webconnectivity_0.5": False, "openvpn_enabled": False,
                                     "newflag": True}
    j = c.post("/api/_/check-in", json=CHECKIN).get_json()
    assert j["conf"]["test_helpers"] == want
    assert j["conf"]["features"]["vanilla_tor_enabled"] is True
    by = {n["test_name"]: n for n in j["nettests"]}
    assert [t["input"] for t in by["dnscheck"]["targets"]] == [
        "https://dns.example.net/dns-query", "dot://192.0.2.9:853/"]
    nt = c.post("/bouncer/net-tests", json={"net-tests": [{"name": "x", "version": "1"}]}
                ).get_json()["net-tests"][0]
    assert nt["test-helpers"]["tcp-echo"] == "192.0.2.1"
    assert nt["test-helpers"]["http-return-json-headers"] == "http://192.0.2.3:80"


def test_default_helpers_are_production(client):
    j = client.get("/api/v1/test-helpers").get_json()
    assert j["tcp-echo"] == [{"address": "37.218.241.93", "type": "legacy"}] * 2
    assert j["dns"] == [{"address": "37.218.241.93:57004", "type": "legacy"}] * 2
    assert {h["address"] for h in j["web-connectivity"]} == {
        "https://6.th.ooni.org", "https://5.th.ooni.org", "https://d33d1gs9kpq1c5.cloudfront.net"}


@pytest.mark.parametrize("over", [
    {"TEST_HELPERS_NAMES": "Bad_Name"},
    {"TEST_HELPERS_NAMES": "web-connectivity"},
    {"TEST_HELPERS_TCP_ECHO": "https=not a url"},
    {"CHECKIN_FEATURES": "x=maybe"},
    {"CHECKIN_DNSCHECK_INPUTS": "nothing"},
    {"VPN_PROVIDERS": "riseupvpn"},
    {"ANONCRED_POLICY": "IT:1:2"},
])
def test_bad_config_fails_at_start(cfg, db, notifier, over):
    with pytest.raises(ConfigError):
        make(cfg, db, notifier, **over)


def test_vpn_config(cfg, db, notifier, tmp_path):
    f = tmp_path / "riseup.json"
    eps = [f"openvpn://riseup.corp/?address=192.0.2.{i}:1194&transport=tcp" for i in range(6)]
    f.write_text(json.dumps({"config": {"ca": "CA", "cert": "CERT", "key": "KEY"},
                             "endpoints": eps, "date_updated": "2026-12-01T00:00:00.000000Z"}))
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    c = make(cfg, db, notifier, VPN_PROVIDERS=f"riseupvpn={f} brokenvpn={broken} "
                                              f"gonevpn={tmp_path / 'missing.json'}")
    r = c.get("/api/v2/ooniprobe/vpn-config/riseupvpn?country_code=IT")
    assert r.status_code == 200 and "no-cache" in r.headers["Cache-Control"]
    j = r.get_json()
    assert (j["provider"], j["protocol"], j["config"]) == (
        "riseupvpn", "openvpn", {"ca": "CA", "cert": "CERT", "key": "KEY"})
    assert len(j["endpoints"]) == 4 and set(j["endpoints"]) <= set(eps)
    assert j["date_updated"] == "2026-12-01T00:00:00.000000Z"
    r = c.get("/api/v2/ooniprobe/vpn-config/unknownvpn")
    assert (r.status_code, r.get_json()) == (404, {"error": "provider not found"})
    assert c.get("/api/v2/ooniprobe/vpn-config/riseupvpn?country_code=XQQ").status_code == 400
    for p in ("brokenvpn", "gonevpn"):
        r = c.get(f"/api/v2/ooniprobe/vpn-config/{p}")
        assert r.status_code == 503 and isinstance(r.get_json()["error"], str)


def test_vpn_config_none_configured(client):
    assert client.get("/api/v2/ooniprobe/vpn-config/riseupvpn").status_code == 404


def test_probe_update(client):
    body = {"probe_cc": "IT", "probe_asn": "AS30722", "platform": "linux",
            "software_name": "ooniprobe", "software_version": "3.24.0",
            "supported_tests": ["web_connectivity"], "network_type": "wifi"}
    r = client.put("/api/v1/update/some-client-id", json=body)
    assert (r.status_code, r.get_json()) == (200, {"status": "ok"})
    assert client.put("/api/v1/update/x", json={}).get_json() == {"status": "ok"}
    for bad in ({"probe_cc": 3}, {"supported_tests": "web"}, []):
        r = client.put("/api/v1/update/x", json=bad)
        assert r.status_code == 400 and isinstance(r.get_json()["error"], str)
    assert client.put("/api/v1/update/x", data=b"{nope",
                      headers={"Content-Type": "application/json"}).status_code == 400
    assert client.post("/api/v1/update/x", json=body).status_code == 405


def test_version(client):
    j = client.get("/version").get_json()
    assert j["version"] == "0.1.0" and isinstance(j["build_label"], str)
