"""Tor family: vanilla_tor (§4.8), tor (§4.9), torsf (§4.10) and
meek_fronted_requests_test (§4.7)."""
from __future__ import annotations

from .common import get_or, init_scores, test_keys

TOR_DONE = ("Bootstrapped 100%: Done", "Bootstrapped 100% (done): Done")


def score_vanilla_tor(msm: dict) -> dict:
    tk = test_keys(msm)
    scores = init_scores()
    logs = tk.get("tor_logs") or tk.get("tor_log")
    if not logs:
        scores["accuracy"] = 0.0
        return scores
    # substring test on a string, element equality on a list ([quirk])
    if any(done in logs for done in TOR_DONE):
        return scores
    progress = float(tk.get("tor_progress", 0))
    progress = min(100.0, max(0.0, progress))
    if progress == 100:
        return scores
    scores["blocking_general"] = 1.0 - progress * 0.004
    return scores


def score_tor(msm: dict) -> dict:
    scores = init_scores()
    tk = test_keys(msm)
    targets = tk.get("targets", {})
    if not targets or isinstance(targets, list):
        # a list is the format of early experiments
        scores["accuracy"] = 0.0
        return scores

    blocked = success = 0
    for target in targets.values():
        if "failure" not in target or "network_events" not in target:
            scores["accuracy"] = 0.0
            return scores
        f = target["failure"]
        if f is False:
            continue  # not run
        if f is None:
            success += 1
        elif f == "":
            raise AssertionError("tor target with an empty failure")
        else:
            blocked += 1

    if blocked + success:
        scores["blocking_general"] = blocked / (blocked + success)
    else:
        scores["accuracy"] = 0.0
    scores["extra"] = {"test_runtime": msm.get("test_runtime")}
    return scores


def score_torsf(msm: dict) -> dict:
    scores = init_scores()
    tk = test_keys(msm)
    sw_name = get_or(msm, "software_name", "unknown")
    sw_version = get_or(msm, "software_version", "unknown")
    if sw_version == "3.8.3" and sw_name.startswith("ooniprobe-android"):
        # a known bug of that probe release
        scores["accuracy"] = 0.0
        return scores
    if tk.get("failure"):
        scores["blocking_general"] = 1.0
        return scores
    scores["extra"] = {"bootstrap_time": tk.get("bootstrap_time"),
                       "test_runtime": msm.get("test_runtime")}
    return scores


def score_meek_fronted_requests_test(msm: dict) -> dict:
    scores = init_scores()
    tk = test_keys(msm)
    requests = tk.get("requests", ()) or ()
    if len(requests) == 0:
        scores["blocking_general"] = 1.0
        scores["accuracy"] = 0  # an integer, as the legacy code wrote it
        return scores

    for r in requests:
        resp = r.get("response", {})
        if resp is None:
            scores["blocking_general"] = 1.0
            return scores
        if resp.get("code", 0) != 200:
            scores["blocking_general"] = 1.0
            return scores
        headers = resp.get("headers", {})
        if isinstance(headers, list):
            headers = {i[0]: i[1][0] for i in headers if i}
        server = headers.get("Server", "")
        if not server.startswith("ECAcc "):
            scores["blocking_general"] += 0.5
    return scores
