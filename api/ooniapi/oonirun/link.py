"""OONI Run v2 links (docs/oonirun.md): validation of the body run.ooni.org
sends to create or edit a link, the descriptor stored for it, expiration,
and the link as every v2 route answers it.

Pure functions, no database and no Flask. Links written by the v1 routes
are read through the same functions, so each route family serves the
other's links.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from ooniapi.core.errors import BadRequest
from ooniapi.oonirun.descriptor import INTL_FIELDS, RUN_FLAGS, probe_nettest

# upstream's field bounds (pydantic models of the FastAPI service)
NAME_LEN = (2, 50)
SHORT_DESCRIPTION_LEN = (2, 200)
DESCRIPTION_LEN = (2, 20_000)
AUTHOR_LEN = (2, 100)
TEST_NAME_LEN = (2, 100)
ICON_MAX = 200
INTL_MAX_ENTRIES = 100
MAX_NETTESTS = 100
MAX_INPUTS = 10_000
MAX_INPUT_LEN = 2048

DEFAULT_LIFETIME = dt.timedelta(days=30 * 6)
# An edit that sets expiration_date to a time this recent in the past means
# "expire it now" (what run.ooni.org sends, and clocks differ); anything
# older is a mistake.
EXPIRE_NOW_GRACE = dt.timedelta(hours=1)

_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
# BCP 47-like and the underscore form of the translation files: en, pt_BR,
# zh-Hant, sr-Latn-RS
_LANG_RE = re.compile(r"^[a-z]{2,3}(?:[_-][A-Za-z0-9]{2,8}){0,2}$")
_DATE_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$")


@dataclass(frozen=True)
class LinkEdit:
    """A validated create/edit body."""
    name: str
    short_description: str
    description: str
    author: str
    name_intl: dict[str, str] | None
    short_description_intl: dict[str, str] | None
    description_intl: dict[str, str] | None
    icon: str | None
    color: str | None
    expiration_date: dt.datetime | None  # naive UTC; None: not sent
    nettests: list[dict[str, Any]]


def _text(doc: dict[str, Any], key: str, bounds: tuple[int, int]) -> str:
    v = doc.get(key)
    if not isinstance(v, str):
        raise BadRequest(f"'{key}' field must be a string")
    lo, hi = bounds
    if not lo <= len(v.strip()) or len(v) > hi:
        raise BadRequest(f"'{key}' field must be {lo} to {hi} characters long")
    return v


def _opt_text(doc: dict[str, Any], key: str, max_len: int) -> str | None:
    v = doc.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > max_len:
        raise BadRequest(f"'{key}' field must be a string of at most {max_len} characters")
    return v


def check_intl(key: str, value: Any, max_len: int) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"'{key}' field must be an object mapping language codes to text")
    if len(value) > INTL_MAX_ENTRIES:
        raise BadRequest(f"'{key}' field has more than {INTL_MAX_ENTRIES} languages")
    for lang, text in value.items():
        if not _LANG_RE.fullmatch(lang):
            raise BadRequest(f"'{key}' field: invalid language code {lang[:20]!r}")
        if not isinstance(text, str) or len(text.strip()) < 2 or len(text) > max_len:
            raise BadRequest(f"'{key}.{lang}' must be a string of 2 to {max_len} characters")
    return value


def check_color(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _COLOR_RE.fullmatch(value):
        raise BadRequest("'color' field must be a hex color such as #3498db")
    return value


def parse_date(key: str, value: Any) -> dt.datetime | None:
    """An ISO 8601 time (naive is UTC) as naive UTC, to the second."""
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value.strip()):
        raise BadRequest(f"'{key}' field must be an ISO 8601 time such as 2030-01-01T00:00:00Z")
    text = value.strip().replace(" ", "T")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # fromisoformat takes 6 digits at most
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"'{key}' field is not a valid time") from None
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return t.replace(microsecond=0)


def _nettest(i: int, nt: Any, targets_names: frozenset[str]) -> dict[str, Any]:
    where = f"nettests[{i}]"
    if not isinstance(nt, dict):
        raise BadRequest(f"'{where}' must be an object")
    test_name = nt.get("test_name")
    lo, hi = TEST_NAME_LEN
    if not isinstance(test_name, str) or not lo <= len(test_name.strip()) <= hi:
        raise BadRequest(f"'{where}.test_name' must be a string of {lo} to {hi} characters")
    out: dict[str, Any] = {"test_name": test_name}
    inputs = nt.get("inputs")
    if inputs is not None:
        if not isinstance(inputs, list) or len(inputs) > MAX_INPUTS or not all(
                isinstance(x, str) and len(x) <= MAX_INPUT_LEN for x in inputs):
            raise BadRequest(f"'{where}.inputs' must be a list of at most {MAX_INPUTS} strings")
    extra = nt.get("inputs_extra")
    if extra == []:
        extra = None  # as this API answers "no extras" (a link sent back as read)
    if extra is not None:
        if not isinstance(extra, list) or not all(isinstance(x, dict) for x in extra):
            raise BadRequest(f"'{where}.inputs_extra' must be a list of objects")
        if len(extra) != len(inputs or []):
            raise BadRequest(f"'{where}.inputs_extra' must have one item per input")
    targets = nt.get("targets_name")
    if targets == "":
        targets = None  # as this API answers "no dynamic list"
    if targets is not None:
        if not isinstance(targets, str) or targets not in targets_names:
            raise BadRequest(f"'{where}.targets_name' must be one of "
                             + ", ".join(sorted(targets_names)))
        if inputs or extra:
            raise BadRequest(f"'{where}': targets_name cannot be given with inputs or inputs_extra")
    options = nt.get("options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest(f"'{where}.options' must be an object")
    out["inputs"] = list(inputs or [])
    if extra is not None:
        out["inputs_extra"] = extra
    if targets is not None:
        out["targets_name"] = targets
    out["options"] = options or {}
    for flag in RUN_FLAGS:
        key = f"{flag}_default"
        v = nt.get(key)
        if v is None:
            v = False
        elif not isinstance(v, bool):
            raise BadRequest(f"'{where}.{key}' must be true or false")
        out[key] = v
    return out


def parse_edit(doc: Any, targets_names: frozenset[str]) -> LinkEdit:
    """The create/edit body, or BadRequest naming the first bad field.
    Keys of the answer a client may send back (oonirun_link_id, revision,
    is_mine...) are ignored."""
    if not isinstance(doc, dict):
        raise BadRequest("The request body must be a JSON object (an OONI Run link)")
    nettests = doc.get("nettests")
    if not isinstance(nettests, list):
        raise BadRequest("'nettests' field must be a list")
    if len(nettests) > MAX_NETTESTS:
        raise BadRequest(f"'nettests' field has more than {MAX_NETTESTS} items")
    return LinkEdit(
        name=_text(doc, "name", NAME_LEN),
        short_description=_text(doc, "short_description", SHORT_DESCRIPTION_LEN),
        description=_text(doc, "description", DESCRIPTION_LEN),
        author=_text(doc, "author", AUTHOR_LEN),
        name_intl=check_intl("name_intl", doc.get("name_intl"), NAME_LEN[1]),
        short_description_intl=check_intl("short_description_intl",
                                          doc.get("short_description_intl"),
                                          SHORT_DESCRIPTION_LEN[1]),
        description_intl=check_intl("description_intl", doc.get("description_intl"),
                                    DESCRIPTION_LEN[1]),
        icon=_opt_text(doc, "icon", ICON_MAX),
        color=check_color(doc.get("color")),
        expiration_date=parse_date("expiration_date", doc.get("expiration_date")),
        nettests=[_nettest(i, nt, targets_names) for i, nt in enumerate(nettests)],
    )


def expiration_for_create(asked: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    if asked is None:
        return now.replace(microsecond=0) + DEFAULT_LIFETIME
    if asked <= now:
        raise BadRequest("'expiration_date' field must be in the future")
    return asked


def expiration_for_edit(asked: dt.datetime | None, current: dt.datetime,
                        now: dt.datetime) -> dt.datetime:
    """Not sent: unchanged. In the last EXPIRE_NOW_GRACE: expire now."""
    if asked is None:
        return current
    if asked <= now:
        if now - asked > EXPIRE_NOW_GRACE:
            raise BadRequest("'expiration_date' field must not be in the past "
                             "(send the current time to expire the link now)")
        return now.replace(microsecond=0)
    return asked


def fmt_time(t: dt.datetime) -> str:
    """Always with six fraction digits, as the FastAPI service answers."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_descriptor(edit: LinkEdit, expiration: dt.datetime) -> dict[str, Any]:
    """What is stored in ``oonirun.descriptor`` (and what the v1 fetch
    route answers as ``descriptor``)."""
    return {
        "name": edit.name,
        "name_intl": edit.name_intl,
        "short_description": edit.short_description,
        "short_description_intl": edit.short_description_intl,
        "description": edit.description,
        "description_intl": edit.description_intl,
        "author": edit.author,
        "icon": edit.icon,
        "color": edit.color,
        "expiration_date": fmt_time(expiration),
        "nettests": edit.nettests,
    }


