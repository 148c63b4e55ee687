"""The ``accounts``, ``session_expunge`` and ``session_revocation`` tables
(api.md §14): roles by account id and per-account session thresholds. All
are EmbeddedRocksDB keyed by account_id, so an insert replaces the account's
previous row."""
from __future__ import annotations

import datetime as dt

from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.timeutil import utcnow

from ooniapi.core.auth import epoch_ms, login_role
from ooniapi.core.rowlock import RowLocks

ROLES = ("user", "admin")
# An account without a stored role logs in as a user.
DEFAULT_ROLE = "user"


class RoleConflict(Exception):
    """The stored role is not the one the caller expected."""

    def __init__(self, current: str):
        super().__init__(current)
        self.current = current


def get_role(db: Database, account_id: str) -> str | None:
    row = db.query_one("SELECT role FROM accounts WHERE account_id = {a:String}",
                       {"a": account_id})
    return row["role"] if row else None


def session_role(db: Database, cfg: Config, account_id: str, email_address: str | None) -> str:
    """The role a new or refreshed session of the account gets: its stored
    role as ``auth.login_role`` maps it (ADMIN_EMAILS are admins)."""
    return login_role(cfg, get_role(db, account_id), email_address)


def set_role(db: Database, account_id: str, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"invalid role {role!r}")
    db.insert("accounts", ["account_id", "role", "update_time"],
              [[account_id, role, utcnow().replace(microsecond=0)]])


def change_role(db: Database, locks: RowLocks, account_id: str, role: str,
                expected: str | None = None) -> None:
    """Sets the role; with ``expected``, only if the current role (the
    default one for an account without a row) is still ``expected``, else
    RoleConflict. The check and the write hold the account's lock, so of two
    admins changing the same role from what they both saw, one wins and the
    other is told."""
    with locks.hold("accounts", account_id):
        if expected is not None:
            current = get_role(db, account_id) or DEFAULT_ROLE
            if current != expected:
                raise RoleConflict(current)
        set_role(db, account_id, role)


def expunge_sessions(db: Database, account_id: str, now: dt.datetime | None = None) -> None:
    """Session tokens of the account issued up to ``now`` (to the
    millisecond, that millisecond included) stop working."""
    now = now or utcnow()
    # The millisecond threshold is written first: between the two inserts
    # the account is already cut off.
    db.insert("session_revocation", ["account_id", "threshold_ms"],
              [[account_id, epoch_ms(now)]])
    db.insert("session_expunge", ["account_id", "threshold"],
              [[account_id, now.replace(microsecond=0)]])
