"""web_connectivity (fastpath.md §4.1)."""
from __future__ import annotations

import binascii

from .common import (
    apply_fingerprint_matches,
    detect_unknown_failure,
    get_or,
    init_scores,
    match_http_response,
    probe_cc_for_confirmation,
    test_keys,
)

BLOCKING_TYPES = ("tcp_ip", "dns", "http-diff", "http-failure")


def match_fingerprints(msm: dict, fps) -> list:
    """DNS answers, then body and headers of every response (§5.4)."""
    msm["probe_cc"]  # a missing probe_cc is an error here ([quirk] §4.1 step 1)
    tk = msm.get("test_keys")
    if tk is None:
        return []
    matches: list = []
    for q in get_or(tk, "queries", ()):
        fps.match_dns(get_or(q, "answers", ()), matches)
    for req in get_or(tk, "requests", ()):
        resp = req.get("response")
        if resp is None:
            continue
        match_http_response(fps, resp, matches)
    return matches


def score_web_connectivity(msm: dict, fps) -> dict:
    try:
        matches = match_fingerprints(msm, fps)
    except binascii.Error:
        scores = _score(msm, [])
        scores["accuracy"] = 0.0
        return scores
    return _score(msm, matches)


def _score(msm: dict, matches: list) -> dict:
    scores = init_scores()
    tk = test_keys(msm)
    apply_fingerprint_matches(scores, matches, probe_cc_for_confirmation(msm))

    if tk.get("title_match") not in (True, False, None):
        scores["accuracy"] = 0.0
        return scores

    blocking = tk.get("blocking")
    if blocking in BLOCKING_TYPES:
        scores["blocking_general"] = 1.0
        scores["analysis"] = {"blocking_type": blocking}
    elif blocking == False:  # noqa: E712 - the legacy test: 0 counts as false
        pass
    elif blocking is None:
        # any match, confirmed or not, keeps the measurement valid
        if not matches:
            scores["accuracy"] = 0.0
    else:
        scores["analysis"] = {"msg": "Unsupported blocking type"}
        scores["accuracy"] = 0.0

    if detect_unknown_failure(tk):
        scores["accuracy"] = 0.0

    scores["blocking_general"] += (scores["blocking_country"] + scores["blocking_global"]
                                   + scores["blocking_isp"] + scores["blocking_local"])

    if "accessible" in tk and tk["accessible"] is None and not matches:
        scores["accuracy"] = 0.0
    return scores
