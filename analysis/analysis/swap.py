"""Filling a staging table and swapping it with the live one.

``EXCHANGE TABLES`` is atomic (Atomic database engine): readers see either
the old or the new generation, never a mix. Any failure before the exchange
leaves the live table untouched; after it, the staging table holds the
previous generation until the next run.
"""
from __future__ import annotations

from typing import Sequence

from ooni_common.db import Database

from .runner import JobError


def count(db: Database, table: str) -> int:
    return int(db.execute(f"SELECT count() FROM {table}")[0][0])


def check_bounds(what: str, n: int, low: int, high: int) -> None:
    """Legacy sanity bounds, exclusive on both sides."""
    if not low < n < high:
        raise JobError(f"{what}: {n} rows, expected more than {low} and fewer than {high}; "
                       f"the live table is unchanged")


def recreate(db: Database, staging: str, columns_ddl: str, engine: str) -> None:
    """An empty staging table of the current schema: dropping it first lets a
    column change reach it, which ``CREATE TABLE IF NOT EXISTS`` would not."""
    db.command(f"DROP TABLE IF EXISTS {staging}")
    db.command(f"CREATE TABLE {staging} ({columns_ddl}) ENGINE = {engine}")


def fill(db: Database, staging: str, columns: Sequence[str], rows: list[Sequence],
         chunk: int = 50_000) -> None:
    db.command(f"TRUNCATE TABLE IF EXISTS {staging}")
    for i in range(0, len(rows), chunk):
        db.insert(staging, columns, rows[i:i + chunk])


def exchange(db: Database, staging: str, live: str) -> None:
    db.command(f"EXCHANGE TABLES {staging} AND {live}")
