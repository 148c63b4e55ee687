"""Finding slugs: the readable key Explorer shows a finding by
(``/findings/2024-instagram-blocked-in-iran``).

A slug is made once, at create, from the creation year and the title, and
never changes with later edits (links to it stay valid). Rows written
before slugs existed answer ``<year>-<id>``, which needs no backfill and is
unique because ids are.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata

MAX_SLUG = 64
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def from_title(create_time: dt.datetime, title: str) -> str:
    """``<year>-<title words>``, ASCII only, at most MAX_SLUG characters."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    words = _NOT_ALNUM.sub("-", ascii_title.lower()).strip("-")
    slug = f"{create_time.year:04d}-{words}" if words else f"{create_time.year:04d}-finding"
    return slug[:MAX_SLUG].rstrip("-")


def numbered(slug: str, n: int) -> str:
    """The n-th alternative of a taken slug (``...-2``, ``...-3``)."""
    suffix = f"-{n}"
    return slug[:MAX_SLUG - len(suffix)].rstrip("-") + suffix


def legacy(create_time: dt.datetime, incident_id: str) -> str:
    return f"{create_time.year:04d}-{incident_id}"


def problem(slug: str) -> str | None:
    """Why a client's slug is not acceptable, else None. All-digit strings
    are refused so that show/<x> can tell an id from a slug."""
    if len(slug) > MAX_SLUG:
        return f"longer than {MAX_SLUG} characters"
    if not SLUG_RE.match(slug):
        return "only lowercase letters, digits and single dashes between them"
    if slug.isdigit():
        return "must not be only digits"
    return None


def looks_like_id(key: str) -> bool:
    return key.isascii() and key.isdigit()
