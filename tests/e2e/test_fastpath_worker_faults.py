"""Scoring workers killed like the OOM killer would, and the main processes
killed with -9: the real ``fastpath`` and ``ooni-backend run`` on loopback.

Issue 16, defects 1 and 7: a worker killed while holding the shared queue's
lock wedged scoring for good; after kill -9 of the main process the workers
and the multiprocessing resource tracker stayed behind.
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .test_fastpath_process import FASTPATH, http, metric, query, wait_up
from .standalone_process import BIN

pytestmark = pytest.mark.e2e


def _stat(pid: int) -> tuple[int, str] | None:
    """(ppid, state) of a live process, None when gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    state, ppid = fields[0], int(fields[1])
    return None if state in ("Z", "X") else (ppid, state)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(root: int) -> dict[int, str]:
    """pid -> command line of every live descendant of ``root``."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st is not None:
                parent[int(d)] = st[0]
    out, frontier = {}, {root}
    while frontier:
        nxt = {p for p, pp in parent.items() if pp in frontier and p not in out}
        for p in nxt:
            out[p] = _cmdline(p)
        frontier = nxt
    return out


def workers_of(pid: int) -> list[int]:
    return [p for p, cmd in descendants(pid).items()
            if "multiprocessing.spawn" in cmd or "spawn_main" in cmd]


def assert_all_gone(procs: dict[int, str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    left = procs
    while time.monotonic() < deadline:
        # Same pid and same command line: not a reused pid.
        left = {p: c for p, c in procs.items() if _stat(p) is not None and _cmdline(p) == c}
        if not left:
            return
        time.sleep(0.2)
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)  # do not leak them into the next tests
        except OSError:
            pass
    raise AssertionError(f"left running after kill -9 of their parent: {left}")


def post(url: str, body: bytes) -> int:
    # Longer than the feeder's put timeout: a refusal is its 503, not ours.
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=90) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def samples(shared_data: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((shared_data / "measurements").glob("*.json"))]


def fastpath_env(subprocess_env, tmp_path, port, workers: int = 2) -> dict:
    return dict(subprocess_env, OONI_DATA_DIR=str(tmp_path), OONI_FASTPATH_API_PORT=str(port),
                OONI_FASTPATH_NUM_WORKERS=str(workers), OONI_FASTPATH_QUEUE_PUT_TIMEOUT="60",
                # No spool here (HTTP feeder only): what is scored, the pool scored.
                OONI_FASTPATH_SPOOL_SCAN_INTERVAL="3600")


def test_fastpath_scores_every_acknowledged_measurement_while_workers_are_killed(
        tmp_path, port, subprocess_env, shared_data):
    env = fastpath_env(subprocess_env, tmp_path, port)
    proc = subprocess.Popen(FASTPATH, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    msms = samples(shared_data)
    acked: list[str] = []
    refused: list[tuple[str, int]] = []
    lock = threading.Lock()
    stop = threading.Event()
    rnd = random.Random(16)

    def load(k: int) -> None:
        i = 0
        while not stop.is_set():
            uid = f"20240305100000.{k:02d}{i:04d}_IT_webconnectivity_{k:04x}{i:012x}"
            body = json.dumps({"format": "json", "content": msms[i % len(msms)]}).encode()
            i += 1
            status = post(f"{base}/{uid}", body)
            with lock:
                (acked.append(uid) if status == 200 else refused.append((uid, status)))

    try:
        wait_up(base, proc)
        loaders = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(3)]
        for t in loaders:
            t.start()
        kills = 0
        for _round in range(20):
            # Each worker slot, at a random point of its work: wait for the
            # replacements of the previous round to be up and busy first.
            deadline = time.monotonic() + 60
            while len(workers_of(proc.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rnd.uniform(0.3, 1.0))
            for pid in workers_of(proc.pid):
                time.sleep(rnd.uniform(0.0, 0.2))
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                except OSError:
                    pass
            assert proc.poll() is None
        stop.set()
        for t in loaders:
            t.join(60)
        assert kills >= 20
        assert not refused, f"refused during the kills: {refused[:5]} ({len(refused)})"
        n = len(acked)
        assert n > 200
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and metric(base, "fastpath_processed_total") < n:
            time.sleep(0.2)
        # Scored by the same main process, each exactly once.
        assert proc.poll() is None
        assert metric(base, "fastpath_processed_total") == n
        # The last kills may be noticed a moment later (the pool polls).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and metric(base, "fastpath_worker_crash_total") < kills:
            time.sleep(0.2)
        assert metric(base, "fastpath_worker_crash_total") >= kills
        assert metric(base, "fastpath_failed_worker_crash_total") == 0
        assert http("GET", base + "/health") == (200, b"UP")
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    rows = query(tmp_path, "SELECT measurement_uid FROM fastpath FINAL")
    assert {r[0] for r in rows} == set(acked)


def test_fastpath_leaves_no_worker_or_tracker_after_kill_9(tmp_path, port, subprocess_env,
                                                           shared_data):
    env = fastpath_env(subprocess_env, tmp_path, port)
    proc = subprocess.Popen(FASTPATH, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base, proc)
        msm = samples(shared_data)[0]
        for i in range(40):
            uid = f"20240305100000.{i:06d}_IT_webconnectivity_{i:016x}"
            http("POST", f"{base}/{uid}", json.dumps({"format": "json", "content": msm}).encode())
        deadline = time.monotonic() + 60
        while len(workers_of(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        children = descendants(proc.pid)
        assert len(workers_of(proc.pid)) == 2, children
        assert any("resource_tracker" in c for c in children.values()), children
    finally:
        proc.kill()
        proc.wait()
    assert_all_gone(children)


def test_fastpath_start_names_the_holder_of_its_port(tmp_path, subprocess_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = fastpath_env(subprocess_env, tmp_path, port)
        out = subprocess.run(FASTPATH, env=env, capture_output=True, timeout=60, cwd=tmp_path)
    assert out.returncode != 0
    err = out.stderr.decode().strip().splitlines()
    assert len(err) == 1 and f"held by pid {os.getpid()}" in err[0], err


def _start_backend(tmp_path: Path, port: int, env: dict, data_dir: Path) -> subprocess.Popen:
    log = tmp_path / f"backend-{port}-{time.monotonic_ns()}.log"
    proc = subprocess.Popen([str(BIN), "run", "--port", str(port), "--data-dir", str(data_dir)],
                            env=env, cwd=tmp_path, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT)
    proc.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if http("GET", f"http://127.0.0.1:{port}/health")[0] == 200:
                return proc
        except OSError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def test_fastpath_standalone_kill_9_leaves_no_orphans_and_restarts(tmp_path, port,
                                                                   subprocess_env):
    if not BIN.exists():
        pytest.skip(f"{BIN} not installed (pip install -e .)")
    env = dict(subprocess_env, OONI_FASTPATH_NUM_WORKERS="2")
    data_dir = tmp_path / "data"
    proc = _start_backend(tmp_path, port, env, data_dir)
    try:
        deadline = time.monotonic() + 60
        while len(workers_of(proc.pid)) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        children = descendants(proc.pid)
        assert workers_of(proc.pid), children
    finally:
        proc.kill()
        proc.wait()
    assert_all_gone(children)
    # The next start on the same port and data directory just works.
    again = _start_backend(tmp_path, port, env, data_dir)
    again.terminate()
    assert again.wait(60) == 0, again.log.read_text()


def test_fastpath_standalone_start_names_the_holder_of_its_port(tmp_path, subprocess_env):
    if not BIN.exists():
        pytest.skip(f"{BIN} not installed (pip install -e .)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([str(BIN), "run", "--port", str(port), "--data-dir",
                              str(tmp_path / "data")], env=subprocess_env, capture_output=True,
                             timeout=60, cwd=tmp_path)
    assert out.returncode == 1
    err = out.stderr.decode().strip().splitlines()
    assert len(err) == 1 and f"held by pid {os.getpid()}" in err[0], err


def test_fastpath_ooni_api_start_names_the_holder_of_its_port(tmp_path, subprocess_env):
    api = BIN.parent / "ooni-api"
    if not api.exists():
        pytest.skip(f"{api} not installed (pip install -e .)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        conf = tmp_path / "api.toml"
        conf.write_text(f'DATA_DIR = "{tmp_path / "data"}"\n'
                        'CLICKHOUSE_URL = "clickhouse://127.0.0.1:9/default"\n'
                        f"LISTEN_PORT = {port}\nAPI_WORKERS = 1\nBASE_URL = \"http://127.0.0.1/\"\n")
        out = subprocess.run([str(api)], env={**subprocess_env, "OONI_CONF": str(conf)},
                             capture_output=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 1
    err = [ln for ln in out.stderr.decode().strip().splitlines() if "ooni-api:" in ln]
    assert len(err) == 1 and f"held by pid {os.getpid()}" in err[0], out.stderr.decode()
