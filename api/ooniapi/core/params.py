"""Common query-parameter parsers (api.md §1.7).

Pure functions: each takes the raw string (``None`` when the parameter is
absent) and returns a typed value or raises ``BadRequest`` with the spec's
message. An empty string is treated as absent everywhere ([NEW] §1.7), so
callers pass ``request.args.get(name)`` straight through.

Values that reach the database are also range-checked here (ASNs fit UInt32,
ids fit UInt64, dates fit DateTime): a value the database cannot parse would
otherwise turn a bad request into a 500.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import re
import string

from dateutil import parser as dateutil_parser

from ooniapi.core.errors import BadRequest
from ooniapi.core.ids import REPORT_ID_RE

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1

# ClickHouse DateTime covers 1970-01-01 .. 2106-02-07; a date outside is
# clamped, which keeps the meaning of an open-ended window ("since 1900").
DB_MIN_DATETIME = dt.datetime(1970, 1, 1)
DB_MAX_DATETIME = dt.datetime(2106, 2, 7)

_LETTERS2 = re.compile(r"^[A-Za-z]{2}$")
_CC_LIST_CHARS = re.compile(r"^[A-Z,]*$")
_TEST_NAME_LIST_CHARS = re.compile(r"^[a-z_,]*$")
_LOWER_UNDERSCORE = re.compile(r"^[a-z_]+$")
_UPPERCASE = re.compile(r"^[A-Z]+$")
_ASN = re.compile(r"^(?:AS)?([0-9]{1,10})$", re.IGNORECASE)
_DNS_LABEL = re.compile(r"^[A-Za-z0-9_-]+$")
_TLD = re.compile(r"[A-Za-z]$")

INPUT_ALLOWED = frozenset(string.ascii_letters + string.digits + " :/.[]-_%+(){}=?#&!,$")


def _present(value: str | None) -> bool:
    return value is not None and value != ""


# --- dates -------------------------------------------------------------------

def parse_date(name: str, value: str | None, round_up: bool = False) -> dt.datetime | None:
    """``since``/``until``: dateutil semantics, returned as naive UTC,
    clamped to the range the database can store, in whole seconds.

    A DateTime query parameter refuses a fraction of a second, and the
    columns hold whole seconds, so rounding keeps the comparison exact: down
    for ``> since`` and ``<= until``, up (``round_up``) for ``>= since`` and
    ``< until``."""
    if not _present(value):
        return None
    try:
        d = dateutil_parser.parse(value.strip())
    except (ValueError, OverflowError, TypeError):
        raise BadRequest(f"Invalid date in parameter {name}: {value!r}") from None
    if d.tzinfo is not None:
        try:
            d = d.astimezone(dt.timezone.utc).replace(tzinfo=None)
        except (ValueError, OverflowError):
            raise BadRequest(f"Invalid date in parameter {name}: {value!r}") from None
    d = min(max(d, DB_MIN_DATETIME), DB_MAX_DATETIME)
    if d.microsecond:
        d = d.replace(microsecond=0)
        if round_up and d < DB_MAX_DATETIME:
            d += dt.timedelta(seconds=1)
    return d


# --- booleans ----------------------------------------------------------------

def parse_bool_flag(value: str | None) -> bool | None:
    """``anomaly``/``confirmed``/``failure``: absent → no filter, ``true`` →
    True, anything else → False (so ``anomaly=yes`` means False)."""
    if not _present(value):
        return None
    return value.strip().lower() == "true"


def parse_truthy(value: str | None) -> bool:
    """``full``/``debug``: true, 1, yes (any case)."""
    return _present(value) and value.strip().lower() in ("true", "1", "yes")


def parse_download(value: str | None) -> bool:
    return _present(value) and value.strip().lower() == "true"


# --- location ----------------------------------------------------------------

def parse_probe_cc(value: str | None) -> str | None:
    """A single country code: two ASCII letters, upper-cased."""
    if not _present(value):
        return None
    v = value.strip()
    if not _LETTERS2.match(v):
        raise BadRequest("Invalid CC value in parameter probe_cc")
    return v.upper()


def parse_probe_cc_list(value: str | None) -> list[str]:
    if not _present(value):
        return []
    if not _CC_LIST_CHARS.match(value):
        raise BadRequest("Invalid characters")
    items = [x for x in value.split(",") if x]
    if any(len(x) != 2 for x in items):
        raise BadRequest("Invalid CC value in parameter probe_cc")
    return sorted(set(items))


def uint_value(text: str, maximum: int) -> int | None:
    """``text`` as an integer in 0..``maximum``; None unless it is ASCII
    digits only (``str.isdigit`` alone also accepts ``²``, which ``int``
    refuses)."""
    if not (text.isascii() and text.isdigit()):
        return None
    n = int(text)
    return n if n <= maximum else None


def asn_value(item: str) -> int | None:
    """``AS1234``, ``as1234`` or ``1234`` (surrounding blanks ignored) as
    1234; None unless it fits UInt32."""
    m = _ASN.match(item.strip())
    return uint_value(m.group(1), UINT32_MAX) if m else None


def parse_probe_asn(value: str | None) -> int | None:
    """``AS1234`` or ``1234`` → 1234."""
    if not _present(value):
        return None
    n = asn_value(value)
    if n is None:
        raise BadRequest("Invalid ASN value in parameter probe_asn")
    return n


def parse_probe_asn_list(value: str | None) -> list[int]:
    if not _present(value):
        return []
    out: set[int] = set()
    for item in value.split(","):
        if not item:
            continue
        n = asn_value(item)
        if n is None:
            raise BadRequest("Invalid ASN value in parameter probe_asn")
        out.add(n)
    return sorted(out)


# --- names -------------------------------------------------------------------

def parse_test_name_list(value: str | None) -> list[str]:
    if not _present(value):
        return []
    if not _TEST_NAME_LIST_CHARS.match(value):
        raise BadRequest("Invalid characters")
    return sorted({x for x in value.split(",") if x})


def _only(chars: re.Pattern[str], value: str | None) -> str | None:
    if not _present(value):
        return None
    if not chars.match(value):
        raise BadRequest("Invalid characters")
    return value


def parse_lowercase_underscore(value: str | None) -> str | None:
    """``axis_x``/``axis_y``: only ``a-z`` and ``_``."""
    return _only(_LOWER_UNDERSCORE, value)


def parse_uppercase(value: str | None) -> str | None:
    """``category_code`` on aggregation: only ``A-Z``."""
    return _only(_UPPERCASE, value)


# --- domains and inputs ------------------------------------------------------

def _split_port(item: str) -> str | None:
    """The host part of ``host[:port]`` (IPv6 literals bracketed when a port
    follows); None when the port is not an integer."""
    if item.startswith("["):
        end = item.find("]")
        if end < 0:
            return None
        host, rest = item[1:end], item[end + 1:]
        if rest and (not rest.startswith(":") or not rest[1:].isdigit()):
            return None
        return host
    if item.count(":") == 1:
        host, port = item.split(":")
        return host if port.isdigit() else None
    return item


def is_domain_or_ip(item: str) -> bool:
    host = _split_port(item)
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        return False
    labels = ascii_host.rstrip(".").split(".")
    if len(labels) < 2 or not all(_DNS_LABEL.match(lb) for lb in labels):
        return False
    return bool(_TLD.search(labels[-1]))


def parse_domain_list(value: str | None) -> list[str]:
    if not _present(value):
        return []
    items = [x.strip() for x in value.split(",") if x.strip()]
    if not all(is_domain_or_ip(x) for x in items):
        raise BadRequest("Invalid characters in domain field")
    return sorted(set(items))


def parse_input(value: str | None) -> str | None:
    """The input rule: every ASCII character from a fixed set; non-ASCII
    characters (IDN URLs, Cyrillic paths) are not checked."""
    if not _present(value):
        return None
    if any(ord(c) < 128 and c not in INPUT_ALLOWED for c in value):
        raise BadRequest("Invalid characters in input field")
    return value


# --- identifiers -------------------------------------------------------------

def parse_report_id(value: str | None, required: bool = False) -> str | None:
    if not _present(value):
        if required:
            raise BadRequest("Invalid report_id")
        return None
    # the lookup rule of api.md §1.7: old report id formats pass too
    if not REPORT_ID_RE.match(value):
        raise BadRequest("Invalid report_id field")
    return value


def is_valid_measurement_uid(value: str | None) -> bool:
    return _present(value) and 10 <= len(value) <= 100


def parse_measurement_uid(value: str | None) -> str:
    if not is_valid_measurement_uid(value):
        raise BadRequest("Invalid measurement_uid field")
    return value


def parse_comma_list(value: str | None) -> list[str]:
    """``software_version`` & co: split, drop empties, de-duplicate, sort."""
    if not _present(value):
        return []
    return sorted({x.strip() for x in value.split(",") if x.strip()})


def parse_uint_list(name: str, value: str | None) -> list[int]:
    """``ooni_run_link_id``: a comma list of non-negative integers."""
    out: set[int] = set()
    for item in parse_comma_list(value):
        n = uint_value(item, UINT64_MAX)
        if n is None:
            raise BadRequest(f"Invalid {name} value: {item!r}")
        out.add(n)
    return sorted(out)


def parse_int(name: str, value: str | None, default: int, minimum: int | None = None,
              maximum: int | None = None, too_big: str | None = None) -> int:
    """An integer parameter within bounds; ``too_big`` replaces the message
    for values over ``maximum`` (e.g. the spec's limit message)."""
    if not _present(value):
        return default
    v = value.strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,20}", v):
        raise BadRequest(f"Invalid {name} value: it must be an integer")
    n = int(v)
    if minimum is not None and n < minimum:
        raise BadRequest(f"Invalid {name} value: it must be at least {minimum}")
    if maximum is not None and n > maximum:
        raise BadRequest(too_big or f"Invalid {name} value: it must be at most {maximum}")
    return n
