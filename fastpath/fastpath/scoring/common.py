"""Helpers shared by the per-test scorers (fastpath.md §3, §4)."""
from __future__ import annotations

import base64
from typing import Any

LOCALITIES = ("general", "global", "country", "isp", "local")

# §4.1 step 3: fingerprint scope -> blocking_<locality> key
SCOPE_TO_BLOCKING_KEY = {
    "inst": "blocking_local",
    "isp": "blocking_isp",
    "nat": "blocking_country",
    "prod": "blocking_general",
}


def init_scores() -> dict:
    """The five blocking keys at 0.0, in the legacy order."""
    return {"blocking_general": 0.0, "blocking_global": 0.0, "blocking_country": 0.0,
            "blocking_isp": 0.0, "blocking_local": 0.0}


def get_or(d: dict, key: str, default: Any) -> Any:
    """``d[key]``, or ``default`` when missing-or-null (other falsy values kept)."""
    v = d.get(key)
    return default if v is None else v


def test_keys(msm: dict) -> dict:
    """``test_keys``, ``{}`` when missing-or-null. Any other non-object value
    is returned as is: the scorers then fail on it as the legacy code did."""
    tk = msm.get("test_keys")
    return {} if tk is None else tk


def detect_unknown_failure(tk: dict) -> bool:
    """§4.1 step 6: a ``*_failure`` key holding ``unknown_failure...``."""
    for k, v in tk.items():
        if isinstance(k, str) and k.endswith("_failure"):
            v = v or ""
            # a non-string truthy value raises here, as in the legacy code ([quirk])
            if v.startswith("unknown_failure"):
                return True
    return False


def count_tcp_connect(tk: dict) -> tuple[int, int]:
    """(accessible, unreachable) over ``tk.tcp_connect[].status.success``."""
    accessible = unreachable = 0
    for entry in get_or(tk, "tcp_connect", ()):
        status = get_or(entry, "status", {})
        success = status.get("success")
        if success is True:
            accessible += 1
        elif success is False:
            unreachable += 1
    return accessible, unreachable


def is_confirmed(probe_cc: str, fp) -> bool:
    """§5.5."""
    if probe_cc != "ZZ" and probe_cc in fp.expected_countries:
        return True
    return fp.scope in ("isp", "nat")


def apply_fingerprint_matches(scores: dict, matches: list, probe_cc: str) -> None:
    """§4.1 steps 2-3: list every match, confirm those for this country."""
    if not matches:
        return
    scores["fingerprints"] = [fp.mini() for fp in matches]
    for fp in matches:
        if is_confirmed(probe_cc, fp):
            scores[SCOPE_TO_BLOCKING_KEY.get(fp.scope, "blocking_general")] = 1.0
            scores["confirmed"] = True


def probe_cc_for_confirmation(msm: dict) -> str:
    return get_or(msm, "probe_cc", "ZZ").upper()


def match_http_response(fps, resp: dict, out: list) -> None:
    """Body then header matches of one response (§5.4). Raises binascii.Error
    on bad base64, which the callers handle as the spec says."""
    body = resp.get("body")
    if isinstance(body, dict):
        if "data" in body and body.get("format", "") == "base64":
            body = base64.b64decode(body["data"])
        else:
            # a probe bug: no body matching, headers are still matched
            body = None
    if body is not None:
        if not isinstance(body, (str, bytes)):
            raise TypeError(f"unexpected body type {type(body).__name__}")
        fps.match_body(body, out)

    headers = get_or(resp, "headers", {})
    if not headers:
        return
    headers = {h.lower(): v for h, v in headers.items()}
    fps.match_headers(headers, out)
