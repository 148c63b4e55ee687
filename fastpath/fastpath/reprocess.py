"""Reprocessing of archived measurements (§10.2): ``fastpath --start-day D1
--end-day D2`` re-scores every measurement of the archive for the days from
D1 (included) to D2 (excluded, capped at today UTC) and upserts the rows.

Sources per day, in the archive of ``ooni_common.store.open_store`` (S3 or
``file://``):

* ``raw/<YYYYMMDD>/<HH>/<CC>/<testname>/<base>.jsonl.gz`` written by the
  uploader: one unwrapped measurement per line; the uid of line N comes from
  the ``jsonl`` table (s3path, linenum), else from member N of the sibling
  postcan ``<base>.tar.gz``;
* postcans ``<base>.tar.gz`` without a usable JSONL sibling: each ``.post``
  member is a post, its uid the member name;
* legacy cans ``canned/<YYYY-MM-DD>/*.{tar.lz4,json.lz4,yaml.lz4}``: each
  measurement gets its trivial id (§8.4).

Files are read into memory one at a time (no disk cache); measurements go to
the worker pool on all cores in bounded batches, rows to the batched writer
(10 000 rows per INSERT; a failed batch is split, never dropped whole). An
error inside one file is logged and the next file is processed.

Deviation: posts whose format is ``yaml`` are normalized and scored (the
legacy S3 feeder skipped them), since the scoring core reads YAML posts.
"""
from __future__ import annotations

import datetime as dt
import gzip
import logging
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import ujson

from ooni_common.archive import (
    JSONL_SUFFIX,
    POSTCAN_SUFFIX,
    jsonl_key_of,
    postcan_key_of,
    postcan_posts,
    raw_day_prefix,
    raw_key_cc_testname,
)
from ooni_common.config import Config
from ooni_common.db import Database, DatabaseError
from ooni_common.metrics import Metrics
from ooni_common.store import ObjectInfo, ObjectStore, StoreError, open_store

from .fingerprint_snapshot import FingerprintPublisher
from .pool import WorkItem, make_pool
from .rows import FASTPATH_COLUMNS, OBS_OPENVPN_COLUMNS
from .score_files import iter_blob
from .writer import RowWriter

log = logging.getLogger("fastpath")

TASK_ITEMS = 250


def parse_day(s: str) -> dt.date:
    """``YYYY-MM-DD``, single-digit month and day accepted."""
    try:
        y, m, d = (int(x) for x in s.strip().split("-"))
        return dt.date(y, m, d)
    except (ValueError, AttributeError):
        raise ValueError(f"invalid day {s!r}: expected YYYY-MM-DD") from None


@dataclass
class ReprocessOptions:
    start_day: dt.date
    end_day: dt.date
    write_to_db: bool = True
    stop_after: int | None = None
    ccs: list[str] = field(default_factory=list)
    testnames: list[str] = field(default_factory=list)
    workers: int = 2
    fingerprints_dns: str | None = None
    fingerprints_http: str | None = None
    progress: bool = False
    batch_rows: int = 10000


@dataclass
class ReprocessStats:
    days: int = 0
    files: int = 0
    errors_files: int = 0
    measurements: int = 0
    missing_uid: int = 0
    scored: int = 0
    discarded: int = 0
    errors: int = 0
    written: int = 0
    failed_rows: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.measurements / self.seconds if self.seconds else 0.0
        return (f"{self.days} days, {self.files} files ({self.errors_files} failed), "
                f"{self.measurements} measurements in {self.seconds:.1f}s ({rate:.0f}/s): "
                f"{self.scored} scored, {self.discarded} discarded, {self.errors} errors, "
                f"{self.written} rows written, {self.failed_rows} rows failed, "
                f"{self.missing_uid} lines without uid")


@dataclass(frozen=True)
class ArchiveFile:
    key: str
    kind: str                    # "jsonl" | "postcan" | "legacy"
    sibling: str | None = None   # postcan of a JSONL file


def days_to_process(start: dt.date, end: dt.date, today: dt.date | None = None) -> list[dt.date]:
    today = today or dt.datetime.now(dt.timezone.utc).date()
    end = min(end, today)
    out, d = [], start
    while d < end:
        out.append(d)
        d += dt.timedelta(days=1)
    return out


