"""The ``incidents`` table (api.md §12, §18).

ReplacingMergeTree(update_time) ORDER BY id: every write inserts the whole
incident again and the row with the newest ``update_time`` (the last
inserted one on a tie) wins. Reads use FINAL and writes are followed by
``OPTIMIZE ... FINAL``, so the answer after a write already shows it.
``deleted`` is kept from the seed schema: rows written by the legacy API
with ``deleted = 1`` stay hidden.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ooni_common.db import Database

from ooniapi.core.ids import generate_int_id


@dataclass
class Incident:
    """One incident as stored (times naive UTC, ``published`` a bool)."""
    id: str
    title: str
    short_description: str
    text: str
    reported_by: str
    email_address: str
    event_type: str
    published: bool
    start_time: dt.datetime
    end_time: dt.datetime | None
    create_time: dt.datetime
    update_time: dt.datetime
    creator_account_id: str
    CCs: list[str] = field(default_factory=list)
    ASNs: list[int] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    test_names: list[str] = field(default_factory=list)


# Column order of the API answers (api.md §12.1), ``text`` only for show.
LIST_COLUMNS = ["id", "update_time", "start_time", "end_time", "reported_by", "title",
                "event_type", "published", "CCs", "ASNs", "domains", "tags", "test_names",
                "links", "short_description", "email_address", "create_time"]

_WRITE_COLUMNS = ["id", "update_time", "start_time", "end_time", "creator_account_id",
                  "reported_by", "title", "text", "event_type", "published", "CCs", "ASNs",
                  "domains", "tags", "links", "test_names", "short_description",
                  "email_address", "create_time"]


def _incident(r: dict[str, Any]) -> Incident:
    return Incident(
        id=r["id"], title=r["title"], short_description=r["short_description"],
        text=r["text"], reported_by=r["reported_by"], email_address=r["email_address"],
        event_type=r["event_type"], published=bool(r["published"]),
        start_time=r["start_time"], end_time=r["end_time"], create_time=r["create_time"],
        update_time=r["update_time"], creator_account_id=r["creator_account_id"],
        CCs=list(r["CCs"]), ASNs=[int(a) for a in r["ASNs"]], domains=list(r["domains"]),
        tags=list(r["tags"]), links=list(r["links"]), test_names=list(r["test_names"]))


def get(db: Database, incident_id: str) -> Incident | None:
    """The current, non-deleted version of an incident."""
    row = db.query_one(f"""SELECT {', '.join(_WRITE_COLUMNS)}
        FROM incidents FINAL
        WHERE id = {{id:String}} AND deleted != 1
        LIMIT 1""", {"id": incident_id})
    return _incident(row) if row else None


def owned_by_other(db: Database, incident_id: str, account_id: str) -> bool:
    """Whether a non-deleted incident with this id belongs to someone else."""
    r = db.execute("""SELECT count() FROM incidents FINAL
        WHERE id = {id:String} AND deleted != 1
          AND creator_account_id != {acc:String}""",
                   {"id": incident_id, "acc": account_id})
    return bool(r and r[0][0])


def list_visible(db: Database, *, account_id: str | None, only_mine: bool,
                 include_text: bool = False, incident_id: str | None = None
                 ) -> list[dict[str, Any]]:
    """Incidents the caller may see, ordered by title, as dicts in the
    answer's key order plus ``mine`` (0/1). Anonymous callers see only
    published incidents and own nothing."""
    filters = ["deleted != 1"]
    params: dict[str, Any] = {"acc": account_id or ""}
    if account_id is None:
        filters.append("published = 1")
    if only_mine:
        filters.append("creator_account_id = {acc:String}" if account_id else "0")
    if incident_id is not None:
        filters.append("id = {id:String}")
        params["id"] = incident_id
    cols = list(LIST_COLUMNS)
    if include_text:
        cols.insert(cols.index("event_type"), "text")
    mine = "toUInt8(creator_account_id = {acc:String})" if account_id else "toUInt8(0)"
    rows = db.query(f"""SELECT {', '.join(cols)}, {mine} AS mine
        FROM incidents FINAL
        WHERE {' AND '.join(filters)}
        ORDER BY title, id""", params)
    for r in rows:
        r["published"] = bool(r["published"])
        r["ASNs"] = [int(a) for a in r["ASNs"]]
        r["mine"] = int(r["mine"])
    return rows


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


def write(db: Database, inc: Incident) -> int:
    """Inserts the whole incident (a new version of its id); rows inserted."""
    n = db.insert("incidents", _WRITE_COLUMNS, [[
        inc.id, inc.update_time, inc.start_time, inc.end_time, inc.creator_account_id,
        inc.reported_by, inc.title, inc.text, inc.event_type, 1 if inc.published else 0,
        inc.CCs, inc.ASNs, inc.domains, inc.tags, inc.links, inc.test_names,
        inc.short_description, inc.email_address, inc.create_time,
    ]])
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
