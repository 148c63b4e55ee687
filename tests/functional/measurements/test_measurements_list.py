"""GET /api/v1/measurements against the embedded ClickHouse: every filter,
every field, ordering, offset and cursor paging, bad input."""
from __future__ import annotations

import datetime as dt
import json
import math
from urllib.parse import parse_qs, urlparse

import pytest

from tests.functional import msm_rows

NOW = dt.datetime.utcnow()
# Generated rows sit inside the default 30-day window.
GEN_START = (NOW - dt.timedelta(days=20)).replace(microsecond=0)
GEN_SPAN = dt.timedelta(days=10)
WINDOW = {"since": (GEN_START - dt.timedelta(days=1)).strftime("%Y-%m-%d"),
          "until": (NOW + dt.timedelta(days=1)).strftime("%Y-%m-%d")}


def get(client, **params):
    r = client.get("/api/v1/measurements", query_string=params)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def uids(doc) -> list[str]:
    return [m["measurement_uid"] for m in doc["results"]]


def ordered(rows, key="measurement_start_time", desc=True) -> list[str]:
    s = sorted(rows, key=lambda r: (r[key], r["measurement_uid"]), reverse=desc)
    return [r["measurement_uid"] for r in s]


def visible(rows):
    return [r for r in rows if r["probe_cc"] != "ZZ" and r["probe_asn"] != 0]


@pytest.fixture
def gen(db):
    rows = msm_rows.generate(150, seed=7, start=GEN_START, span=GEN_SPAN)
    msm_rows.insert(db, rows)
    return rows


@pytest.fixture
def samples(db, shared_data):
    pairs = msm_rows.sample_rows(shared_data)
    rows = [r for r, _ in pairs]
    msm_rows.insert(db, rows)
    return rows


# --- real samples -------------------------------------------------------------

def test_real_samples_every_field(client, samples):
    # the samples span 2013-2022: ask for everything
    doc = get(client, since="2010-01-01", until="2030-01-01", limit=100)
    want = visible(samples)
    assert uids(doc) == ordered(want)
    by_uid = {r["measurement_uid"]: r for r in samples}
    for m in doc["results"]:
        r = by_uid[m["measurement_uid"]]
        assert list(m) == ["measurement_uid", "measurement_url", "report_id", "probe_cc",
                           "probe_asn", "test_name", "measurement_start_time", "input",
                           "anomaly", "confirmed", "failure", "scores", "verification_status"]
        assert m["verification_status"] == {"t": "verified", "f": "failed"}.get(
            r.get("is_verified"), "unverified")
        assert m["measurement_url"] == ("https://api.ooni.io/api/v1/raw_measurement?measurement_uid="
                                        + r["measurement_uid"])
        assert m["report_id"] == r["report_id"]
        assert m["probe_cc"] == r["probe_cc"]
        assert m["probe_asn"] == f"AS{r['probe_asn']}"
        assert m["test_name"] == r["test_name"]
        assert m["measurement_start_time"] == r["measurement_start_time"].strftime("%Y-%m-%dT%H:%M:%SZ")
        assert m["input"] == (r["input"] or None)
        assert m["anomaly"] is (r["anomaly"] == "t")
        assert m["confirmed"] is (r["confirmed"] == "t")
        assert m["failure"] is (r["msm_failure"] == "t")
        assert m["scores"] == json.loads(r["scores"])


def test_real_samples_filters(client, samples):
    wide = {"since": "2010-01-01", "until": "2030-01-01"}
    vis = visible(samples)
    for r in vis[:6]:
        assert uids(get(client, report_id=r["report_id"])) == ordered(
            [x for x in vis if x["report_id"] == r["report_id"]])
        assert set(uids(get(client, test_name=r["test_name"], **wide))) == {
            x["measurement_uid"] for x in vis if x["test_name"] == r["test_name"]}
        assert set(uids(get(client, probe_cc=r["probe_cc"].lower(), **wide))) == {
            x["measurement_uid"] for x in vis if x["probe_cc"] == r["probe_cc"]}
    inputs = [r for r in vis if r["domain"]]
    assert inputs, "samples must have URL inputs"
    r = inputs[0]
    assert set(uids(get(client, input=r["input"], **wide))) == {
        x["measurement_uid"] for x in vis if x["input"] == r["input"]}
    assert set(uids(get(client, domain=r["domain"], **wide))) == {
        x["measurement_uid"] for x in vis if x["domain"] == r["domain"]}


