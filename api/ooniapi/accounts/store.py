"""The ``accounts`` and ``session_expunge`` tables (api.md §14): roles by
account id and per-account session thresholds. Both are EmbeddedRocksDB
keyed by account_id, so an insert replaces the account's previous row."""
from __future__ import annotations

import datetime as dt

from ooni_common.db import Database
from ooni_common.timeutil import utcnow

ROLES = ("user", "admin")


def get_role(db: Database, account_id: str) -> str | None:
    row = db.query_one("SELECT role FROM accounts WHERE account_id = {a:String}",
                       {"a": account_id})
    return row["role"] if row else None


def set_role(db: Database, account_id: str, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"invalid role {role!r}")
    db.insert("accounts", ["account_id", "role", "update_time"],
              [[account_id, role, utcnow().replace(microsecond=0)]])


def expunge_sessions(db: Database, account_id: str, now: dt.datetime | None = None) -> None:
    """Session tokens of the account issued before ``now`` stop working."""
    threshold = (now or utcnow()).replace(microsecond=0)
    db.insert("session_expunge", ["account_id", "threshold"], [[account_id, threshold]])
