"""The ``oonirun`` table (api.md §11, §18): one row per descriptor version.

ReplacingMergeTree(translation_creation_time) keyed by (ooni_run_link_id,
descriptor_creation_time): a translation-only update replaces the row of its
descriptor version, a structural change adds a new version. Reads use FINAL
(or, on the hot v2 paths, its replacement rule applied in Python) and
writes are followed by ``OPTIMIZE ... FINAL`` so the next read is
consistent even on a server that merges lazily.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from ooni_common.db import Database

from ooniapi.core.errors import Conflict
from ooniapi.core.ids import generate_int_id
from ooniapi.oonirun.link import LinkState

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


def _replaced(rows: list[dict[str, Any]]) -> list[Version]:
    """What FINAL would keep of rows ordered by (link, descriptor time,
    translation time): per (link, descriptor time) the newest translation.
    Done here because FINAL costs more than the whole rest of a probe's
    engine-descriptor request on the embedded database; writes keep
    translation times strictly increasing, so the newest is unambiguous."""
    out: list[Version] = []
    for r in rows:
        v = _version(r)
        if out and (out[-1].ooni_run_link_id, out[-1].descriptor_creation_time) == \
                (v.ooni_run_link_id, v.descriptor_creation_time):
            out[-1] = v
        else:
            out.append(v)
    return out


def versions(db: Database, link_id: int) -> list[Version]:
    """Every descriptor version, oldest first: revision N is item N-1."""
    rows = db.query(f"""SELECT {_VERSION_COLS} FROM oonirun
        WHERE ooni_run_link_id = {{id:UInt64}}
        ORDER BY descriptor_creation_time, translation_creation_time""", {"id": link_id})
    return _replaced(rows)


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


# An archive re-applies its update while it still finds unarchived rows of
# the link (a version another API process inserted meanwhile), this often.
ARCHIVE_PASSES = 5


def archive(db: Database, link_id: int, account_id: str | None) -> None:
    """Marks every version archived; ``account_id`` restricts it to the
    caller's own rows (None: admin, every row). Run under the link's lock
    (LinkLocks): an edit of this process then either precedes it (and its
    row is archived too) or sees it (and answers 409)."""
    where = "ooni_run_link_id = {id:UInt64}"
    params: dict[str, Any] = {"id": link_id}
    if account_id is not None:
        where += " AND creator_account_id = {acc:String}"
        params["acc"] = account_id
    for _ in range(ARCHIVE_PASSES):
        # mutations_sync: the answer comes after the rows are rewritten, so
        # the UI's next list already shows the link archived.
        db.execute(f"ALTER TABLE oonirun UPDATE archived = 1 WHERE {where}", params,
                   settings={"mutations_sync": 2})
        optimize(db)
        left = db.execute(f"SELECT count() FROM oonirun FINAL WHERE {where} AND archived = 0",
                          params)
        if not (left and left[0][0]):
            return


# --- conditional writes (issue: archive never undone by a concurrent edit) ---

class LinkLocks:
    """Per-link locks of this API process (striped: a fixed set needs no
    clean-up). Every write of a link holds its lock from the version check
    to the end of the write."""
    STRIPES = 64

    def __init__(self) -> None:
        self._locks = [threading.Lock() for _ in range(self.STRIPES)]

    def of(self, link_id: int) -> threading.Lock:
        return self._locks[link_id % self.STRIPES]


@dataclass(frozen=True)
class Head:
    """What a write checks has not changed since it read the link."""
    versions: int
    last_write: dt.datetime | None
    archived: bool


def head(db: Database, link_id: int) -> Head:
    row = db.query_one("""SELECT count() AS n, max(translation_creation_time) AS t,
        max(archived) AS a FROM oonirun FINAL WHERE ooni_run_link_id = {id:UInt64}""",
                       {"id": link_id})
    n = int(row["n"]) if row else 0
    return Head(n, row["t"] if n else None, bool(row["a"]) if n else False)


def head_of(vs: list[Version]) -> Head:
    if not vs:
        return Head(0, None, False)
    return Head(len(vs), max(v.translation_creation_time for v in vs),
                any(v.archived for v in vs))


def check_unchanged(db: Database, link_id: int, seen: Head) -> None:
    """Conflict (409) when another write reached the link after ``seen``
    was read: the caller's edit was computed from a stale link."""
    if head(db, link_id) != seen:
        raise Conflict("The OONI Run link was changed (or archived) by another request "
                       "while this one was processed; fetch it again and retry")


def link_state(vs: list[Version], revision: int | None = None) -> LinkState:
    """The link at ``revision`` (1-based; None: the latest) from its versions
    (oldest first, non-empty)."""
    newest = vs[-1]
    ver = vs[(revision or len(vs)) - 1]
    return LinkState(
        link_id=newest.ooni_run_link_id, descriptor=newest.descriptor,
        nettests=ver.descriptor.get("nettests"), revision=revision or len(vs),
        date_created=ver.descriptor_creation_time,
        date_updated=newest.translation_creation_time,
        first_created=vs[0].descriptor_creation_time,
        archived=any(v.archived for v in vs),
        creator_account_id=newest.creator_account_id)


def all_links(db: Database, account_id: str | None = None) -> dict[int, list[Version]]:
    """Every link's versions (oldest first); only the account's links when
    ``account_id`` is given."""
    where, params = "", {}
    if account_id is not None:
        where, params = "WHERE creator_account_id = {acc:String}", {"acc": account_id}
    rows = db.query(f"""SELECT {_VERSION_COLS} FROM oonirun {where}
        ORDER BY ooni_run_link_id, descriptor_creation_time, translation_creation_time""",
                    params)
    out: dict[int, list[Version]] = {}
    for v in _replaced(rows):
        out.setdefault(v.ooni_run_link_id, []).append(v)
    return out


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


class VersionsCache:
    """The versions of the links probes fetch engine descriptors of, kept
    ``ttl`` seconds (``OONIRUN_ENGINE_CACHE_SECONDS``, default 2; 0: off)
    for the engine-descriptor route only: one popular link is fetched by
    many probes at once, and the database read is most of the request's
    cost. This process's writes drop the link at once; other API
    processes' writes are seen within ``ttl``. Unknown ids are not kept.
    At most ``max_links`` links, the oldest fetched goes first."""

    def __init__(self, ttl: float = 2.0, max_links: int = 1000, clock=time.monotonic):
        self.ttl = ttl
        self.max_links = max(1, max_links)
        self.clock = clock
        self._lock = threading.Lock()
        self._links: dict[int, tuple[float, list[Version]]] = {}

    def get(self, db: Database, link_id: int) -> list[Version]:
        if self.ttl <= 0:
            return versions(db, link_id)
        hit = self._links.get(link_id)
        now = self.clock()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        vs = versions(db, link_id)
        if vs:
            with self._lock:
                self._links.pop(link_id, None)
                self._links[link_id] = (now, vs)
                while len(self._links) > self.max_links:
                    del self._links[next(iter(self._links))]
        return vs

    def invalidate(self, link_id: int) -> None:
        with self._lock:
            self._links.pop(link_id, None)