def stored_expiration(descriptor: dict[str, Any], first_created: dt.datetime) -> dt.datetime:
    """The stored expiration, or (links written before v2, or by a v1 UI
    that sent none) six months after the link's first version."""
    v = descriptor.get("expiration_date")
    if isinstance(v, str):
        try:
            t = parse_date("expiration_date", v)
        except BadRequest:
            t = None
        if t is not None:
            return t
    return first_created.replace(microsecond=0) + DEFAULT_LIFETIME


def comparable_nettests(nettests: Any) -> list[dict[str, Any]]:
    """Nettests reduced to what defines a revision, so that a v1 descriptor
    and the same nettests sent through v2 compare equal."""
    if not isinstance(nettests, list):
        return []
    out = []
    for nt in nettests:
        if not isinstance(nt, dict):
            continue
        p = probe_nettest(nt)
        out.append({k: p[k] for k in ("test_name", "inputs", "inputs_extra", "targets_name",
                                      "options", "is_background_run_enabled_default",
                                      "is_manual_run_enabled_default")})
    return out


def _answer_nettest(nt: dict[str, Any]) -> dict[str, Any]:
    # targets_name "" when unset (upstream: null; the Go probe decodes both
    # alike, and the existing probe contract types it as a string)
    return probe_nettest(nt)


