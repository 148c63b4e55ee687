"""Bad input never makes process_measurement raise: every sample mutated in
every key the scorers read (wrong types, nulls), truncated JSON, huge and
binary bodies, bad base64, dates in 1970 and 2100."""
from __future__ import annotations

import base64
import copy
import json

import pytest

from fastpath.core import process_measurement
from fastpath.fingerprints import load_from_files

BAD_VALUES = [None, 0, 1, True, False, "", "x", [], [1, None], {}, {"a": None}, 1.5,
              "unknown_failure", [[]], [{}], {"format": "base64", "data": "@@@"}]
REASONS = {"json_parse", "not_an_object", "bad_format", "yaml_parse", "no_test_name",
           "scorer_error", "row_error", "bad_probe_cc", "bad_probe_asn", "no_uid", "no_body",
           "too_deep"}


@pytest.fixture(scope="module")
def fps(shared_data):
    d = shared_data / "fingerprints"
    return load_from_files(d / "fingerprints_dns.json", d / "fingerprints_http.json")


@pytest.fixture(scope="module")
def samples(shared_data):
    return {p.name: json.loads(p.read_bytes())
            for p in sorted((shared_data / "measurements").glob("*.json"))}


def check(out):
    assert out.status in ("scored", "discarded", "error")
    if out.status == "error":
        assert out.reason in REASONS, out.reason
    if out.status == "scored" and out.row is not None:
        json.loads(out.row.scores)
        assert out.row.as_tuple()


def paths(doc, prefix=()):
    """Every key path of the document (dict members and first list elements)."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from paths(v, prefix + (k,))
    elif isinstance(doc, list) and doc:
        yield prefix + (0,)
        yield from paths(doc[0], prefix + (0,))


def set_path(doc, path, value):
    d = doc
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def test_every_key_every_bad_value(samples, fps):
    n = 0
    for name, doc in samples.items():
        key_paths = [p for p in paths(doc) if len(p) <= 5][:150]
        for path in key_paths:
            for bad in BAD_VALUES:
                m = copy.deepcopy(doc)
                set_path(m, path, copy.deepcopy(bad))
                check(process_measurement(None, m, "bogus_uid", fps))
                n += 1
    assert n > 1000


def test_truncated_json(samples, fps):
    for name, doc in samples.items():
        raw = json.dumps(doc).encode()
        for cut in (1, len(raw) // 3, len(raw) - 1):
            out = process_measurement(raw[:cut], None, "bogus_uid", fps)
            assert (out.status, out.reason) == ("error", "json_parse")


@pytest.mark.parametrize("raw, reason", [
    (b"", "json_parse"), (b"[1,2]", "not_an_object"), (b"null", "not_an_object"),
    (b"\xff\xfe\x00", "json_parse"), (b'{"format": "json", "content": 5}', "not_an_object"),
    (b'{"format": 3, "content": {}}', "bad_format"), (b'{"report_id": "r"}', "no_test_name"),
    (b'{"report_id": "r", "probe_cc": null}', "bad_probe_cc"),
    (b'{"report_id": "r", "probe_asn": null}', "bad_probe_asn"),
    (b"[" * 100000, "json_parse"),
])
def test_bad_documents(raw, reason, fps):
    out = process_measurement(raw, None, "bogus_uid", fps)
    assert (out.status, out.reason) == ("error", reason)


def test_no_uid(fps):
    assert process_measurement(b"{}", None, "", fps).reason == "no_uid"


def test_deeply_nested_document(fps):
    doc = {"report_id": "r", "probe_cc": "IT", "probe_asn": "AS1", "test_name": "ndt"}
    d = doc
    for _ in range(5000):
        d["x"] = {}
        d = d["x"]
    check(process_measurement(None, doc, "bogus_uid", fps))


def wc_body(samples, body):
    m = copy.deepcopy(samples["report1.json"])
    m["test_keys"]["requests"][0]["response"]["body"] = body
    return m


def test_huge_body(samples, fps):
    out = process_measurement(None, wc_body(samples, "A" * 20_000_000 + "GdF Stop Page"),
                              "bogus_uid", fps)
    assert out.status == "scored"
    assert "ooni.it_0" in [f["name"] for f in out.scores["fingerprints"]]


def test_binary_bodies(samples, fps):
    blob = bytes(range(256)) * 100
    body = {"format": "base64", "data": base64.b64encode(blob).decode()}
    check(process_measurement(None, wc_body(samples, body), "bogus_uid", fps))
    check(process_measurement(None, wc_body(samples, blob.decode("latin-1")), "bogus_uid", fps))
    check(process_measurement(None, wc_body(samples, "\ud800 lone surrogate"), "bogus_uid", fps))


@pytest.mark.parametrize("data", ["abc", "@@@@", "é", 5, None])
def test_bad_base64(samples, fps, data):
    out = process_measurement(None, wc_body(samples, {"format": "base64", "data": data}),
                              "bogus_uid", fps)
    check(out)
    if data == "abc":  # incorrect padding: scored without matches, accuracy 0.0
        assert out.status == "scored" and out.scores["accuracy"] == 0.0


def test_bad_base64_header(samples, fps):
    m = copy.deepcopy(samples["report1.json"])
    m["test_keys"]["requests"][0]["response"]["headers"] = {
        "Location": {"format": "base64", "data": "abc"}}
    out = process_measurement(None, m, "bogus_uid", fps)
    assert out.status == "scored" and out.scores["accuracy"] == 0.0


@pytest.mark.parametrize("start", ["1970-01-01 00:00:00", "2100-12-31 23:59:59"])
def test_dates_1970_2100(samples, fps, start):
    for doc in samples.values():
        m = copy.deepcopy(doc)
        m["measurement_start_time"] = m["test_start_time"] = start
        out = process_measurement(None, m, "20211109115946.469008_IR_webconnectivity_9ba8a0d4f9b116fe",
                                  fps)
        check(out)
        if out.status == "scored" and m.get("test_name") != "tcp_connect":
            assert out.row.msm_failure == "t"
