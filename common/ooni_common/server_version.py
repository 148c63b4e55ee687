"""The ClickHouse version check: refuse a server too old for the schema and
the queries, in one line, before anything else fails with a syntax error.

Why the minimum is 22.8 (docs/operations.md, "ClickHouse version"):

* query parameters ``{name:Type}`` travel in the native protocol only from
  protocol revision 54459, first in ClickHouse 22.8; against an older server
  clickhouse-driver silently sends none and every parameterised query fails;
* EmbeddedRocksDB tables (accounts, fingerprints) need 20.9+;
* ``DateTime64`` columns and ``now64()`` need 20.1+;
* ``EXCHANGE TABLES`` (the updaters' atomic swap) needs the Atomic database
  engine, the default from 20.10.

The check goes through the backend's ``Database`` interface, so the embedded
engine (chdb) is checked the same way."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ooni_common.db import Database, DatabaseError

MIN_CLICKHOUSE = (22, 8)
MIN_CLICKHOUSE_TEXT = ".".join(map(str, MIN_CLICKHOUSE))


class DatabaseVersionError(DatabaseError):
    """The server answers but is older than ``MIN_CLICKHOUSE``."""


@dataclass(frozen=True)
class ServerVersion:
    text: str
    parts: tuple[int, ...]

    @property
    def ok(self) -> bool:
        return self.parts[:2] >= MIN_CLICKHOUSE


def parse_version(text: str) -> ServerVersion:
    m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(text))
    if not m:
        raise DatabaseError(f"ClickHouse answered an unreadable version {text!r}")
    return ServerVersion(str(text).strip(), tuple(int(g) for g in m.groups() if g is not None))


def one_line(e: BaseException) -> str:
    """The first line of a driver error: server errors carry a stack trace."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def server_version(db: Database) -> ServerVersion:
    """The server's version; DatabaseError (one line) when unreachable."""
    try:
        rows = db.execute("SELECT version()")
    except DatabaseError as e:
        raise DatabaseError(f"ClickHouse at {_where(db)} does not answer: {one_line(e)}",
                            e.code) from e
    if not rows or not rows[0]:
        raise DatabaseError(f"ClickHouse at {_where(db)} gave no version")
    return parse_version(rows[0][0])


def check_server(db: Database) -> ServerVersion:
    """The server's version if it is recent enough; otherwise raises
    ``DatabaseVersionError`` (too old) or ``DatabaseError`` (unreachable),
    both with a one-line message for the operator."""
    v = server_version(db)
    if not v.ok:
        raise DatabaseVersionError(
            f"ClickHouse {v.text} at {_where(db)} is too old: this backend needs "
            f"{MIN_CLICKHOUSE_TEXT} or later (query parameters in the native protocol, "
            f"EmbeddedRocksDB, DateTime64); see docs/operations.md")
    return v


def _where(db: Database) -> str:
    # Never the password: the URL may carry one.
    from urllib.parse import urlparse
    u = urlparse(getattr(db, "url", "") or "")
    if u.scheme == "chdb":
        return "(embedded)"
    return f"{u.hostname or 'localhost'}:{u.port or 9000}"
