"""/api/v1/aggregation over the whole history of a data directory filled by
gen_fastpath.py (axis_x=measurement_start_day, axis_y=probe_cc): refreshes
the daily summary first (timed), then starts the standalone process and
prints p50/p99 of the request, with the summary and, for comparison, once
or more without it (the raw fastpath FINAL scan).

    ./manage bench gen_fastpath --data-dir /tmp/bench100m --rows 100000000
    ./manage bench aggregation_bench --data-dir /tmp/bench100m

Target with 100M rows: p50 < 1 s.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import query_bench  # noqa: E402
from query_bench import Api, free_port  # noqa: E402


def start_server(data_dir: Path, port: int, log: Path, extra_env: dict[str, str]):
    """query_bench.start_server with extra configuration (it drops OONI_*
    variables from its own environment)."""
    real_popen = subprocess.Popen

    def popen(cmd, env=None, **kw):
        return real_popen(cmd, env={**(env or {}), **extra_env}, **kw)
    query_bench.subprocess.Popen = popen
    try:
        return query_bench.start_server(data_dir, port, log)
    finally:
        query_bench.subprocess.Popen = real_popen


def refresh_summary(data_dir: Path) -> None:
    """In a child process: chdb opens one data directory per process, and
    the server needs this one afterwards."""
    code = f"""
import sys, time
sys.path[:0] = {[str(REPO / d) for d in ("common", "api", "fastpath", "analysis")]!r}
from ooni_common.db import connect
from ooni_common.schema import ensure_all
from ooniapi.aggregation import summary
db = connect("chdb://{data_dir / 'db'}")
t0 = time.perf_counter(); ensure_all(db)
n = db.execute("SELECT count() FROM fastpath_day_touch")[0][0]
print(f"schema + day index: {{time.perf_counter() - t0:.1f}} s ({{n}} day rows)", flush=True)
t0 = time.perf_counter(); days = summary.refresh(db)
el = time.perf_counter() - t0
rows = db.execute("SELECT count() FROM fastpath_daily")[0][0]
print(f"summary refresh: {{days}} days in {{el:.1f}} s, {{rows:,}} summary rows", flush=True)
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--raw-requests", type=int, default=1)
    ap.add_argument("--no-refresh", action="store_true")
    args = ap.parse_args(argv)
    data_dir = args.data_dir.resolve()
    if not args.no_refresh:
        refresh_summary(data_dir)
    params = {"axis_x": "measurement_start_day", "axis_y": "probe_cc",
              "since": "2000-01-01", "until": "2100-01-01", "time_grain": "day"}
    ok = True
    for label, summary_on, n in (("summary", True, args.requests),
                                 ("raw FINAL", False, args.raw_requests)):
        if n <= 0:
            continue
        extra = {"OONI_AGGREGATION_SUMMARY": "true" if summary_on else "false",
                 "OONI_AGGREGATION_MAX_EXECUTION_TIME": "600"}
        port = free_port()
        log = Path(tempfile.mkdtemp(prefix="agg-bench-")) / "backend.log"
        p = start_server(data_dir, port, log, extra)
        try:
            api = Api(f"http://127.0.0.1:{port}")
            times, groups, total = [], 0, 0
            for _ in range(n):
                status, body, secs = api.get("/api/v1/aggregation", params)
                if status != 200:
                    raise SystemExit(f"HTTP {status}: {body[:300]!r}")
                doc = json.loads(body)
                groups = len(doc["result"])
                total = sum(r["measurement_count"] for r in doc["result"])
                times.append(secs)
                stats = doc.get("db_stats", {})
            times.sort()
            p50 = statistics.median(times)
            p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
            verdict = ""
            if summary_on:
                verdict = " OK" if p50 < 1 else " BELOW TARGET"
                ok &= p50 < 1
            print(f"{label:10s} {n:3d} requests: p50 {p50 * 1000:8.0f} ms  p99 {p99 * 1000:8.0f} ms"
                  f"  ({groups:,} groups, {total:,} measurements; engine read "
                  f"{stats.get('row_count', 0):,} rows, {stats.get('bytes', 0) / 2**20:,.0f} MiB)"
                  f"{verdict}", flush=True)
        finally:
            p.terminate()
            p.wait(60)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
