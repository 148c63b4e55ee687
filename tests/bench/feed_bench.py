"""Ack-to-feed latency: starts the standalone process (``ooni-backend run``)
on a fresh data directory, subscribes to /api/v1/measurements/feed, submits
measurements through the probe protocol (open report, POST each one) and
prints p50/p99 of the time from each submission's 200 answer (the ack) to
its event arriving on the feed (scoring by the in-process fastpath
included).

    ./manage bench feed_bench --count 300 --rate 20

Target: p99 < 1 s.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from query_bench import free_port, start_server  # noqa: E402
from tests.e2e.test_export_process import Feed, open_report, submit  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--rate", type=float, default=20.0, help="submissions per second")
    ap.add_argument("--subscribers", type=int, default=4)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="feed-bench-"))
    port = free_port()
    p = start_server(tmp / "data", port, tmp / "backend.log")
    base = f"http://127.0.0.1:{port}"
    try:
        rid = open_report(base)
        feeds = [Feed(base) for _ in range(args.subscribers)]
        time.sleep(1)
        acks: dict[str, float] = {}
        lock = threading.Lock()
        t0 = time.monotonic()
        for i in range(args.count):
            uid, t_ack = submit(base, rid, i)
            with lock:
                acks[uid] = t_ack
            delay = t0 + (i + 1) / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        deadline = time.monotonic() + 30
        while any(len(f.events) < args.count for f in feeds) and time.monotonic() < deadline:
            time.sleep(0.1)
        lat = []
        for f in feeds:
            for t_recv, _, ev in f.events:
                if ev["measurement_uid"] in acks:
                    lat.append(t_recv - acks[ev["measurement_uid"]])
            f.close()
        got = len(lat)
        want = args.count * args.subscribers
        p99 = pct(lat, 0.99) if lat else float("nan")
        print(f"{args.count} submissions at {args.rate}/s, {args.subscribers} subscribers: "
              f"{got}/{want} events; ack-to-feed p50 {pct(lat, 0.5) * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms, "
              f"mean {statistics.mean(lat) * 1000:.0f} ms (target p99 < 1000 ms)"
              f"{' OK' if p99 < 1 and got == want else ' BELOW TARGET'}", flush=True)
        return 0 if p99 < 1 and got == want else 1
    finally:
        p.terminate()
        p.wait(60)


if __name__ == "__main__":
    sys.exit(main())
