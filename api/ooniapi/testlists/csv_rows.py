"""Test-list entries and the CSV files that hold them (api.md §10.1).

A list file is kept as its records' original text: a change replaces,
removes or appends one record and leaves every other byte alone, so the
pull request's diff shows only what the user changed (rewriting the whole
file through a CSV writer would requote unrelated rows)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from ooni_common.testlists import CATEGORY_DESCRIPTIONS, proposable_url

from ooniapi.testlists import errors

ENTRY_KEYS = ("url", "category_code", "date_added", "source", "notes")
CSV_HEADER = ("url", "category_code", "category_description", "date_added", "source", "notes")
MAX_URL = 2048
MAX_TEXT = 1000
MAX_COMMENT = 2000
_CC_RE = re.compile(r"[a-z]{2}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Entry:
    url: str
    category_code: str
    date_added: str
    source: str
    notes: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def as_row(self) -> dict[str, str]:
        """The CSV columns, description filled in from the legend."""
        return {**self.as_dict(),
                "category_description": CATEGORY_DESCRIPTIONS.get(self.category_code, "")}


def country_code(value: Any) -> str:
    """``it``, ``IT`` -> ``it``; ``global`` -> ``global``; else 400."""
    if not isinstance(value, str):
        raise errors.invalid_country_code()
    cc = value.strip().lower()
    if cc != "global" and not _CC_RE.fullmatch(cc):
        raise errors.invalid_country_code()
    return cc


def comment(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise errors.bad_params("comment must be a string")
    if len(value) > MAX_COMMENT or "\x00" in value:
        raise errors.bad_params(f"comment must be text of at most {MAX_COMMENT} characters")
    return value.strip()


def parse_entry(value: Any, name: str, *, proposed: bool) -> Entry | None:
    """An ``old_entry``/``new_entry`` body field: ``{}`` or null means none.
    A proposed (new) entry must pass the updater's checks; an old one only
    has to be well-formed, so that rows the updater drops can be deleted."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise errors.bad_params(f"{name} must be an object")
    if set(value) != set(ENTRY_KEYS):
        raise errors.bad_params(f"{name} must have exactly the keys {', '.join(ENTRY_KEYS)}")
    for k in ENTRY_KEYS:
        v = value[k]
        if not isinstance(v, str):
            raise errors.bad_params(f"{name}.{k} must be a string")
        limit = MAX_URL if k == "url" else MAX_TEXT
        if len(v) > limit:
            raise errors.bad_params(f"{name}.{k} is longer than {limit} characters")
        if k != "url" and _CONTROL_RE.search(v):
            raise errors.bad_params(f"{name}.{k} must be a single line of text")
    e = Entry(**{k: value[k] for k in ENTRY_KEYS})
    if proposed:
        check_proposed(e)
    return e


def check_proposed(e: Entry) -> None:
    if not proposable_url(e.url):
        raise errors.bad_url(e.url)
    if e.category_code not in CATEGORY_DESCRIPTIONS:
        raise errors.bad_category_code(e.category_code)
    try:
        ok = dt.date.fromisoformat(e.date_added).isoformat() == e.date_added
    except ValueError:
        ok = False
    if not ok:
        raise errors.bad_date(e.date_added)


# --- list files ----------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    raw: str  # the record's exact text, line end included when it had one
    fields: tuple[str, ...]


@dataclass(frozen=True)
class ListFile:
    header: Record
    records: tuple[Record, ...]
    newline: str

    @property
    def columns(self) -> tuple[str, ...]:
        return self.header.fields

    def entry(self, rec: Record) -> dict[str, str]:
        values = dict(zip(self.columns, rec.fields))
        return {k: values.get(k) or "" for k in ENTRY_KEYS}

    def entries(self) -> list[dict[str, str]]:
        return [self.entry(r) for r in self.records]

    def urls(self) -> set[str]:
        return {self.entry(r)["url"] for r in self.records}

    def render(self) -> str:
        return self.header.raw + "".join(r.raw for r in self.records)


class MalformedList(Exception):
    pass


