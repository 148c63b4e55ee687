"""Newer experiments: stunreachability (§4.20) and browser_web (§4.21)."""
from __future__ import annotations

from .common import get_or, init_scores, test_keys


def score_stunreachability(msm: dict) -> dict:
    scores = init_scores()
    tk = test_keys(msm)
    scores["extra"] = {"endpoint": tk.get("endpoint")}
    failure = tk.get("failure")
    if failure:
        scores["blocking_general"] = 1.0
        scores["extra"]["failure"] = failure
    return scores


def score_browser_web(msm: dict) -> dict:
    scores = init_scores()
    tk = test_keys(msm)
    result = get_or(tk, "result", "")
    if result == "ok":
        pass
    elif result == "error":
        scores["blocking_general"] = 1.0
    else:
        scores["accuracy"] = 0.0
    scores["extra"] = {"browser_name": get_or(tk, "browser_name", ""),
                       "load_time_ms": get_or(tk, "load_time_ms", 0)}
    return scores
