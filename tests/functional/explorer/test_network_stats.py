"""GET /api/_/network_stats over seeded fastpath rows, checked against
counts computed here from the rows themselves."""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest

from tests.functional import msm_rows

ASNMETA_COLS = ["asn", "org_name", "cc", "changed", "aut_name", "source"]


@pytest.fixture
def seeded(db):
    today = db.execute("SELECT today()")[0][0]
    start = dt.datetime.combine(today, dt.time()) - dt.timedelta(days=40)
    # 42 days from today-40: rows before the window, in it, and tomorrow.
    rows = msm_rows.generate(3000, seed=7, start=start, span=dt.timedelta(days=42))
    msm_rows.insert(db, rows)
    db.insert("asnmeta", ASNMETA_COLS, [
        [30722, "Old Name", "IT", dt.date(2019, 1, 1), "A", "test"],
        [30722, "Vodafone Italia", "IT", dt.date(2023, 5, 1), "A", "test"]])
    return today, rows


def expected(rows, cc, today):
    first = dt.datetime.combine(today - dt.timedelta(days=30), dt.time())
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time())
    nets = defaultdict(lambda: {"n": 0, "a": 0, "c": 0, "f": 0, "last": None})
    for r in rows:
        mst = r["measurement_start_time"]
        if r["probe_cc"] != cc or not first <= mst < end:
            continue
        e = nets[r["probe_asn"]]
        e["n"] += 1
        e["a"] += r["anomaly"] == "t"
        e["c"] += r["confirmed"] == "t"
        e["f"] += r["msm_failure"] == "t"
        e["last"] = max(e["last"] or mst, mst)
    out = [{"probe_asn": asn, "org_name": "Vodafone Italia" if asn == 30722 else "",
            "measurement_count": e["n"], "anomaly_count": e["a"], "confirmed_count": e["c"],
            "failure_count": e["f"], "anomaly_share": round(e["a"] / e["n"], 4),
            "last_measurement": e["last"].strftime("%Y-%m-%dT%H:%M:%SZ")}
           for asn, e in nets.items()]
    return sorted(out, key=lambda x: (-x["measurement_count"], x["probe_asn"]))


def test_network_stats_pages(client, seeded):
    today, rows = seeded
    want = expected(rows, "IT", today)
    assert len(want) > 4 and any(w["anomaly_count"] for w in want)
    got, offset, limit = [], 0, 4
    url = f"/api/_/network_stats?probe_cc=IT&limit={limit}"
    while url:
        r = client.get(url.replace("https://api.ooni.io", ""))
        assert r.status_code == 200, r.json
        assert r.headers["Cache-Control"] == "max-age=3600"
        md = r.json["metadata"]
        assert md["total_count"] == len(want) and md["limit"] == limit
        assert md["offset"] == offset and md["current_page"] == offset // limit + 1
        got += r.json["results"]
        url = md["next_url"]
        if url:
            assert url == ("https://api.ooni.io/api/_/network_stats?"
                           f"limit={limit}&offset={offset + limit}&probe_cc=IT")
        offset += limit
    assert got == want


def test_network_stats_defaults_and_empty(client, seeded):
    today, rows = seeded
    r = client.get("/api/_/network_stats?probe_cc=it")
    assert r.status_code == 200
    assert r.json["results"] == expected(rows, "IT", today)[:10]
    r = client.get("/api/_/network_stats?probe_cc=VA")
    assert r.json == {"metadata": {"current_page": 1, "limit": 10, "next_url": None,
                                   "offset": 0, "total_count": 0}, "results": []}
    r = client.get("/api/_/network_stats?probe_cc=IT&offset=100000")
    assert r.json["results"] == [] and r.json["metadata"]["next_url"] is None


@pytest.mark.parametrize("qs", ["", "probe_cc=ITA", "probe_cc=I1", "probe_cc=IT&limit=x",
                                "probe_cc=IT&limit=1001", "probe_cc=IT&offset=-1",
                                "probe_cc=IT&offset=99999999999999999999999"])
def test_network_stats_bad_params(client, db, qs):
    r = client.get(f"/api/_/network_stats?{qs}")
    assert r.status_code == 400 and isinstance(r.json["error"], str)
