"""The HTTP feeder's WSGI app (§10.1) and small helpers of the daemon."""
from __future__ import annotations

import json

from werkzeug.test import Client

from fastpath.feeder_http import make_app
from fastpath.writer import reason_metric
from ooni_common.metrics import Metrics


def make(accept: bool = True, put_timeout: float = -1):
    got = []

    def put(uid, body, timeout):
        got.append((uid, body, timeout))
        return accept

    m = Metrics("fastpath", enabled=False)
    return Client(make_app(put, m, put_timeout)), got, m


def test_post_queues_the_body_and_answers_empty_200():
    c, got, _ = make()
    r = c.post("/20240305100000.000001_IT_webconnectivity_00000000000000aa", data=b"{not json")
    assert (r.status_code, r.data) == (200, b"")
    assert got == [("20240305100000.000001_IT_webconnectivity_00000000000000aa", b"{not json",
                    None)]


def test_bad_paths_answer_500_with_a_json_error():
    c, got, m = make()
    for path in ("/", "/abc", "/1234"):
        r = c.post(path, data=b"{}")
        assert r.status_code == 500 and "error" in json.loads(r.data)
    assert got == [] and m.counters["fastpath.feeder_bad_path"] == 3


def test_other_methods_are_liveness_probes_and_metrics_are_exposed():
    c, got, m = make()
    m.incr("processed", 3)
    assert (c.get("/").status_code, c.get("/").data) == (200, b"")
    assert c.put("/2024").status_code == 200 and got == []
    r = c.get("/metrics")
    assert r.status_code == 200 and "fastpath_processed_total 3" in r.data.decode()


def test_full_queue_answers_503_after_the_put_timeout():
    c, got, _ = make(accept=False, put_timeout=0.5)
    r = c.post("/20240305100000.000001_IT_x_00", data=b"{}")
    assert r.status_code == 503 and "queue" in json.loads(r.data)["error"]
    assert got[0][2] == 0.5


def test_reason_metric_names():
    assert reason_metric("json_parse") == "json_parse"
    assert reason_metric("worker_exception: KeyError") == "worker_exception"
    assert reason_metric(None) == "unknown"
    assert reason_metric("Row Error (bad asn)") == "row_error_bad_asn"
