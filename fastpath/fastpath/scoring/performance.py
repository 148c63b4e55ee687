"""Performance tests: ndt (§4.18) and dash (§4.19)."""
from __future__ import annotations

from .common import init_scores, test_keys

DASH_NETWORK_FAILURES = ("connection_aborted", "json_parse_error", "eof_error",
                         "json_processing_error", "http_request_failed", "connect_error",
                         "generic_timeout_error", "broken_pipe", "connection_refused")


def score_ndt(msm: dict) -> dict:
    return {}


def score_dash(msm: dict) -> dict:
    scores = init_scores()
    tk = test_keys(msm)
    failure = tk.get("failure")
    if tk == {}:
        scores["accuracy"] = 0.0
        return scores
    if failure is None:
        return scores
    if failure in DASH_NETWORK_FAILURES or "ssl_error" in failure:
        scores["blocking_general"] = 0.1
        scores["accuracy"] = 0.0
    else:
        scores["msg"] = "Probe error"
        scores["accuracy"] = 0.0
    return scores
