"""Query latency through the HTTP API over a data directory filled by
gen_fastpath.py: starts the standalone process (``ooni-backend run``) on a
free port and prints p50/p99 per query.

    ./manage bench query_bench --data-dir /tmp/bench --requests 20

Targets with 10M rows: listings p50 < 150 ms, the 10,000th page through the
cursor within 2x of the first page, measurement_meta p50 < 50 ms,
aggregations p50 < 1 s.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

TOP_CCS = ["US", "RU", "IR", "IN", "CN", "DE", "IT", "BR", "TR", "GB"]
PAGE = 50
DEEP_PAGE = 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base: str):
        self.base = base

    def get(self, path: str, params: dict | None = None) -> tuple[int, bytes, float]:
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=120) as r:
                body, status = r.read(), r.status
        except urllib.error.HTTPError as e:
            body, status = e.read(), e.code
        return status, body, time.perf_counter() - t0

    def json(self, path: str, params: dict | None = None):
        status, body, _ = self.get(path, params)
        if status != 200:
            raise SystemExit(f"{path} {params}: HTTP {status}: {body[:300]!r}")
        return json.loads(body)


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OONI_")}
    env["OONI_STATSD_ENABLED"] = "false"
    # Metered like any client (the limiter's cost is part of the figures),
    # in a scratch quota store so repeated runs never exhaust a budget.
    env["OONI_RATE_LIMIT_DIR"] = tempfile.mkdtemp(prefix="bench-lmdb-")
    p = subprocess.Popen([str(BIN / "ooni-backend"), "run", "--data-dir", str(data_dir),
                          "--port", str(port)], env=env, stdout=log.open("wb"),
                         stderr=subprocess.STDOUT)
    api = Api(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise SystemExit(f"ooni-backend exited with {p.returncode}; see {log}")
        try:
            if api.get("/health")[0] == 200:
                return p
        except OSError:
            pass
        time.sleep(0.5)
    p.terminate()
    raise SystemExit(f"ooni-backend did not become healthy; see {log}")


def measure(api: Api, cases: list[tuple[str, dict]], check=None) -> list[float]:
    times = []
    for path, params in cases:
        status, body, el = api.get(path, params)
        if status != 200:
            raise SystemExit(f"{path} {params}: HTTP {status}: {body[:300]!r}")
        if check:
            check(body)
        times.append(el)
    return times


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def report(name: str, times: list[float], target: float | None) -> bool:
    p50, p99 = statistics.median(times), pct(times, 0.99)
    ok = target is None or p50 < target
    tgt = f"target p50 < {target * 1000:.0f} ms" if target else ""
    print(f"{name:<44} n={len(times):<3} p50={p50 * 1000:8.1f} ms  p99={p99 * 1000:8.1f} ms  "
          f"{tgt} {'' if target is None else ('OK' if ok else 'MISSED')}", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True, help="directory filled by gen_fastpath.py")
    ap.add_argument("--requests", type=int, default=20, help="requests per query kind")
    ap.add_argument("--url", help="benchmark an API already running at this base URL")
    args = ap.parse_args(argv)
    n = max(2, args.requests)
    rnd = random.Random(1)

    proc = None
    if args.url:
        api = Api(args.url.rstrip("/"))
    else:
        port = free_port()
        log = Path(tempfile.mkdtemp(prefix="bench-")) / "ooni-backend.log"
        print(f"starting ooni-backend run on port {port} (log {log})", flush=True)
        proc = start_server(Path(args.data_dir).resolve(), port, log)
        api = Api(f"http://127.0.0.1:{port}")
    try:
        return run(api, n, rnd)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(api: Api, n: int, rnd: random.Random) -> int:
    today = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).replace(
        hour=0, minute=0, second=0, microsecond=0)
    day = lambda d: (today - dt.timedelta(days=d)).strftime("%Y-%m-%d")  # noqa: E731
    total = api.json("/api/v1/aggregation")["result"]["measurement_count"]
    print(f"fastpath rows: {total:,}", flush=True)

    # Sample real keys through the API itself.
    domains = [r["domain"] for r in api.json("/api/v1/aggregation", {
        "axis_x": "domain", "test_name": "web_connectivity", "since": day(30)})["result"]
        if r["domain"]]
    domains = sorted(domains, key=lambda d: rnd.random())[:n]
    uids = []
    for i in range(n):
        d0 = rnd.randrange(1, 600)
        res = api.json("/api/v1/measurements", {"since": day(d0 + 1), "until": day(d0),
                                                "limit": 100})["results"]
        if res:
            uids.append(rnd.choice(res)["measurement_uid"])
    warm = api.get("/api/v1/measurements", {"limit": 1})  # noqa: F841  (first-query costs)

    ok = True
    listing = []
    for i in range(n):
        d0 = rnd.randrange(0, 300)
        listing.append(("/api/v1/measurements", {
            "probe_cc": TOP_CCS[i % len(TOP_CCS)], "test_name": "web_connectivity",
            "since": day(d0 + 30), "until": day(d0), "limit": PAGE}))
    ok &= report("listing cc+test_name+since/until limit 50", measure(api, listing), 0.150)
    ok &= report("listing by domain (default 30-day window)", measure(
        api, [("/api/v1/measurements", {"domain": d, "limit": PAGE}) for d in domains]), 0.150)
    ok &= report("measurement_meta by uid", measure(
        api, [("/api/v1/measurement_meta", {"measurement_uid": u}) for u in uids],
        check=lambda b: json.loads(b).get("measurement_uid") or sys.exit("meta not found")), 0.050)

    agg1 = [("/api/v1/aggregation", {"axis_x": "probe_cc", "axis_y": "measurement_start_day",
                                     "since": day(365 + i), "until": day(i)}) for i in range(n)]
    ok &= report("aggregation probe_cc x day, one year", measure(api, agg1), 1.0)
    agg2 = [("/api/v1/aggregation", {"axis_x": "test_name", "axis_y": "measurement_start_day",
                                     "time_grain": "month", "since": day(730 + i),
                                     "until": day(i)}) for i in range(n)]
    ok &= report("aggregation test_name x month, two years", measure(api, agg2), 1.0)
    csvq = [("/api/v1/aggregation", {"axis_x": "probe_cc", "axis_y": "test_name",
                                     "since": day(90 + i), "until": day(i), "format": "CSV",
                                     "download": "true"}) for i in range(n)]
    ok &= report("aggregation CSV download cc x test_name, 90 d", measure(api, csvq), 1.0)

    # Deep paging: the cursor of page 10,000 is the last row of page 9,999,
    # found once with offset paging (the slow way the cursor replaces).
    window = {"since": day(120), "until": day(0)}
    first = measure(api, [("/api/v1/measurements", dict(window, limit=PAGE))] * n)
    deep_offset = (DEEP_PAGE - 1) * PAGE
    status, body, off_t = api.get("/api/v1/measurements",
                                  dict(window, limit=PAGE, offset=deep_offset - PAGE))
    rows = json.loads(body)["results"] if status == 200 else []
    if len(rows) < PAGE:
        print(f"not enough rows in the window for page {DEEP_PAGE}; skipping deep paging")
    else:
        sys.path[:0] = [str(REPO / "api"), str(REPO / "common")]
        from ooniapi.measurements.cursor import Cursor, encode
        last = rows[-1]
        mst = dt.datetime.strptime(last["measurement_start_time"], "%Y-%m-%dT%H:%M:%SZ")
        tok = encode(Cursor("measurement_start_time", "desc", mst, last["measurement_uid"],
                            deep_offset))
        deep = measure(api, [("/api/v1/measurements", dict(window, limit=PAGE, cursor=tok))] * n,
                       check=lambda b: json.loads(b)["metadata"]["current_page"] == DEEP_PAGE
                       or sys.exit("cursor landed on the wrong page"))
        report("listing first page (120-day window)", first, 0.150)
        report(f"listing page {DEEP_PAGE:,} through the cursor", deep, None)
        ratio = statistics.median(deep) / statistics.median(first)
        print(f"{'  cursor page / first page p50 ratio':<44} {ratio:.2f} (target <= 2) "
              f"{'OK' if ratio <= 2 else 'MISSED'}; page {DEEP_PAGE - 1:,} by offset took "
              f"{off_t * 1000:.0f} ms", flush=True)
        ok &= ratio <= 2
    print("all targets met" if ok else "some targets missed", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
