"""The ``oonirun`` table (api.md §11, §18): one row per descriptor version.

ReplacingMergeTree(translation_creation_time) keyed by (ooni_run_link_id,
descriptor_creation_time): a translation-only update replaces the row of its
descriptor version, a structural change adds a new version. Reads use FINAL
and writes are followed by ``OPTIMIZE ... FINAL`` so the next read is
consistent even on a server that merges lazily.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from ooni_common.db import Database

from ooniapi.core.ids import generate_int_id

COLUMNS = ["ooni_run_link_id", "descriptor", "creator_account_id", "author",
           "descriptor_creation_time", "translation_creation_time", "name",
           "short_description", "icon", "archived"]


@dataclass(frozen=True)
class Version:
    """One stored descriptor version."""
    ooni_run_link_id: int
    descriptor: dict[str, Any]
    creator_account_id: str
    descriptor_creation_time: dt.datetime
    translation_creation_time: dt.datetime
    archived: bool


@dataclass(frozen=True)
class ListItem:
    ooni_run_link_id: int
    archived: bool
    author: str
    icon: str
    mine: bool
    name: str
    short_description: str
    descriptor_creation_time: dt.datetime
    translation_creation_time: dt.datetime


def _version(r: dict[str, Any]) -> Version:
    return Version(
        ooni_run_link_id=int(r["ooni_run_link_id"]),
        descriptor=json.loads(r["descriptor"]),
        creator_account_id=r["creator_account_id"],
        descriptor_creation_time=r["descriptor_creation_time"],
        translation_creation_time=r["translation_creation_time"],
        archived=bool(r["archived"]),
    )


_VERSION_COLS = """ooni_run_link_id, descriptor, creator_account_id,
    descriptor_creation_time, translation_creation_time, archived"""


def latest_by_creator(db: Database, link_id: int, account_id: str) -> Version | None:
    row = db.query_one(f"""SELECT {_VERSION_COLS} FROM oonirun FINAL
        WHERE ooni_run_link_id = {{id:UInt64}} AND creator_account_id = {{acc:String}}
        ORDER BY descriptor_creation_time DESC, translation_creation_time DESC
        LIMIT 1""", {"id": link_id, "acc": account_id})
    return _version(row) if row else None


def fetch(db: Database, link_id: int,
          descriptor_creation_time: dt.datetime | None = None) -> Version | None:
    """The newest version, or the one created at ``descriptor_creation_time``."""
    params: dict[str, Any] = {"id": link_id}
    where = ""
    if descriptor_creation_time is not None:
        where = "AND descriptor_creation_time = {dct:DateTime64(3)}"
        params["dct"] = descriptor_creation_time
    row = db.query_one(f"""SELECT {_VERSION_COLS} FROM oonirun FINAL
        WHERE ooni_run_link_id = {{id:UInt64}} {where}
        ORDER BY descriptor_creation_time DESC, translation_creation_time DESC
        LIMIT 1""", params)
    return _version(row) if row else None


def versions(db: Database, link_id: int) -> list[Version]:
    """Every descriptor version, oldest first: revision N is item N-1."""
    rows = db.query(f"""SELECT {_VERSION_COLS} FROM oonirun FINAL
        WHERE ooni_run_link_id = {{id:UInt64}}
        ORDER BY descriptor_creation_time, translation_creation_time""", {"id": link_id})
    return [_version(r) for r in rows]


def id_exists(db: Database, link_id: int) -> bool:
    r = db.execute("SELECT count() FROM oonirun WHERE ooni_run_link_id = {id:UInt64}",
                   {"id": link_id})
    return bool(r and r[0][0])


def new_id(db: Database, collector_id: str, attempts: int = 5) -> int:
    """A random id not yet used (a clash is a 1 in 4e9 event; retrying
    keeps it from silently merging two links)."""
    for _ in range(attempts):
        link_id = generate_int_id(collector_id)
        if not id_exists(db, link_id):
            return link_id
    raise RuntimeError("could not find an unused OONI Run link id")


def insert_version(db: Database, link_id: int, descriptor: dict[str, Any],
                   descriptor_text: str, account_id: str,
                   descriptor_creation_time: dt.datetime,
                   translation_creation_time: dt.datetime, archived: bool) -> None:
    db.insert("oonirun", COLUMNS, [[
        link_id, descriptor_text, account_id, descriptor["author"],
        descriptor_creation_time, translation_creation_time, descriptor["name"],
        descriptor.get("short_description") or "", descriptor.get("icon") or "",
        1 if archived else 0,
    ]])
    optimize(db)


def archive(db: Database, link_id: int, account_id: str | None) -> None:
    """Marks every version archived; ``account_id`` restricts it to the
    caller's own rows (None: admin, every row)."""
    where = "ooni_run_link_id = {id:UInt64}"
    params: dict[str, Any] = {"id": link_id}
    if account_id is not None:
        where += " AND creator_account_id = {acc:String}"
        params["acc"] = account_id
    # mutations_sync: the answer comes after the rows are rewritten, so the
    # UI's next list already shows the link archived.
    db.execute(f"ALTER TABLE oonirun UPDATE archived = 1 WHERE {where}", params,
               settings={"mutations_sync": 2})
    optimize(db)


def optimize(db: Database) -> None:
    db.command("OPTIMIZE TABLE oonirun FINAL")


def list_versions(db: Database, *, account_id: str | None, ids: list[int],
                  only_latest: bool, only_mine: bool,
                  include_archived: bool) -> list[ListItem]:
    filters = []
    params: dict[str, Any] = {"acc": account_id or ""}
    if only_latest:
        filters.append("""(ooni_run_link_id, translation_creation_time) IN (
            SELECT ooni_run_link_id, max(translation_creation_time)
            FROM oonirun FINAL GROUP BY ooni_run_link_id)""")
    if not include_archived:
        filters.append("archived = 0")
    if only_mine:
        # anonymous callers own nothing
        filters.append("creator_account_id = {acc:String}" if account_id else "0")
    if ids:
        filters.append("ooni_run_link_id IN {ids:Array(UInt64)}")
        params["ids"] = ids
    mine = "creator_account_id = {acc:String}" if account_id else "0"
    where = ("WHERE " + " AND ".join(filters)) if filters else ""
    rows = db.query(f"""SELECT ooni_run_link_id, archived, author, icon, {mine} AS mine,
        name, short_description, descriptor_creation_time, translation_creation_time
        FROM oonirun FINAL {where}
        ORDER BY descriptor_creation_time, translation_creation_time, ooni_run_link_id""",
                    params)
    return [ListItem(
        ooni_run_link_id=int(r["ooni_run_link_id"]), archived=bool(r["archived"]),
        author=r["author"], icon=r["icon"], mine=bool(r["mine"]), name=r["name"],
        short_description=r["short_description"],
        descriptor_creation_time=r["descriptor_creation_time"],
        translation_creation_time=r["translation_creation_time"]) for r in rows]
