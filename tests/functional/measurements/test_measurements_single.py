"""measurement_meta, raw_measurement, measurement/<uid> and torsf_stats
(api.md §4.2-4.5), bodies served from the spool."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from ooni_common.spool import Spool
from tests.functional import msm_rows

UID = "20210709005529.664022_MY_webconnectivity_68e5bea1060d1874"
RID = "20210709T004340Z_webconnectivity_MY_4818_n1_YCM7J9mGcEHds2K3"
INPUT = "https://www.backtrack-linux.org/"
SCORES = ('{"blocking_general":1.0,"blocking_global":0.0,"blocking_country":0.0,'
          '"blocking_isp":0.0,"blocking_local":0.0,"analysis":{"blocking_type":"http-failure"}}')
CONTENT = {"measurement_start_time": "2021-07-09 00:55:13", "probe_asn": "AS4818",
           "probe_cc": "MY", "report_id": RID, "input": INPUT, "test_name": "web_connectivity",
           "test_keys": {"blocking": "http-failure", "title": "Вход"}}


@pytest.fixture
def legacy_row(db):
    r = msm_rows.row(measurement_uid=UID, report_id=RID, input=INPUT, probe_cc="MY",
                     probe_asn=4818, measurement_start_time=dt.datetime(2021, 7, 9, 0, 55, 13),
                     test_start_time=dt.datetime(2021, 7, 9, 0, 43, 40), anomaly="t",
                     scores=SCORES)
    msm_rows.insert(db, [r])
    return r


@pytest.fixture
def spool(cfg):
    return Spool(cfg.spool_dir)


def spool_content(spool, uid, content):
    spool.write(uid, json.dumps({"format": "json", "content": content}).encode())


def meta(client, **params):
    return client.get("/api/v1/measurement_meta", query_string=params)


def test_meta_by_uid_exact_shape(client, legacy_row):
    r = meta(client, measurement_uid=UID)
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "max-age=60"
    assert r.get_json() == {
        "anomaly": True, "confirmed": False, "failure": False, "category_code": "",
        "input": INPUT, "measurement_start_time": "2021-07-09T00:55:13Z",
        "measurement_uid": UID, "probe_asn": 4818, "probe_cc": "MY", "report_id": RID,
        "scores": SCORES, "test_name": "web_connectivity",
        "test_start_time": "2021-07-09T00:43:40Z", "verification_status": "unverified"}


def test_meta_category_code_and_report_id_lookups(client, db, legacy_row):
    db.insert("citizenlab", ["domain", "url", "cc", "category_code"],
              [["www.backtrack-linux.org", INPUT, "ZZ", "HACK"]])
    assert meta(client, measurement_uid=UID).get_json()["category_code"] == "HACK"
    doc = meta(client, report_id=RID, input=INPUT).get_json()
    assert doc["measurement_uid"] == UID and doc["category_code"] == "HACK"
    # by report_id without input: the row with input '' (none here)
    r = meta(client, report_id=RID)
    assert r.get_json() == {} and "no-cache" in r.headers["Cache-Control"]
    no_input = msm_rows.row(report_id=RID, input="", test_name="web_connectivity",
                            measurement_start_time=dt.datetime(2021, 7, 9, 0, 50))
    msm_rows.insert(db, [no_input])
    doc = meta(client, report_id=RID).get_json()
    assert doc["measurement_uid"] == no_input["measurement_uid"]
    assert doc["input"] == "" and doc["category_code"] is None
    # an invalid uid falls back to report_id
    assert meta(client, measurement_uid="short", report_id=RID,
                input=INPUT).get_json()["measurement_uid"] == UID


def test_meta_not_found_and_asn0(client, db, legacy_row):
    for params in ({"measurement_uid": UID[:-1] + "0"}, {"report_id": RID, "input": "https://x.org/"}):
        r = meta(client, **params)
        assert r.status_code == 200 and r.get_json() == {}
        assert r.headers["Cache-Control"] == "no-cache, max-age=0"
        r = meta(client, full="true", **params)
        assert r.get_json() == {"raw_measurement": ""}
        assert "no-cache" in r.headers["Cache-Control"]
    hidden = msm_rows.row(probe_asn=0)
    msm_rows.insert(db, [hidden])
    assert meta(client, measurement_uid=hidden["measurement_uid"]).get_json() == {}


@pytest.mark.parametrize("params,error", [
    ({}, "Invalid report_id"),
    ({"measurement_uid": "short"}, "Invalid report_id"),
    ({"report_id": "abc"}, "Invalid report_id field"),
    ({"report_id": "' OR 1=1 --' OR 1=1 --"}, "Invalid report_id field"),
    ({"measurement_uid": "x" * 101}, "Invalid report_id"),
    ({"report_id": RID, "input": "foo.org='"}, "Invalid characters in input field"),
    ({"measurement_uid": UID, "input": "~!^{}"}, "Invalid characters in input field"),
])
def test_meta_bad_input(client, legacy_row, params, error):
    r = meta(client, **params)
    assert r.status_code == 400
    assert r.get_json() == {"error": error}


def test_meta_full_with_spooled_body(client, legacy_row, spool):
    spool_content(spool, UID, CONTENT)
    doc = meta(client, measurement_uid=UID, full="1").get_json()
    assert json.loads(doc["raw_measurement"]) == CONTENT
    assert doc["probe_asn"] == 4818
    # body missing everywhere: empty string, metadata still served
    spool.path_for(UID).unlink()
    doc = meta(client, measurement_uid=UID, full="yes").get_json()
    assert doc["raw_measurement"] == "" and doc["measurement_uid"] == UID


def test_raw_measurement(client, legacy_row, spool):
    spool_content(spool, UID, CONTENT)
    for params in ({"measurement_uid": UID}, {"report_id": RID, "input": INPUT}):
        r = client.get("/api/v1/raw_measurement", query_string=params)
        assert r.status_code == 200
        assert r.headers["Cache-Control"] == "max-age=86400"
        assert r.mimetype == "application/json"
        assert json.loads(r.data) == CONTENT
    # unknown: {} not cached
    r = client.get("/api/v1/raw_measurement", query_string={"measurement_uid": UID[:-1] + "f"})
    assert (r.status_code, r.get_json()) == (200, {})
    assert r.headers["Cache-Control"] == "no-cache, max-age=0"
    # known but no body anywhere: 404 (issue 5; legacy answered 500)
    spool.path_for(UID).unlink()
    r = client.get("/api/v1/raw_measurement", query_string={"measurement_uid": UID})
    assert (r.status_code, r.get_json()) == (404, {"error": "Measurement not found"})
    assert "no-cache" in r.headers["Cache-Control"]
    r = client.get("/api/v1/raw_measurement", query_string={"report_id": "bad"})
    assert (r.status_code, r.get_json()) == (400, {"error": "Invalid report_id field"})
    r = client.get("/api/v1/raw_measurement")
    assert (r.status_code, r.get_json()) == (400, {"error": "Invalid report_id"})


def test_raw_measurement_input_not_validated(client, db, spool):
    odd = "foo.org='"
    r = msm_rows.row(input=odd, report_id=RID)
    msm_rows.insert(db, [r])
    spool_content(spool, r["measurement_uid"], {"input": odd})
    resp = client.get("/api/v1/raw_measurement", query_string={"report_id": RID, "input": odd})
    assert resp.status_code == 200 and resp.get_json() == {"input": odd}


def test_measurement_by_uid(client, db, legacy_row, spool):
    spool_content(spool, UID, CONTENT)
    r = client.get(f"/api/v1/measurement/{UID}")
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "max-age=3600"
    assert "Content-Disposition" not in r.headers
    doc = r.get_json()
    assert (doc["measurement_start_time"], doc["probe_asn"], doc["probe_cc"]) == \
        ("2021-07-09 00:55:13", "AS4818", "MY")
    r = client.get(f"/api/v1/measurement/{UID}?download=true")
    assert r.headers["Content-Disposition"] == f"attachment; filename=ooni_measurement-{UID}.json"


def test_measurement_by_uid_not_yet_scored_is_read_from_spool(client, db, spool):
    uid = msm_rows.make_uid(dt.datetime.utcnow(), "IT", "ndt", "fresh")
    spool_content(spool, uid, {"test_name": "ndt"})
    r = client.get(f"/api/v1/measurement/{uid}")
    assert r.status_code == 200 and r.get_json() == {"test_name": "ndt"}


@pytest.mark.parametrize("uid", [UID[:-1] + "0", "short", "x" * 101, "' OR 1=1 --abcdef",
                                 "20210709005529.664022_MY_web'; DROP TABLE fastpath"])
def test_measurement_by_uid_not_found(client, db, legacy_row, uid):
    r = client.get(f"/api/v1/measurement/{uid}")
    # well-formed but unknown: 404; malformed: 400
    assert r.status_code == (404 if len(uid) >= 10 and len(uid) <= 100 else 400)
    assert r.get_json() == {"error": "Incorrect or inexistent measurement_uid"}
    assert "no-cache" in r.headers["Cache-Control"]


def test_measurement_by_uid_asn0_hidden(client, db, spool):
    r = msm_rows.row(probe_asn=0)
    msm_rows.insert(db, [r])
    spool_content(spool, r["measurement_uid"], {"x": 1})
    assert client.get(f"/api/v1/measurement/{r['measurement_uid']}").status_code == 404
    assert client.get("/api/v1/raw_measurement",
                      query_string={"measurement_uid": r["measurement_uid"]}).get_json() == {}


def test_real_samples_bodies_round_trip(client, db, shared_data, spool):
    pairs = msm_rows.sample_rows(shared_data)
    msm_rows.insert(db, [r for r, _ in pairs])
    for r, msm in pairs:
        spool_content(spool, r["measurement_uid"], msm)
    for r, msm in pairs:
        uid = r["measurement_uid"]
        if r["probe_asn"] == 0:
            continue
        assert client.get("/api/v1/raw_measurement",
                          query_string={"measurement_uid": uid}).get_json() == msm
        doc = meta(client, measurement_uid=uid, full="true").get_json()
        assert json.loads(doc["raw_measurement"]) == msm
        assert doc["probe_asn"] == r["probe_asn"] and doc["test_name"] == r["test_name"]
        assert doc["measurement_start_time"] == r["measurement_start_time"].strftime("%Y-%m-%dT%H:%M:%SZ")


# --- torsf_stats ---------------------------------------------------------------

@pytest.fixture
def torsf(db):
    d = dt.datetime(2021, 7, 29, 10)
    rows = [
        msm_rows.row(test_name="torsf", input="", probe_cc="IT", measurement_start_time=d),
        msm_rows.row(test_name="torsf", input="", probe_cc="IT", anomaly="t",
                     measurement_start_time=d + dt.timedelta(hours=1)),
        msm_rows.row(test_name="torsf", input="", probe_cc="IT", msm_failure="t",
                     measurement_start_time=d + dt.timedelta(days=1)),
        msm_rows.row(test_name="torsf", input="", probe_cc="DE", confirmed="t",
                     measurement_start_time=d),
        msm_rows.row(test_name="tor", input="", probe_cc="IT", measurement_start_time=d),
    ]
    msm_rows.insert(db, rows)
    return rows


def test_torsf_stats(client, torsf):
    r = client.get("/api/v1/torsf_stats?since=2021-07-01&until=2021-08-01")
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "max-age=86400"
    assert r.get_json() == {"v": 0, "result": [
        {"measurement_start_day": "2021-07-29", "probe_cc": "DE", "anomaly_count": 0,
         "confirmed_count": 1, "failure_count": 0, "measurement_count": 1, "anomaly_rate": 0.0},
        {"measurement_start_day": "2021-07-29", "probe_cc": "IT", "anomaly_count": 1,
         "confirmed_count": 0, "failure_count": 0, "measurement_count": 2, "anomaly_rate": 0.5},
        {"measurement_start_day": "2021-07-30", "probe_cc": "IT", "anomaly_count": 0,
         "confirmed_count": 0, "failure_count": 1, "measurement_count": 1, "anomaly_rate": 0.0},
    ]}
    doc = client.get("/api/v1/torsf_stats?probe_cc=de").get_json()
    assert [x["probe_cc"] for x in doc["result"]] == ["DE"]
    # until recent or absent: not cached
    r = client.get("/api/v1/torsf_stats")
    assert "Cache-Control" not in r.headers
    # since is exclusive, until inclusive
    doc = client.get("/api/v1/torsf_stats?since=2021-07-29T10:00:00&until=2021-07-29T11:00:00").get_json()
    assert [(x["probe_cc"], x["measurement_count"]) for x in doc["result"]] == [("IT", 1)]


@pytest.mark.parametrize("qs", ["since=notadate", "until=2021-02-30", "probe_cc=ITA",
                                "probe_cc=' OR 1=1 --"])
def test_torsf_stats_bad_input(client, torsf, qs):
    r = client.get(f"/api/v1/torsf_stats?{qs}")
    assert r.status_code == 400
    doc = r.get_json()
    assert doc["v"] == 0 and doc["error"]


SQLISH = ["' OR 1=1 --", "\"; DROP TABLE fastpath; --", "x') UNION SELECT 1 --",
          "\\' OR ''='", "a\x00b\\N"]


def test_sql_looking_keys_are_data(client, db, legacy_row):
    for text in SQLISH:
        uid = (text * 4)[:60]
        for path in ("/api/v1/measurement_meta", "/api/v1/raw_measurement"):
            r = client.get(path, query_string={"measurement_uid": uid})
            assert (r.status_code, r.get_json()) == (200, {}), (path, text)
        r = client.get("/api/v1/raw_measurement", query_string={"report_id": RID, "input": text})
        assert (r.status_code, r.get_json()) == (200, {})
        r = client.get("/api/_/measurement_feedback/" + uid.replace("/", ""))
        assert (r.status_code, r.get_json()) == (200, {"summary": {}})
    assert db.execute("SELECT count() FROM fastpath")[0][0] == 1
