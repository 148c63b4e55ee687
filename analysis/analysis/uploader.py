"""Measurement uploader (``ooni-api-uploader``, hourly).

Turns closed hour directories of the spool into postcans (tar.gz of the raw
``.post`` uploads) and JSONL.gz files (one unwrapped measurement per line,
``{}`` for unparseable posts), uploads both to the archive under the public
bucket layout, records one ``jsonl`` row per measurement, and only then
deletes the raw files.

Crash safety rests on a manifest per can, kept in the hour directory itself:

1. ``.n<id>.<k>.cans`` lists the uids of can ``k`` (written atomically before
   anything else, so the batch and its file names are fixed);
2. the can files are built from the listed spool files, uploaded (a re-upload
   overwrites the same keys) and the rows inserted (``jsonl`` is a
   ReplacingMergeTree keyed by (report_id, input, measurement_uid), so a
   re-insert is hidden by FINAL);
3. the manifest is renamed to ``.n<id>.<k>.done``; only then are the raw
   files deleted.

A run killed anywhere leaves either a pending manifest, whose spool files are
all still there and which the next run redoes from step 2, or a done one,
whose deletions the next run finishes. Done manifests stay until the whole
hour directory is removed, so a later can of the same hour (measurements
waiting for the fastpath) gets the next free ``k`` instead of overwriting.

The fastpath marks each entry it has handled (``.handled``); unmarked entries
are archived only after a grace period (default 24 h), counted in the
``unhandled_archived`` metric, so a fastpath outage never leaves archived
measurements unscored.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import io
import logging
import os
import shutil
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import ujson
import yaml

from ooni_common.archive import JSONL_SUFFIX, POSTCAN_SUFFIX, postcan_member, raw_hour_prefix
from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.durable import fsync_dir, write_atomic
from ooni_common.lock import DirLock, LockHeld
from ooni_common.metrics import Metrics, from_config, job_metrics
from ooni_common.spool import Spool
from ooni_common.store import ObjectStore, open_store
from ooni_common.timeutil import utcnow

from .progress import Progress
from .runner import JobError, debug_level, load_config, open_db, run_command

UNIT = "ooni_api_uploader"
log = logging.getLogger(UNIT)

PENDING = ".cans"
DONE = ".done"


@dataclass(frozen=True)
class UploaderSettings:
    spool_dir: Path
    collector_id: str
    # An hour directory is closed this long after its hour ended.
    close_delay: dt.timedelta = dt.timedelta(seconds=60)
    # Entries the fastpath has not marked wait this long after their hour.
    unhandled_grace: dt.timedelta = dt.timedelta(hours=24)
    max_can_bytes: int = 64 * 1024 * 1024
    gzip_level: int = 3  # zlib 3: twice as fast as 6 for ~10% more bytes
    # Cans are independent: building and uploading several at once overlaps
    # compression (zlib releases the GIL), disk and network waits.
    workers: int = 2

    @classmethod
    def from_config(cls, cfg: Config) -> "UploaderSettings":
        cid = cfg.collector_id
        if not cid:
            raise JobError("COLLECTOR_ID is not set")
        return cls(
            spool_dir=cfg.spool_dir,
            collector_id=cid,
            close_delay=dt.timedelta(seconds=cfg.get_float("UPLOADER_CLOSE_DELAY", 60)),
            unhandled_grace=dt.timedelta(seconds=cfg.get_float("UPLOADER_UNHANDLED_GRACE", 86400)),
            max_can_bytes=cfg.get_int("UPLOADER_MAX_CAN_BYTES", 64 * 1024 * 1024),
            gzip_level=cfg.get_int("UPLOADER_GZIP_LEVEL", 3),
            workers=max(1, cfg.get_int("UPLOADER_WORKERS", 2)),
        )


@dataclass(frozen=True)
class HourDir:
    path: Path
    hour: dt.datetime
    cc: str
    testname: str

    @classmethod
    def parse(cls, path: Path) -> "HourDir | None":
        parts = path.name.split("_")
        if len(parts) != 3 or len(parts[0]) != 10 or not parts[0].isdigit():
            return None
        try:
            hour = dt.datetime.strptime(parts[0], "%Y%m%d%H")
        except ValueError:
            return None
        return cls(path, hour, parts[1], parts[2])

    @property
    def key_prefix(self) -> str:
        return raw_hour_prefix(self.hour, self.cc, self.testname)


@dataclass(frozen=True)
class Can:
    """One postcan + JSONL pair, described by its manifest."""
    hour_dir: HourDir
    collector_id: str
    k: int
    uids: tuple[str, ...]

    @property
    def base(self) -> str:
        return f"{self.hour_dir.path.name}.n{self.collector_id}.{self.k}"

    @property
    def tag(self) -> str:
        return f".n{self.collector_id}.{self.k}"

    @property
    def pending_manifest(self) -> Path:
        return self.hour_dir.path / (self.tag + PENDING)

    @property
    def done_manifest(self) -> Path:
        return self.hour_dir.path / (self.tag + DONE)

    @property
    def postcan_key(self) -> str:
        return self.hour_dir.key_prefix + self.base + POSTCAN_SUFFIX

    @property
    def jsonl_key(self) -> str:
        return self.hour_dir.key_prefix + self.base + JSONL_SUFFIX

    @property
    def local_postcan(self) -> Path:
        return self.hour_dir.path / f".{self.base}{POSTCAN_SUFFIX}"

    @property
    def local_jsonl(self) -> Path:
        return self.hour_dir.path / f".{self.base}{JSONL_SUFFIX}"


@dataclass(frozen=True)
class JsonlRow:
    report_id: str
    input: str
    s3path: str
    linenum: int
    measurement_uid: str
    date: dt.date
    source: str


JSONL_COLUMNS = ("report_id", "input", "s3path", "linenum", "measurement_uid", "date", "source")


@dataclass
class UploadStats:
    measurements: int = 0
    cans: int = 0
    bytes_in: int = 0
    unhandled_archived: int = 0
    unhandled_waiting: int = 0
    hour_dirs_removed: int = 0
    unparseable: int = 0
    resumed: int = 0
    missing: list[str] = field(default_factory=list)


# --- measurement unwrapping -------------------------------------------------

def unwrap(raw: bytes) -> dict | None:
    """The measurement inside a probe upload ``{"format", "content"}``;
    None when it cannot be parsed."""
    try:
        post = ujson.loads(raw)
    except (ValueError, TypeError):
        return None
    if not isinstance(post, dict):
        return None
    fmt = str(post.get("format") or "").lower()
    content = post.get("content")
    if fmt == "json":
        if isinstance(content, str):
            try:
                content = ujson.loads(content)
            except ValueError:
                return None
        return content if isinstance(content, dict) else None
    if fmt == "yaml" and isinstance(content, str):
        try:
            doc = yaml.safe_load(content)
        except yaml.YAMLError:
            return None
        return doc if isinstance(doc, dict) else None
    return None


def dump_line(msm: dict) -> bytes:
    try:
        return ujson.dumps(msm, ensure_ascii=False, escape_forward_slashes=False,
                           default=str).encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates from \\ud8xx escapes cannot be UTF-8: keep them escaped.
        return ujson.dumps(msm, ensure_ascii=True, escape_forward_slashes=False,
                           default=str).encode("ascii")


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return ujson.dumps(v, ensure_ascii=False, escape_forward_slashes=False, default=str)


# --- manifests ----------------------------------------------------------------

def _manifests(hd: HourDir, collector_id: str) -> tuple[list[Can], list[Can]]:
    """(pending, done) cans of this collector in an hour directory."""
    pending, done = [], []
    prefix = f".n{collector_id}."
    try:
        names = os.listdir(hd.path)
    except FileNotFoundError:
        return [], []
    for n in names:
        if not n.startswith(prefix):
            continue
        for suffix, out in ((PENDING, pending), (DONE, done)):
            if n.endswith(suffix):
                k = n[len(prefix):-len(suffix)]
                if k.isdigit():
                    uids = tuple(u for u in (hd.path / n).read_text().split("\n") if u)
                    out.append(Can(hd, collector_id, int(k), uids))
    pending.sort(key=lambda c: c.k)
    done.sort(key=lambda c: c.k)
    return pending, done


def plan_cans(hd: HourDir, collector_id: str, uids: list[str], first_k: int,
              max_bytes: int) -> list[Can]:
    """Split uids (sorted) into cans of at most ``max_bytes`` of raw posts."""
    cans, cur, size, k = [], [], 0, first_k
    for uid in uids:
        try:
            n = (hd.path / f"{uid}.post").stat().st_size
        except FileNotFoundError:
            continue
        if cur and size + n > max_bytes:
            cans.append(Can(hd, collector_id, k, tuple(cur)))
            cur, size, k = [], 0, k + 1
        cur.append(uid)
        size += n
    if cur:
        cans.append(Can(hd, collector_id, k, tuple(cur)))
    return cans


# --- the steps of one can -------------------------------------------------------

@dataclass
class CanResult:
    rows: list[JsonlRow] = field(default_factory=list)
    bytes_in: int = 0
    unparseable: int = 0
    missing: list[str] = field(default_factory=list)


def build_can(can: Can, gzip_level: int, progress: Progress | None = None) -> CanResult:
    """Write the postcan and the JSONL file next to the spool files; the
    order of the JSONL lines is the order of the tar members."""
    res = CanResult()
    rows = res.rows
    hd = can.hour_dir
    date = hd.hour.date()
    linenum = 0
    with open(can.local_postcan, "wb") as raw_tar, \
            gzip.GzipFile(fileobj=raw_tar, mode="wb", compresslevel=gzip_level, mtime=0) as gz_tar, \
            tarfile.open(fileobj=gz_tar, mode="w", format=tarfile.PAX_FORMAT) as tar, \
            open(can.local_jsonl, "wb") as raw_jl, \
            gzip.GzipFile(fileobj=raw_jl, mode="wb", compresslevel=gzip_level, mtime=0) as jl:
        for uid in can.uids:
            p = hd.path / f"{uid}.post"
            try:
                with open(p, "rb") as f:
                    body = f.read()
                    mtime = os.fstat(f.fileno()).st_mtime
            except FileNotFoundError:
                # Spool files of a pending manifest are deleted only after it
                # is done: a missing one was removed by hand. Archive the rest.
                log.error("spool file vanished before archiving: %s", p)
                res.missing.append(uid)
                continue
            ti = tarfile.TarInfo(postcan_member(hd.path.name, uid))
            ti.size = len(body)
            ti.mtime = int(mtime)
            ti.mode = 0o644
            tar.addfile(ti, io.BytesIO(body))
            msm = unwrap(body)
            if msm is None:
                log.error("unable to parse measurement %s", uid)
                res.unparseable += 1
                jl.write(b"{}\n")
            else:
                jl.write(dump_line(msm) + b"\n")
                rows.append(JsonlRow(
                    report_id=_text(msm.get("report_id")), input=_text(msm.get("input")),
                    s3path=can.jsonl_key, linenum=linenum, measurement_uid=uid,
                    date=date, source=can.postcan_key))
            linenum += 1
            res.bytes_in += len(body)
            if progress:
                progress.update()
        tar.close()
    for p in (can.local_postcan, can.local_jsonl):
        with open(p, "rb+") as f:
            os.fsync(f.fileno())
    return res


def upload_can(can: Can, store: ObjectStore) -> None:
    # The JSONL file goes last: a row may point at it only once it exists.
    store.put_file(can.postcan_key, can.local_postcan)
    store.put_file(can.jsonl_key, can.local_jsonl)


def insert_rows(db: Database, rows: list[JsonlRow]) -> None:
    db.insert("jsonl", JSONL_COLUMNS,
              [(r.report_id, r.input, r.s3path, r.linenum, r.measurement_uid, r.date, r.source)
               for r in rows])


def mark_done(can: Can) -> None:
    os.rename(can.pending_manifest, can.done_manifest)
    fsync_dir(can.hour_dir.path)


def delete_posts(can: Can) -> None:
    for uid in can.uids:
        try:
            os.unlink(can.hour_dir.path / f"{uid}.post")
        except FileNotFoundError:
            pass
    for p in (can.local_postcan, can.local_jsonl):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


# --- the run ------------------------------------------------------------------

class Uploader:
    def __init__(self, settings: UploaderSettings, db: Database, store: ObjectStore,
                 metrics: Metrics):
        self.s = settings
        self.db = db
        self.store = store
        self.metrics = metrics
        self.spool = Spool(settings.spool_dir)
        self._stats_lock = threading.Lock()

    def closed_hour_dirs(self, now: dt.datetime) -> list[HourDir]:
        out = []
        for p in self.spool.hour_dirs():
            hd = HourDir.parse(p)
            if hd is None:
                continue
            if hd.hour + dt.timedelta(hours=1) + self.s.close_delay <= now:
                out.append(hd)
        return out

    def process_can(self, can: Can, stats: UploadStats, progress: Progress | None) -> None:
        m = self.metrics
        with m.timer("fill_postcan"):
            res = build_can(can, self.s.gzip_level, progress)
        with m.timer("upload_measurement"):
            upload_can(can, self.store)
        with m.timer("update_db_table"):
            insert_rows(self.db, res.rows)
        mark_done(can)
        delete_posts(can)
        n = len(can.uids) - len(res.missing)
        with self._stats_lock:
            stats.measurements += n
            stats.cans += 1
            stats.bytes_in += res.bytes_in
            stats.unparseable += res.unparseable
            stats.missing += res.missing
        m.incr("msmt_count", n)
        m.incr("postcan_count")
        log.info("archived %d measurements as %s", n, can.jsonl_key)

    def plan_hour_dir(self, hd: HourDir, now: dt.datetime, stats: UploadStats) -> list[Can]:
        """The cans to process for one hour directory: unfinished ones of an
        earlier run first, then new ones (their manifests written here)."""
        pending, done = _manifests(hd, self.s.collector_id)
        for can in done:  # killed while deleting: finish it
            delete_posts(can)
        for can in pending:
            log.info("resuming %s", can.base)
        stats.resumed += len(pending)
        cans = list(pending)
        taken = {u for c in pending + done for u in c.uids}
        entries = [e.uid for e in self.spool.entries(hd.path) if e.uid not in taken]
        if not entries:
            return cans
        expired = hd.hour + dt.timedelta(hours=1) + self.s.unhandled_grace <= now
        handled = self.spool.handled(hd.path)
        ready = [u for u in entries if u in handled or expired]
        stats.unhandled_waiting += len(entries) - len(ready)
        if not ready:
            return cans
        next_k = max((c.k for c in pending + done), default=-1) + 1
        for can in plan_cans(hd, self.s.collector_id, ready, next_k, self.s.max_can_bytes):
            write_atomic(can.pending_manifest, "".join(u + "\n" for u in can.uids).encode())
            cans.append(can)
        unhandled = sum(1 for u in ready if u not in handled)
        if unhandled:
            log.warning("archiving %d measurements of %s that the fastpath never "
                        "marked as handled", unhandled, hd.path.name)
            stats.unhandled_archived += unhandled
            self.metrics.incr("unhandled_archived", unhandled)
        return cans

    def _remove_if_empty(self, hd: HourDir, stats: UploadStats) -> None:
        # Stale ``.post.tmp`` files of a closed hour are writes the API never
        # acknowledged: they go with the directory.
        if any(n.endswith(".post") or n.endswith(PENDING) for n in os.listdir(hd.path)):
            return
        shutil.rmtree(hd.path)
        stats.hour_dirs_removed += 1

    def run(self, now: dt.datetime | None = None) -> UploadStats:
        now = now or utcnow()
        stats = UploadStats()
        dirs = self.closed_hour_dirs(now)
        cans = [c for hd in dirs for c in self.plan_hour_dir(hd, now, stats)]
        progress = Progress("uploader", sum(len(c.uids) for c in cans))
        t0 = time.perf_counter()
        try:
            if self.s.workers == 1 or len(cans) < 2:
                for can in cans:
                    self.process_can(can, stats, progress)
            else:
                with ThreadPoolExecutor(self.s.workers, thread_name_prefix="uploader") as pool:
                    futures = [pool.submit(self.process_can, c, stats, progress) for c in cans]
                    try:
                        for f in futures:
                            f.result()
                    finally:
                        for f in futures:
                            f.cancel()
            for hd in dirs:
                self._remove_if_empty(hd, stats)
        finally:
            progress.close()
            self.metrics.timing("total_run_time", (time.perf_counter() - t0) * 1000)
            self.metrics.gauge("unhandled_waiting", stats.unhandled_waiting)
        return stats


def run(cfg: Config, db: Database, store: ObjectStore | None = None,
        now: dt.datetime | None = None, metrics: Metrics | None = None) -> UploadStats:
    settings = UploaderSettings.from_config(cfg)
    store = store if store is not None else open_store(cfg)
    metrics = metrics or from_config(cfg, UNIT)
    try:
        lock = DirLock(settings.spool_dir / "uploader", "ooni-api-uploader").acquire()
    except LockHeld as e:
        raise JobError(f"another uploader is running on this spool: {e}") from None
    try:
        stats = Uploader(settings, db, store, metrics).run(now)
    except Exception:
        # A failed run is otherwise invisible to the metrics (the timer and
        # gauge above are sent either way).
        metrics.incr("run_failed")
        raise
    finally:
        lock.release()
    log.info("uploaded %d measurements in %d cans (%d resumed, %d unparseable, "
             "%d waiting for the fastpath)", stats.measurements, stats.cans, stats.resumed,
             stats.unparseable, stats.unhandled_waiting)
    return stats


def run_job(cfg: Config, db: Database, metrics_root: Metrics | None = None) -> None:
    run(cfg, db, metrics=job_metrics(metrics_root, UNIT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ooni-api-uploader", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="configuration file (default: $OONI_CONF)")
    ap.add_argument("--stdout", action="store_true", help="log at DEBUG level")
    args = ap.parse_args(argv)

    def body(stack) -> int:
        cfg = load_config(args.config)
        db = open_db(cfg, stack, "ooni-api-uploader", "uploader")
        run(cfg, db)
        return 0

    return run_command(UNIT, body, debug_level(args.stdout))


if __name__ == "__main__":
    raise SystemExit(main())
