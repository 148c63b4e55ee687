"""Check-in benchmark against the real standalone process.

  ./manage bench checkin_bench [--requests N] [--concurrency C] [--compare-uncached]

Prepares a data directory with 5,000 citizenlab URLs and 100,000 rows of
counters_asn_test_list (filled by the materialized view from fastpath rows:
5,000 URLs x 20 networks), starts ``ooni-backend run`` on a loopback port and
sends check-ins from C threads (keep-alive connections, like the Go client),
each for a random one of the 20 networks. Prints check-ins/s, p50 and p99.
Target: >= 150 check-ins/s with p99 < 150 ms. Bounded: N requests (default
3,000) or 60 s per pass. Figures depend on the machine's load.
``--compare-uncached`` adds a pass with the test-list cache off
(``PRIORITIZATION_CACHE_SECONDS=0``) and prints the ratio of the two.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

BIN = Path(sys.executable).parent / "ooni-backend"
NETWORKS = [(cc, asn) for cc in ("IT", "DE", "BR", "IR") for asn in (1, 2, 3, 4, 5)]
CATS = ["NEWS", "POLR", "HUMR", "LGBT", "ANON", "MMED", "SRCH", "PUBH", "REL", "FILE",
        "GMB", "PORN", "GRP", "COMT", "MISC"]

PREPARE = r"""
import datetime as dt, random, sys
from ooni_common.db import connect
from ooni_common.schema import ensure_all
db = connect("chdb://" + sys.argv[1]); ensure_all(db)
cats = sys.argv[2].split(",")
rng = random.Random(1)
urls = [f"https://site{i}.example.org/" for i in range(5000)]
db.insert("citizenlab", ["domain", "url", "cc", "category_code"],
          [[f"site{i}.example.org", urls[i],
            "ZZ" if i < 2000 else ["it", "de", "br", "ir"][i % 4], rng.choice(cats)]
           for i in range(5000)])
when = dt.datetime.utcnow().replace(microsecond=0) - dt.timedelta(hours=2)
nets = [(cc, asn) for cc in ("IT", "DE", "BR", "IR") for asn in (1, 2, 3, 4, 5)]
cols = ["measurement_uid", "report_id", "input", "probe_cc", "probe_asn", "test_name",
        "test_start_time", "measurement_start_time", "anomaly", "confirmed", "msm_failure"]
n = 0
for cc, asn in nets:
    rows = [[f"{when:%Y%m%d%H%M%S}.{n + j:06d}_{cc}_webconnectivity_{n + j:016x}", "r", u, cc, asn,
             "web_connectivity", when, when, "f", "f", "f"] for j, u in enumerate(urls)]
    n += len(rows)
    db.insert("fastpath", cols, rows)
print(db.execute("SELECT count() FROM counters_asn_test_list")[0][0])
"""


def prepare(data_dir: Path) -> int:
    out = subprocess.run([sys.executable, "-c", PREPARE, str(data_dir / "db"), ",".join(CATS)],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    if out.returncode != 0:
        sys.exit(f"prepare failed:\n{out.stderr}")
    return int(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int, proc, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("backend died:\n" + log.read_text()[-3000:])
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("backend did not come up")


def worker(port: int, n: int, lat: list, errors: list, stop_at: float) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    rng = random.Random()
    for _ in range(n):
        if time.monotonic() > stop_at:
            return
        cc, asn = rng.choice(NETWORKS)
        body = json.dumps({"charging": True, "on_wifi": True, "platform": "android",
                           "probe_asn": f"AS{asn}", "probe_cc": cc, "run_type": "timed",
                           "software_name": "ooniprobe-android", "software_version": "5.0.0",
                           "web_connectivity": {"category_codes": []}})
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/check-in", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            ok = r.status == 200 and len(json.loads(data)["tests"]["web_connectivity"]["urls"]) == 100
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            ok = False
        lat.append(time.perf_counter() - t0)
        if not ok:
            errors.append(1)


def run_pass(data_dir: Path, tmp: str, args, extra_env: dict[str, str]) -> tuple[int, float, list, list]:
    port = free_port()
    log = Path(tmp) / "backend.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OONI_")}
    env.update(OONI_STATSD_ENABLED="false", OONI_JOB_START_DELAY="3600", **extra_env)
    proc = subprocess.Popen([str(BIN), "run", "--port", str(port), "--data-dir", str(data_dir)],
                            env=env, cwd=tmp, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        wait_up(port, proc, log)
        # warm the caches as the first probes of a minute would
        worker(port, 20, [], [], time.monotonic() + 30)
        lat: list[float] = []
        errors: list[int] = []
        per = args.requests // args.concurrency
        stop_at = time.monotonic() + 60
        threads = [threading.Thread(target=worker, args=(port, per, lat, errors, stop_at))
                   for _ in range(args.concurrency)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(60)
    return len(lat), elapsed, sorted(lat), errors


def report(label: str, n: int, elapsed: float, lat: list, errors: list, concurrency: int) -> float:
    p = lambda q: lat[min(n - 1, int(q * n))] * 1000  # noqa: E731
    print(f"{label}check-ins: {n} in {elapsed:.1f} s, concurrency {concurrency}, "
          f"errors {len(errors)}")
    print(f"{label}throughput: {n / elapsed:.0f} check-ins/s (target >= 150)")
    print(f"{label}latency: p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms (target p99 < 150 ms)")
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--compare-uncached", action="store_true",
                    help="also run with PRIORITIZATION_CACHE_SECONDS=0 (every check-in "
                         "queries rules, citizenlab and counts) and print the ratio")
    args = ap.parse_args()
    if not BIN.exists():
        sys.exit(f"{BIN} not installed (pip install -e .)")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        t0 = time.perf_counter()
        counters = prepare(data_dir)
        print(f"prepared 5000 citizenlab URLs, {counters} counters rows "
              f"in {time.perf_counter() - t0:.1f} s")
        cached = report("", *run_pass(data_dir, tmp, args, {}), args.concurrency)
        if args.compare_uncached:
            uncached = report("uncached ", *run_pass(
                data_dir, tmp, args, {"OONI_PRIORITIZATION_CACHE_SECONDS": "0"}),
                args.concurrency)
            print(f"cached / uncached throughput: {cached / uncached:.1f}x (same machine, "
                  f"same minute)")


if __name__ == "__main__":
    main()
