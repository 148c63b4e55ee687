"""Dynamic lists of OONI Run v2: ``websites_list_prioritized`` resolved in
the engine descriptor from the probe's metadata through the check-in's own
prioritization, against seeded CitizenLab lists and measurement counters."""
from __future__ import annotations

import json
import random

import pytest

from tests.functional.oonirun.support import link, v2_headers
from tests.prio_support import insert_measurements, load_citizenlab

GLOBAL = [(f"https://news{i}.example.org/", "NEWS") for i in range(15)] + \
         [(f"https://gambling{i}.example.org/", "GMB") for i in range(15)]
ITALY = [(f"https://italia{i}.example.it/", "POLR") for i in range(5)]
GERMANY = [("https://deutschland.example.de/", "POLR")]
MEASURED = "https://news3.example.org/"


@pytest.fixture
def cfg(cfg):
    # rankings rebuilt at every request: counters inserted by a test apply at once
    return cfg.with_overrides(PRIORITIZATION_CACHE_SECONDS="0")


@pytest.fixture
def lists(db, tmp_path):
    d = tmp_path / "lists"
    d.mkdir()
    for name, items in (("global", GLOBAL), ("it", ITALY), ("de", GERMANY)):
        lines = ["url,category_code,category_description,date_added,source,notes"]
        lines += [f"{u},{c},x,2020-01-01,," for u, c in items]
        (d / f"{name}.csv").write_text("\n".join(lines) + "\n")
    assert load_citizenlab(db, d) == len(GLOBAL) + len(ITALY) + len(GERMANY)


@pytest.fixture
def dynamic_link(client, cfg):
    body = link(nettests=[{"test_name": "web_connectivity",
                           "targets_name": "websites_list_prioritized",
                           "inputs": None, "inputs_extra": None},
                          {"test_name": "dnscheck"}])
    r = client.post("/api/v2/oonirun/links", headers=v2_headers(cfg), json=body)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["oonirun_link_id"]


META = {"run_type": "manual", "is_charging": True, "probe_cc": "IT", "probe_asn": "AS30722",
        "network_type": "wifi", "website_category_codes": []}
PROBE_UA = "ooniprobe-android/5.0.0 (Android 14) ooniprobe-engine/3.22.0"


def engine(client, lid, meta=None, revision="latest", **headers):
    kw = {"json": meta} if meta is not None else {}
    return client.post(f"/api/v2/oonirun/links/{lid}/engine-descriptor/{revision}",
                       headers={"User-Agent": PROBE_UA, **headers}, **kw)


