"""GET /api/v1/aggregation against the embedded ClickHouse, checked against
counters computed here, in Python, over the rows the test inserted."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from collections import defaultdict

import pytest

CCS = ["IT", "DE", "US", "ZZ"]
ASNS = [3269, 30722, 7922, 0]
TESTS = ["web_connectivity", "telegram", "signal", "ndt"]
URLS = {
    "https://www.example.org/": "example.org",
    "https://news.example.com/a": "news.example.com",
    "https://twitter.com/": "twitter.com",
    "http://1.1.1.1/": "1.1.1.1",
    "https://ru.wikipedia.org/wiki/Вторжение": "ru.wikipedia.org",
}
# url -> [(cc, category)]: one URL in two lists with the same category (must
# count once), one in two lists with different categories.
CITIZENLAB = {
    "https://www.example.org/": [("ZZ", "NEWS"), ("it", "NEWS")],
    "https://news.example.com/a": [("ZZ", "NEWS")],
    "https://twitter.com/": [("ZZ", "GRP"), ("de", "POLR")],
    "http://1.1.1.1/": [("it", "ANON")],
}
BLOCKING_TYPES = ["", "dns", "http-failure", "tcp_ip"]
START = dt.datetime(2021, 5, 1)
SPAN_DAYS = 120
COUNTERS = ("anomaly_count", "confirmed_count", "failure_count", "ok_count", "measurement_count")


def _make_rows(n: int, seed: int = 7) -> list[dict]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        t = START + dt.timedelta(seconds=rnd.randrange(SPAN_DAYS * 86400))
        test = rnd.choice(TESTS)
        if test == "web_connectivity":
            inp = rnd.choice(list(URLS))
            dom = URLS[inp]
        else:
            inp, dom = "", ""
        failure = rnd.random() < 0.1
        confirmed = rnd.random() < 0.1
        anomaly = confirmed or rnd.random() < 0.3
        bt = rnd.choice(BLOCKING_TYPES)
        scores = {"blocking_general": 1.0 if anomaly else 0.0}
        if bt:
            scores["analysis"] = {"blocking_type": bt}
        cc = rnd.choice(CCS)
        rows.append({
            "measurement_uid": f"{t:%Y%m%d%H%M%S}.{i:06d}_{cc}_{test.replace('_', '')}_{i:016x}",
            "report_id": f"{t:%Y%m%dT%H%M%S}Z_{test.replace('_', '')}_{cc}_1_n1_{i:016d}",
            "input": inp,
            "domain": dom,
            "probe_cc": cc,
            "probe_asn": rnd.choice(ASNS),
            "test_name": test,
            "test_start_time": t,
            "measurement_start_time": t,
            "scores": json.dumps(scores),
            "anomaly": "t" if anomaly else "f",
            "confirmed": "t" if confirmed else "f",
            "msm_failure": "t" if failure else "f",
            "ooni_run_link_id": rnd.choice([None, 101, 202]),
        })
    return rows


ROWS = _make_rows(400)


@pytest.fixture
def loaded(db):
    db.insert_dicts("fastpath", ROWS)
    db.insert("citizenlab", ["domain", "url", "cc", "category_code"],
              [[URLS[u], u, cc, cat] for u, entries in CITIZENLAB.items() for cc, cat in entries])
    return ROWS


# --- reference implementation ------------------------------------------------

def _grain(t: dt.datetime, grain: str):
    if grain == "hour":
        return t.replace(minute=0, second=0, microsecond=0)
    d = t.date()
    if grain == "day":
        return d
    if grain == "week":  # ClickHouse toStartOfWeek mode 0: Sunday
        return d - dt.timedelta(days=(d.weekday() + 1) % 7)
    if grain == "month":
        return d.replace(day=1)
    return d.replace(month=1, day=1)


def _fmt(v):
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


def _categories(url: str, category=None, lccs=None) -> set[str]:
    out = set()
    for cc, cat in CITIZENLAB.get(url, []):
        if category is not None:
            if cat != category:
                continue
            if lccs is None and cc != "ZZ":
                continue
            if lccs is not None and cc != "ZZ" and cc not in lccs:
                continue
        out.add(cat)
    return out


def expected(rows, axes=(), grain="day", probe_cc=None, probe_asn=None, test_name=None,
             domain=None, input=None, category_code=None, ooni_run_link_id=None,
             since=None, until=None):
    groups: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    use_cl = category_code is not None or "category_code" in axes
    lccs = [c.lower() for c in probe_cc] if probe_cc else None
    for r in rows:
        if probe_cc and r["probe_cc"] not in probe_cc:
            continue
        if probe_asn and r["probe_asn"] not in probe_asn:
            continue
        if test_name and r["test_name"] not in test_name:
            continue
        if domain and r["domain"] not in domain:
            continue
        if input is not None and r["input"] != input:
            continue
        if ooni_run_link_id and r["ooni_run_link_id"] not in ooni_run_link_id:
            continue
        if since and r["measurement_start_time"] < since:
            continue
        if until and r["measurement_start_time"] >= until:
            continue
        cats = _categories(r["input"], category_code, lccs) if use_cl else {None}
        for cat in cats:
            key = []
            for a in axes:
                if a == "category_code":
                    key.append(cat)
                elif a == "measurement_start_day":
                    key.append(_fmt(_grain(r["measurement_start_time"], grain)))
                elif a == "blocking_type":
                    key.append(json.loads(r["scores"]).get("analysis", {}).get("blocking_type", ""))
                else:
                    key.append(r[a])
            c = groups[tuple(key)]
            an, co, fa = r["anomaly"] == "t", r["confirmed"] == "t", r["msm_failure"] == "t"
            c["measurement_count"] += 1
            c["failure_count"] += fa
            c["confirmed_count"] += co and not fa
            c["anomaly_count"] += an and not co and not fa
            c["ok_count"] += not an and not co and not fa
    if not axes:
        return groups.get((), dict.fromkeys(COUNTERS, 0))
    out = []
    for key in sorted(groups):
        d = dict(groups[key])
        d.update(zip(axes, key))
        out.append(d)
    return out


def get(client, **params):
    r = client.get("/api/v1/aggregation", query_string=params)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r


# --- shapes and counters -------------------------------------------------------

def test_no_axis_counts_everything(client, loaded):
    r = get(client)
    doc = r.get_json()
    assert doc["v"] == 0 and doc["dimension_count"] == 0
    assert doc["result"] == expected(loaded)
    assert set(doc["db_stats"]) == {"row_count", "bytes", "total_row_count", "elapsed_seconds"}
    assert doc["db_stats"]["row_count"] >= len(loaded)
    # Aggregation sets no Cache-Control (api.md §5.1).
    assert "Cache-Control" not in r.headers


def test_no_match_gives_zero_counters(client, loaded):
    doc = get(client, probe_cc="FR").get_json()
    assert doc["result"] == dict.fromkeys(COUNTERS, 0)


@pytest.mark.parametrize("axis", ["blocking_type", "category_code", "domain", "input",
                                  "probe_asn", "probe_cc", "test_name"])
def test_every_axis_alone(client, loaded, axis):
    doc = get(client, axis_x=axis).get_json()
    assert doc["dimension_count"] == 1
    assert doc["result"] == expected(loaded, axes=(axis,))


def test_axis_y_alone_is_one_dimension(client, loaded):
    doc = get(client, axis_y="probe_cc").get_json()
    assert doc["dimension_count"] == 1
    assert doc["result"] == expected(loaded, axes=("probe_cc",))


@pytest.mark.parametrize("x,y", [("probe_cc", "test_name"), ("category_code", "probe_cc"),
                                 ("probe_asn", "blocking_type"), ("domain", "category_code"),
                                 ("test_name", "input")])
def test_two_axes(client, loaded, x, y):
    doc = get(client, axis_x=x, axis_y=y).get_json()
    assert doc["dimension_count"] == 2
    assert doc["result"] == expected(loaded, axes=(x, y))


@pytest.mark.parametrize("grain,since,until", [
    ("hour", "2021-05-01", "2021-05-04"),
    ("day", "2021-05-01", "2021-05-20"),
    ("week", "2021-05-01", "2021-07-20"),
    ("month", "2021-05-01", "2021-08-29"),
    ("year", "2020-01-01", "2022-01-02"),
])
def test_time_grains(client, loaded, grain, since, until):
    doc = get(client, axis_x="measurement_start_day", axis_y="probe_cc", time_grain=grain,
              since=since, until=until).get_json()
    exp = expected(loaded, axes=("measurement_start_day", "probe_cc"), grain=grain,
                   since=dt.datetime.fromisoformat(since), until=dt.datetime.fromisoformat(until))
    assert exp and doc["result"] == exp


def test_hour_grain_serialises_datetimes(client, loaded):
    doc = get(client, axis_x="measurement_start_day", since="2021-05-01",
              until="2021-05-03").get_json()  # auto -> hour
    assert doc["result"][0]["measurement_start_day"].endswith(":00:00Z")


def test_auto_grain_is_day_beyond_a_week(client, loaded):
    doc = get(client, axis_x="measurement_start_day", since="2021-05-01",
              until="2021-06-01").get_json()
    assert doc["result"] == expected(loaded, axes=("measurement_start_day",), grain="day",
                                     since=dt.datetime(2021, 5, 1), until=dt.datetime(2021, 6, 1))


# --- filters -----------------------------------------------------------------

@pytest.mark.parametrize("params,kw", [
    ({"probe_cc": "IT,DE"}, {"probe_cc": ["IT", "DE"]}),
    ({"probe_cc": "ZZ"}, {"probe_cc": ["ZZ"]}),
    ({"probe_asn": "AS3269,30722"}, {"probe_asn": [3269, 30722]}),
    ({"probe_asn": "0"}, {"probe_asn": [0]}),
    ({"test_name": "telegram,web_connectivity"}, {"test_name": ["telegram", "web_connectivity"]}),
    ({"domain": "twitter.com,1.1.1.1"}, {"domain": ["twitter.com", "1.1.1.1"]}),
    ({"input": "https://twitter.com/"}, {"input": "https://twitter.com/"}),
    ({"input": "https://ru.wikipedia.org/wiki/Вторжение"},
     {"input": "https://ru.wikipedia.org/wiki/Вторжение"}),
    ({"ooni_run_link_id": "101"}, {"ooni_run_link_id": [101]}),
    ({"ooni_run_link_id": "101,202"}, {"ooni_run_link_id": [101, 202]}),
    ({"since": "2021-06-01"}, {"since": dt.datetime(2021, 6, 1)}),
    ({"until": "2021-06-01T12:30:00Z"}, {"until": dt.datetime(2021, 6, 1, 12, 30)}),
    ({"since": "2021-06-01", "until": "2021-07-01"},
     {"since": dt.datetime(2021, 6, 1), "until": dt.datetime(2021, 7, 1)}),
    ({"category_code": "NEWS"}, {"category_code": "NEWS"}),
    ({"category_code": "ANON"}, {"category_code": "ANON"}),
    ({"category_code": "ANON", "probe_cc": "IT"}, {"category_code": "ANON", "probe_cc": ["IT"]}),
    ({"category_code": "POLR", "probe_cc": "DE,US"},
     {"category_code": "POLR", "probe_cc": ["DE", "US"]}),
])
def test_filters(client, loaded, params, kw):
    assert get(client, **params).get_json()["result"] == expected(loaded, **kw)
    # And grouped, so that a filter applied to the wrong rows shows up.
    doc = get(client, axis_x="probe_cc", axis_y="test_name", **params).get_json()
    assert doc["result"] == expected(loaded, axes=("probe_cc", "test_name"), **kw)


def test_since_inclusive_until_exclusive(client, db):
    t = dt.datetime(2021, 7, 9, 0, 0, 0)
    row = dict(ROWS[0], measurement_start_time=t, measurement_uid="20210709000000.000000_IT_x_1")
    db.insert_dicts("fastpath", [row])
    n = lambda **p: get(client, **p).get_json()["result"]["measurement_count"]  # noqa: E731
    assert n(since="2021-07-09") == 1
    assert n(until="2021-07-09") == 0
    assert n(until="2021-07-09T00:00:01") == 1


def test_rescored_measurement_counts_once(client, db):
    row = dict(ROWS[0], anomaly="f", confirmed="f", msm_failure="f")
    db.insert_dicts("fastpath", [row])
    db.insert_dicts("fastpath", [dict(row, anomaly="t")])
    res = get(client).get_json()["result"]
    assert res["measurement_count"] == 1
    assert res["anomaly_count"] == 1 and res["ok_count"] == 0


# --- CSV and downloads -------------------------------------------------------

def test_csv_grouped(client, loaded):
    r = get(client, axis_x="probe_cc", axis_y="measurement_start_day", since="2021-05-01",
            until="2021-06-15", format="csv")
    assert r.mimetype == "text/csv"
    assert "Content-Disposition" not in r.headers
    text = r.get_data(as_text=True)
    assert text.startswith("anomaly_count,confirmed_count,failure_count,measurement_count,"
                           "measurement_start_day,ok_count,probe_cc\r\n")
    got = list(csv.DictReader(io.StringIO(text)))
    exp = expected(loaded, axes=("probe_cc", "measurement_start_day"), grain="day",
                   since=dt.datetime(2021, 5, 1), until=dt.datetime(2021, 6, 15))
    assert got == [{k: str(v) for k, v in e.items()} for e in exp]


def test_csv_no_axis_and_download(client, loaded):
    r = get(client, format="CSV", download="true")
    assert r.headers["Content-Disposition"] == "attachment; filename=ooni-aggregate-data.csv"
    lines = r.get_data(as_text=True).split("\r\n")
    assert lines[0] == "anomaly_count,confirmed_count,failure_count,measurement_count,ok_count"
    e = expected(loaded)
    assert lines[1] == ",".join(str(e[k]) for k in sorted(COUNTERS))


def test_csv_empty_grouped_result_is_header_only(client, db):
    r = get(client, axis_x="probe_cc", format="CSV")
    assert r.get_data(as_text=True) == (
        "anomaly_count,confirmed_count,failure_count,measurement_count,ok_count,probe_cc\r\n")


def test_json_download(client, loaded):
    r = get(client, download="TRUE", axis_x="test_name")
    assert r.headers["Content-Disposition"] == "attachment; filename=ooni-aggregate-data.json"
    assert r.get_json()["dimension_count"] == 1


# --- errors --------------------------------------------------------------------

@pytest.mark.parametrize("params,message", [
    ({"axis_x": "foo"}, "Invalid axis name"),
    ({"axis_x": "Probe_CC"}, "Invalid characters"),
    ({"axis_x": "probe_cc", "axis_y": "probe_cc"}, "Axis X and Y cannot be the same"),
    ({"probe_cc": "it"}, "Invalid characters"),
    ({"probe_cc": "ITA"}, "Invalid CC value in parameter probe_cc"),
    ({"probe_asn": "ASfoo"}, "Invalid ASN value in parameter probe_asn"),
    ({"probe_asn": "99999999999"}, "Invalid ASN value in parameter probe_asn"),
    ({"test_name": "Web_Connectivity"}, "Invalid characters"),
    ({"domain": "foo.org;"}, "Invalid characters in domain field"),
    ({"input": "foo.org='"}, "Invalid characters in input field"),
    ({"input": "x' OR 1=1 --"}, "Invalid characters in input field"),
    ({"category_code": "news"}, "Invalid characters"),
    ({"category_code": "NEWS' OR '1"}, "Invalid characters"),
    ({"format": "XML"}, None),
    ({"time_grain": "decade"}, None),
    ({"since": "yesterday-ish"}, None),
    ({"until": "2021-13-45"}, None),
    ({"ooni_run_link_id": "-1"}, None),
    ({"axis_x": "measurement_start_day"}, "Invalid since and until values"),
    ({"axis_x": "measurement_start_day", "since": "2021-05-02", "until": "2021-05-01"},
     "Invalid since and until values"),
    ({"axis_x": "measurement_start_day", "since": "2021-05-01", "until": "2021-05-05",
      "time_grain": "month"}, "Choose time_grain between hour, day, auto for the given time range"),
    ({"axis_x": "measurement_start_day", "since": "2021-05-01", "until": "2021-05-25",
      "time_grain": "hour"}, "Choose time_grain between day, week, auto for the given time range"),
    ({"axis_x": "measurement_start_day", "since": "2021-01-01", "until": "2021-12-01",
      "time_grain": "year"},
     "Choose time_grain between day, week, month, auto for the given time range"),
    ({"axis_y": "measurement_start_day", "axis_x": "probe_cc", "since": "2020-01-01",
      "until": "2021-12-01", "time_grain": "hour"},
     "Choose time_grain between day, week, month, year, auto for the given time range"),
])
def test_bad_parameters(client, loaded, params, message):
    r = client.get("/api/v1/aggregation", query_string=params)
    assert r.status_code == 400
    doc = r.get_json()
    assert doc["v"] == 0 and doc["error"]
    if message:
        assert doc["error"] == message
    assert r.headers["Cache-Control"] == "no-cache, max-age=0"


def test_grain_not_checked_without_day_axis(client, loaded):
    # time_grain only matters with measurement_start_day as an axis.
    get(client, axis_x="probe_cc", time_grain="hour", since="2020-01-01", until="2022-01-01")


# Grouped JSON answers come from the engine as JSON lines, the others
# through select.
@pytest.mark.parametrize("query,method", [("axis_x=probe_cc", "select_json_rows"),
                                          ("", "select"),
                                          ("axis_x=probe_cc&format=CSV", "select")])
def test_database_error_is_json(client, db, monkeypatch, query, method):
    from ooni_common.db import DatabaseError

    def boom(*a, **k):
        raise DatabaseError("Code: 241. Memory limit exceeded", 241)
    monkeypatch.setattr(type(db), method, boom)
    r = client.get(f"/api/v1/aggregation?{query}")
    assert r.status_code == 400
    assert r.get_json() == {"error": "Database query error", "v": 0}
