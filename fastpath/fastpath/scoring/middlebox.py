"""Middlebox tests: http_invalid_request_line (§4.4) and
http_header_field_manipulation (§4.5)."""
from __future__ import annotations

import ujson

from .common import init_scores, test_keys


def score_http_invalid_request_line(msm: dict) -> dict:
    scores = init_scores()
    tk = test_keys(msm)
    sent = tk.get("sent", [])
    received = tk.get("received", [])
    if not len(sent) and not len(received):
        scores["accuracy"] = 0.0
        return scores
    # the probe's tampering flag is ignored (ooni/probe#1278)
    if any(s != r for s, r in zip(sent, received)):
        scores["blocking_general"] = 1.0
    return scores


def score_hhfm(msm: dict) -> dict:
    tk = test_keys(msm)
    scores = init_scores()
    try:
        resp = tk["requests"][0].get("response", {})
    except (KeyError, IndexError, TypeError):
        scores["accuracy"] = 0.0
        return scores
    if resp is None:
        scores["accuracy"] = 0.0
        return scores

    body = resp.get("body")
    if body is None:
        scores["total_tampering"] = True
        scores["blocking_general"] = 1.0
        scores["msg"] = "Empty body"
        return scores

    try:
        ctrl_headers = ujson.loads(body)["headers_dict"]
        received_items = ctrl_headers.items()
    except Exception:
        scores["blocking_general"] = 1.0
        scores["msg"] = "Malformed ctrl_headers"
        return scores

    received = {(k, v[0]) for k, v in received_items}
    expected = set(tk["requests"][0].get("request", {}).get("headers", {}).items())
    # proxies often rewrite Connection: close
    received.discard(("Connection", "close"))
    expected.discard(("Connection", "close"))
    if expected == received:
        return scores
    scores["blocking_general"] = 1.1
    scores["msg"] = "{} unexpected header change".format(len(expected ^ received))
    return scores
