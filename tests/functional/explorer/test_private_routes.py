"""Private Explorer routes (api.md §6) against the embedded ClickHouse:
shapes, types, cache headers, day windows relative to today and the 400
answers. Expected values are computed here from the rows the test inserts."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.functional.msm_rows import insert, row, scores_for

from ooniapi.core.fixed_data import TEST_GROUPS
from ooniapi.core.schema import seed_test_groups

ASN_A, ASN_B, ASN_C = 30722, 3269, 4200000001


@pytest.fixture
def today(db) -> dt.date:
    # The routes take today from the database; so does the test.
    return db.execute("SELECT today()")[0][0]


@pytest.fixture
def groups(db):
    # Tables are truncated before each test: seed again, as schema creation does.
    seed_test_groups(db)
    seed_test_groups(db)
    return db


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour))


def msm(day: dt.date, n: int = 0, **kw) -> dict:
    """A row on ``day``; ``n`` makes rows of the same day distinct."""
    return row(measurement_start_time=at(day, n % 24) + dt.timedelta(seconds=n // 24),
               input=kw.pop("input", f"https://site{n}.example.org/"), **kw)


def get(client, path: str, status: int = 200, max_age: int | None = None):
    r = client.get(path)
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    if status != 200:
        assert "no-cache" in r.headers["Cache-Control"]
    elif max_age is not None:
        assert r.headers["Cache-Control"] == f"max-age={max_age}"
    return r.get_json()


def iso_midnight(d: dt.date) -> str:
    return f"{d.isoformat()}T00:00:00+00:00"


def month_start(d: dt.date, back: int = 0) -> dt.date:
    m = d.year * 12 + d.month - 1 - back
    return dt.date(m // 12, m % 12 + 1, 1)


# --- static and global routes -------------------------------------------------

def test_test_names(client):
    j = get(client, "/api/_/test_names", max_age=3600)
    ids = [t["id"] for t in j["test_names"]]
    assert len(ids) == 24 and ids[0] == "bridge_reachability" and ids[-1] == "whatsapp"
    assert ids == sorted(ids)
    names = {t["id"]: t["name"] for t in j["test_names"]}
    assert names["web_connectivity"] == "Web Connectivity"
    assert names["torsf"] == "Tor Snowflake" and names["meek_fronted_requests_test"] == "Meek Fronted Requests"


def test_countries_counts_once_per_measurement_and_skips_unknown(client, db, today):
    rows = [msm(today, i, probe_cc="IT") for i in range(3)] + \
           [msm(today, 10 + i, probe_cc="CA") for i in range(2)] + \
           [msm(today, 20, probe_cc="ZZ"), msm(today, 21, probe_cc="BA")]
    insert(db, rows)
    insert(db, rows[:1])  # re-scored: same uid, must count once
    j = get(client, "/api/_/countries", max_age=86400)
    assert j == {"countries": [
        {"alpha_2": "BA", "name": "Bosnia", "count": 1},
        {"alpha_2": "CA", "name": "Canada", "count": 2},
        {"alpha_2": "IT", "name": "Italy", "count": 3},
    ]}


def test_by_month_routes(client, db, today):
    this_month, three_ago = month_start(today), month_start(today, 3)
    rows = [
        msm(this_month, 1, probe_asn=ASN_A, probe_cc="IT"),
        msm(this_month, 2, probe_asn=ASN_B, probe_cc="IT"),
        msm(this_month, 3, probe_asn=ASN_B, probe_cc="DE"),
        msm(three_ago, 4, probe_asn=ASN_C, probe_cc="US"),
        msm(month_start(today, 30), 5, probe_asn=ASN_A, probe_cc="RU"),  # too old
    ]
    insert(db, rows)
    insert(db, rows[:1])
    asn = get(client, "/api/_/asn_by_month", max_age=86400)
    assert asn == [{"date": iso_midnight(three_ago), "value": 1},
                   {"date": iso_midnight(this_month), "value": 2}]
    ccs = get(client, "/api/_/countries_by_month", max_age=86400)
    assert ccs == [{"date": iso_midnight(three_ago), "value": 1},
                   {"date": iso_midnight(this_month), "value": 2}]
    g = get(client, "/api/_/global_overview_by_month", max_age=86400)
    assert g["networks_by_month"] == asn
    assert g["countries_by_month"] == ccs
    assert g["measurements_by_month"] == [{"date": iso_midnight(three_ago), "value": 1},
                                          {"date": iso_midnight(this_month), "value": 3}]
    o = get(client, "/api/_/global_overview", max_age=86400)
    assert o == {"network_count": 3, "country_count": 4, "measurement_count": 5}


def test_empty_database(client, db):
    assert get(client, "/api/_/asn_by_month") == []
    assert get(client, "/api/_/countries") == {"countries": []}
    assert get(client, "/api/_/global_overview") == {
        "network_count": 0, "country_count": 0, "measurement_count": 0}
    assert get(client, "/api/_/vanilla_tor_stats?probe_cc=IT", max_age=0) == {
        "networks": [], "notok_networks": 0, "last_tested": None}
    assert get(client, "/api/_/im_networks?probe_cc=IT", max_age=3600) == {}
    assert get(client, "/api/_/country_overview?probe_cc=IT", max_age=86400) == {
        "first_bucket_date": None, "measurement_count": 0, "network_count": 0}
    assert get(client, "/api/_/circumvention_runtime_stats", max_age=86400) == {"v": 0, "results": []}
    assert get(client, "/api/_/networks", max_age=7200) == {"v": 0, "results": []}
    assert get(client, "/api/_/domains", max_age=7200) == {"v": 0, "results": []}


# --- country routes -------------------------------------------------------------

def test_test_coverage(client, db, groups, today):
    d = lambda n: today - dt.timedelta(days=n)  # noqa: E731
    insert(db, [
        msm(d(5), 1, test_name="web_connectivity", probe_asn=ASN_A),
        msm(d(5), 2, test_name="web_connectivity", probe_asn=ASN_B),
        msm(d(5), 3, test_name="telegram", probe_asn=ASN_C, input=""),
        msm(d(32), 4, test_name="ndt", probe_asn=ASN_A, input=""),   # first test_coverage day
        msm(d(31), 5, test_name="ndt", probe_asn=ASN_B, input=""),   # first network day
        msm(d(2), 6, test_name="web_connectivity", probe_asn=ASN_A),  # after test_coverage
        msm(d(1), 7, test_name="web_connectivity", probe_asn=ASN_A),  # after both windows
        msm(d(5), 8, test_name="web_connectivity", probe_asn=ASN_A, probe_cc="DE"),
    ])
    # Seeded once from the fixed map, however often schema creation runs.
    assert db.execute("SELECT count() FROM test_groups")[0][0] == \
        sum(len(v) for v in TEST_GROUPS.values())
    j = get(client, "/api/_/test_coverage?probe_cc=it", max_age=3600)
    tc_days = [d(n).isoformat() for n in range(32, 2, -1)]
    names = sorted(TEST_GROUPS)
    assert [(e["test_group"], e["test_day"]) for e in j["test_coverage"]] == \
        [(g, day) for g in names for day in tc_days]
    nonzero = {(e["test_group"], e["test_day"]): e["count"] for e in j["test_coverage"] if e["count"]}
    assert nonzero == {("websites", d(5).isoformat()): 2, ("im", d(5).isoformat()): 1,
                       ("performance", d(32).isoformat()): 1, ("performance", d(31).isoformat()): 1}
    assert all(isinstance(e["count"], int) for e in j["test_coverage"])

    nc_days = [d(n).isoformat() for n in range(31, 1, -1)]
    assert [e["test_day"] for e in j["network_coverage"]] == nc_days
    assert {e["test_day"]: e["count"] for e in j["network_coverage"] if e["count"]} == {
        d(5).isoformat(): 3, d(31).isoformat(): 1, d(2).isoformat(): 1}

    im = get(client, "/api/_/test_coverage?probe_cc=IT&test_groups=im,nosuchgroup")
    assert {e["test_day"]: e["count"] for e in im["network_coverage"] if e["count"]} == {
        d(5).isoformat(): 1}
    assert im["test_coverage"] == j["test_coverage"]
    none = get(client, "/api/_/test_coverage?probe_cc=IT&test_groups=nosuchgroup")
    assert len(none["network_coverage"]) == 30
    assert all(e["count"] == 0 for e in none["network_coverage"])


def test_website_networks_window_and_order(client, db, today):
    d = lambda n: today - dt.timedelta(days=n)  # noqa: E731
    rows = [msm(d(1), i, probe_asn=ASN_B) for i in range(3)] + \
           [msm(d(31), 10, probe_asn=ASN_A), msm(d(30), 11, probe_asn=ASN_A),
            msm(d(3), 12, probe_asn=ASN_C, test_name="telegram", input=""),
            msm(d(3), 13, probe_asn=ASN_C, test_name="telegram", input="x"),
            msm(d(32), 14, probe_asn=ASN_C), msm(today, 15, probe_asn=ASN_C),
            msm(d(3), 16, probe_asn=ASN_C, probe_cc="DE")]
    insert(db, rows)
    j = get(client, "/api/_/website_networks?probe_cc=IT", max_age=0)
    assert j == {"results": [{"count": 3, "probe_asn": ASN_B}, {"count": 2, "probe_asn": ASN_A},
                             {"count": 2, "probe_asn": ASN_C}]}


def test_website_stats(client, db, today):
    d = lambda n: today - dt.timedelta(days=n)  # noqa: E731
    url = "https://www.example.org/a?b=c"
    flags = [("t", "t", "f"), ("t", "f", "f"), ("f", "f", "t"), ("f", "f", "f")]
    rows = [msm(d(4), i, input=url, probe_asn=ASN_A, anomaly=a, confirmed=c, msm_failure=f,
                scores=scores_for(a == "t", c == "t", f == "t"))
            for i, (a, c, f) in enumerate(flags)]
    rows += [msm(d(2), 10, input=url, probe_asn=ASN_A),
             msm(d(2), 11, input=url, probe_asn=ASN_B),
             msm(d(2), 12, input=url + "x", probe_asn=ASN_A),
             msm(d(40), 13, input=url, probe_asn=ASN_A)]
    insert(db, rows)
    from urllib.parse import quote
    j = get(client, f"/api/_/website_stats?probe_cc=IT&probe_asn=AS{ASN_A}&input={quote(url)}",
            max_age=0)
    assert j == {"results": [
        {"test_day": d(4).isoformat(), "anomaly_count": 2, "confirmed_count": 1,
         "failure_count": 1, "total_count": 4},
        {"test_day": d(2).isoformat(), "anomaly_count": 0, "confirmed_count": 0,
         "failure_count": 0, "total_count": 1}]}
    e = get(client, f"/api/_/website_stats?probe_cc=IT&input={quote(url)}", 400)
    assert e == {"error": "missing or incorrect probe_asn"}
    e = get(client, f"/api/_/website_stats?probe_cc=IT&probe_asn={ASN_A}", 400)
    assert e["error"] == "missing or incorrect input"


def test_website_urls_paging(client, db, today):
    d = today - dt.timedelta(days=3)
    spec = {  # input -> list of (anomaly, confirmed, failure)
        "https://a.example/": [("t", "t", "f")],
        "https://b.example/": [("f", "f", "f")] * 3,
        "https://c.example/": [("t", "f", "f"), ("f", "f", "f"), ("f", "f", "t")],
        "https://d.example/": [("f", "f", "f")] * 3,
        "https://e.example/": [("f", "f", "f")],
    }
    rows, n = [], 0
    for inp, fl in spec.items():
        for a, c, f in fl:
            n += 1
            rows.append(msm(d, n, input=inp, probe_asn=209, anomaly=a, confirmed=c, msm_failure=f))
    rows.append(msm(d, 99, input="https://z.example/", probe_asn=209, test_name="telegram"))
    rows.append(msm(d, 98, input="https://y.example/", probe_asn=210))
    insert(db, rows)

    def counters(inp):
        fl = spec[inp]
        return {"input": inp, "anomaly_count": sum(x[0] == "t" for x in fl),
                "confirmed_count": sum(x[1] == "t" for x in fl),
                "failure_count": sum(x[2] == "t" for x in fl), "total_count": len(fl)}
    expected = sorted((counters(i) for i in spec),
                      key=lambda r: (-r["confirmed_count"], -r["total_count"],
                                     -r["anomaly_count"], r["input"]))
    assert [r["input"] for r in expected][:3] == ["https://a.example/", "https://c.example/",
                                                  "https://b.example/"]

    j = get(client, "/api/_/website_urls?probe_cc=IT&probe_asn=AS209&limit=2", max_age=3600)
    assert j["results"] == expected[:2]
    assert j["metadata"] == {
        "offset": 0, "limit": 2, "current_page": 1, "total_count": 5,
        "next_url": "https://api.ooni.io/api/_/website_urls?limit=2&offset=2&probe_asn=209&probe_cc=IT"}
    j = get(client, "/api/_/website_urls?probe_cc=IT&probe_asn=209&limit=2&offset=4")
    assert j["results"] == expected[4:]
    assert j["metadata"]["current_page"] == 3 and j["metadata"]["next_url"] is None
    j = get(client, "/api/_/website_urls?probe_cc=IT&probe_asn=209&limit=0")
    assert j["metadata"]["limit"] == 10 and j["results"] == expected
    assert j["metadata"]["next_url"] is None
    assert get(client, "/api/_/website_urls?probe_cc=IT&probe_asn=209&limit=x", 400)["error"]
    assert get(client, "/api/_/website_urls?probe_cc=IT&probe_asn=209&offset=-1", 400)["error"]
    assert get(client, "/api/_/website_urls?probe_cc=IT", 400) == {
        "error": "missing or incorrect probe_asn"}


def test_vanilla_tor_stats(client, db, today):
    d = lambda n: today - dt.timedelta(days=n)  # noqa: E731
    rows = []
    # ASN_A: 6 runs, 3 anomalies -> 50% success, not ok
    for i in range(6):
        rows.append(msm(d(10 + i), i, test_name="vanilla_tor", input="", probe_asn=ASN_A,
                        anomaly="t" if i < 3 else "f", msm_failure="t" if i == 0 else "f"))
    # ASN_B: 2 runs, both anomalies, but too few to count as not ok
    rows += [msm(d(3), 20 + i, test_name="vanilla_tor", input="", probe_asn=ASN_B, anomaly="t")
             for i in range(2)]
    rows += [msm(d(3), 30, test_name="tor", input="", probe_asn=ASN_C),        # other test
             msm(d(400), 31, test_name="vanilla_tor", input="", probe_asn=ASN_C)]  # too old
    insert(db, rows)
    j = get(client, "/api/_/vanilla_tor_stats?probe_cc=IT", max_age=0)
    nulls = {"test_runtime_avg": None, "test_runtime_max": None, "test_runtime_min": None}
    assert j == {
        "networks": [
            {"probe_asn": ASN_B, "total_count": 2, "success_count": 0, "failure_count": 0,
             "last_tested": d(3).isoformat(), **nulls},
            {"probe_asn": ASN_A, "total_count": 6, "success_count": 3, "failure_count": 1,
             "last_tested": d(10).isoformat(), **nulls},
        ],
        "notok_networks": 1,
        "last_tested": d(3).isoformat(),
    }


def test_im_networks_and_stats(client, db, today):
    d = lambda n: today - dt.timedelta(days=n)  # noqa: E731
    rows = [msm(d(2), i, test_name="telegram", input="", probe_asn=ASN_A) for i in range(3)]
    rows += [msm(d(5), 10, test_name="telegram", input="", probe_asn=ASN_B),
             msm(d(9), 11, test_name="signal", input="", probe_asn=ASN_B),
             msm(d(31), 12, test_name="telegram", input="", probe_asn=ASN_A),
             msm(d(40), 13, test_name="whatsapp", input="", probe_asn=ASN_A),
             msm(d(2), 14, test_name="web_connectivity", probe_asn=ASN_A),
             msm(today, 15, test_name="telegram", input="", probe_asn=ASN_A)]
    insert(db, rows)
    j = get(client, "/api/_/im_networks?probe_cc=IT", max_age=3600)
    assert j == {
        "signal": {"anomaly_networks": [], "last_tested": d(9).isoformat(), "ok_networks": [
            {"asn": ASN_B, "name": "", "total_count": 1, "last_tested": d(9).isoformat()}]},
        "telegram": {"anomaly_networks": [], "last_tested": d(2).isoformat(), "ok_networks": [
            {"asn": ASN_A, "name": "", "total_count": 4, "last_tested": d(2).isoformat()},
            {"asn": ASN_B, "name": "", "total_count": 1, "last_tested": d(5).isoformat()}]},
    }

    s = get(client, f"/api/_/im_stats?test_name=telegram&probe_cc=IT&probe_asn=AS{ASN_A}",
            max_age=3600)["results"]
    assert [e["test_day"] for e in s] == [iso_midnight(d(n)) for n in range(31, -1, -1)]
    assert all(e["anomaly_count"] is None for e in s)
    counts = {e["test_day"]: e["total_count"] for e in s if e["total_count"]}
    assert counts == {iso_midnight(d(2)): 3, iso_midnight(d(31)): 1, iso_midnight(today): 1}
    for bad in ("web_connectivity", "", "telegram'--"):
        assert get(client, f"/api/_/im_stats?test_name={bad}&probe_cc=IT&probe_asn=1", 400) == {
            "error": "invalid test_name"}
    assert get(client, "/api/_/im_stats?test_name=signal&probe_cc=IT", 400) == {
        "error": "missing or incorrect probe_asn"}


def test_country_overview(client, db, today):
    rows = [msm(dt.date(2015, 3, 4), 1, probe_asn=ASN_A), msm(today, 2, probe_asn=ASN_B),
            msm(today, 3, probe_asn=ASN_B), msm(dt.date(2011, 1, 1), 4, probe_asn=ASN_C),
            msm(today, 5, probe_cc="DE")]
    insert(db, rows)
    assert get(client, "/api/_/country_overview?probe_cc=IT", max_age=86400) == {
        "first_bucket_date": "2015-03-04", "measurement_count": 3, "network_count": 2}


def test_circumvention_routes(client, db, today):
    d = lambda n: today - dt.timedelta(days=n)  # noqa: E731

    def rt(test, cc, day, n, runtime):
        s = json.loads(scores_for(False, False, False))
        if runtime is not None:
            s["extra"] = {"test_runtime": runtime}
        return msm(day, n, test_name=test, probe_cc=cc, input="", scores=json.dumps(s))
    rows = [rt("tor", "IT", d(3), 1, 10.0), rt("tor", "IT", d(3), 2, 20.0),
            rt("tor", "IT", d(3), 3, 30.0), rt("torsf", "RU", d(4), 4, 5.5),
            rt("psiphon", "IT", d(4), 5, None),      # no runtime: counted by country only
            rt("tor", "IT", today, 6, 1.0),          # today: outside
            rt("tor", "IT", d(200), 7, 1.0),         # over 6 months: outside
            rt("web_connectivity", "IT", d(3), 8, 1.0)]
    insert(db, rows)
    j = get(client, "/api/_/circumvention_stats_by_country", max_age=86400)
    assert j == {"v": 0, "results": [{"probe_cc": "IT", "cnt": 4}, {"probe_cc": "RU", "cnt": 1}]}

    j = get(client, "/api/_/circumvention_runtime_stats", max_age=86400)
    assert j["v"] == 0
    res = j["results"]
    keys = [(r["test_name"], r["probe_cc"], r["date"]) for r in res]
    dates = [d(4).isoformat(), d(3).isoformat()]
    assert keys == [(t, c, day) for t in ("tor", "torsf") for c in ("IT", "RU") for day in dates]
    cells = {k: r["v"] for k, r in zip(keys, res)}
    p50, p90, cnt = cells[("tor", "IT", d(3).isoformat())]
    assert cnt == 3 and 10.0 <= p50 <= 30.0 and p50 <= p90 <= 30.0
    assert cells[("torsf", "RU", d(4).isoformat())] == [5.5, 5.5, 1]
    assert sum(1 for v in cells.values() if v == []) == 6


# --- metadata routes -------------------------------------------------------------

CITIZENLAB = [
    ("www.facebook.com", "https://www.facebook.com/", "ZZ", "GRP"),
    ("facebook.com", "https://facebook.com/some/long/path", "IT", "NEWS"),
    ("twitter.com", "https://twitter.com/", "ZZ", "GRP"),
    ("twitter.com", "https://twitter.com/amnesty", "ZZ", "HUMR"),
    ("www.twitter.com", "http://www.twitter.com/", "DE", "POLR"),
    ("local.example", "https://local.example/", "IT", "NEWS"),
    ("local.example", "https://local.example/x", "DE", "MILX"),
    ("nocategory.example", "https://nocategory.example/", "ZZ", ""),
]


def test_domain_metadata(client, db):
    db.insert("citizenlab", ["domain", "url", "cc", "category_code"], [list(r) for r in CITIZENLAB])
    for domain, code, canonical in [
            ("facebook.com", "GRP", "www.facebook.com"),
            ("www.facebook.com", "GRP", "www.facebook.com"),
            ("www.twitter.com", "GRP", "twitter.com"),
            ("local.example", "NEWS", "local.example"),
            ("www.x.com", "MISC", "x.com"),
            ("x.com' OR '1'='1", "MISC", "x.com' OR '1'='1")]:
        from urllib.parse import quote
        j = get(client, f"/api/_/domain_metadata?domain={quote(domain)}", max_age=7200)
        assert j == {"category_code": code, "canonical_domain": canonical}, domain
    assert get(client, "/api/_/domain_metadata", 400) == {"error": "missing domain"}


def test_domains(client, db, today):
    db.insert("citizenlab", ["domain", "url", "cc", "category_code"], [list(r) for r in CITIZENLAB])
    insert(db, [msm(today, 1, input="https://twitter.com/x", domain="twitter.com"),
                msm(today, 2, input="https://twitter.com/y", domain="twitter.com"),
                msm(today, 3, input="https://twitter.com/z", domain="twitter.com",
                    test_name="urlgetter"),
                msm(today, 4, input="https://local.example/", domain="local.example"),
                msm(today, 5, input="https://other.example/", domain="other.example")])
    j = get(client, "/api/_/domains", max_age=7200)
    assert j == {"v": 0, "results": [
        {"domain_name": "facebook.com", "category_code": "NEWS", "measurement_count": 0},
        {"domain_name": "local.example", "category_code": "MILX", "measurement_count": 1},
        {"domain_name": "twitter.com", "category_code": "GRP", "measurement_count": 2},
        {"domain_name": "www.facebook.com", "category_code": "GRP", "measurement_count": 0},
        {"domain_name": "www.twitter.com", "category_code": "POLR", "measurement_count": 0},
    ]}


ASNMETA_COLS = ["asn", "org_name", "cc", "changed", "aut_name", "source"]


def test_asnmeta_and_networks(client, db, today):
    db.insert("asnmeta", ASNMETA_COLS, [
        [ASN_A, "Old Name", "IT", dt.date(2019, 1, 1), "A", "test"],
        [ASN_A, "Vodafone Italia", "IT", dt.date(2023, 5, 1), "A", "test"],
        [ASN_B, "Telecom Italia", "IT", dt.date(2020, 1, 1), "B", "test"]])
    assert get(client, f"/api/_/asnmeta?asn={ASN_A}", max_age=7200) == {"org_name": "Vodafone Italia"}
    assert get(client, f"/api/_/asnmeta?asn=AS{ASN_B}") == {"org_name": "Telecom Italia"}
    assert get(client, "/api/_/asnmeta?asn=64496") == {"org_name": "Unknown"}
    assert get(client, "/api/_/asnmeta", 400) == {"error": "missing asn"}
    for bad in ("abc", "1 OR 1=1", "99999999999", "-5"):
        assert "error" in get(client, f"/api/_/asnmeta?asn={bad}", 400)

    rows = [msm(today, i, probe_asn=ASN_A) for i in range(3)] + [msm(today, 5, probe_asn=ASN_C)]
    insert(db, rows)
    insert(db, rows[:2])
    j = get(client, "/api/_/networks", max_age=7200)
    assert j == {"v": 0, "results": [
        {"probe_asn": ASN_A, "cnt": 3, "org_name": "Vodafone Italia"},
        {"probe_asn": ASN_C, "cnt": 1, "org_name": ""}]}
    assert isinstance(j["results"][1]["probe_asn"], int)


# --- bad input ---------------------------------------------------------------------

CC_ROUTES = ["test_coverage", "website_networks", "website_stats?probe_asn=1&input=x",
             "website_urls?probe_asn=1", "vanilla_tor_stats", "im_networks",
             "im_stats?test_name=telegram&probe_asn=1", "country_overview"]


@pytest.mark.parametrize("route", CC_ROUTES)
@pytest.mark.parametrize("cc", [None, "", "I", "ITA", "1T", "I'", "IT' OR 1=1--"])
def test_probe_cc_is_required(client, db, route, cc):
    sep = "&" if "?" in route else "?"
    path = f"/api/_/{route}" + ("" if cc is None else f"{sep}probe_cc={cc}")
    assert get(client, path, 400) == {"error": "missing or incorrect probe_cc"}


def test_sql_looking_input_is_harmless(client, db, groups, today):
    insert(db, [msm(today - dt.timedelta(days=3), 1)])
    from urllib.parse import quote
    inj = quote("x'); DROP TABLE fastpath; --")
    assert get(client, f"/api/_/website_stats?probe_cc=IT&probe_asn=1&input={inj}", 400) == {
        "error": "Invalid characters in input field"}
    assert get(client, f"/api/_/website_stats?probe_cc=IT&probe_asn={inj}&input=x", 400) == {
        "error": "missing or incorrect probe_asn"}
    j = get(client, f"/api/_/test_coverage?probe_cc=IT&test_groups={inj}")
    assert all(e["count"] == 0 for e in j["network_coverage"])
    assert get(client, f"/api/_/domain_metadata?domain={inj}")["category_code"] == "MISC"
    assert get(client, f"/api/_/website_urls?probe_cc=IT&probe_asn=1&limit={inj}", 400)["error"]
    assert db.execute("SELECT count() FROM fastpath")[0][0] == 1
    assert get(client, "/api/_/countries")["countries"] == [
        {"alpha_2": "IT", "name": "Italy", "count": 1}]


def test_database_errors_keep_the_v0_shape(client, db, monkeypatch):
    from ooni_common.db import DatabaseError, QueryTimeout

    from ooniapi.explorer.stats import ExplorerStats

    def boom(*a, **kw):
        raise DatabaseError("Code: 60. table is gone")
    monkeypatch.setattr(ExplorerStats, "circumvention_counts", boom)
    monkeypatch.setattr(ExplorerStats, "circumvention_runtimes", boom)
    monkeypatch.setattr(ExplorerStats, "networks", boom)
    r = client.get("/api/_/circumvention_stats_by_country")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "max-age=0"
    assert r.get_json() == {"v": 0, "error": "Database query error"}
    assert get(client, "/api/_/circumvention_runtime_stats", 400) == {
        "v": 0, "error": "Database query error"}
    assert get(client, "/api/_/networks", 500) == {"v": 0, "error": "Database query error"}

    def slow(*a, **kw):
        raise QueryTimeout("Code: 159. timeout", 159)
    monkeypatch.setattr(ExplorerStats, "domains", slow)
    assert get(client, "/api/_/domains", 504) == {"v": 0, "error": "Database query timeout"}
