"""Circumvention tools: psiphon (§4.11), riseupvpn (§4.12), openvpn (§4.13)."""
from __future__ import annotations

from .common import init_scores, test_keys


def score_psiphon(msm: dict) -> dict:
    scores = init_scores()
    tk = test_keys(msm)
    failure = tk.get("failure")
    bootstrap_time = tk.get("bootstrap_time", 0)
    if failure is None:
        scores["accuracy"] = 0.0 if bootstrap_time == 0 else 1.0
    else:
        scores["accuracy"] = 1.0
        scores["blocking_general"] = 1.0
    if "resolver_ip" not in msm:
        scores["accuracy"] = 0.0
    scores["extra"] = {"test_runtime": msm.get("test_runtime"),
                       "bootstrap_time": bootstrap_time}
    return scores


def score_riseupvpn(msm: dict) -> dict:
    # scoring disabled: the test gave too many false positives
    return {}


def score_openvpn(msm: dict) -> dict:
    scores = init_scores()
    success = test_keys(msm).get("success")
    if success is False:
        scores["blocking_general"] = 1.0
    elif success is None:
        scores["accuracy"] = 0.0
    scores["extra"] = {"test_runtime": msm.get("test_runtime")}
    return scores
