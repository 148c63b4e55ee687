"""Database backup (``ooni-db-backup``) and restore (``ooni-db-backup --restore``).

Each chosen table is exported in chunks of rows, ordered by its sorting key,
as CSV with a header, compressed with zstandard while it streams into the
archive (an S3 multipart upload, or the file store): no temporary file, and
a pause between chunks so that the export never builds a query backlog.
ClickHouse has no transactions, so a table written during its export may be
captured between two states; the tables backed up are small, slowly
changing ones (the measurement tables are rebuilt from the archive).

Key layout: ``<DB_BACKUP_PREFIX>/<YYYYMMDD>/<table>.csv.zst``.

CSV cells use ClickHouse's conventions, so that a restore gets back the same
values: ``\\N`` for NULL, JSON for arrays, maps and tuples, ``YYYY-MM-DD
HH:MM:SS[.ffffff]`` for times; FixedString padding is dropped (ClickHouse
pads again on insert).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import ujson
import zstandard

from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.metrics import Metrics, from_config, job_metrics
from ooni_common.store import KeyNotFound, ObjectStore, open_store
from ooni_common.timeutil import utcnow

from .progress import Progress
from .runner import JobError, debug_level, load_config, open_db, run_command

UNIT = "ooni-db-backup"
METRICS_PREFIX = "db-backup"
log = logging.getLogger(UNIT)

# The legacy configuration's "full" tables: small, not rebuilt from S3.
DEFAULT_TABLES = ["citizenlab", "msmt_feedback", "test_helper_instances", "url_priorities"]
NULL = "\\N"
TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DAY_RE = re.compile(r"^[0-9]{8}$")


@dataclass(frozen=True)
class BackupSettings:
    tables: list[str]
    prefix: str
    chunk_rows: int
    pause: float
    zstd_level: int

    @classmethod
    def from_config(cls, cfg: Config) -> "BackupSettings":
        tables = cfg.get_list("DB_BACKUP_TABLES", DEFAULT_TABLES)
        bad = [t for t in tables if not TABLE_RE.match(t)]
        if bad:
            raise JobError(f"DB_BACKUP_TABLES: not table names: {bad}")
        return cls(tables=tables,
                   prefix=cfg.get_str("DB_BACKUP_PREFIX", "db-backup").strip("/"),
                   chunk_rows=max(1, cfg.get_int("DB_BACKUP_CHUNK_ROWS", 100_000)),
                   pause=cfg.get_float("DB_BACKUP_PAUSE", 1.0),
                   zstd_level=cfg.get_int("DB_BACKUP_ZSTD_LEVEL", 3))


@dataclass(frozen=True)
class Column:
    name: str
    type: str


def backup_store(cfg: Config) -> ObjectStore:
    url = cfg.get_str("DB_BACKUP_URL", "")
    return open_store(cfg.with_overrides(ARCHIVE_URL=url) if url else cfg)


def object_key(prefix: str, day: str, table: str) -> str:
    return f"{prefix}/{day}/{table}.csv.zst"


def columns(db: Database, table: str) -> list[Column]:
    rows = db.execute(
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} "
        "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY position",
        {"db": db.database, "t": table})
    if not rows:
        raise JobError(f"table {table} does not exist in database {db.database}")
    return [Column(n, t) for n, t in rows]


def sorting_key(db: Database, table: str, cols: list[Column]) -> str:
    r = db.execute("SELECT sorting_key, primary_key FROM system.tables "
                   "WHERE database = {db:String} AND name = {t:String}",
                   {"db": db.database, "t": table})
    key = (r[0][0] or r[0][1]) if r else ""
    return key or ", ".join(f"`{c.name}`" for c in cols)


# --- cell encoding --------------------------------------------------------------

def _base(t: str) -> str:
    for wrap in ("Nullable(", "LowCardinality("):
        while t.startswith(wrap):
            t = t[len(wrap):-1]
    return t


def encode_cell(v: Any, ctype: str) -> str:
    if v is None:
        return NULL
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f" if v.microsecond else "%Y-%m-%d %H:%M:%S")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, (list, tuple, dict)):
        return ujson.dumps(v, ensure_ascii=False, escape_forward_slashes=False, default=str)
    if isinstance(v, str) and _base(ctype).startswith("FixedString"):
        return v.rstrip("\x00")
    return str(v)


def decoder(ctype: str) -> Callable[[str], Any]:
    nullable = ctype.startswith("Nullable(") or ctype.startswith("LowCardinality(Nullable(")
    b = _base(ctype)
    if re.match(r"^U?Int\d+$", b):
        conv: Callable[[str], Any] = int
    elif b.startswith("Float") or b.startswith("Decimal"):
        conv = float
    elif b == "Bool":
        conv = lambda s: s in ("true", "1")  # noqa: E731
    elif b in ("Date", "Date32"):
        conv = dt.date.fromisoformat
    elif b.startswith("DateTime"):
        conv = dt.datetime.fromisoformat
    elif b.startswith(("Array(", "Map(", "Tuple(")):
        conv = ujson.loads
    else:
        conv = str
    if nullable:
        return lambda s: None if s == NULL else conv(s)
    return conv


# --- export ------------------------------------------------------------------------

def export_rows(db: Database, table: str, cols: list[Column], order: str, chunk: int,
                pause: float, sleep: Callable[[float], None]) -> Iterator[list[tuple]]:
    names = ", ".join(f"`{c.name}`" for c in cols)
    offset = 0
    while True:
        rows = db.execute(
            f"SELECT {names} FROM `{table}` ORDER BY {order} LIMIT {{n:UInt64}} OFFSET {{o:UInt64}}",
            {"n": chunk, "o": offset})
        if rows:
            yield rows
        if len(rows) < chunk:
            return
        offset += chunk
        sleep(pause)


def backup_table(db: Database, store: ObjectStore, table: str, key: str, s: BackupSettings,
                 metrics: Metrics, sleep: Callable[[float], None] = time.sleep) -> int:
    cols = columns(db, table)
    order = sorting_key(db, table, cols)
    total = int(db.execute(f"SELECT count() FROM `{table}`")[0][0])
    progress = Progress(f"backup {table}", total)
    n = 0
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    t0 = time.perf_counter()
    with store.open_writer(key) as out:
        z = zstandard.ZstdCompressor(level=s.zstd_level).stream_writer(out, closefd=False)
        w.writerow([c.name for c in cols])
        with metrics.timer("run_export"):
            for rows in export_rows(db, table, cols, order, s.chunk_rows, s.pause, sleep):
                for r in rows:
                    w.writerow([encode_cell(v, c.type) for v, c in zip(r, cols)])
                with metrics.timer("upload_to_s3"):
                    z.write(buf.getvalue().encode("utf-8"))
                buf.seek(0)
                buf.truncate()
                n += len(rows)
                progress.update(len(rows))
        z.write(buf.getvalue().encode("utf-8"))
        z.flush(zstandard.FLUSH_FRAME)
        z.close()
    progress.close()
    metrics.timing(f"table_{table}_backup_time_ms", (time.perf_counter() - t0) * 1000)
    log.info("backed up %d rows of %s to %s", n, table, key)
    return n


def run(cfg: Config, db: Database, store: ObjectStore | None = None, day: str | None = None,
        metrics: Metrics | None = None, sleep: Callable[[float], None] = time.sleep) -> dict[str, int]:
    s = BackupSettings.from_config(cfg)
    store = store if store is not None else backup_store(cfg)
    metrics = metrics or from_config(cfg, METRICS_PREFIX)
    day = day or utcnow().strftime("%Y%m%d")
    out = {}
    for t in s.tables:
        out[t] = backup_table(db, store, t, object_key(s.prefix, day, t), s, metrics, sleep)
    return out


def run_job(cfg: Config, db: Database, metrics_root: Metrics | None = None) -> None:
    run(cfg, db, metrics=job_metrics(metrics_root, METRICS_PREFIX))


# --- restore -------------------------------------------------------------------------

def latest_day(store: ObjectStore, prefix: str) -> str:
    days = {o.key[len(prefix) + 1:].split("/", 1)[0] for o in store.list(prefix + "/")}
    days = sorted(d for d in days if DAY_RE.match(d))
    if not days:
        raise JobError(f"no backup found under {store.url}/{prefix}/")
    return days[-1]


def read_csv(data: bytes) -> Iterator[list[str]]:
    text = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)),
                            encoding="utf-8", newline="")
    yield from csv.reader(text)


def restore_table(db: Database, store: ObjectStore, table: str, key: str, chunk: int,
                  replace: bool) -> int:
    try:
        data = store.get_bytes(key)
    except KeyNotFound:
        raise JobError(f"no backup of {table} at {key}") from None
    cols = {c.name: c for c in columns(db, table)}
    existing = int(db.execute(f"SELECT count() FROM `{table}`")[0][0])
    if existing and not replace:
        raise JobError(f"table {table} already holds {existing} rows; restore into a fresh "
                       f"database or pass --replace")
    try:
        reader = read_csv(data)
        header = next(reader, None)
        if header is None:
            raise JobError(f"{key}: empty backup")
        missing = [h for h in header if h not in cols]
        if missing:
            raise JobError(f"{key}: columns {missing} are not in table {table}")
        decs = [decoder(cols[h].type) for h in header]
        rows = []
        batches: list[list] = []
        for rec in reader:
            if len(rec) != len(header):
                raise JobError(f"{key}: row {len(rows) + 2} has {len(rec)} cells, expected {len(header)}")
            rows.append([d(v) for d, v in zip(decs, rec)])
            if len(rows) >= chunk:
                batches.append(rows)
                rows = []
        if rows:
            batches.append(rows)
    except (zstandard.ZstdError, UnicodeDecodeError, csv.Error, ValueError) as e:
        raise JobError(f"{key}: corrupt backup: {e}") from e
    # Everything is decoded before the table is touched: a corrupt file
    # leaves the table as it was.
    if existing:
        db.command(f"TRUNCATE TABLE `{table}`")
    n = 0
    for b in batches:
        n += db.insert(table, header, b)
    log.info("restored %d rows into %s from %s", n, table, key)
    return n


def restore(cfg: Config, db: Database, store: ObjectStore | None = None, day: str | None = None,
            tables: list[str] | None = None, replace: bool = False) -> dict[str, int]:
    from ooni_common.schema import ensure_all

    s = BackupSettings.from_config(cfg)
    store = store if store is not None else backup_store(cfg)
    day = day or latest_day(store, s.prefix)
    if not DAY_RE.match(day):
        raise JobError(f"--date must be YYYYMMDD, got {day!r}")
    ensure_all(db)
    return {t: restore_table(db, store, t, object_key(s.prefix, day, t), s.chunk_rows, replace)
            for t in (tables or s.tables)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ooni-db-backup", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="configuration file (default: $OONI_CONF)")
    ap.add_argument("--db-uri", help="database URL (overrides CLICKHOUSE_URL)")
    ap.add_argument("--tables", help="comma-separated tables (default: DB_BACKUP_TABLES)")
    ap.add_argument("--restore", action="store_true", help="restore instead of backing up")
    ap.add_argument("--date", help="backup day YYYYMMDD to restore (default: the latest)")
    ap.add_argument("--replace", action="store_true",
                    help="with --restore: empty non-empty tables first")
    ap.add_argument("--stdout", action="store_true", help="log at DEBUG level")
    args = ap.parse_args(argv)

    def body(stack) -> int:
        over = {"CLICKHOUSE_URL": args.db_uri, "DB_BACKUP_TABLES": args.tables}
        cfg = load_config(args.config, over)
        db = open_db(cfg, stack, "ooni-db-backup", "db-backup")
        if args.restore:
            restore(cfg, db, day=args.date, replace=args.replace)
        else:
            run(cfg, db)
        return 0

    return run_command(UNIT, body, debug_level(args.stdout))


if __name__ == "__main__":
    raise SystemExit(main())