def checkin_urls(client, cc, asn, run_type="manual", charging=True, codes=()):
    body = {"probe_cc": cc, "probe_asn": asn, "run_type": run_type, "charging": charging,
            "software_name": "ooniprobe-android", "software_version": "5.0.0",
            "platform": "android", "on_wifi": True,
            "web_connectivity": {"category_codes": list(codes)}}
    r = client.post("/api/v1/check-in", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 200, r.get_json()
    return r.get_json()["tests"]["web_connectivity"]["urls"]


def test_get_keeps_the_list_dynamic(client, lists, dynamic_link):
    nt = client.get(f"/api/v2/oonirun/links/{dynamic_link}").get_json()["nettests"][0]
    assert (nt["targets_name"], nt["inputs"], nt["inputs_extra"]) == \
        ("websites_list_prioritized", [], [])


def test_engine_descriptor_resolves_as_the_checkin(client, lists, dynamic_link):
    r = engine(client, dynamic_link, META)
    assert r.status_code == 200, r.get_json()
    j = r.get_json()
    assert (j["revision"], j["oonirun_link_id"]) == ("1", dynamic_link)
    assert j["date_created"].endswith("Z")
    wc, dns = j["nettests"]
    assert wc["targets_name"] == "" and dns["inputs"] == []
    # an Italian network gets the global and the Italian list, not the German
    want = {u for u, _ in GLOBAL + ITALY}
    assert set(wc["inputs"]) == want and len(wc["inputs"]) == len(want)
    assert len(wc["inputs_extra"]) == len(wc["inputs"])
    cats = dict(GLOBAL + ITALY)
    for url, extra in zip(wc["inputs"], wc["inputs_extra"]):
        assert extra["category_code"] == cats[url]
        assert extra["country_code"] == ("IT" if "italia" in url else "XX")
    # the same set as this probe's check-in
    assert set(wc["inputs"]) == {u["url"] for u in checkin_urls(client, "IT", "AS30722")}


def test_categories_and_limits_follow_the_checkin(client, lists, dynamic_link):
    wc = engine(client, dynamic_link, dict(META, website_category_codes=["news"])) \
        .get_json()["nettests"][0]
    assert set(wc["inputs"]) == {u for u, c in GLOBAL if c == "NEWS"}
    assert {e["category_code"] for e in wc["inputs_extra"]} == {"NEWS"}
    # a timed run on battery: the check-in's 20 URLs
    wc = engine(client, dynamic_link, dict(META, run_type="timed", is_charging=False)) \
        .get_json()["nettests"][0]
    assert len(wc["inputs"]) == 20 == len(checkin_urls(client, "IT", "AS30722", "timed", False))


def test_counters_push_a_measured_url_down_in_its_network_only(app, client, db, lists,
                                                               dynamic_link):
    # The order among equal weights is random: seeded, so that the check
    # on the other network's order cannot fail by chance.
    app.extensions["ooni"].extras["prioritizer"].rng = random.Random(7)
    insert_measurements(db, MEASURED, "IT", 30722, 50)
    mine = engine(client, dynamic_link, META).get_json()["nettests"][0]["inputs"]
    assert mine[-1] == MEASURED
    other = engine(client, dynamic_link, dict(META, probe_asn="AS3269")) \
        .get_json()["nettests"][0]["inputs"]
    # NEWS outranks GMB: unmeasured in AS3269, it stays among the NEWS URLs
    assert other.index(MEASURED) < 15


def test_networkinfo_header_fills_what_the_body_lacks(client, lists, dynamic_link):
    de = {u for u, _ in GERMANY}
    body = {"run_type": "manual", "is_charging": True}
    wc = engine(client, dynamic_link, body, **{"x-ooni-networkinfo": "AS3320,DE (wifi)"}) \
        .get_json()["nettests"][0]
    assert de <= set(wc["inputs"]) and not any("italia" in u for u in wc["inputs"])
    # the body wins over the header
    wc = engine(client, dynamic_link, dict(body, probe_cc="IT"),
                **{"x-ooni-networkinfo": "AS3320,DE (wifi)"}).get_json()["nettests"][0]
    assert not de & set(wc["inputs"])
    # old probes: no body, no header -> the global list
    wc = engine(client, dynamic_link).get_json()["nettests"][0]
    assert set(wc["inputs"]) <= {u for u, _ in GLOBAL} and wc["inputs"]


@pytest.mark.parametrize("meta,headers,field", [
    (dict(META, run_type="sometimes"), {}, "run_type"),
    (dict(META, run_type=1), {}, "run_type"),
    (dict(META, network_type="carrier_pigeon"), {}, "network_type"),
    (dict(META, network_type=["wifi"]), {}, "network_type"),
    (dict(META, probe_asn="30722"), {}, "probe_asn"),
    (dict(META, probe_asn="ASx"), {}, "probe_asn"),
    (dict(META, probe_asn="AS99999999999"), {}, "probe_asn"),
    (dict(META, probe_asn=30722), {}, "probe_asn"),
    (dict(META, probe_cc="Italy"), {}, "probe_cc"),
    (dict(META, is_charging="yes"), {}, "is_charging"),
    (dict(META, website_category_codes=["NEWS!"]), {}, "category_codes"),
    (dict(META, website_category_codes="NEWS,"*200), {}, "category_codes"),
    ({}, {"x-ooni-networkinfo": "IT,AS30722"}, "x-ooni-networkinfo"),
    ({}, {"x-ooni-networkinfo": "AS1,IT (pigeon)"}, "x-ooni-networkinfo"),
    ({}, {"x-ooni-networkinfo": "AS1,QQ (wifi)"}, "x-ooni-networkinfo"),
])
def test_bad_probe_metadata(client, lists, dynamic_link, meta, headers, field):
    r = engine(client, dynamic_link, meta, **headers)
    assert r.status_code == 400, r.get_json()
    assert field in r.get_json()["error"]


@pytest.mark.parametrize("raw", [b"[]", b"not json", b'"meta"', b"{" * 5000])
def test_bad_probe_metadata_body(client, dynamic_link, raw):
    r = client.post(f"/api/v2/oonirun/links/{dynamic_link}/engine-descriptor/latest",
                    data=raw, content_type="application/json")
    assert r.status_code == 400 and "error" in r.get_json()


def test_engine_descriptor_revisions_and_unknown_links(client, cfg, lists, dynamic_link):
    assert engine(client, dynamic_link, META, revision="1").status_code == 200
    assert engine(client, dynamic_link, META, revision="2").status_code == 404
    assert engine(client, dynamic_link, META, revision="two").status_code == 400
    assert engine(client, "999999999", META).status_code == 404
    # a static revision is served as stored
    r = client.get(f"/api/v2/oonirun/links/{dynamic_link}", headers=v2_headers(cfg))
    body = dict(r.get_json(), nettests=[{"test_name": "web_connectivity",
                                         "inputs": ["https://ooni.org/"]}])
    assert client.put(f"/api/v2/oonirun/links/{dynamic_link}", headers=v2_headers(cfg),
                      json=body).get_json()["revision"] == "2"
    wc = engine(client, dynamic_link, META).get_json()["nettests"][0]
    assert wc["inputs"] == ["https://ooni.org/"]
    wc = engine(client, dynamic_link, META, revision="1").get_json()["nettests"][0]
    assert len(wc["inputs"]) == len(GLOBAL) + len(ITALY)
