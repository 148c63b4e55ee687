"""Dynamic input lists of OONI Run v2 (``targets_name``): the probe's run
metadata (engine-descriptor body, ``x-ooni-networkinfo`` header,
user agent), validated, and the lists resolved from it.

``websites_list_prioritized`` is the check-in's own list: the same
prioritization, cache and URL limit (``url_limit(run_type, is_charging)``)
that ``/api/v1/check-in`` uses for that network, through
``ooniapi.prioritization.checkin``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ooniapi.core.errors import BadRequest
from ooniapi.core.validation import category_codes, check_asn, check_cc
from ooniapi.prioritization import checkin

WEBSITES_LIST_PRIORITIZED = "websites_list_prioritized"

# What OONI Probe reports as network_type (probe-cli, Android, iOS, desktop).
NETWORK_TYPES = frozenset({"wifi", "mobile", "wired_ethernet", "vpn", "no_internet",
                           "unknown"})
RUN_TYPES = ("timed", "manual")

# "AS1234,IT (wifi)", as upstream parses it
_NETWORKINFO_RE = re.compile(r"^(AS[0-9]{1,10}),([A-Za-z]{2}) \(([a-z_]{1,32})\)$")
# "ooniprobe-android/3.8.0 (Android 13) ooniprobe-engine/3.20.1 (...)"
_UA_RE = re.compile(r"^([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_.+-]{1,64})"
                    r"(?: \(([^()]{0,128})\))?(?: ([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_.+-]{1,64}))?")


@dataclass(frozen=True)
class ProbeMeta:
    """The run metadata a probe sends with its engine-descriptor request."""
    run_type: str
    is_charging: bool
    probe_cc: str       # ZZ when unknown
    probe_asn: int      # 0 when unknown
    network_type: str
    website_category_codes: tuple[str, ...]


@dataclass(frozen=True)
class UserAgent:
    software_name: str
    software_version: str
    platform: str
    engine_name: str
    engine_version: str


def parse_user_agent(value: str | None) -> UserAgent | None:
    """``<software>/<version> (<platform>) <engine>/<version>``; None when
    it does not look like that (old probes and browsers are served too)."""
    m = _UA_RE.match(value or "")
    if not m:
        return None
    return UserAgent(m.group(1), m.group(2), m.group(3) or "", m.group(4) or "",
                     m.group(5) or "")


def parse_networkinfo(value: str) -> tuple[int, str, str]:
    """``x-ooni-networkinfo: AS1234,IT (wifi)`` -> (1234, "IT", "wifi")."""
    m = _NETWORKINFO_RE.match(value.strip())
    if not m:
        raise BadRequest("Invalid x-ooni-networkinfo header: expected "
                         "<probe_asn>,<probe_cc> (<network_type>), e.g. AS1234,IT (wifi)")
    asn = check_asn(m.group(1), "x-ooni-networkinfo")
    cc = check_cc(m.group(2), "x-ooni-networkinfo")
    nt = m.group(3)
    if nt not in NETWORK_TYPES:
        raise BadRequest(f"Invalid x-ooni-networkinfo header: unknown network type {nt!r}")
    return asn, cc, nt


def parse_meta(body: Mapping[str, Any], networkinfo: str | None) -> ProbeMeta:
    """The body's fields win over the header's; each field is optional
    (old probes send no body) but checked when present. Other keys are
    ignored: newer probes may send more."""
    h_asn, h_cc, h_nt = (None, None, None)
    if networkinfo is not None and networkinfo.strip():
        h_asn, h_cc, h_nt = parse_networkinfo(networkinfo)

    run_type = body.get("run_type")
    if run_type is None:
        run_type = "timed"
    elif not isinstance(run_type, str) or run_type not in RUN_TYPES:
        raise BadRequest("Invalid run_type: expected timed or manual")
    charging = body.get("is_charging")
    if charging is None:
        charging = True
    elif not isinstance(charging, bool):
        raise BadRequest("Invalid is_charging: expected true or false")
    cc = body.get("probe_cc")
    cc = check_cc(cc, "probe_cc") if cc is not None else (h_cc or "ZZ")
    asn = body.get("probe_asn")
    asn = check_asn(asn, "probe_asn") if asn is not None else (h_asn or 0)
    nt = body.get("network_type")
    if nt is None:
        nt = h_nt or "unknown"
    elif not isinstance(nt, str) or nt not in NETWORK_TYPES:
        raise BadRequest("Invalid network_type: expected one of "
                         + ", ".join(sorted(NETWORK_TYPES)))
    codes = category_codes(body.get("website_category_codes"))
    return ProbeMeta(run_type, charging, cc, asn, nt, tuple(codes))


def _websites_list_prioritized(svc, meta: ProbeMeta) -> tuple[list[str], list[dict]]:
    limit = checkin.url_limit(meta.run_type, meta.is_charging)
    urls = checkin.test_list(svc, meta.probe_cc, meta.probe_asn,
                             meta.website_category_codes, limit)
    return ([u["url"] for u in urls],
            [{"category_code": u["category_code"], "country_code": u["country_code"]}
             for u in urls])


RESOLVERS: dict[str, Callable[[Any, ProbeMeta], tuple[list[str], list[dict]]]] = {
    WEBSITES_LIST_PRIORITIZED: _websites_list_prioritized,
}
TARGETS_NAMES = frozenset(RESOLVERS)


def resolve(svc, targets_name: str, meta: ProbeMeta) -> tuple[list[str], list[dict]]:
    """(inputs, inputs_extra) of a dynamic list for this probe."""
    return RESOLVERS[targets_name](svc, meta)
