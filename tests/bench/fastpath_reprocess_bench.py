"""Fastpath benchmark (c): end-to-end reprocessing of one day of JSONL files.

  ./manage bench fastpath_reprocess_bench [COUNT]     (also part c of fastpath_bench)

Builds, in a temporary directory, a file:// archive laid out as the uploader
writes it (one ``.jsonl.gz`` per hour under ``raw/<YYYYMMDD>/<HH>/<CC>/<test>/``)
holding COUNT measurements (default 200,000) made by replicating the shared
JSON samples, with a fresh uid for each in the ``jsonl`` table; then runs
``fastpath.reprocess`` over that day into a fresh embedded ClickHouse with
the worker pool on every core, and prints measurements/s (target >= 5,000/s).
Bounded by COUNT; the figures depend on the machine's load.
"""
from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
DAY = dt.date(2024, 3, 5)
HOURS = 24


def build_archive(root: Path, db, count: int) -> int:
    """Writes the JSONL files and their jsonl rows; returns the total."""
    from ooni_common.store import FileStore
    store = FileStore(root)
    lines = []
    for p in sorted((SHARED / "measurements").glob("*.json")):
        msm = json.loads(p.read_bytes())
        # Start times on the day itself: the wrong-date check leaves them be.
        msm["measurement_start_time"] = msm["test_start_time"] = f"{DAY} 10:00:00"
        lines.append(json.dumps(msm, separators=(",", ":")).encode() + b"\n")
    cols = ["report_id", "input", "s3path", "linenum", "measurement_uid", "date", "source"]
    per_hour = -(-count // HOURS)
    n = 0
    for h in range(HOURS):
        k = min(per_hour, count - n)
        if k <= 0:
            break
        hour = f"{DAY:%Y%m%d}{h:02d}"
        key = f"raw/{DAY:%Y%m%d}/{h:02d}/IT/webconnectivity/{hour}_IT_webconnectivity.n1.0.jsonl.gz"
        body = b"".join(lines[(n + i) % len(lines)] for i in range(k))
        store.put_bytes(key, gzip.compress(body, compresslevel=1))
        rows = [("", "", key, i, f"{hour}{(n + i) // 1000000 % 60:02d}00.{(n + i) % 1000000:06d}"
                 f"_IT_webconnectivity_{n + i:016x}", DAY, "")
                for i in range(k)]
        db.insert("jsonl", cols, rows)
        n += k
    return n


def run(count: int = 200_000) -> dict:
    from fastpath.reprocess import ReprocessOptions, reprocess
    from ooni_common.config import Config
    from ooni_common.db import connect
    from ooni_common.metrics import Metrics
    from ooni_common.schema import ensure_all

    workers = os.cpu_count() or 2
    with tempfile.TemporaryDirectory(prefix="fastpath-bench-c-") as tmp:
        tmp = Path(tmp)
        db = connect(f"chdb://{tmp / 'db'}")
        ensure_all(db)
        for kind in ("dns", "http"):
            db.insert_dicts(f"fingerprints_{kind}", json.loads(
                (SHARED / "fingerprints" / f"fingerprints_{kind}.json").read_text()))
        t0 = time.perf_counter()
        total = build_archive(tmp / "archive", db, count)
        print(f"(c) built a file:// archive day of {total:,} measurements "
              f"({len(list((tmp / 'archive').rglob('*.jsonl.gz')))} JSONL files) "
              f"in {time.perf_counter() - t0:.1f}s")
        cfg = Config({"DATA_DIR": str(tmp), "ARCHIVE_URL": f"file://{tmp / 'archive'}",
                      "CLICKHOUSE_URL": db.url})
        opts = ReprocessOptions(start_day=DAY, end_day=DAY + dt.timedelta(days=1),
                                workers=workers, progress=sys.stderr.isatty())
        t0 = time.perf_counter()
        stats = reprocess(cfg, db, Metrics("fastpath", enabled=False), opts)
        elapsed = time.perf_counter() - t0
        rows = db.execute("SELECT count() FROM fastpath")[0][0]
    rate = stats.measurements / elapsed
    print(f"(c) reprocessing JSONL -> embedded ClickHouse, {workers} worker processes: "
          f"{rate:,.0f} msmt/s ({stats.measurements:,} in {elapsed:.1f}s; {rows:,} rows "
          f"written, {stats.errors} errors, {stats.failed_rows} failed rows) "
          f"(target >= 5,000/s)")
    if rows != stats.scored:
        print(f"    warning: {stats.scored:,} scored but {rows:,} rows in the table")
    return {"c_msmt_per_s": rate}


if __name__ == "__main__":
    if not SHARED.is_dir():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        raise SystemExit(2)
    print("figures taken on a shared, loaded machine")
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
