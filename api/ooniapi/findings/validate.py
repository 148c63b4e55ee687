"""Validation of what Explorer sends for findings: create/update bodies and
search parameters. Every failure is an InvalidParams naming the field.

Bodies follow OONI's findings service (upstream ``oonifindings``): every
field but ``title``, ``text``, ``start_time`` and ``email_address`` has a
default, and the read-only keys of a show answer (``mine``, ``update_time``,
``creator_account_id``...) may be sent back, as Explorer's edit page does.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any, Iterable

from ooniapi.core.errors import OoniError
from ooniapi.core.params import UINT32_MAX, asn_value
from ooniapi.findings import slug as slugs
from ooniapi.findings.model import FindingContent, SearchFilters

log = logging.getLogger("ooni-api")

# Explorer's finding themes (its Form and index pages); FINDINGS_THEMES
# replaces the list.
DEFAULT_THEMES = ("human_rights", "social_media", "im", "circumvention", "news_media")

# Bounds that keep one finding a reasonable row for Explorer to render.
MAX_TITLE = 300
MAX_SHORT_DESCRIPTION = 2000
MAX_TEXT = 200_000
MAX_SHORT_FIELD = 200
MAX_EMAIL = 254
MAX_LIST_ITEMS = 1000
MAX_LIST_ITEM = 2000
MAX_ID = 64
MAX_DOMAIN = 255
MAX_FILTER_VALUES = 100

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The range of a ClickHouse DateTime.
_MIN_TIME = dt.datetime(1970, 1, 2)
_MAX_TIME = dt.datetime(2106, 2, 6)
_TIME_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d{1,6})?(?:Z|\+00:00)$")
_CC_RE = re.compile(r"^[A-Za-z]{2}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Explorer renders links as anchors: only web links, never javascript: & co.
_LINK_RE = re.compile(r"^https?://\S+$", re.IGNORECASE)
_TEST_NAME_RE = re.compile(r"^[a-z0-9_]{1,64}$")
_NO_SPACE_RE = re.compile(r"^\S+$")

# Keys of a body: written, required, and read-only (accepted, not stored).
WRITABLE = ("title", "short_description", "text", "reported_by", "email_address",
            "event_type", "published", "start_time", "end_time", "CCs", "ASNs",
            "themes", "domains", "tags", "links", "test_names", "slug")
REQUIRED = ("title", "text", "start_time", "email_address")
READ_ONLY = ("id", "create_time", "update_time", "creator_account_id", "mine")


class InvalidParams(OoniError):
    def __init__(self, name: str, why: str):
        # The legacy text stays as the prefix; the field follows.
        super().__init__("err_request_params",
                         f"Invalid parameters in the request: {name}: {why}")


@dataclass(kw_only=True)
class FindingInput(FindingContent):
    """A validated create/update body."""
    slug: str | None = None
    # The update_time the client read (the version its edit is based on).
    update_time: dt.datetime | None = None


def text(name: str, v: Any, max_len: int, required: bool = False) -> str:
    if not isinstance(v, str):
        raise InvalidParams(name, "must be a string")
    if required and not v.strip():
        raise InvalidParams(name, "must not be empty")
    if len(v) > max_len:
        raise InvalidParams(name, f"longer than {max_len} characters")
    try:
        v.encode("utf-8")
    except UnicodeError:
        raise InvalidParams(name, "is not valid UTF-8") from None
    return v


def time(name: str, v: Any) -> dt.datetime:
    m = _TIME_RE.match(v) if isinstance(v, str) else None
    if m is None:
        raise InvalidParams(name, "must be a YYYY-MM-DDTHH:MM:SSZ string")
    try:
        t = dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise InvalidParams(name, "is not a valid date and time") from None
    if not _MIN_TIME <= t <= _MAX_TIME:
        raise InvalidParams(name, "out of range")
    return t


def _list(name: str, v: Any) -> list:
    if not isinstance(v, list):
        raise InvalidParams(name, "must be a list")
    if len(v) > MAX_LIST_ITEMS:
        raise InvalidParams(name, f"has more than {MAX_LIST_ITEMS} items")
    return v


def strings(name: str, v: Any, pattern: re.Pattern | None = None) -> list[str]:
    out = []
    for item in _list(name, v):
        s = text(name, item, MAX_LIST_ITEM, required=True)
        if pattern is not None and not pattern.match(s):
            raise InvalidParams(name, f"invalid item {s!r}")
        out.append(s)
    return out


def ccs(v: Any) -> list[str]:
    out = []
    for item in _list("CCs", v):
        if not isinstance(item, str) or not _CC_RE.match(item):
            raise InvalidParams("CCs", f"invalid country code {item!r}")
        out.append(item.upper())
    return out


def asns(v: Any) -> list[int]:
    out = []
    for item in _list("ASNs", v):
        if isinstance(item, int) and not isinstance(item, bool):
            asn = item if 0 <= item <= UINT32_MAX else None
        else:
            asn = asn_value(item) if isinstance(item, str) else None
        if asn is None:
            raise InvalidParams("ASNs", f"invalid ASN {item!r}")
        out.append(asn)
    return out


def themes(v: Any, known: Iterable[str]) -> list[str]:
    known = tuple(known)
    out: list[str] = []
    for item in _list("themes", v):
        if not isinstance(item, str) or item not in known:
            raise InvalidParams("themes", f"unknown theme {item!r} "
                                f"(known: {', '.join(known)})")
        if item not in out:
            out.append(item)
    return out


def published(v: Any) -> bool:
    """Coerced to 0/1 as legacy does with int(); default false."""
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip() in ("0", "1"):
        return v.strip() == "1"
    raise InvalidParams("published", f"invalid value {v!r}")


def email(v: Any) -> str:
    s = text("email_address", v, MAX_EMAIL, required=True).strip()
    if not _EMAIL_RE.match(s):
        raise InvalidParams("email_address", "not an e-mail address")
    return s


def incident_id(v: Any) -> str:
    if v is None:
        raise InvalidParams("id", "missing")
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise InvalidParams("id", "must be a string")
    s = str(v).strip()
    if not s or len(s) > MAX_ID:
        raise InvalidParams("id", "invalid id")
    return s


def client_slug(v: Any) -> str | None:
    """A slug sent by the client; None, "" and absent mean "not given"."""
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise InvalidParams("slug", "must be a string")
    why = slugs.problem(v)
    if why is not None:
        raise InvalidParams("slug", why)
    return v


def finding(body: dict[str, Any], known_themes: Iterable[str]) -> FindingInput:
    """A create/update body as a FindingInput; InvalidParams on any bad or
    unknown field."""
    unknown = sorted(set(body) - set(WRITABLE) - set(READ_ONLY))
    if unknown:
        raise InvalidParams(unknown[0], "unknown field")
    for k in REQUIRED:
        if body.get(k) is None:
            raise InvalidParams(k, "missing")
    start_time = time("start_time", body["start_time"])
    end_time = None if body.get("end_time") is None else time("end_time", body["end_time"])
    if end_time is not None and end_time < start_time:
        raise InvalidParams("end_time", "before start_time")
    return FindingInput(
        title=text("title", body["title"], MAX_TITLE, required=True),
        short_description=text("short_description", body.get("short_description", ""),
                               MAX_SHORT_DESCRIPTION),
        text=text("text", body["text"], MAX_TEXT, required=True),
        reported_by=text("reported_by", body.get("reported_by", ""), MAX_SHORT_FIELD),
        email_address=email(body["email_address"]),
        event_type=text("event_type", body.get("event_type", ""), MAX_SHORT_FIELD),
        published=published(body.get("published")),
        start_time=start_time,
        end_time=end_time,
        CCs=ccs(body.get("CCs", [])),
        ASNs=asns(body.get("ASNs", [])),
        themes=themes(body.get("themes", []), known_themes),
        domains=strings("domains", body.get("domains", []), _NO_SPACE_RE),
        tags=strings("tags", body.get("tags", [])),
        links=strings("links", body.get("links", []), _LINK_RE),
        test_names=strings("test_names", body.get("test_names", []), _TEST_NAME_RE),
        slug=client_slug(body.get("slug")),
        update_time=None if body.get("update_time") is None
        else time("update_time", body["update_time"]),
    )


# --- search parameters ------------------------------------------------------------

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


def _values(name: str, values: list[str]) -> list[str]:
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidParams(name, f"more than {MAX_FILTER_VALUES} values")
    out = [v.strip() for v in values]
    if any(not v for v in out):
        raise InvalidParams(name, "empty value")
    return out


def search_filters(args: Any, known_themes: Iterable[str]) -> SearchFilters:
    """``only_mine`` and the repeatable ``theme``, ``country_code``, ``asn``
    and ``domain`` of a search (``args`` a werkzeug MultiDict)."""
    raw_mine = args.get("only_mine", "").strip().lower()
    if raw_mine not in _TRUE + _FALSE:
        raise InvalidParams("only_mine", "must be true or false")
    known = tuple(known_themes)
    th = _values("theme", args.getlist("theme"))
    for t in th:
        if t not in known:
            raise InvalidParams("theme", f"unknown theme {t!r} (known: {', '.join(known)})")
    cc = _values("country_code", args.getlist("country_code"))
    for c in cc:
        if not _CC_RE.match(c):
            raise InvalidParams("country_code", f"invalid country code {c!r}")
    asn_list = []
    for a in _values("asn", args.getlist("asn")):
        n = asn_value(a)
        if n is None:
            raise InvalidParams("asn", f"invalid ASN {a!r}")
        asn_list.append(n)
    dom = _values("domain", args.getlist("domain"))
    for d in dom:
        if len(d) > MAX_DOMAIN or not _NO_SPACE_RE.match(d):
            raise InvalidParams("domain", f"invalid domain {d[:80]!r}")
    return SearchFilters(only_mine=raw_mine in _TRUE, themes=tuple(th),
                         country_codes=tuple(c.upper() for c in cc),
                         asns=tuple(asn_list), domains=tuple(dom))
