"""Submission benchmark: N concurrent probes on loopback POST real
measurements to ``/report/<report_id>``, against ``ooni-api`` (gunicorn,
several workers, no database) and against ``ooni-backend run`` (standalone,
fastpath scoring in the same process). Prints submissions/s and p50/p99
latency, then checks that every answered submission is in the spool, byte
for byte (durable before the answer).

    ./manage bench submission_bench [--count N] [--clients C] [--procs P]
                                    [--max-seconds S] [--target api|standalone|both]

Bounded: at most ``--count`` submissions and ``--max-seconds`` per target.
The load generator runs on the same machine and takes its share of the CPU.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO.parent / "shared" / "data" / "measurements" / "report1.json"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/robots.txt")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not come up")


def open_report(port: int) -> str:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    meta = {"probe_cc": "IT", "probe_asn": "AS30722", "test_name": "web_connectivity",
            "software_name": "bench", "software_version": "1", "format": "json"}
    c.request("POST", "/report", json.dumps(meta), {"Content-Type": "application/json"})
    return json.loads(c.getresponse().read())["report_id"]


def make_bodies(report_id: str, n: int) -> list[bytes]:
    base = json.loads(SAMPLE.read_text())
    base.update(report_id=report_id, probe_cc="IT", probe_asn="AS30722")
    out = []
    for i in range(n):
        base["input"] = f"https://example.org/{i}"
        out.append(json.dumps({"format": "json", "content": base}).encode())
    return out


def client_thread(port, report_id, bodies, deadline, out):
    conn = None
    for body in bodies:
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        for attempt in (1, 2):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", f"/report/{report_id}", body,
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                break
            except (http.client.HTTPException, OSError):
                # a server closing an idle keep-alive connection: reconnect once
                conn = None
                if attempt == 2:
                    out.append((time.perf_counter() - t0, None, None, "connection error"))
                    data = None
        if data is None:
            continue
        dt = time.perf_counter() - t0
        if r.status == 200:
            out.append((dt, json.loads(data).get("measurement_uid"), hashlib.sha512(body).hexdigest(), None))
        else:
            out.append((dt, None, None, f"HTTP {r.status}"))
        if r.getheader("Connection", "").lower() == "close":
            conn = None


def client_process(port, report_id, bodies, threads, deadline, q):
    import threading
    out: list = []
    chunks = [bodies[i::threads] for i in range(threads)]
    ts = [threading.Thread(target=client_thread, args=(port, report_id, c, deadline, out))
          for c in chunks]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put(out)


def load(port: int, count: int, clients: int, procs: int, max_seconds: float) -> list:
    report_id = open_report(port)
    bodies = make_bodies(report_id, count)
    deadline = time.monotonic() + max_seconds
    q: mp.Queue = mp.Queue()
    per_proc = max(1, clients // procs)
    ps = [mp.Process(target=client_process,
                     args=(port, report_id, bodies[i::procs], per_proc, deadline, q))
          for i in range(procs)]
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    results = []
    for _ in ps:
        results += q.get()
    for p in ps:
        p.join()
    elapsed = time.perf_counter() - t0
    return results, elapsed


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def verify_spool(spool: Path, results: list) -> tuple[int, int]:
    ok = missing = 0
    for _, uid, sha, _ in results:
        if uid is None:
            continue
        parts = uid.split("_")
        f = spool / "incoming" / f"{parts[0][:10]}_{parts[1]}_{parts[2]}" / f"{uid}.post"
        try:
            good = hashlib.sha512(f.read_bytes()).hexdigest() == sha
        except FileNotFoundError:
            good = False
        ok += good
        missing += not good
    return ok, missing


def run_target(name: str, args) -> bool:
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OONI_")}
    env.update(OONI_DATA_DIR=str(tmp), OONI_STATSD_ENABLED="false", OONI_LOG_LEVEL="WARNING",
               OONI_LISTEN_PORT=str(port), OONI_BASE_URL=f"http://127.0.0.1:{port}/")
    if name == "api":
        # No ClickHouse at all: the submission path must not need one. The
        # fastpath is absent too; its notifications fail in the background.
        env.update(OONI_CLICKHOUSE_URL=f"clickhouse://127.0.0.1:{free_port()}/default",
                   OONI_FASTPATH_URL=f"http://127.0.0.1:{free_port()}")
        cmd = [str(BIN / "ooni-api"), "--workers", str(args.workers)]
    else:
        env.update(OONI_JOB_START_DELAY="3600")
        cmd = [str(BIN / "ooni-backend"), "run", "--port", str(port), "--data-dir", str(tmp)]
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        wait_up(port, proc)
        results, elapsed = load(port, args.count, args.clients, args.procs, args.max_seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    lat = [r[0] * 1000 for r in results if r[1] is not None]
    errors = [r[3] for r in results if r[3]]
    ok, missing = verify_spool(tmp / "spool", results)
    label = f"ooni-api (gunicorn, {args.workers} workers)" if name == "api" else "ooni-backend run (standalone)"
    print(f"{label}: {len(lat)} submissions answered 200 in {elapsed:.1f} s "
          f"with {args.clients} clients: {len(lat) / elapsed:.0f} submissions/s, "
          f"p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms"
          if lat else f"{label}: no successful submission")
    print(f"  errors: {len(errors)} {sorted(set(errors))[:3]}; durable in spool: {ok}/{len(lat)}"
          f"{'' if not missing else f', MISSING {missing}'}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return bool(lat) and not missing and not errors


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=3000, help="submissions per target")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients")
    p.add_argument("--procs", type=int, default=2, help="load generator processes")
    p.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    p.add_argument("--max-seconds", type=float, default=60.0, help="time bound per target")
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    p.add_argument("--target", choices=["api", "standalone", "both"], default="both")
    args = p.parse_args()
    if not SAMPLE.is_file():
        print(f"sample measurement not found at {SAMPLE}", file=sys.stderr)
        return 2
    targets = ["api", "standalone"] if args.target == "both" else [args.target]
    good = [run_target(t, args) for t in targets]
    return 0 if all(good) else 1


if __name__ == "__main__":
    sys.exit(main())
