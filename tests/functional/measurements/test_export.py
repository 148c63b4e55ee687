"""/api/v1/measurements/export against the embedded database: every format
equals the listing's rows, paging over windows and same-second ties, gzip,
bodies, bad input, disconnects and quota."""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import ipaddress
import json
import time

import pyarrow.parquet as pq
import pytest

from ooni_common.spool import Spool
from ooniapi.core.app import create_app
from ooniapi.core.ratelimit import limiter
from tests.functional import msm_rows

START = dt.datetime(2021, 7, 1)
RANGE = "since=2021-06-30&until=2021-08-01"


def make_app(cfg, db, notifier, **overrides):
    a = create_app(cfg.with_overrides(**overrides), db=db, notify_fastpath=notifier)
    a.testing = True
    return a


@pytest.fixture
def rows(db):
    rs = msm_rows.generate(300, seed=7, start=START, span=dt.timedelta(days=20))
    # a re-scored measurement: the newest version only must be exported
    again = dict(rs[5], anomaly="t", scores=msm_rows.scores_for(True, False, False))
    msm_rows.insert(db, rs)
    msm_rows.insert(db, [again])
    return rs


@pytest.fixture
def small_pages(cfg, db, notifier):
    # pages of 7 rows: many pages, windows that grow and shrink, and pages
    # ending inside a second that holds several rows
    return make_app(cfg, db, notifier, EXPORT_PAGE_ROWS="7", RATE_LIMIT_ENABLED="false")


def listing(client, extra=""):
    """Every row of the listing, oldest first, through its cursor paging."""
    out = []
    url = f"/api/v1/measurements?{RANGE}&order=asc&limit=100{extra}"
    while url:
        doc = client.get(url).get_json()
        out += doc["results"]
        url = doc["metadata"]["next_url"]
        if url:
            url = url.split("api.ooni.io", 1)[1]
    return out


def test_jsonl_equals_listing(rows, small_pages):
    c = small_pages.test_client()
    r = c.get(f"/api/v1/measurements/export?format=jsonl&{RANGE}")
    assert r.status_code == 200
    assert r.mimetype == "application/x-ndjson"
    assert r.headers["Content-Disposition"] == \
        'attachment; filename="ooni-measurements_2021-06-30_2021-08-01.jsonl"'
    got = [json.loads(line) for line in r.get_data().splitlines()]
    want = listing(c)
    assert len(want) == 300
    assert got == want
    assert [g["anomaly"] for g in got if g["measurement_uid"] == rows[5]["measurement_uid"]] \
        == [True]


def test_parquet_read_back_equals_listing(rows, small_pages):
    c = small_pages.test_client()
    r = c.get(f"/api/v1/measurements/export?format=parquet&{RANGE}&probe_cc=IT")
    assert r.status_code == 200
    assert 'filename="ooni-measurements_IT_2021-06-30_2021-08-01.parquet"' \
        in r.headers["Content-Disposition"]
    f = pq.ParquetFile(io.BytesIO(r.get_data()))
    assert f.metadata.num_row_groups > 1  # one row group per page
    got = f.read().to_pylist()
    want = listing(c, "&probe_cc=IT")
    assert want and len(got) == len(want)
    for g, w in zip(got, want):
        g["measurement_start_time"] = g["measurement_start_time"].strftime("%Y-%m-%dT%H:%M:%SZ")
        g["scores"] = json.loads(g["scores"])
        assert g == w


def test_csv_parsed_by_csv_module(rows, small_pages):
    c = small_pages.test_client()
    r = c.get(f"/api/v1/measurements/export?format=csv&{RANGE}&test_name=web_connectivity")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    got = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    want = listing(c, "&test_name=web_connectivity")
    assert want and len(got) == len(want)
    for g, w in zip(got, want):
        assert g["measurement_uid"] == w["measurement_uid"]
        assert g["measurement_start_time"] == w["measurement_start_time"]
        assert g["input"] == (w["input"] or "")
        assert g["probe_asn"] == w["probe_asn"]
        assert g["anomaly"] == str(w["anomaly"]).lower()
        assert json.loads(g["scores"]) == w["scores"]


def test_gzip_when_accepted(rows, small_pages):
    c = small_pages.test_client()
    plain = c.get(f"/api/v1/measurements/export?format=jsonl&{RANGE}").get_data()
    r = c.get(f"/api/v1/measurements/export?format=jsonl&{RANGE}",
              headers={"Accept-Encoding": "gzip, deflate"})
    assert r.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(r.get_data()) == plain
    r = c.get(f"/api/v1/measurements/export?format=csv&{RANGE}",
              headers={"Accept-Encoding": "gzip;q=0, br"})
    assert "Content-Encoding" not in r.headers


