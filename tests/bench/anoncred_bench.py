"""Verified submissions per second beside plain ones, in the same run,
against ``ooni-api`` under gunicorn (no database, as in submission_bench):
one ``sign_credential``, then N ``submit_measurement`` with a proof made by
ooniauth-py's client, and N without. The probes' proofs are made before
the timed part (a probe makes its own; here the load generator shares the
machine). Prints both rates, the CPU time the gunicorn workers spent per
submission in each phase (from /proc), and the verification's share of a
verified submission's CPU: (cpu_verified - cpu_plain) / cpu_verified.

    ./manage bench anoncred_bench [--count N] [--clients C] [--workers W] [--rounds R]

The target of issue 11: verified >= 50% of the plain rate.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ooniauth_py

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.bench.submission_bench import BIN, free_port, wait_up  # noqa: E402

SAMPLE = REPO.parent / "shared" / "data" / "measurements" / "report1.json"
CLK = os.sysconf("SC_CLK_TCK")


def call(port: int, method: str, path: str, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, None if body is None else json.dumps(body),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, json.loads(r.read())


def base_measurement() -> dict:
    if SAMPLE.is_file():
        m = json.loads(SAMPLE.read_text())
    else:
        m = {"test_name": "web_connectivity", "test_keys": {}, "software_name": "bench"}
    m.pop("report_id", None)
    m.update(probe_cc="IT", probe_asn="AS30722")
    return m


def make_bodies(port: int, n: int) -> tuple[list[bytes], list[bytes], float]:
    """(verified bodies, plain bodies, seconds spent proving)."""
    st, man = call(port, "GET", "/api/v1/manifest")
    assert st == 200, man
    user = ooniauth_py.UserState(man["manifest"]["public_parameters"])
    st, reg = call(port, "POST", "/api/v1/sign_credential",
                   {"manifest_version": man["meta"]["version"],
                    "credential_sign_request": user.make_registration_request()})
    assert st == 200, reg
    user.handle_registration_response(reg["credential_sign_response"])
    age = tuple(man["manifest"]["submission_policy"][-1]["policy"]["age"])
    count = man["manifest"]["submission_policy"][-1]["policy"]["min_measurement_count"]
    m = base_measurement()
    verified, plain = [], []
    t0 = time.perf_counter()
    for i in range(n):
        m["input"] = f"https://example.org/v{i}"
        content = json.dumps(m)
        sr = user.make_submit_request_with_hash("IT", "AS30722", content, age, count)
        verified.append(json.dumps({
            "format": "json", "content": content, "nym": sr.nym, "zkp_request": sr.request,
            "manifest_version": man["meta"]["version"],
            "protocol_version": ooniauth_py.get_protocol_version()}).encode())
        m["input"] = f"https://example.org/p{i}"
        plain.append(json.dumps({"format": "json", "content": json.dumps(m), "nym": None,
                                 "zkp_request": None, "manifest_version": None,
                                 "protocol_version": None}).encode())
    return verified, plain, time.perf_counter() - t0


def worker_pids(master: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            out.append(int(d))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / CLK


def run_phase(port: int, bodies: list[bytes], clients: int, pids: list[int]) -> dict:
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def client(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for b in chunk:
            for attempt in (1, 2):
                try:
                    conn.request("POST", "/api/v1/submit_measurement", b,
                                 {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    data = r.read()
                    break
                except (http.client.HTTPException, OSError):
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    data, r = None, None
            key = "connection error" if r is None else (
                json.loads(data).get("verification_status", f"HTTP {r.status}")
                if r.status == 200 else f"HTTP {r.status}")
            with lock:
                statuses[key] = statuses.get(key, 0) + 1

    chunks = [bodies[i::clients] for i in range(clients)]
    ts = [threading.Thread(target=client, args=(c,)) for c in chunks]
    cpu0, t0 = cpu_seconds(pids), time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pids) - cpu0
    return {"n": len(bodies), "elapsed": elapsed, "rate": len(bodies) / elapsed,
            "cpu_ms": cpu / len(bodies) * 1000, "statuses": statuses}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=300, help="submissions per phase and round")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    p.add_argument("--rounds", type=int, default=2,
                   help="plain/verified rounds, alternated to share the machine's noise")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()

    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="bench-anoncred-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OONI_")}
    env.update(OONI_DATA_DIR=str(tmp), OONI_STATSD_ENABLED="false", OONI_LOG_LEVEL="WARNING",
               OONI_LISTEN_PORT=str(port), RUST_BACKTRACE="0",
               OONI_CLICKHOUSE_URL=f"clickhouse://127.0.0.1:{free_port()}/default",
               OONI_FASTPATH_URL=f"http://127.0.0.1:{free_port()}")
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([str(BIN / "ooni-api"), "--workers", str(args.workers)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} (1/5/15 min), {os.cpu_count()} CPUs")
    try:
        wait_up(port, proc)
        pids = worker_pids(proc.pid)
        verified, plain, prove_s = make_bodies(port, args.count * args.rounds)
        print(f"ooni-api (gunicorn, {args.workers} workers), {args.clients} clients; "
              f"{len(verified)} client proofs made beforehand in {prove_s:.1f} s "
              f"({prove_s / len(verified) * 1000:.1f} ms each)")
        res: dict[str, list[dict]] = {"plain": [], "verified": []}
        for r in range(args.rounds):
            sl = slice(r * args.count, (r + 1) * args.count)
            for name, bodies in (("plain", plain[sl]), ("verified", verified[sl])):
                out = run_phase(port, bodies, args.clients, pids)
                res[name].append(out)
                print(f"  round {r + 1} {name:8}: {out['n']} in {out['elapsed']:.1f} s = "
                      f"{out['rate']:.0f}/s, worker CPU {out['cpu_ms']:.1f} ms/submission, "
                      f"answers {out['statuses']}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    agg = {}
    for name, outs in res.items():
        n = sum(o["n"] for o in outs)
        el = sum(o["elapsed"] for o in outs)
        cpu = sum(o["cpu_ms"] * o["n"] for o in outs) / n
        agg[name] = (n / el, cpu)
    (pr, pc), (vr, vc) = agg["plain"], agg["verified"]
    share = (vc - pc) / vc if vc > 0 else float("nan")
    print(f"plain:    {pr:.0f} submissions/s, {pc:.1f} ms worker CPU per submission")
    print(f"verified: {vr:.0f} submissions/s, {vc:.1f} ms worker CPU per submission")
    print(f"verified/plain rate: {vr / pr * 100:.0f}% (target >= 50%); verification's share "
          f"of a verified submission's CPU: {share * 100:.0f}%")
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} (1/5/15 min)")
    bad = sum(v for o in res["verified"] for k, v in o["statuses"].items() if k != "verified") + \
        sum(v for o in res["plain"] for k, v in o["statuses"].items() if k != "unverified")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    if bad:
        print(f"{bad} answers were not the expected status", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