@dataclass(frozen=True)
class LinkState:
    """A link at one revision, from the stored versions."""
    link_id: int
    descriptor: dict[str, Any]      # newest write: texts, translations, expiration
    nettests: Any                   # of the revision asked for
    revision: int
    date_created: dt.datetime       # of that revision
    date_updated: dt.datetime       # newest write
    first_created: dt.datetime      # revision 1
    archived: bool
    creator_account_id: str

    def expiration(self) -> dt.datetime:
        return stored_expiration(self.descriptor, self.first_created)

    def is_expired(self, now: dt.datetime) -> bool:
        return self.archived or self.expiration() <= now


def answer(state: LinkState, *, mine: bool, now: dt.datetime,
           nettests: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The link as the v2 routes answer it: the keys the FastAPI service
    answers (every ``*_intl`` key, ``color``, ``icon``, ``expiration_date``
    present, null when unset) plus ``is_archived`` and the probe's own
    nettest flag spellings. Stored keys of v1 descriptors come first and
    never override a server field."""
    d = state.descriptor
    out = {k: v for k, v in d.items() if k != "nettests"}
    for key in ("name", "short_description", "description", "author"):
        out[key] = d.get(key) if isinstance(d.get(key), str) else ""
    for key in INTL_FIELDS:
        out[key] = d.get(key) if isinstance(d.get(key), dict) else None
    for key in ("icon", "color"):
        out[key] = d.get(key) if isinstance(d.get(key), str) and d.get(key) else None
    if nettests is None:
        raw = state.nettests if isinstance(state.nettests, list) else []
        nettests = [_answer_nettest(nt) for nt in raw if isinstance(nt, dict)]
    out.update({
        "oonirun_link_id": str(state.link_id),
        "revision": str(state.revision),
        "date_created": fmt_time(state.date_created),
        "date_updated": fmt_time(state.date_updated),
        "expiration_date": fmt_time(state.expiration()),
        "is_expired": state.is_expired(now),
        "is_archived": state.archived,
        "is_mine": mine,
        "nettests": nettests,
    })
    return out


def answer_nettests(state: LinkState) -> list[dict[str, Any]]:
    raw = state.nettests if isinstance(state.nettests, list) else []
    return [_answer_nettest(nt) for nt in raw if isinstance(nt, dict)]


def check_v1_fields(descriptor: dict[str, Any], targets_names: frozenset[str]) -> None:
    """The fields v2 added, when a v1 UI body carries them: the v1 route
    stores its body as sent, so they must be what the v2 routes and the
    probes can read."""
    check_color(descriptor.get("color"))
    parse_date("expiration_date", descriptor.get("expiration_date"))
    nettests = descriptor.get("nettests")
    for i, nt in enumerate(nettests if isinstance(nettests, list) else []):
        targets = nt.get("targets_name") if isinstance(nt, dict) else None
        if targets in (None, ""):
            continue
        if targets not in targets_names:
            raise BadRequest(f"'nettests[{i}].targets_name' must be one of "
                             + ", ".join(sorted(targets_names)))
        if nt.get("inputs") or nt.get("inputs_extra"):
            raise BadRequest(f"'nettests[{i}]': targets_name cannot be given with inputs "
                             "or inputs_extra")
