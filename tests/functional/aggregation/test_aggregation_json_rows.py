"""Grouped aggregation answers are written by the engine (JSON lines,
ooni_common.db.select_json_rows): they must mean exactly what the Python
path (run_query: rows converted then encoded) gives, key order included,
and the Python fallback of other backends must agree with the engine."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from werkzeug.datastructures import MultiDict

from ooni_common.db import Database, JsonRows

# Strings that JSON encoders treat differently: slash, quotes, backslash,
# control characters, non-ASCII, astral plane, line separators.
ODD_INPUTS = [
    "https://example.org/a/b?c=d&e=f",
    'http://x.example/"quoted"\\back',
    "http://tab.example/\t\x01\x1f",
    "https://ru.wikipedia.org/wiki/Вторжение",
    "http://emoji.example/😀\u2028\u2029",
    "http://nul.example/\x00end",
    "",
]
START = dt.datetime(2023, 1, 30, 22)
CCS = ["IT", "DE", "BR"]
TESTS = ["web_connectivity", "signal", "telegram"]


def _rows():
    rows = []
    for i in range(240):
        t = START + dt.timedelta(hours=7 * i)
        inp = ODD_INPUTS[i % len(ODD_INPUTS)]
        cc, test = CCS[i % 3], TESTS[(i // 3) % 3]
        bt = ["", "dns", "http-failure"][(i // 9) % 3]
        scores = {"blocking_general": 0.0}
        if bt:
            scores["analysis"] = {"blocking_type": bt}
        rows.append({
            "measurement_uid": f"{t:%Y%m%d%H%M%S}.{i:06d}_{cc}_x_{i:016x}",
            "report_id": f"r{i}", "input": inp, "domain": inp.split("/")[2] if inp else "",
            "probe_cc": cc, "probe_asn": 100 + i % 4, "test_name": test,
            "test_start_time": t, "measurement_start_time": t,
            "scores": json.dumps(scores),
            "anomaly": "tf"[i % 2], "confirmed": "ft"[i % 5 == 0], "msm_failure": "ft"[i % 7 == 0],
        })
    return rows


@pytest.fixture
def loaded(db):
    db.insert_dicts("fastpath", _rows())
    db.insert("citizenlab", ["domain", "url", "cc", "category_code"],
              [["example.org", ODD_INPUTS[0], "ZZ", "NEWS"],
               ["ru.wikipedia.org", ODD_INPUTS[3], "ZZ", "CULTR"],
               ["emoji.example", ODD_INPUTS[4], "it", "GRP"]])


QUERIES = [
    {"axis_x": "probe_cc"},
    {"axis_x": "input"},
    {"axis_x": "domain", "axis_y": "probe_asn"},
    {"axis_x": "blocking_type", "axis_y": "test_name"},
    {"axis_x": "category_code", "axis_y": "probe_cc"},
    {"axis_x": "probe_cc", "axis_y": "measurement_start_day",
     "since": "2023-01-01", "until": "2023-04-01"},
    {"axis_x": "measurement_start_day", "since": "2023-02-01", "until": "2023-02-05",
     "time_grain": "hour"},
    {"axis_x": "measurement_start_day", "axis_y": "input", "since": "2022-01-01",
     "until": "2024-06-01", "time_grain": "week"},
    {"axis_x": "measurement_start_day", "since": "2020-01-01", "until": "2025-01-01",
     "time_grain": "year"},
    {"axis_x": "test_name", "probe_cc": "IT,DE", "since": "2023-02-01"},
    {"axis_x": "probe_cc", "probe_cc": "FR"},  # empty grouped result
]


def _both_paths(app, params):
    from ooniapi.aggregation import routes as ag
    with app.test_request_context():
        q = ag.parse_query(MultiDict(params))
        old, old_stats = ag.run_query(q)
        new, new_stats = ag.run_query_json(q)
    return old, old_stats, new, new_stats


@pytest.mark.parametrize("params", QUERIES)
def test_engine_json_means_the_python_result(app, loaded, params):
    old, old_stats, new, new_stats = _both_paths(app, params)
    parsed = json.loads(new)
    assert parsed == old
    assert [list(r) for r in parsed] == [list(r) for r in old]  # key order
    assert {k: v for k, v in new_stats.items() if k != "elapsed_seconds"} == \
        {k: v for k, v in old_stats.items() if k != "elapsed_seconds"}
    if params.get("probe_cc") != "FR":
        assert old, "the query should match rows"


def test_http_answer_is_the_python_encoding(app, client, loaded):
    """The spliced answer parses to the document the Python path encodes,
    keys in the same order, and is valid UTF-8 JSON."""
    params = {"axis_x": "input", "axis_y": "probe_cc"}
    r = client.get("/api/v1/aggregation", query_string=params)
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    raw = r.get_data()
    assert raw.endswith(b"}\n")
    doc = json.loads(raw.decode("utf-8"))
    assert list(doc) == ["v", "dimension_count", "result", "db_stats"]
    assert doc["v"] == 0 and doc["dimension_count"] == 2
    old, *_ = _both_paths(app, params)
    assert doc["result"] == old
    assert {r["input"] for r in doc["result"]} == set(ODD_INPUTS)
    assert list(doc["db_stats"]) == ["row_count", "bytes", "total_row_count", "elapsed_seconds"]


@pytest.mark.parametrize("params", QUERIES[:6])
def test_python_fallback_agrees_with_the_engine(app, db, loaded, params):
    """Database.select_json_rows (what the clickhouse-driver backend uses)
    writes the same objects as the embedded engine."""
    from ooniapi.aggregation import routes as ag
    with app.test_request_context():
        q = ag.parse_query(MultiDict(params))
    sql, p = ag.build_named_sql(q)
    engine = db.select_json_rows(sql, p)
    fallback = Database.select_json_rows(db, sql, p)
    e_rows = [json.loads(x) for x in engine.data.splitlines()]
    f_rows = [json.loads(x) for x in fallback.data.splitlines()]
    assert e_rows == f_rows
    assert [list(r) for r in e_rows] == [list(r) for r in f_rows]
    assert json.loads(engine.array()) == json.loads(fallback.array()) == e_rows


def test_json_rows_array():
    assert JsonRows(b"").array() == b"[]"
    assert JsonRows(b'{"a":1}\n').array() == b'[{"a":1}]'
    assert JsonRows(b'{"a":"x\\ny"}\n{"a":2}\n').array() == b'[{"a":"x\\ny"},{"a":2}]'
    assert json.loads(JsonRows(b'{"a":"x\\ny"}\n{"a":2}\n').array()) == [{"a": "x\ny"}, {"a": 2}]


def test_invalid_utf8_stays_valid_json(db):
    """An input column holding invalid UTF-8 (old data) must not break the
    JSON answer."""
    res = db.select_json_rows("SELECT unhex('ff61') AS s, 'a/b' AS t")
    assert json.loads(res.data) == {"s": "\ufffda", "t": "a/b"}
