"""The ``incidents`` table (api.md §12, §18): Explorer's findings.

ReplacingMergeTree(update_time) ORDER BY id: every write inserts the whole
incident again and the row with the newest ``update_time`` wins. Reads use
FINAL and writes are followed by ``OPTIMIZE ... FINAL``, so the answer after
a write already shows it. ``deleted`` is kept from the seed schema: rows
written by the legacy API with ``deleted = 1`` stay hidden.

Writes are read-check-write sequences; the routes run them holding the
table's lock (``ooniapi.core.rowlock``), and every write moves
``update_time`` strictly forward, so it is also the version a client's edit
is checked against (issue 16, defect 3).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ooni_common.db import Database

from ooniapi.core.ids import generate_int_id
from ooniapi.findings import slug as slugs
from ooniapi.findings.model import FindingContent, SearchFilters


@dataclass(kw_only=True)
class Incident(FindingContent):
    """One incident as stored (``slug`` the effective one, legacy rows
    included)."""
    id: str
    create_time: dt.datetime
    update_time: dt.datetime
    creator_account_id: str
    slug: str = ""


_COLUMNS = ["id", "update_time", "start_time", "end_time", "creator_account_id",
            "reported_by", "title", "text", "event_type", "published", "CCs", "ASNs",
            "themes", "domains", "tags", "links", "test_names", "short_description",
            "email_address", "create_time", "slug"]

# Rows written before slugs existed answer "<year>-<id>" (slug.legacy).
_SLUG_EXPR = "if(slug = '', concat(toString(toYear(create_time)), '-', id), slug)"


def _select(with_text: bool = True) -> str:
    cols = [c for c in _COLUMNS if c != "slug" and (with_text or c != "text")]
    return ", ".join(cols) + f", {_SLUG_EXPR} AS eff_slug"


def _incident(r: dict[str, Any]) -> Incident:
    return Incident(
        id=r["id"], title=r["title"], short_description=r["short_description"],
        text=r.get("text", ""), reported_by=r["reported_by"],
        email_address=r["email_address"], event_type=r["event_type"],
        published=bool(r["published"]), start_time=r["start_time"], end_time=r["end_time"],
        create_time=r["create_time"], update_time=r["update_time"],
        creator_account_id=r["creator_account_id"], slug=r["eff_slug"],
        CCs=list(r["CCs"]), ASNs=[int(a) for a in r["ASNs"]], themes=list(r["themes"]),
        domains=list(r["domains"]), tags=list(r["tags"]), links=list(r["links"]),
        test_names=list(r["test_names"]))


def get(db: Database, incident_id: str) -> Incident | None:
    """The current, non-deleted version of an incident."""
    row = db.query_one(f"""SELECT {_select()}
        FROM incidents FINAL
        WHERE id = {{id:String}} AND deleted != 1
        LIMIT 1""", {"id": incident_id})
    return _incident(row) if row else None


def find(db: Database, key: str, published_only: bool) -> Incident | None:
    """An incident by id (all digits) or by slug."""
    where = ["deleted != 1"]
    if slugs.looks_like_id(key):
        where.append("id = {k:String}")
    else:
        where.append(f"{_SLUG_EXPR} = {{k:String}}")
    if published_only:
        where.append("published = 1")
    row = db.query_one(f"""SELECT {_select()}
        FROM incidents FINAL
        WHERE {' AND '.join(where)}
        ORDER BY id LIMIT 1""", {"k": key})
    return _incident(row) if row else None


def search(db: Database, account_id: str | None, q: SearchFilters) -> list[Incident]:
    """Incidents the caller may see (``account_id`` None for anonymous
    callers: published incidents only) matching ``q``, without their text,
    ordered by title."""
    where = ["deleted != 1"]
    params: dict[str, Any] = {}
    if account_id is None:
        where.append("published = 1")
    if q.only_mine:
        if account_id is None:
            return []
        where.append("creator_account_id = {acc:String}")
        params["acc"] = account_id
    for col, values, typ in (("themes", q.themes, "Array(String)"),
                             ("CCs", q.country_codes, "Array(String)"),
                             ("ASNs", q.asns, "Array(UInt32)"),
                             ("domains", q.domains, "Array(String)")):
        if values:
            where.append(f"hasAny({col}, {{{col}_f:{typ}}})")
            params[f"{col}_f"] = list(values)
    rows = db.query(f"""SELECT {_select(with_text=False)}
        FROM incidents FINAL
        WHERE {' AND '.join(where)}
        ORDER BY title, id""", params)
    return [_incident(r) for r in rows]


def slug_taken(db: Database, slug: str) -> bool:
    r = db.execute(f"""SELECT count() FROM incidents FINAL
        WHERE deleted != 1 AND {_SLUG_EXPR} = {{s:String}}""", {"s": slug})
    return bool(r and r[0][0])


def free_slug(db: Database, base: str, attempts: int = 1000) -> str:
    """``base`` or its first numbered alternative not in use."""
    if not slug_taken(db, base):
        return base
    for n in range(2, attempts + 2):
        candidate = slugs.numbered(base, n)
        if not slug_taken(db, candidate):
            return candidate
    raise RuntimeError(f"no free slug for {base!r}")


def id_exists(db: Database, incident_id: str) -> bool:
    r = db.execute("SELECT count() FROM incidents WHERE id = {id:String}", {"id": incident_id})
    return bool(r and r[0][0])


def new_id(db: Database, collector_id: str, attempts: int = 5) -> str:
    """A random id not yet used: a clash would silently replace another
    incident (ids are the table's key)."""
    for _ in range(attempts):
        incident_id = str(generate_int_id(collector_id))
        if not id_exists(db, incident_id):
            return incident_id
    raise RuntimeError("could not find an unused incident id")


def next_update_time(now: dt.datetime, prev: dt.datetime | None) -> dt.datetime:
    """A version later than ``prev`` even within one second or when this
    host's clock lags: the newest write wins the merge, and a client that
    read ``prev`` can tell its copy is stale."""
    now = now.replace(microsecond=0)
    return now if prev is None else max(now, prev + dt.timedelta(seconds=1))


def write(db: Database, inc: Incident) -> int:
    """Inserts the whole incident (a new version of its id); rows inserted."""
    values = {
        **{k: getattr(inc, k) for k in _COLUMNS if k != "published"},
        "published": 1 if inc.published else 0,
    }
    n = db.insert("incidents", _COLUMNS, [[values[k] for k in _COLUMNS]])
    optimize(db)
    return n


def delete(db: Database, incident_id: str) -> None:
    """Removes every version of the incident (its text and the reporter's
    e-mail address go with it, rather than a tombstone keeping them)."""
    # mutations_sync: the answer comes after the rows are gone, so the next
    # search no longer lists the incident.
    db.execute("ALTER TABLE incidents DELETE WHERE id = {id:String}", {"id": incident_id},
               settings={"mutations_sync": 2})
    optimize(db)


def optimize(db: Database) -> None:
    db.command("OPTIMIZE TABLE incidents FINAL")
