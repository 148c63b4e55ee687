"""Regressions found by fuzzing the whole API (tests/bench/fuzz_api.py):
each input once answered a 5xx; the rule is a 4xx JSON error instead."""

import pytest

DEEP_OBJECT = b'{"a":' * 5000 + b"1" + b"}" * 5000
DEEP_ARRAY = b'{"email_address": ' + b"[" * 100000 + b"]" * 100000 + b"}"

# Every POST route that reads its body through request.get_json.
GET_JSON_ROUTES = ["/api/v1/check-in", "/api/_/check-in", "/api/v1/geolookup",
                   "/api/v1/register", "/api/v1/login", "/bouncer/net-tests",
                   "/api/v1/user_register"]


def assert_json_4xx(r):
    assert 400 <= r.status_code < 500, (r.status_code, r.data[:200])
    assert isinstance(r.get_json(), dict) and r.get_json().get("error"), r.data[:200]


@pytest.mark.parametrize("path", GET_JSON_ROUTES)
@pytest.mark.parametrize("body", [DEEP_OBJECT, DEEP_ARRAY], ids=["object", "array"])
def test_deeply_nested_json_body_is_a_400(client, path, body):
    r = client.post(path, data=body, content_type="application/json")
    assert_json_4xx(r)


def test_json_provider_reports_deep_nesting_as_bad_json(app):
    with pytest.raises(ValueError):
        app.json.loads(DEEP_OBJECT)
    assert app.json.loads(b'{"a": [1]}') == {"a": [1]}


RID = "20210709T004340Z_webconnectivity_IT_30722_n1_YCM7J9mGcEHds2K3"
UPLOAD = '{"format": "json", "content": {"probe_cc": "IT", "test_name": "web_connectivity"}}'


def spooled(cfg) -> list:
    from ooni_common.spool import Spool
    return [p for p in Spool(cfg.spool_dir).root.rglob("*") if p.is_file()]


# JSON in a BOM or in UTF-16/32 was accepted (the standard parser guesses the
# encoding of bytes) and spooled, but the fastpath reads bodies as UTF-8
# JSON: it dropped them as json_parse, so the measurement was never scored.
ENCODINGS = {"bom": lambda t: b"\xef\xbb\xbf" + t.encode(), "utf16": lambda t: t.encode("utf-16"),
             "utf16le": lambda t: t.encode("utf-16-le"), "utf32": lambda t: t.encode("utf-32")}
OPEN_REPORT = '{"format": "json", "probe_cc": "IT", "test_name": "web_connectivity"}'


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("path,text", [(f"/report/{RID}", UPLOAD),
                                       ("/api/v1/submit_measurement", UPLOAD),
                                       ("/report", OPEN_REPORT)])
def test_upload_not_in_utf8_is_a_400_and_stores_nothing(client, cfg, notifier, path, text,
                                                         encoding):
    assert client.post(path, data=text, content_type="application/json").status_code == 200
    for p in spooled(cfg):
        p.unlink()
    notifier.calls.clear()
    r = client.post(path, data=ENCODINGS[encoding](text), content_type="application/json")
    assert_json_4xx(r)
    assert spooled(cfg) == [] and notifier.calls == []


def test_upload_the_fastpath_can_parse_is_still_accepted(client, cfg):
    # a 65-bit integer: valid JSON that both parsers read
    body = UPLOAD.replace('"IT"', '"IT", "x": 36893488147419103232').encode()
    r = client.post(f"/report/{RID}", data=body, content_type="application/json")
    assert r.status_code == 200 and r.get_json()["measurement_uid"]
    assert len(spooled(cfg)) == 1


# A since/until with a fraction of a second reached the database as
# '... 00:00:00.500000', which a DateTime query parameter refuses: the
# measurements list answered 500 "Database query error", the aggregation a 400.
@pytest.fixture
def two_rows(db):
    import datetime as dt

    from tests.functional import msm_rows
    t0 = dt.datetime(2023, 1, 1, 0, 0, 0)
    msm_rows.insert(db, [msm_rows.row(measurement_start_time=t0, input="https://a.example/"),
                         msm_rows.row(measurement_start_time=t0 + dt.timedelta(seconds=1),
                                      input="https://b.example/")])


@pytest.mark.parametrize("query,inputs", [
    ("since=2023-01-01T00:00:00.5", ["https://b.example/"]),
    ("until=2023-01-01T00:00:00.5&since=2022-12-01", ["https://a.example/"]),
    ("since=2022-12-31T23:59:59.999999&until=2023-01-01T00:00:01.000001",
     ["https://a.example/", "https://b.example/"]),
])
def test_fractional_seconds_in_measurements_list(client, two_rows, query, inputs):
    r = client.get(f"/api/v1/measurements?{query}")
    assert r.status_code == 200, r.data
    assert sorted(m["input"] for m in r.get_json()["results"]) == inputs


@pytest.mark.parametrize("query,count", [
    ("since=2023-01-01T00:00:00.5&until=2023-01-02", 1),
    ("since=2022-12-31&until=2023-01-01T00:00:00.5", 1),
    ("since=2022-12-31T23:59:59.5&until=2023-01-01T00:00:01.5", 2),
])
def test_fractional_seconds_in_aggregation(client, two_rows, query, count):
    r = client.get(f"/api/v1/aggregation?{query}")
    assert r.status_code == 200, r.data
    assert r.get_json()["result"]["measurement_count"] == count


def test_parse_date_rounds_to_whole_seconds_in_the_exact_direction():
    import datetime as dt

    from ooniapi.core.params import parse_date
    assert parse_date("since", "2023-01-01T00:00:00.5") == dt.datetime(2023, 1, 1)
    assert parse_date("since", "2023-01-01T00:00:00.5", round_up=True) == \
        dt.datetime(2023, 1, 1, 0, 0, 1)
    assert parse_date("since", "2023-01-01T00:00:07", round_up=True) == \
        dt.datetime(2023, 1, 1, 0, 0, 7)
    assert parse_date("until", "2106-02-07T00:00:00.5", round_up=True) == \
        dt.datetime(2106, 2, 7)