# --- every filter on generated rows ------------------------------------------

FILTERS = [
    ("probe_cc", "RU", lambda r: r["probe_cc"] == "RU"),
    ("probe_asn", "AS3320", lambda r: r["probe_asn"] == 3320),
    ("probe_asn", "4200000001", lambda r: r["probe_asn"] == 4200000001),
    ("test_name", "telegram", lambda r: r["test_name"] == "telegram"),
    ("anomaly", "true", lambda r: r["anomaly"] == "t"),
    ("anomaly", "yes", lambda r: r["anomaly"] == "f"),
    ("confirmed", "TRUE", lambda r: r["confirmed"] == "t"),
    ("confirmed", "false", lambda r: r["confirmed"] == "f"),
    ("failure", "true", lambda r: r["msm_failure"] == "t"),
    ("failure", "false", lambda r: r["msm_failure"] == "f"),
    ("domain", "twitter.com", lambda r: r["domain"] == "twitter.com"),
    ("domain", "example.net:8080", lambda r: r["domain"] == "example.net:8080"),
    ("input", "https://www.bbc.com/news", lambda r: r["input"] == "https://www.bbc.com/news"),
    ("software_version", "3.14.1,3.19.0,", lambda r: r["software_version"] in ("3.14.1", "3.19.0")),
    ("test_version", "0.5.0", lambda r: r["test_version"] == "0.5.0"),
    ("engine_version", "3.10.0", lambda r: r["engine_version"] == "3.10.0"),
    ("ooni_run_link_id", "1000001", lambda r: r["ooni_run_link_id"] == 1000001),
    ("ooni_run_link_id", "1000001,2000002", lambda r: r["ooni_run_link_id"] in (1000001, 2000002)),
    ("test_name", "no_such_test", lambda r: False),
    ("software_version", "", lambda r: True),
]


@pytest.mark.parametrize("name,value,pred", FILTERS, ids=[f"{n}={v}" for n, v, _ in FILTERS])
def test_each_filter(client, gen, name, value, pred):
    want = [r for r in visible(gen) if pred(r)]
    got = []
    url_params = dict(WINDOW, **{name: value}, limit=100)
    doc = get(client, **url_params)
    got += uids(doc)
    while doc["metadata"]["next_url"]:
        u = urlparse(doc["metadata"]["next_url"])
        doc = get(client, **{k: v[0] for k, v in parse_qs(u.query).items()})
        got += uids(doc)
    assert got == ordered(want)


def test_combined_filters(client, gen):
    want = [r for r in visible(gen) if r["test_name"] == "web_connectivity"
            and r["probe_cc"] == "IT" and r["anomaly"] == "t"]
    doc = get(client, test_name="web_connectivity", probe_cc="IT", anomaly="true", **WINDOW)
    assert uids(doc) == ordered(want)


def test_since_exclusive_until_inclusive(client, db):
    t = dt.datetime(2022, 3, 1, 12, 0, 0)
    rows = [msm_rows.row(measurement_start_time=t + dt.timedelta(minutes=m)) for m in range(4)]
    msm_rows.insert(db, rows)
    doc = get(client, since="2022-03-01T12:00:00", until="2022-03-01 12:02:00Z")
    assert uids(doc) == ordered(rows[1:3])
    doc = get(client, since="2022-03-01T14:00:00+02:00", until="2022-03-01T12:03:00")
    assert uids(doc) == ordered(rows[1:4])


