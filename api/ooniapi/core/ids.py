"""Identifier formats (api.md §1.8): report_id and measurement_uid."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass

TESTNAME_RE = re.compile(r"^[a-zA-Z0-9]{2,29}$")
REPORT_ID_RE = re.compile(r"^[A-Za-z0-9_]{15,100}$")
UID_RE = re.compile(r"^\d{14}\.\d{6}_[A-Z]{2}_[a-z0-9]{2,29}_[0-9a-f]{16}$")


def compact_testname(test_name: str) -> str:
    """``web_connectivity`` -> ``webconnectivity``."""
    return test_name.lower().replace("_", "")


def random_part() -> str:
    return base64.b64encode(os.urandom(12)).decode().replace("+", "o").replace("/", "o")


def generate_report_id(test_name: str, cc: str, asn: int, collector_id: str,
                       now: dt.datetime) -> str:
    return (f"{now:%Y%m%dT%H%M%SZ}_{compact_testname(test_name)}_{cc}_{asn}"
            f"_n{collector_id}_{random_part()}")


def generate_int_id(collector_id: str) -> int:
    """OONI Run link and incident ids (api.md §1.8): ``random_uint32 * 100 +
    COLLECTOR_ID``, so that ids minted by different API hosts never collide."""
    try:
        suffix = int(collector_id)
    except (TypeError, ValueError):
        suffix = 0
    return int.from_bytes(os.urandom(4), "big") * 100 + suffix


def build_uid(now: dt.datetime, cc: str, testname: str, body: bytes) -> str:
    h = hashlib.sha512(body).hexdigest()[:16]
    return f"{now:%Y%m%d%H%M%S.%f}_{cc}_{testname}_{h}"


@dataclass(frozen=True)
class ReportIdParts:
    timestamp: str
    testname: str
    cc: str
    asn: int
    collector: str
    rand: str


def parse_report_id(report_id: str) -> ReportIdParts | None:
    """The fields of a current-format report_id (exactly 6 ``_`` fields, CC of
    2 chars, alphanumeric testname of 2-29 chars, integer ASN); None if not."""
    parts = report_id.split("_")
    if len(parts) != 6:
        return None
    ts, testname, cc, asn, collector, rand = parts
    if len(cc) != 2 or not TESTNAME_RE.match(testname) or not (asn.isascii() and asn.isdigit()):
        return None
    if not ts or not rand:
        return None
    return ReportIdParts(ts, testname, cc, int(asn), collector, rand)


def normalize_cc(value: object) -> str:
    """Legacy normalisation of a probe's country code (api.md §7.9)."""
    cc = str(value or "").upper().replace("_", "")
    return cc if len(cc) == 2 else "ZZ"


def normalize_asn(value: object) -> int:
    """Legacy normalisation of ``AS1234`` (api.md §7.9): anything odd is 0."""
    s = str(value or "").upper()
    if not s.startswith("AS") or not 3 <= len(s) <= 12:
        return 0
    try:
        return int(s[2:])
    except ValueError:
        return 0
