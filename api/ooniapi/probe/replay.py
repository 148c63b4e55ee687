"""Remembers the credential messages already accepted, so that a replayed
one is refused: the credential library checks a proof, not whether it was
seen before (the protocol leaves that to the application). One SQLite file
shared by every worker of a host (``ANONCRED_REPLAY_DB``, default
``<data dir>/anoncred/replay.sqlite3``); entries older than the retention
are pruned now and then."""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from ooni_common.config import Config

RETENTION_S = 40 * 86400
PRUNE_EVERY = 1000


class ReplayGuard:
    def __init__(self, path: Path, retention_s: int = RETENTION_S):
        self.path = path
        self.retention_s = retention_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._inserts = 0

    @classmethod
    def from_config(cls, cfg: Config) -> "ReplayGuard":
        p = cfg.get("ANONCRED_REPLAY_DB", None)
        return cls(Path(p) if p else cfg.data_dir / "anoncred" / "replay.sqlite3")

    def _db(self) -> sqlite3.Connection:
        # Opened lazily and again after a fork (gunicorn --preload).
        if self._conn is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            c = sqlite3.connect(str(self.path), timeout=10, check_same_thread=False,
                                isolation_level=None)
            c.execute("PRAGMA journal_mode=WAL")
            # A replay slipping through after an OS crash is acceptable; an
            # fsync per submission is not.
            c.execute("PRAGMA synchronous=OFF")
            c.execute("CREATE TABLE IF NOT EXISTS seen (digest BLOB PRIMARY KEY, "
                      "kind TEXT NOT NULL, ts INTEGER NOT NULL) WITHOUT ROWID")
            self._conn, self._pid = c, os.getpid()
        return self._conn

    def first_use(self, kind: str, digest: bytes) -> bool:
        """Records ``digest``; False when it was recorded before."""
        now = int(time.time())
        with self._lock:
            db = self._db()
            try:
                db.execute("INSERT INTO seen (digest, kind, ts) VALUES (?, ?, ?)",
                           (kind.encode() + b":" + digest, kind, now))
            except sqlite3.IntegrityError:
                return False
            self._inserts += 1
            if self._inserts % PRUNE_EVERY == 0:
                db.execute("DELETE FROM seen WHERE ts < ?", (now - self.retention_s,))
        return True
