"""Fingerprint preparation and matching (fastpath.md §5), including the
worked examples of §5.4 against the JSON fingerprint snapshot."""
from __future__ import annotations

import base64
import json

import pytest

from fastpath.core import process_measurement
from fastpath.fingerprints import (
    Fingerprints,
    load_from_files,
    prepare_expected_countries,
)


@pytest.fixture(scope="module")
def fps(shared_data):
    d = shared_data / "fingerprints"
    return load_from_files(d / "fingerprints_dns.json", d / "fingerprints_http.json")


def wc(cc="IT", blocking=False, requests=None, queries=None):
    return {
        "report_id": "20220815T190259Z_webconnectivity_IT_1_n1_abcdefghijklmnop",
        "probe_cc": cc, "probe_asn": "AS1", "test_name": "web_connectivity",
        "input": "http://example.org/", "measurement_start_time": "2022-08-15 19:04:21",
        "test_start_time": "2022-08-15 19:02:57",
        "test_keys": {"blocking": blocking, "accessible": True,
                      "requests": requests or [], "queries": queries or []},
    }


def resp(body=None, headers=None):
    r = {"response": {"headers": headers or {}}}
    if body is not None:
        r["response"]["body"] = body
    return r


def score(fps, msm):
    out = process_measurement(None, msm, "bogus_uid", fps)
    assert out.status == "scored", out.reason
    return out.scores


@pytest.mark.parametrize("raw, expected", [
    ("", []), (",RU", ["RU"]), ("AU,DE,DK,FR ", ["AU", "DE", "DK", "FR"]), (",ZZ", []),
    ("IT, IR", [" IR", "IT"]), ("ru,RU,it", ["IT", "RU"]),
])
def test_prepare_expected_countries(raw, expected):
    assert prepare_expected_countries(raw) == expected


def test_snapshot_sizes(fps):
    assert len(fps.dns) == 150
    assert len(fps.http) == 1699


def test_it_body_confirmed(fps):
    s = score(fps, wc("IT", False, [resp("xx GdF Stop Page xx")]))
    assert [m["name"] for m in s["fingerprints"]] == ["ooni.it_0"]
    assert s["fingerprints"][0]["expected_countries"] == ["IT"]
    assert (s["blocking_country"], s["blocking_general"], s["confirmed"]) == (1.0, 1.0, True)


def test_it_body_twice_http_diff(fps):
    s = score(fps, wc("IT", "http-diff", [resp("GdF Stop Page"), resp("GdF Stop Page")]))
    assert [m["name"] for m in s["fingerprints"]] == ["ooni.it_0", "ooni.it_0"]
    assert s["blocking_general"] == 2.0


def test_my_body(fps):
    s = score(fps, wc("MY", False, [resp("<p>Makluman/Notification</p>")]))
    assert "ooni.my_0" in [m["name"] for m in s["fingerprints"]]


def test_tr_dns(fps):
    s = score(fps, wc("TR", "dns", queries=[{"answers": [{"ipv4": "195.175.254.2"}]}]))
    assert [m["name"] for m in s["fingerprints"]] == ["ooni.tr_6"]
    assert s["blocking_country"] == 1.0 and s["blocking_general"] == 2.0


def test_id_cname(fps):
    s = score(fps, wc("ID", False, queries=[{"answers": [{"hostname": "internet-positif.org"}]}]))
    assert [m["name"] for m in s["fingerprints"]] == ["ooni.id_44"]
    assert s["blocking_isp"] == 1.0 and s["confirmed"] is True


@pytest.mark.parametrize("value", [
    "http://block.cf.sky.com/?u=x",
    {"format": "base64", "data": base64.b64encode(b"http://block.cf.sky.com/?u=x").decode()},
])
def test_gb_location_prefix(fps, value):
    s = score(fps, wc("GB", False, [resp(headers={"Location": value})]))
    assert [m["name"] for m in s["fingerprints"]] == ["ooni.gb_3"]
    assert (s["blocking_isp"], s["blocking_general"], s["confirmed"]) == (1.0, 1.0, True)


def test_sonicwall_br_confirms_fr_lists(fps):
    s = score(fps, wc("BR", False, [resp(headers={"Server": "SonicWALL"})]))
    assert [m["name"] for m in s["fingerprints"]] == ["ooni.br_1"]
    assert s["blocking_local"] == 1.0 and s["confirmed"] is True
    s = score(fps, wc("FR", False, [resp(headers={"server": "SonicWALL"})]))
    assert [m["name"] for m in s["fingerprints"]] == ["ooni.br_1"]
    assert "confirmed" not in s and s["blocking_local"] == 0.0 and s["blocking_general"] == 0.0


def test_contains_header_ignored(fps):
    s = score(fps, wc("AE", False, [resp(headers={"Location": "xx Protected by WireFilter xx"})]))
    assert "fingerprints" not in s