def _key_matches(key: str, ccs: list[str], testnames: list[str]) -> bool:
    fields = raw_key_cc_testname(key)
    if fields is None:
        return False
    cc, testname = fields
    return (not ccs or cc.upper() in ccs) and (not testnames or testname in testnames)


def list_day(store: ObjectStore, day: dt.date, ccs: list[str] | None = None,
             testnames: list[str] | None = None) -> list[ArchiveFile]:
    ccs, testnames = ccs or [], testnames or []
    objs: dict[str, ObjectInfo] = {}
    for o in store.list(raw_day_prefix(day)):
        if o.size > 0 and _key_matches(o.key, ccs, testnames):
            objs[o.key] = o
    out = []
    for key in sorted(objs):
        if key.endswith(JSONL_SUFFIX):
            sib = postcan_key_of(key)
            out.append(ArchiveFile(key, "jsonl", sib if sib in objs else None))
        elif key.endswith(POSTCAN_SUFFIX):
            if jsonl_key_of(key) not in objs:
                out.append(ArchiveFile(key, "postcan"))
    if not ccs and not testnames:
        for o in store.list(f"canned/{day:%Y-%m-%d}/"):
            if o.size > 0 and o.key.endswith((".tar.lz4", ".json.lz4", ".yaml.lz4")):
                out.append(ArchiveFile(o.key, "legacy"))
    return out


# --- readers ------------------------------------------------------------------

def jsonl_uids_from_db(db: Database | None, key: str) -> dict[int, str]:
    if db is None:
        return {}
    try:
        rows = db.execute("SELECT linenum, measurement_uid FROM jsonl WHERE s3path = {p:String}",
                          {"p": key})
    except DatabaseError as e:
        log.warning("cannot read jsonl rows for %s: %s", key, e)
        return {}
    return {int(n): u for n, u in rows if u}


class _Reader:
    def __init__(self, store: ObjectStore, db: Database | None, stats: ReprocessStats):
        self.store = store
        self.db = db
        self.stats = stats

    def items(self, f: ArchiveFile) -> Iterator[WorkItem]:
        if f.kind == "jsonl":
            yield from self._jsonl(f)
        elif f.kind == "postcan":
            for uid, body in postcan_posts(self.store.get_bytes(f.key)):
                yield uid, body
        else:
            yield from self._legacy(f)

    def _jsonl(self, f: ArchiveFile) -> Iterator[WorkItem]:
        lines = gzip.decompress(self.store.get_bytes(f.key)).split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        uids = jsonl_uids_from_db(self.db, f.key)
        if len(uids) < len(lines) and f.sibling:
            for n, (uid, _) in enumerate(postcan_posts(self.store.get_bytes(f.sibling))):
                uids.setdefault(n, uid)
        for n, line in enumerate(lines):
            uid = uids.get(n)
            if uid is None:
                # e.g. a "{}" line for a post the uploader could not parse
                self.stats.missing_uid += 1
                continue
            yield uid, line

    def _legacy(self, f: ArchiveFile) -> Iterator[WorkItem]:
        # Legacy cans hold many formats; the scoring-CLI reader knows them all
        # and gives each measurement its trivial id.
        for raw, doc, uid in iter_blob(self.store.get_bytes(f.key), f.key.rsplit("/", 1)[-1]):
            yield uid, raw if raw is not None else ujson.dumps(doc).encode()


# --- progress -----------------------------------------------------------------