def test_category_code(client, db, gen):
    db.insert("citizenlab", ["domain", "url", "cc", "category_code"], [
        ["twitter.com", "https://twitter.com/", "ZZ", "GRP"],
        # the same URL in a country list must not repeat measurements
        ["twitter.com", "https://twitter.com/", "ir", "GRP"],
        ["www.bbc.com", "https://www.bbc.com/news", "ZZ", "NEWS"],
    ])
    want = [r for r in visible(gen) if r["input"] == "https://twitter.com/"]
    assert uids(get(client, category_code="GRP", limit=100, **WINDOW)) == ordered(want)
    # input wins over domain and category_code
    want = [r for r in visible(gen) if r["input"] == "https://www.bbc.com/news"]
    doc = get(client, category_code="GRP", domain="twitter.com",
              input="https://www.bbc.com/news", **WINDOW)
    assert uids(doc) == ordered(want)


def test_unknown_location_rows_hidden_and_refused(client, db):
    t = NOW - dt.timedelta(days=1)
    ok = msm_rows.row(measurement_start_time=t)
    zz = msm_rows.row(measurement_start_time=t, probe_cc="ZZ")
    as0 = msm_rows.row(measurement_start_time=t, probe_asn=0)
    msm_rows.insert(db, [ok, zz, as0])
    assert uids(get(client)) == [ok["measurement_uid"]]
    for params in ({"probe_cc": "ZZ"}, {"probe_cc": "zz"}, {"probe_asn": "AS0"}, {"probe_asn": "0"}):
        r = client.get("/api/v1/measurements", query_string=params)
        assert r.status_code == 403
        assert "error" in r.get_json()


def test_default_window_is_30_days_unless_report_id(client, db):
    old = msm_rows.row(measurement_start_time=NOW - dt.timedelta(days=40))
    recent = msm_rows.row(measurement_start_time=NOW - dt.timedelta(days=2))
    msm_rows.insert(db, [old, recent])
    assert uids(get(client)) == [recent["measurement_uid"]]
    assert uids(get(client, report_id=old["report_id"])) == [old["measurement_uid"]]
    # only until given: since = until - 30 days
    until = (NOW - dt.timedelta(days=39)).strftime("%Y-%m-%d")
    assert uids(get(client, until=until)) == [old["measurement_uid"]]


def test_replaced_rows_show_once_with_newest_scores(client, db):
    r1 = msm_rows.row(measurement_start_time=NOW - dt.timedelta(hours=3))
    msm_rows.insert(db, [r1])
    r2 = dict(r1, anomaly="t", scores=msm_rows.scores_for(True, False, False, "dns"))
    msm_rows.insert(db, [r2])
    doc = get(client)
    assert uids(doc) == [r1["measurement_uid"]]
    assert doc["results"][0]["anomaly"] is True
    assert doc["results"][0]["scores"]["analysis"] == {"blocking_type": "dns"}


# --- ordering -----------------------------------------------------------------

@pytest.mark.parametrize("order_by", ["measurement_start_time", "input", "probe_cc",
                                      "probe_asn", "test_name"])
@pytest.mark.parametrize("order", ["asc", "DESC"])
def test_order_by(client, gen, order_by, order):
    want = ordered(visible(gen), order_by, order.lower() == "desc")
    got = []
    doc = get(client, order_by=order_by.upper() if order_by == "input" else order_by,
              order=order, limit=40, **WINDOW)
    got += uids(doc)
    while doc["metadata"]["next_url"]:
        q = parse_qs(urlparse(doc["metadata"]["next_url"]).query)
        doc = get(client, **{k: v[0] for k, v in q.items()})
        got += uids(doc)
    assert got == want


def test_stable_across_calls(client, gen):
    bodies = []
    for _ in range(3):
        doc = get(client, limit=20, offset=20, **WINDOW)
        del doc["metadata"]["query_time"]
        bodies.append(doc)
    assert bodies[0] == bodies[1] == bodies[2]


# --- paging -------------------------------------------------------------------

