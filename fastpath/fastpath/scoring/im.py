"""Instant messaging tests: telegram (§4.14), whatsapp (§4.15),
facebook_messenger (§4.16), signal (§4.17)."""
from __future__ import annotations

import datetime as dt

from packaging.version import Version

from .common import count_tcp_connect, detect_unknown_failure, get_or, init_scores, test_keys

TELEGRAM_WEB_URLS = ("https://web.telegram.org/", "http://web.telegram.org/")


def score_telegram(msm: dict) -> dict:
    tk = test_keys(msm)
    web_blocking = tk.get("telegram_web_status") == "blocked"
    accessible, unreachable = count_tcp_connect(tk)

    http_success = http_failure = 0
    web_failure = None
    for request in get_or(tk, "requests", ()):
        try:
            url = request["request"]["url"]
        except KeyError:
            scores = init_scores()
            scores["accuracy"] = 0.0
            return scores
        if url in TELEGRAM_WEB_URLS:
            if request["failure"] is not None:
                web_failure = request["failure"]
            continue
        if request["failure"] is None:
            http_success += 1
        else:
            http_failure += 1

    s = unreachable / (accessible + unreachable) if accessible + unreachable else 0.5
    s += http_failure / (http_failure + http_success) if http_failure + http_success else 0.5
    if web_blocking:
        s += 1

    scores = init_scores()
    scores["blocking_general"] = s
    scores["web_failure"] = web_failure
    scores["accessible_endpoints"] = accessible
    scores["unreachable_endpoints"] = unreachable
    scores["http_success_cnt"] = http_success
    scores["http_failure_cnt"] = http_failure
    if web_failure is not None:
        scores["msg"] = "failure: {}".format(web_failure)
    return scores


def score_whatsapp(msm: dict) -> dict:
    tk = test_keys(msm)
    scores = init_scores()
    if detect_unknown_failure(tk):
        scores["accuracy"] = 0.0

    wf = tk.get("whatsapp_web_failure", "")
    if wf and "unknown_failure 'ascii' co" in wf:
        assert msm["report_id"], "whatsapp without report_id"
        scores["accuracy"] = 0.0
        return scores

    requests = tk.get("requests", ()) or ()
    if not requests:
        assert msm["report_id"], "whatsapp without report_id"
        scores["accuracy"] = 0.0
        return scores

    web_accessible = registration_accessible = None
    for b in requests:
        url = b.get("request", {}).get("url", "")
        if url == "https://web.whatsapp.com/":
            web_accessible = b.get("failure", True) in (None, "", False)
        elif url == "https://v.whatsapp.net/v2/register":
            registration_accessible = b.get("failure") is None

    if web_accessible is None or registration_accessible is None:
        scores["accuracy"] = 0.0
        return scores
    if web_accessible is not True or registration_accessible is not True:
        scores["blocking_general"] = 1.0
        return scores

    accessible, unreachable = count_tcp_connect(tk)
    if not accessible and not unreachable:
        scores["accuracy"] = 0.0
    elif accessible > 0:
        pass
    else:
        scores["blocking_general"] = 1.0
    scores["analysis"] = {
        "registration_server_accessible": registration_accessible,
        "whatsapp_web_accessible": web_accessible,
        "whatsapp_endpoints_accessible": accessible > 0,
    }
    return scores


FB_ALL_TRUE = (
    "facebook_b_api_dns_consistent", "facebook_b_api_reachable",
    "facebook_b_graph_dns_consistent", "facebook_b_graph_reachable",
    "facebook_dns_blocking", "facebook_edge_dns_consistent", "facebook_edge_reachable",
    "facebook_star_dns_consistent", "facebook_star_reachable",
    "facebook_stun_dns_consistent",
)
FB_CONSISTENCY = (
    "facebook_b_api_dns_consistent", "facebook_b_api_reachable",
    "facebook_b_graph_dns_consistent", "facebook_b_graph_reachable",
    "facebook_edge_dns_consistent", "facebook_edge_reachable",
    "facebook_external_cdn_dns_consistent", "facebook_external_cdn_reachable",
    "facebook_scontent_cdn_dns_consistent", "facebook_scontent_cdn_reachable",
    "facebook_star_dns_consistent", "facebook_star_reachable",
    "facebook_stun_dns_consistent",
)
FB_ANOMALY = ("facebook_tcp_blocking", "facebook_dns_blocking")


def score_facebook_messenger(msm: dict) -> dict:
    tk = test_keys(msm)
    scores = init_scores()
    score = 0.0
    # the legacy rule treats facebook_dns_blocking: true as fine when
    # everything else is consistent
    if not (all(tk.get(k) is True for k in FB_ALL_TRUE)
            and tk.get("facebook_tcp_blocking") is False):
        for key in FB_CONSISTENCY:
            if tk.get(key) is False:
                score += 0.5
                scores[key] = False
        for key in FB_ANOMALY:
            if tk.get(key) is True:
                score += 0.5
                scores[key] = True
    scores["blocking_general"] = score
    return scores


SIGNAL_CUTOFF_022 = dt.datetime(2022, 10, 19)
SIGNAL_CUTOFF_023 = dt.datetime(2023, 11, 7)
SIGNAL_CUTOFF_ENGINE = dt.datetime(2023, 5, 2)
V_022, V_023, V_024 = Version("0.2.2"), Version("0.2.3"), Version("0.2.4")
V_ENGINE = Version("3.17.2")


def _signal_probe_bug(msm: dict) -> bool:
    """§4.17 step 2: releases known to report false positives."""
    start = msm.get("measurement_start_time")
    if start is None:
        return True
    try:
        start = dt.datetime.strptime(start, "%Y-%m-%d %H:%M:%S")
        tv = Version(get_or(msm, "test_version", "0.0.0"))
        annotations = msm.get("annotations")
        if not isinstance(annotations, dict):
            annotations = {}
        ev = Version(get_or(annotations, "engine_version", "0.0.0"))
    except Exception:
        return True
    if tv == V_024:
        return True
    if tv <= V_023 and start >= SIGNAL_CUTOFF_023:
        return True
    if tv < V_022 and start >= SIGNAL_CUTOFF_022:
        return True
    return ev < V_ENGINE and start >= SIGNAL_CUTOFF_ENGINE


def score_signal(msm: dict) -> dict:
    scores = init_scores()
    tk = test_keys(msm)
    if tk.get("failed_operation", True) or tk.get("failure", True):
        scores["accuracy"] = 0.0
    if _signal_probe_bug(msm):
        scores["accuracy"] = 0.0
        return scores

    status = tk.get("signal_backend_status")
    if status == "ok":
        pass
    elif status == "blocked":
        scores["blocking_general"] = 1.0
        scores["analysis"] = {"signal_backend_failure": tk.get("signal_backend_failure")}
    else:
        scores["accuracy"] = 0.0
    return scores
