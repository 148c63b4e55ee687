"""Legacy ooniprobe web tests: http_requests (§4.2), dns_consistency (§4.3)
and tcp_connect (§4.6)."""
from __future__ import annotations

from .common import (
    apply_fingerprint_matches,
    get_or,
    init_scores,
    match_http_response,
    probe_cc_for_confirmation,
    test_keys,
)

TCP_CONNECT_SOFT_FAILURES = ("generic_timeout_error", "connection_refused_error",
                             "connect_error", "tcp_timed_out_error")


def score_http_requests(msm: dict, fps) -> dict:
    scores = init_scores()
    tk = test_keys(msm)
    body_length_match = tk.get("body_length_match")
    headers_match = tk.get("headers_match")
    # read from the measurement root, not test_keys ([quirk])
    failed = msm.get("control_failure") or msm.get("experiment_failure")
    if failed or body_length_match is None or headers_match is None:
        scores["accuracy"] = 0.0
        return scores

    if not (body_length_match and headers_match):
        scores["blocking_general"] = 1.0

    matches: list = []
    for req in get_or(tk, "requests", []):
        request = get_or(req, "request", {})
        tor = get_or(request, "tor", {})
        if get_or(tor, "is_tor", None):
            continue
        # a base64 error is not caught for this test ([quirk])
        match_http_response(fps, get_or(req, "response", {}), matches)

    apply_fingerprint_matches(scores, matches, probe_cc_for_confirmation(msm))
    return scores


def score_dns_consistency(msm: dict) -> dict:
    return init_scores()


def score_tcp_connect(msm: dict) -> dict:
    scores = init_scores()
    tk = test_keys(msm)
    assert msm["input"], "tcp_connect without input"
    conn = tk.get("connection")
    if conn == "success":
        return scores
    scores["blocking_general"] = 0.8 if conn in TCP_CONNECT_SOFT_FAILURES else 1.0
    return scores
