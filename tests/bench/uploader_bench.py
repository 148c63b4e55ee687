"""Uploader throughput: measurements archived per second.

Spools N real sample measurements (default 100,000) over closed hour
directories of several countries and tests, marks them handled as the
fastpath would, then times one uploader run into the file:// store and the
embedded database. Run: ./manage bench uploader_bench [--count N]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data" / "measurements"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--gzip-level", type=int, default=None)
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"sample measurements not found at {SHARED}", file=sys.stderr)
        return 2

    from analysis import schema, uploader
    from ooni_common.config import Config
    from ooni_common.db import connect
    from ooni_common.metrics import Metrics
    from ooni_common.spool import Spool

    posts = [json.dumps({"format": "json", "content": json.loads(p.read_bytes())}).encode()
             for p in sorted(SHARED.glob("*.json"))]
    with tempfile.TemporaryDirectory(prefix="uploader-bench-") as tmp:
        tmp = Path(tmp)
        over = {"DATA_DIR": str(tmp), "COLLECTOR_ID": "1", "STATSD_ENABLED": "false"}
        if args.gzip_level is not None:
            over["UPLOADER_GZIP_LEVEL"] = args.gzip_level
        cfg = Config(over)
        db = connect(f"chdb://{tmp / 'db'}")
        schema.ensure_schema(db)
        spool = Spool(cfg.spool_dir)
        hour0 = dt.datetime(2024, 3, 5, 0)
        ccs, tests = ["IT", "BR", "RU", "IR", "US"], ["webconnectivity", "telegram"]
        t0 = time.perf_counter()
        total_bytes = 0
        by_dir: dict[Path, list[str]] = {}
        for i in range(args.count):
            t = hour0 + dt.timedelta(hours=i % 12, microseconds=i)
            uid = f"{t:%Y%m%d%H%M%S.%f}_{ccs[i % 5]}_{tests[(i // 5) % 2]}_{i:016x}"
            p = spool.path_for(uid)
            if p.parent not in by_dir:
                p.parent.mkdir(parents=True, exist_ok=True)
                by_dir[p.parent] = []
            body = posts[i % len(posts)]
            p.write_bytes(body)  # setup only: no fsync per file
            by_dir[p.parent].append(uid)
            total_bytes += len(body)
        for uids in by_dir.values():
            spool.mark_handled(uids)
        print(f"spooled {args.count} measurements ({total_bytes / 1e6:.0f} MB) in "
              f"{len(by_dir)} hour dirs in {time.perf_counter() - t0:.1f} s")

        m = Metrics("ooni_api_uploader", enabled=False)
        t0 = time.perf_counter()
        stats = uploader.run(cfg, db, now=hour0 + dt.timedelta(days=1), metrics=m)
        elapsed = time.perf_counter() - t0
        rows = db.execute("SELECT count() FROM jsonl FINAL")[0][0]
        archive = sum(f.stat().st_size for f in (tmp / "archive").rglob("*") if f.is_file())
        assert stats.measurements == args.count and rows == args.count, (stats, rows)
        assert not any(cfg.spool_dir.joinpath("incoming").iterdir())
        for name in ("fill_postcan", "upload_measurement", "update_db_table"):
            n, ms = m.timers[f"ooni_api_uploader.{name}"]
            print(f"  {name}: {ms / 1000:.1f} s over {n} cans")
        print(f"archived {stats.measurements} measurements in {stats.cans} cans "
              f"({archive / 1e6:.0f} MB compressed) in {elapsed:.1f} s")
        print(f"uploader throughput: {stats.measurements / elapsed:.0f} measurements/s "
              f"(target >= 2000/s; loaded shared machine)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