def _split_records(text: str) -> Iterable[str]:
    """Records as text: a line ends a record when the quotes seen so far
    are balanced (CSV escapes a quote by doubling it, so parity holds)."""
    buf: list[str] = []
    quotes = 0
    for line in text.splitlines(keepends=True):
        buf.append(line)
        quotes += line.count('"')
        if quotes % 2 == 0:
            yield "".join(buf)
            buf, quotes = [], 0
    if buf:
        yield "".join(buf)


def _fields(raw: str) -> tuple[str, ...]:
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    return tuple(rows[0]) if rows else ()


def parse_list(text: str) -> ListFile:
    raws = list(_split_records(text))
    if not raws:
        raise MalformedList("empty list file")
    header = Record(raws[0], _fields(raws[0]))
    if "url" not in header.fields:
        raise MalformedList(f"no url column in the header {header.fields}")
    newline = "\r\n" if raws[0].endswith("\r\n") else "\n"
    records = tuple(Record(r, _fields(r)) for r in raws[1:] if r.strip())
    return ListFile(header, records, newline)


def format_record(lf: ListFile, e: Entry) -> Record:
    row = e.as_row()
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator=lf.newline).writerow(
        [row.get(c, "") for c in lf.columns])
    raw = out.getvalue()
    return Record(raw, _fields(raw))


def apply_change(lf: ListFile, old: Entry | None, new: Entry | None,
                 known_urls: set[str]) -> ListFile:
    """The list with ``old`` replaced by ``new`` (edit), removed (delete)
    or ``new`` appended (add). ``known_urls``: URLs of this list and of the
    global list, which a new URL must not repeat."""
    if new is not None and (old is None or new.url != old.url) and new.url in known_urls:
        raise errors.duplicate_url(new.url)
    records = list(lf.records)
    if old is None:
        assert new is not None
        if records and not records[-1].raw.endswith(("\n", "\r")):
            last = records[-1]
            records[-1] = Record(last.raw + lf.newline, last.fields)
        records.append(format_record(lf, new))
    else:
        wanted = old.as_dict()
        idx = next((i for i, r in enumerate(records) if lf.entry(r) == wanted), None)
        if idx is None:
            raise errors.cannot_update_list()
        if new is None:
            del records[idx]
        else:
            rec = format_record(lf, new)
            if not records[idx].raw.endswith(("\n", "\r")):
                rec = Record(rec.raw.rstrip("\r\n"), rec.fields)
            records[idx] = rec
    return ListFile(lf.header, tuple(records), lf.newline)


def describe(cc: str, old: Entry | None, new: Entry | None) -> str:
    """One line naming the change, for commit messages and PR bodies."""
    path = f"lists/{cc}.csv"
    if old is None and new is not None:
        return f"Add {new.url} ({new.category_code}) to {path}"
    if new is None and old is not None:
        return f"Delete {old.url} from {path}"
    assert old is not None and new is not None
    if old.url != new.url:
        return f"Change {old.url} to {new.url} in {path}"
    return f"Edit {new.url} in {path}"


# --- the change log shown to the user ----------------------------------------------

def changes_view(ops: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """``{cc: [entry + category_description + action]}`` from the journal of
    applied changes, folded as legacy did: an edit shows as the added new
    entry; deleting an entry added in this session just drops its "add"."""
    view: dict[str, list[dict[str, str]]] = {}
    for op in ops:
        items = view.setdefault(op["cc"], [])
        old = Entry(**op["old"]) if op.get("old") else None
        new = Entry(**op["new"]) if op.get("new") else None
        dropped_add = False
        if old is not None:
            added = dict(old.as_row(), action="add")
            if added in items:
                items.remove(added)
                dropped_add = True
        if new is not None:
            deleted = dict(new.as_row(), action="delete")
            if deleted in items:
                items.remove(deleted)
            else:
                items.append(dict(new.as_row(), action="add"))
        elif old is not None and not dropped_add:
            items.append(dict(old.as_row(), action="delete"))
    return {cc: items for cc, items in view.items() if items}