class _ProgressLine:
    def __init__(self, stats: ReprocessStats, ndays: int, metrics: Metrics, enabled: bool):
        self.stats = stats
        self.ndays = ndays
        self.metrics = metrics
        self.enabled = enabled
        self.t0 = time.time()
        self.day_idx = 0
        self.file_idx = 0
        self.files_in_day = 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fastpath-progress", daemon=True)

    def eta(self) -> float:
        """§10.2: t0 + elapsed x total_days / (days_done + (file+1)/files_in_day)."""
        done = self.day_idx + (self.file_idx + 1) / max(1, self.files_in_day)
        elapsed = time.time() - self.t0
        return self.t0 + elapsed * self.ndays / done if done else self.t0

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.draw()

    def draw(self, end: str = "") -> None:
        s = self.stats
        elapsed = max(1e-9, time.time() - self.t0)
        self.metrics.child("s3feeder").gauge("process_s3_measurements_eta", self.eta())
        if self.enabled:
            sys.stderr.write(
                f"\rday {min(self.day_idx + 1, self.ndays)}/{self.ndays} "
                f"file {self.file_idx + 1}/{self.files_in_day}: {s.measurements} measurements "
                f"({s.measurements / elapsed:.0f}/s), {s.errors} errors\x1b[K{end}")
            sys.stderr.flush()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.draw("\n")


# --- the run ------------------------------------------------------------------

def reprocess(cfg: Config, db: Database | None, metrics: Metrics, opts: ReprocessOptions,
              store: ObjectStore | None = None) -> ReprocessStats:
    store = store or open_store(cfg)
    stats = ReprocessStats()
    days = days_to_process(opts.start_day, opts.end_day)
    if not days:
        log.info("nothing to reprocess between %s and %s", opts.start_day, opts.end_day)
        return stats
    t0 = time.monotonic()
    writer = RowWriter(db, metrics, fastpath_columns=FASTPATH_COLUMNS,
                       openvpn_columns=OBS_OPENVPN_COLUMNS, batch_rows=opts.batch_rows,
                       flush_interval=2.0, write=opts.write_to_db and db is not None)
    pool = make_pool(opts.workers, writer.add, max_pending=2 * max(1, opts.workers) + 1,
                     build_row=opts.write_to_db, metrics=metrics)
    with tempfile.TemporaryDirectory(prefix="fastpath-fingerprints-") as fps_dir:
        publisher = FingerprintPublisher(db, Path(fps_dir))
        if opts.fingerprints_dns and opts.fingerprints_http:
            publisher.publish_files(opts.fingerprints_dns, opts.fingerprints_http)
        else:
            # §5.3: a reprocessing run loads the fingerprints once.
            publisher.refresh()
        pool.set_fingerprints(publisher.current)
        writer.start()
        pool.start()
        progress = _ProgressLine(stats, len(days), metrics, opts.progress)
        progress.start()
        reader = _Reader(store, db, stats)
        try:
            _feed(days, store, reader, pool, opts, stats, progress, metrics)
        finally:
            pool.stop(timeout=600)
            writer.stop(timeout=600)
            progress.stop()
    c = writer.counts
    stats.scored, stats.discarded, stats.errors = c["scored"], c["discarded"], c["error"]
    stats.written, stats.failed_rows = c["written"], c["failed_rows"]
    stats.seconds = time.monotonic() - t0
    log.info("reprocessing done: %s", stats.summary())
    return stats


def _feed(days, store, reader: _Reader, pool, opts: ReprocessOptions, stats: ReprocessStats,
          progress: _ProgressLine, metrics: Metrics) -> None:
    s3m = metrics.child("s3feeder")
    left = opts.stop_after
    for di, day in enumerate(days):
        progress.day_idx = di
        try:
            with s3m.timer("fetch_cans"):
                files = list_day(store, day, opts.ccs, opts.testnames)
        except StoreError as e:
            log.error("cannot list %s: %s", day, e)
            stats.errors_files += 1
            continue
        progress.files_in_day = max(1, len(files))
        stats.days += 1
        for fi, f in enumerate(files):
            progress.file_idx = fi
            batch: list[WorkItem] = []
            try:
                for item in reader.items(f):
                    batch.append(item)
                    if left is not None:
                        left -= 1
                    if len(batch) >= TASK_ITEMS or left == 0:
                        pool.submit(batch)
                        stats.measurements += len(batch)
                        batch = []
                    if left == 0:
                        break
            except Exception as e:  # StoreError, tarfile/gzip/lz4 errors...
                log.error("skipping the rest of %s: %s", f.key, e)
                stats.errors_files += 1
            if batch:
                pool.submit(batch)
                stats.measurements += len(batch)
            stats.files += 1
            if left == 0:
                log.info("stopping after %d measurements", opts.stop_after)
                return