def test_with_body_from_the_spool(cfg, db, small_pages):
    rs = msm_rows.generate(12, seed=3, start=START, span=dt.timedelta(days=1))
    msm_rows.insert(db, rs)
    spool = Spool(cfg.spool_dir)
    for i, r in enumerate(rs[:-1]):  # the last one has no body anywhere
        body = {"measurement_uid": r["measurement_uid"], "test_keys": {"i": i}}
        spool.write(r["measurement_uid"],
                    json.dumps({"format": "json", "content": body}).encode())
    c = small_pages.test_client()
    for fmt in ("jsonl", "parquet", "csv"):
        r = c.get(f"/api/v1/measurements/export?format={fmt}&{RANGE}&with_body=true")
        assert r.status_code == 200, r.get_data()
        if fmt == "jsonl":
            got = [json.loads(x) for x in r.get_data().splitlines()]
            bodies = {g["measurement_uid"]: g["raw_measurement"] for g in got}
        elif fmt == "parquet":
            t = pq.read_table(io.BytesIO(r.get_data())).to_pylist()
            bodies = {g["measurement_uid"]: g["raw_measurement"] and json.loads(g["raw_measurement"])
                      for g in t}
        else:
            t = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
            bodies = {g["measurement_uid"]: g["raw_measurement"] and json.loads(g["raw_measurement"])
                      for g in t}
        assert len(bodies) == 12
        assert bodies[rs[-1]["measurement_uid"]] in (None, "")
        for r_ in rs[:-1]:
            assert bodies[r_["measurement_uid"]]["measurement_uid"] == r_["measurement_uid"]


@pytest.mark.parametrize("query,message", [
    ("format=xml", "Invalid format"),
    ("", "Invalid format"),
    ("format=jsonl&probe_cc=ITA", "probe_cc"),
    ("format=jsonl&since=yesterday-ish", "since"),
    ("format=jsonl&since=2021-08-01&until=2021-07-01", "since must not be after until"),
    ("format=csv&cursor=abc", "cursor is not supported"),
    ("format=csv&limit=10", "limit is not supported"),
    ("format=parquet&order=desc", "order is not supported"),
    ("format=jsonl&ooni_run_link_id=x", "ooni_run_link_id"),
])
def test_bad_input_is_400_json(client, db, query, message):
    r = client.get(f"/api/v1/measurements/export?{query}")
    assert r.status_code == 400
    assert message in r.get_json()["error"]


def test_zz_is_403(client, db):
    r = client.get("/api/v1/measurements/export?format=jsonl&probe_cc=ZZ")
    assert r.status_code == 403 and "error" in r.get_json()


def test_disconnect_stops_the_paging(rows, small_pages):
    m = small_pages.extensions["ooni"].metrics
    c = small_pages.test_client()
    r = c.get(f"/api/v1/measurements/export?format=jsonl&{RANGE}", buffered=False)
    it = iter(r.response)
    next(it)
    next(it)
    pages = m.counters["ooni-api.export_pages"]
    r.close()  # what the WSGI server does when the client goes away
    assert m.counters["ooni-api.export_aborted"] == 1
    time.sleep(0.3)
    assert m.counters["ooni-api.export_pages"] == pages
    with pytest.raises(StopIteration):
        next(it)


def test_quota_charges_the_stream_time(rows, cfg, db, notifier):
    app = make_app(cfg, db, notifier, EXPORT_PAGE_ROWS="7")
    rl = limiter(app)
    ck = rl.ip_client(ipaddress.ip_address("192.0.2.10"))
    before = rl.store.remaining(ck)[2]
    c = app.test_client()
    r = c.get(f"/api/v1/measurements/export?format=csv&{RANGE}",
              headers={"X-Real-IP": "192.0.2.10"}, buffered=False)
    chunks = 0
    for _ in r.response:
        chunks += 1
        if chunks < 4:
            time.sleep(0.5)  # a slow reader: the stream lasts >= 1.5 s
    r.close()
    used = before - rl.store.remaining(ck)[2]
    assert used >= 1.4
    # an exhausted client gets 429 before any row is read
    rl.store.charge(ck, 10**9)
    r = c.get(f"/api/v1/measurements/export?format=csv&{RANGE}",
              headers={"X-Real-IP": "192.0.2.10"})
    assert r.status_code == 429 and r.get_json() == {"error": "Too Many Requests"}


def test_empty_export_is_a_valid_file(client, db):
    r = client.get("/api/v1/measurements/export?format=parquet&since=2020-01-01&until=2020-01-02")
    assert r.status_code == 200
    t = pq.read_table(io.BytesIO(r.get_data()))
    assert t.num_rows == 0 and "measurement_uid" in t.schema.names
    r = client.get("/api/v1/measurements/export?format=csv&since=2020-01-01&until=2020-01-02")
    assert list(csv.reader(io.StringIO(r.get_data(as_text=True))))[0][0] == "measurement_uid"
    r = client.get("/api/v1/measurements/export?format=jsonl&since=2020-01-01&until=2020-01-02")
    assert r.get_data() == b""


def test_dense_bursts_and_long_gaps(db, small_pages):
    """Windows shrink around a burst (many pages inside one second) and jump
    over a gap of years to the next row."""
    burst = msm_rows.generate(60, seed=9, start=dt.datetime(2021, 7, 20, 12),
                              span=dt.timedelta(minutes=2))
    early = msm_rows.generate(5, seed=10, start=dt.datetime(2018, 1, 1),
                              span=dt.timedelta(days=1))
    msm_rows.insert(db, burst + early)
    c = small_pages.test_client()
    q = "since=2017-01-01&until=2021-08-01"
    got = [json.loads(x) for x in
           c.get(f"/api/v1/measurements/export?format=jsonl&{q}").get_data().splitlines()]
    want = []
    url = f"/api/v1/measurements?{q}&order=asc&limit=100"
    while url:
        doc = c.get(url).get_json()
        want += doc["results"]
        url = doc["metadata"]["next_url"]
        url = url.split("api.ooni.io", 1)[1] if url else None
    assert len(want) == 65 and got == want
