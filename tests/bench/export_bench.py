"""Export throughput through the HTTP API (/api/v1/measurements/export) over
a data directory filled by gen_fastpath.py: starts the standalone process
(``ooni-backend run``) and streams the whole table in each format, printing
rows/s, bytes and the server's peak RSS.

    ./manage bench gen_fastpath --data-dir /tmp/bench --rows 10000000
    ./manage bench export_bench --data-dir /tmp/bench

Targets with 10M rows: >= 200k rows/s JSONL, >= 500k rows/s Parquet.
"""
from __future__ import annotations

import argparse
import http.client
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from query_bench import free_port, start_server  # noqa: E402

TARGETS = {"jsonl": 200_000, "parquet": 500_000, "csv": None}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def export(port: int, fmt: str, query: str, out: Path | None, gzip: bool = False
           ) -> tuple[int, int, float]:
    """(rows, bytes, seconds) of one export, read in 1 MiB chunks."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    t0 = time.perf_counter()
    c.request("GET", f"/api/v1/measurements/export?format={fmt}&{query}", headers=headers)
    r = c.getresponse()
    if r.status != 200:
        raise SystemExit(f"export {fmt}: HTTP {r.status}: {r.read()[:300]!r}")
    n_bytes = newlines = 0
    f = out.open("wb") if out else None
    unzip = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
    while True:
        chunk = r.read(1 << 20)
        if not chunk:
            break
        n_bytes += len(chunk)
        if unzip is not None:
            newlines += unzip.decompress(chunk).count(b"\n")
        elif fmt != "parquet":
            newlines += chunk.count(b"\n")
        if f:
            f.write(chunk)
    secs = time.perf_counter() - t0
    c.close()
    if f:
        f.close()
    if fmt == "parquet":
        import pyarrow.parquet as pq
        rows = pq.ParquetFile(out).metadata.num_rows
    else:
        rows = newlines - (1 if fmt == "csv" else 0)
    return rows, n_bytes, secs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--since", default="2000-01-01")
    ap.add_argument("--until", default="2100-01-01")
    ap.add_argument("--formats", default="jsonl,csv,parquet")
    ap.add_argument("--gzip", action="store_true", help="also JSONL with Accept-Encoding: gzip")
    args = ap.parse_args(argv)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="export-bench-")) / "backend.log"
    p: subprocess.Popen = start_server(args.data_dir.resolve(), port, log)
    try:
        print(f"server pid {p.pid}, RSS after start {rss_mb(p.pid):.0f} MB; "
              f"range {args.since} .. {args.until}", flush=True)
        ok = True
        query = f"since={args.since}&until={args.until}"
        runs = [(f, False) for f in args.formats.split(",")]
        if args.gzip:
            runs.append(("jsonl", True))
        for fmt, gz in runs:
            out = log.parent / f"out.{fmt}" if fmt == "parquet" else None
            rows, n_bytes, secs = export(port, fmt, query, out, gz)
            rate = rows / secs if secs else 0
            target = None if gz else TARGETS.get(fmt)
            verdict = "" if target is None else (" OK" if rate >= target else " BELOW TARGET")
            ok &= target is None or rate >= target
            name = fmt + (" (gzip)" if gz else "")
            print(f"{name:13s} {rows:>11,} rows {n_bytes / 2**20:>8.0f} MiB {secs:7.1f} s "
                  f"{rate:>10,.0f} rows/s  server peak RSS {peak_rss_mb(p.pid):.0f} MB"
                  f"{'' if target is None else f'  (target {target:,})'}{verdict}", flush=True)
            if out:
                out.unlink()
        return 0 if ok else 1
    finally:
        p.terminate()
        p.wait(60)


if __name__ == "__main__":
    sys.exit(main())
