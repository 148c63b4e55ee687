"""Per-test scoring (fastpath.md §3, §4). Each scorer is a pure function of
the measurement (plus the fingerprints for the two tests that match them)
returning the scores object."""
from __future__ import annotations

from typing import Callable

from .circumvention import score_openvpn, score_psiphon, score_riseupvpn
from .common import init_scores
from .experimental import score_browser_web, score_stunreachability
from .im import score_facebook_messenger, score_signal, score_telegram, score_whatsapp
from .legacy_web import score_dns_consistency, score_http_requests, score_tcp_connect
from .middlebox import score_hhfm, score_http_invalid_request_line
from .performance import score_dash, score_ndt
from .tor import score_meek_fronted_requests_test, score_tor, score_torsf, score_vanilla_tor
from .web_connectivity import score_web_connectivity


def _plain(f: Callable[[dict], dict]) -> Callable[[dict, object], dict]:
    return lambda msm, fps: f(msm)


# test_name -> scorer(msm, fingerprints)
SCORERS: dict[str, Callable[[dict, object], dict]] = {
    "web_connectivity": score_web_connectivity,
    "http_requests": score_http_requests,
    "dns_consistency": _plain(score_dns_consistency),
    "http_invalid_request_line": _plain(score_http_invalid_request_line),
    "http_header_field_manipulation": _plain(score_hhfm),
    "tcp_connect": _plain(score_tcp_connect),
    "meek_fronted_requests_test": _plain(score_meek_fronted_requests_test),
    "vanilla_tor": _plain(score_vanilla_tor),
    "tor": _plain(score_tor),
    "torsf": _plain(score_torsf),
    "psiphon": _plain(score_psiphon),
    "riseupvpn": _plain(score_riseupvpn),
    "openvpn": _plain(score_openvpn),
    "telegram": _plain(score_telegram),
    "whatsapp": _plain(score_whatsapp),
    "facebook_messenger": _plain(score_facebook_messenger),
    "signal": _plain(score_signal),
    "ndt": _plain(score_ndt),
    "dash": _plain(score_dash),
    "stunreachability": _plain(score_stunreachability),
    "browser_web": _plain(score_browser_web),
}


def score_measurement(msm: dict, fps) -> dict:
    """§2.3 for unknown test names, §3.1 for ``pbug`` assertions; any other
    exception propagates (the caller counts it as a scorer error)."""
    scorer = SCORERS.get(msm["test_name"]) if isinstance(msm["test_name"], str) else None
    if scorer is None:
        scores = init_scores()
        scores["accuracy"] = 0.0
        return scores
    try:
        return scorer(msm, fps)
    except AssertionError as e:
        if str(e).startswith("pbug "):
            scores = init_scores()
            scores["accuracy"] = 0.0
            return scores
        raise

# §12: the scorers with a timer of their own, besides score_measurement.
SCORER_TIMERS: dict[str, str] = {
    "web_connectivity": "score_web_connectivity",
    "telegram": "score_measurement_telegram",
    "whatsapp": "score_measurement_whatsapp",
    "facebook_messenger": "score_measurement_facebook_messenger",
    "http_header_field_manipulation": "score_measurement_hhfm",
    "http_invalid_request_line": "score_http_invalid_request_line",
    "vanilla_tor": "score_vanilla_tor",
    "ndt": "score_ndt",
    "tcp_connect": "score_tcp_connect",
}