def test_regexp_body_is_literal(fps):
    assert "fingerprints" not in score(fps, wc("US", False, [resp("<meta name=foo twitter:card")]))
    s = score(fps, wc("US", False, [resp("x <meta name=.*twitter:card x")]))
    assert [(m["name"], m["scope"]) for m in s["fingerprints"]] == [("cp.fp_r_fp_6", "fp")]
    assert "confirmed" not in s


def test_base64_body_bytes_match(fps):
    body = {"format": "base64", "data": base64.b64encode(b"\xff\xfeGdF Stop Page\x00").decode()}
    s = score(fps, wc("IT", False, [resp(body)]))
    assert [m["name"] for m in s["fingerprints"]] == ["ooni.it_0"]


def test_non_ascii_pattern_in_str_and_bytes(fps):
    pat = next(fp.pattern for fp in fps.http if fp.name == "cl.nat_sa")
    s1 = score(fps, wc("SA", False, [resp("<p>" + pat + "</p>")]))
    data = base64.b64encode(("<p>" + pat + "</p>").encode()).decode()
    s2 = score(fps, wc("SA", False, [resp({"format": "base64", "data": data})]))
    assert [m["name"] for m in s1["fingerprints"]] == [m["name"] for m in s2["fingerprints"]]
    assert "cl.nat_sa" in [m["name"] for m in s1["fingerprints"]]


def test_match_order_dns_then_body_then_headers(fps):
    s = score(fps, wc("GB", False,
                      [resp("GdF Stop Page", headers={"Location": "http://block.cf.sky.com/"})],
                      [{"answers": [{"ipv4": "195.175.254.2"}]}]))
    assert [m["name"] for m in s["fingerprints"]] == ["ooni.tr_6", "ooni.it_0", "ooni.gb_3"]


def test_body_matches_in_list_order():
    fps = Fingerprints.from_rows([], [
        {"name": "b", "scope": "fp", "location_found": "body", "pattern_type": "contains",
         "pattern": "zzz", "confidence_no_fp": 1, "expected_countries": ""},
        {"name": "a", "scope": "fp", "location_found": "body", "pattern_type": "contains",
         "pattern": "aaa", "confidence_no_fp": 1, "expected_countries": ""},
        {"name": "a2", "scope": "fp", "location_found": "body", "pattern_type": "contains",
         "pattern": "aaa", "confidence_no_fp": 1, "expected_countries": ""},
    ])
    out = []
    fps.match_body("aaa aaa zzz", out)
    assert [fp.name for fp in out] == ["b", "a", "a2"]


def test_dns_ipv4_wins_over_hostname(fps):
    s = score(fps, wc("ID", False, queries=[{"answers": [
        {"ipv4": "1.1.1.1", "hostname": "internet-positif.org"}]}]))
    assert "fingerprints" not in s


def test_load_csv_and_json_agree_on_format(tmp_path):
    rows = [{"name": "x.1", "scope": "nat", "other_names": "", "location_found": "header.server",
             "pattern_type": "full", "pattern": "Blocker", "confidence_no_fp": "5",
             "expected_countries": "IT,FR"}]
    (tmp_path / "dns.json").write_text("[]")
    (tmp_path / "http.json").write_text(json.dumps(rows))
    (tmp_path / "dns.csv").write_text("name,scope,other_names,location_found,pattern_type,"
                                      "pattern,confidence_no_fp,expected_countries\n")
    (tmp_path / "http.csv").write_text(
        "name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,"
        "expected_countries,source,exp_url,notes\n"
        'x.1,nat,,header.server,full,Blocker,5,"IT,FR",ooni,,\n')
    a = load_from_files(tmp_path / "dns.json", tmp_path / "http.json")
    b = load_from_files(tmp_path / "dns.csv", tmp_path / "http.csv")
    assert a.http == b.http
    assert a.http[0].expected_countries == ("FR", "IT")
    assert a.http[0].confidence_no_fp == 5


def test_shared_csv_loads(shared_data):
    d = shared_data / "fingerprints"
    f = load_from_files(d / "fingerprints_dns.csv", d / "fingerprints_http.csv")
    assert len(f.dns) > 0 and len(f.http) > 0


def test_empty_fingerprints_match_nothing():
    out = process_measurement(None, wc("IT", False, [resp("GdF Stop Page")]), "bogus_uid",
                              Fingerprints.empty())
    assert out.status == "scored" and "fingerprints" not in out.scores


def test_load_from_db(db, shared_data):
    from fastpath.fingerprints import load_from_db
    rows = json.loads((shared_data / "fingerprints" / "fingerprints_http.json").read_text())[:20]
    cols = ["name", "scope", "other_names", "location_found", "pattern_type", "pattern",
            "confidence_no_fp", "expected_countries"]
    db.insert("fingerprints_http", cols, [[r[c] for c in cols] for r in rows])
    f = load_from_db(db)
    assert len(f.http) == 20 and len(f.dns) == 0
    assert {fp.name for fp in f.http} == {r["name"] for r in rows}