@pytest.fixture
def three_hundred(db):
    base = NOW - dt.timedelta(days=3)
    # 100 distinct start times, three rows each: the uid tie-break matters
    rows = [msm_rows.row(measurement_start_time=base + dt.timedelta(minutes=i // 3),
                         input=f"https://example.org/{i}") for i in range(300)]
    msm_rows.insert(db, rows)
    return rows


def test_offset_paging_metadata(client, three_hundred):
    want = ordered(three_hundred)
    seen = []
    for page in range(4):
        doc = get(client, limit=100, offset=page * 100)
        md = doc["metadata"]
        assert md["offset"] == page * 100 and md["limit"] == 100
        assert md["current_page"] == page + 1
        assert isinstance(md["query_time"], float)
        if page < 3:
            assert md["count"] == -1 and md["pages"] == -1
            assert md["next_url"].startswith("https://api.ooni.io/api/v1/measurements?")
        else:
            assert (md["count"], md["pages"], md["next_url"]) == (300, 3, None)
        seen += uids(doc)
    assert seen == want


def test_offset_next_url_keeps_params(client, three_hundred):
    doc = get(client, limit=100, offset=100, probe_cc="IT")
    q = parse_qs(urlparse(doc["metadata"]["next_url"]).query)
    assert q == {"limit": ["100"], "offset": ["200"], "probe_cc": ["IT"]}


def test_cursor_paging_matches_offset_paging(client, three_hundred):
    by_offset = []
    for page in range(3):
        by_offset += uids(get(client, limit=100, offset=page * 100))
    doc = get(client, limit=100, probe_cc="IT")
    pages = [doc]
    while doc["metadata"]["next_url"]:
        q = parse_qs(urlparse(doc["metadata"]["next_url"]).query)
        assert "offset" not in q and "cursor" in q and q["probe_cc"] == ["IT"]
        doc = get(client, **{k: v[0] for k, v in q.items()})
        pages.append(doc)
    assert [u for d in pages for u in uids(d)] == by_offset
    # the same metadata as offset paging: 300 rows, limit 100
    mds = [d["metadata"] for d in pages]
    assert [m["current_page"] for m in mds] == [1, 2, 3, 4]
    assert [m["offset"] for m in mds] == [0, 100, 200, 300]
    assert [m["count"] for m in mds] == [-1, -1, -1, 300]
    assert mds[3]["pages"] == 3


def test_cursor_with_small_pages_and_short_last_page(client, three_hundred):
    doc = get(client, limit=7, order="asc")
    got = uids(doc)
    while doc["metadata"]["next_url"]:
        q = parse_qs(urlparse(doc["metadata"]["next_url"]).query)
        doc = get(client, **{k: v[0] for k, v in q.items()})
        got += uids(doc)
    assert got == ordered(three_hundred, desc=False)
    assert doc["metadata"]["count"] == 300
    assert doc["metadata"]["pages"] == math.ceil(300 / 7)


def test_cursor_bad_or_mismatched(client, three_hundred):
    doc = get(client, limit=10)
    cur = parse_qs(urlparse(doc["metadata"]["next_url"]).query)["cursor"][0]
    r = client.get("/api/v1/measurements", query_string={"cursor": cur, "order": "asc"})
    assert r.status_code == 400
    for bad in ("garbage", "' OR 1=1 --", cur[:-3]):
        r = client.get("/api/v1/measurements", query_string={"cursor": bad})
        assert r.status_code == 400, bad
        assert r.get_json()["error"].startswith("Invalid cursor")


# --- special cases, headers, bad input ---------------------------------------

def test_cache_header_and_okhttp(client, gen):
    r = client.get("/api/v1/measurements")
    assert r.headers["Cache-Control"] == "max-age=60"
    r = client.get("/api/v1/measurements?probe_cc=ZZ&limit=abc", headers={"User-Agent": "okhttp/3.12"})
    assert r.status_code == 200
    assert r.get_json() == {"metadata": {"count": 1, "current_page": 1, "limit": 100,
                                         "next_url": None, "offset": 0, "pages": 1,
                                         "query_time": 0.001},
                            "results": [{"measurement_url": ""}]}
    assert "no-cache" in r.headers["Cache-Control"]


BAD = [
    ({"since": "yesterday-ish"}, 400), ({"until": "2021-13-40"}, 400),
    ({"since": "2022-01-02", "until": "2022-01-01"}, 400),
    ({"limit": "101"}, 400), ({"limit": "0"}, 400), ({"limit": "-5"}, 400),
    ({"limit": "abc"}, 400), ({"limit": "1" * 30}, 400),
    ({"offset": "-1"}, 400), ({"offset": "9" * 20}, 400), ({"offset": "1.5"}, 400), ({"offset": "x"}, 400),
    ({"order_by": "report_id"}, 400), ({"order_by": "input; DROP TABLE fastpath"}, 400),
    ({"order": "sideways"}, 400), ({"probe_cc": "ITA"}, 400), ({"probe_cc": "' OR 1=1 --"}, 400),
    ({"probe_asn": "ASx"}, 400), ({"probe_asn": "99999999999"}, 400),
    ({"report_id": "short"}, 400), ({"report_id": "20210709T004340Z_x'; DROP TABLE fastpath"}, 400),
    ({"ooni_run_link_id": "-3"}, 400), ({"ooni_run_link_id": "1 OR 1=1"}, 400),
]


@pytest.mark.parametrize("params,status", BAD, ids=[str(p) for p, _ in BAD])
def test_bad_input(client, gen, params, status):
    r = client.get("/api/v1/measurements", query_string=params)
    assert r.status_code == status
    body = r.get_json()
    assert isinstance(body["error"], str) and body["error"]
    assert "no-cache" in r.headers["Cache-Control"]


def test_limit_message(client):
    r = client.get("/api/v1/measurements?limit=101")
    assert r.get_json() == {"error": "`limit` is only allowed up to 100"}
    r = client.get("/api/v1/measurements?order_by=foo")
    assert r.get_json()["error"].startswith("Invalid field for ordering: foo. Valid options: [")
    assert client.get("/api/v1/measurements?order=up").get_json() == {"error": "Invalid order"}


SQLISH = ["' OR 1=1 --", "\"; DROP TABLE fastpath; --", "x') UNION SELECT 1 --", "\\", "{x:String}",
          "a\x00b", "tab\there\nnewline", "\\N", "é" * 5000]


@pytest.mark.parametrize("name", ["test_name", "domain", "input", "category_code",
                                  "software_version", "test_version", "engine_version",
                                  "anomaly", "confirmed", "failure"])
def test_sql_looking_text_is_data(client, db, gen, name):
    for text in SQLISH:
        r = client.get("/api/v1/measurements", query_string=dict(WINDOW, **{name: text}))
        assert r.status_code == 200, text
        doc = r.get_json()
        if name in ("anomaly", "confirmed", "failure"):
            # any value but "true" means false
            col = "msm_failure" if name == "failure" else name
            assert uids(doc) == ordered([x for x in visible(gen) if x[col] == "f"])[:100]
        else:
            assert doc["results"] == [], text
    assert db.execute("SELECT count() FROM fastpath")[0][0] == len(gen)


def test_empty_values_are_absent(client, gen):
    doc = get(client, probe_cc="", probe_asn="", since="", until="", limit="", offset="",
              order_by="", order="", anomaly="", report_id="", test_name="", cursor="",
              **{k: v for k, v in WINDOW.items() if False})
    assert len(doc["results"]) == 100


@pytest.mark.parametrize("order_by", ["input", "probe_cc", "probe_asn", "test_name"])
def test_cursor_on_other_orderings(client, gen, order_by):
    """Listings ordered by another column page by offset in next_url, but a
    cursor for them (e.g. kept by a client from an earlier page) continues
    exactly where the offset would."""
    from ooniapi.measurements import cursor
    params = dict(WINDOW, order_by=order_by, order="asc", limit=25)
    first = get(client, **params)
    second = get(client, offset=25, **params)
    last = first["results"][-1]
    value = int(last["probe_asn"][2:]) if order_by == "probe_asn" else (last[order_by] or "")
    token = cursor.encode(cursor.Cursor(order_by, "asc", value, last["measurement_uid"], 25))
    by_cursor = get(client, cursor=token, **params)
    assert uids(by_cursor) == uids(second)
    assert by_cursor["metadata"]["offset"] == 25
    nxt = parse_qs(urlparse(by_cursor["metadata"]["next_url"]).query)
    assert "cursor" in nxt and "offset" not in nxt
