"""Validation of what probes send (probe-protocol.md §3): each helper
returns the normalised value or raises BadRequest with a message the probe
can log. ``None`` means the field was absent or JSON null."""
from __future__ import annotations

import re
from typing import Any

from flask import request

from ooniapi.core.body import read_body
from ooniapi.core.errors import BadRequest

# ISO 3166-1 alpha-2, plus XK (Kosovo, used by GeoIP providers), EU and AP
# (continent-level answers of some GeoIP databases) and ZZ (unknown).
COUNTRY_CODES = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL
BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV
CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD
GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM
IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK
LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW
MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR
PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS
ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY
UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
XK EU AP ZZ
""".split())

# Probe JSON requests other than measurements are small: the largest real
# one is a check-in with a few category codes.
MAX_PROBE_BODY = 64 * 1024
MAX_LIST_ITEMS = 100
MAX_STR = 128
MAX_ASN = 2**32 - 1

_ASN_RE = re.compile(r"^AS([0-9]{1,10})$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._+~@:/()\- ]*$")
_CATEGORY_RE = re.compile(r"^[A-Za-z]{1,16}$")


def json_body(*, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object, whatever the Content-Type
    (probes do not always send one, api.md §7)."""
    data = read_body(MAX_PROBE_BODY, cache=True)
    if not data.strip() and not required:
        return {}
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise BadRequest("JSON expected")
    return body


def opt_str(body: dict, key: str, max_len: int = MAX_STR) -> str | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise BadRequest(f"Invalid {key}: expected a string")
    if len(v) > max_len or not _TOKEN_RE.fullmatch(v):
        raise BadRequest(f"Invalid {key}")
    return v


def opt_bool(body: dict, key: str) -> bool | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise BadRequest(f"Invalid {key}: expected true or false")
    return v


def check_cc(value: Any, key: str = "probe_cc") -> str:
    if not isinstance(value, str):
        raise BadRequest(f"Invalid {key}: expected a string")
    cc = value.upper()
    if len(cc) != 2 or cc not in COUNTRY_CODES:
        raise BadRequest(f"Invalid {key}: unknown country code {value[:8]!r}")
    return cc


def opt_cc(body: dict, key: str = "probe_cc") -> str | None:
    v = body.get(key)
    return None if v is None else check_cc(v, key)


def check_asn(value: Any, key: str = "probe_asn") -> int:
    """``AS1234`` -> 1234 (the prefix is required, upper case)."""
    if not isinstance(value, str):
        raise BadRequest(f"Invalid {key}: expected a string such as \"AS1234\"")
    m = _ASN_RE.fullmatch(value)
    if not m or int(m.group(1)) > MAX_ASN:
        raise BadRequest(f"Invalid {key}: expected \"AS\" followed by the AS number")
    return int(m.group(1))


def opt_asn(body: dict, key: str = "probe_asn") -> int | None:
    v = body.get(key)
    return None if v is None else check_asn(v, key)


def opt_choice(body: dict, key: str, choices: tuple[str, ...]) -> str | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or v not in choices:
        raise BadRequest(f"Invalid {key}: expected one of {', '.join(choices)}")
    return v


def category_codes(value: Any) -> list[str]:
    """A list of codes or a comma-separated string (api.md §7.1 step 5);
    upper-cased, de-duplicated, order kept."""
    if value is None:
        return []
    if isinstance(value, str):
        items = [x.strip() for x in value.split(",") if x.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise BadRequest("Invalid category_codes: expected a list of strings")
    if len(items) > MAX_LIST_ITEMS:
        raise BadRequest(f"Invalid category_codes: more than {MAX_LIST_ITEMS} items")
    out: list[str] = []
    for x in items:
        if not isinstance(x, str) or not _CATEGORY_RE.fullmatch(x):
            raise BadRequest("Invalid category_codes: each code must be alphabetic")
        x = x.upper()
        if x not in out:
            out.append(x)
    return out


def opt_str_list(body: dict, key: str) -> list[str] | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or len(v) > MAX_LIST_ITEMS:
        raise BadRequest(f"Invalid {key}: expected a list of at most {MAX_LIST_ITEMS} strings")
    for x in v:
        if not isinstance(x, str) or len(x) > MAX_STR or not _TOKEN_RE.fullmatch(x):
            raise BadRequest(f"Invalid {key}: expected a list of strings")
    return v
