"""Schema creation across components. Each component owns the tables it
writes (``<package>.schema.ensure_schema(db)``, idempotent); this module only
knows the order: the counters views of the fastpath join ``citizenlab``, so
the analysis tables come first."""
from __future__ import annotations

import importlib

from .db import Database

OWNERS = ("analysis.schema", "fastpath.schema", "ooniapi.core.schema")


def ensure_all(db: Database) -> None:
    for mod in OWNERS:
        importlib.import_module(mod).ensure_schema(db)


def all_tables(db: Database) -> list[str]:
    """Plain tables (not views) of the database, e.g. to truncate in tests."""
    rows = db.execute(
        "SELECT name FROM system.tables WHERE database = {db:String} "
        "AND engine NOT IN ('View', 'MaterializedView') ORDER BY name",
        {"db": db.database})
    return [r[0] for r in rows]
