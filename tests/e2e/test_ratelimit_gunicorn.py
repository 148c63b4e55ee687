"""The rate limiter under the real ``ooni-api`` (gunicorn, several worker
processes sharing one LMDB environment), driven over HTTP."""
from __future__ import annotations

import gc
import http.client
import ipaddress
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ooni_common.config import Config

from ooniapi.core.ratelimit import RateLimiter

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
# Metered and served without a database, so the test needs no ClickHouse.
METERED = "/apispec_1.json"


def get(port: int, addr: str, path: str = METERED) -> http.client.HTTPResponse:
    # A new connection per request, so the kernel spreads them over workers.
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        c.request("GET", path, headers={"X-Real-IP": addr, "Connection": "close"})
        r = c.getresponse()
        r.read()
        return r
    finally:
        c.close()


def start(port: int, env: dict, log: Path) -> subprocess.Popen:
    p = subprocess.Popen([str(BIN / "ooni-api"), "--bind", f"127.0.0.1:{port}", "--workers", "2"],
                         env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if p.poll() is not None:
            pytest.fail(f"ooni-api exited with {p.returncode}: {log.read_text()[-2000:]}")
        try:
            get(port, "127.0.0.1", "/health")
            return p
        except OSError:
            time.sleep(0.2)
    p.terminate()
    pytest.fail(f"ooni-api did not start: {log.read_text()[-2000:]}")


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def get_from_both_workers(port: int, addrs: list[str]) -> list[int]:
    """Statuses of two metered requests that two different sync workers serve.

    Sequential requests may all be accepted by one worker, so the first
    request is held open with its headers unfinished: the worker that
    accepted it is stuck reading, and the second request must go to the other.
    """
    held = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        held.sendall(f"GET {METERED} HTTP/1.1\r\nHost: x\r\nX-Real-IP: {addrs[0]}\r\n".encode())
        time.sleep(0.3)  # time for one worker to accept it
        other = get(port, addrs[1]).status
        held.sendall(b"Connection: close\r\n\r\n")
        reply = b""
        while chunk := held.recv(65536):
            reply += chunk
        return [int(reply.split(b" ", 2)[1]), other]
    finally:
        held.close()


def workers_with_store_open(master: int, lmdb_dir: Path) -> set[int]:
    """Children of the gunicorn master that have mapped the quota store; a
    worker opens it on its first metered request."""
    data = str(lmdb_dir / "data.mdb")
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == master and data in (stat.parent / "maps").read_text():
                out.add(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def test_budget_is_shared_by_workers_per_network_and_survives_restart(tmp_path, port,
                                                                     subprocess_env):
    data = tmp_path / "data"
    env = dict(subprocess_env,
               OONI_DATA_DIR=str(data), OONI_BASE_URL="http://127.0.0.1/",
               # Never contacted: the routes used here do not touch the database.
               OONI_CLICKHOUSE_URL="clickhouse://127.0.0.1:9/default?connect_timeout=0.5",
               # A 1 ms daily budget: a client's first request spends all of it.
               OONI_RATE_LIMIT_IPADDR_PER_DAY="0.001",
               OONI_API_WORKER_CLASS="sync")
    # 192.0.2.0/24 is over budget before the server starts, so every metered
    # request any worker serves in the first phase comes from that client.
    rl = RateLimiter(Config({"DATA_DIR": str(data)}))
    rl.store.charge(rl.ip_client(ipaddress.ip_address("192.0.2.1")), 10**6)
    del rl
    gc.collect()

    log = tmp_path / "api.log"
    p = start(port, env, log)
    try:
        refused = [get(port, "192.0.2.%d" % (10 + i)) for i in range(24)]
        assert [r.status for r in refused] == [429] * 24
        assert all(r.getheader("Content-Type") == "application/json" for r in refused)
        # Both workers refuse the client: each has opened the one shared store.
        for attempt in range(10):
            if len(workers_with_store_open(p.pid, data / "lmdb")) == 2:
                break
            assert get_from_both_workers(port, ["192.0.2.%d" % (50 + 2 * attempt),
                                                "192.0.2.%d" % (51 + 2 * attempt)]) == [429, 429]
        assert len(workers_with_store_open(p.pid, data / "lmdb")) == 2
        # Another /24 has its own budget, which its first request spends.
        first = get(port, "198.51.100.20")
        assert first.status == 200 and first.getheader("X-RateLimit-Remaining") == "0"
        assert get(port, "192.0.2.10", "/health").status != 429
    finally:
        stop(p)

    p = start(port, env, log)
    try:
        assert get(port, "198.51.100.99").status == 429
        assert get(port, "192.0.2.99").status == 429
        assert get(port, "203.0.113.1").status == 200
    finally:
        stop(p)
