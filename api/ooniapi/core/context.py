"""Per-application services (config, database, spool, metrics...), kept on
the Flask app rather than in module globals so that several apps (tests,
standalone) never share state."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import current_app

from ooni_common.config import Config
from ooni_common.db import Database, connect
from ooni_common.metrics import Metrics
from ooni_common.spool import Spool


@dataclass
class Services:
    cfg: Config
    spool: Spool
    metrics: Metrics
    # Called with (uid, body) after a measurement is spooled; must not block.
    notify_fastpath: Callable[[str, bytes], None]
    _db: Database | None = None
    _db_lock: threading.Lock = field(default_factory=threading.Lock)
    # Other areas keep their long-lived helpers here (GeoIP readers, LMDB...).
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        # Connect lazily: the submission path needs no database, so API
        # workers start (and take measurements) while ClickHouse is down.
        if self._db is None:
            with self._db_lock:
                if self._db is None:
                    self._db = connect(self.cfg.clickhouse_url)
        return self._db


def services() -> Services:
    return current_app.extensions["ooni"]


def cfg() -> Config:
    return services().cfg


def db() -> Database:
    return services().db
