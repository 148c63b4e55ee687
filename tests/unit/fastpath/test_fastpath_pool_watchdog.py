"""The scoring pool's watchdog: a manager thread that dies is restarted, the
workers it spawned die with it (PR_SET_PDEATHSIG is per spawning thread) and
their batches are scored by the new ones."""
from __future__ import annotations

import json
import threading
import time

from fastpath.pool import ProcessPool

MSM = {"format": "json", "content": {
    "report_id": "r", "probe_cc": "IT", "probe_asn": "AS1", "test_name": "web_connectivity",
    "input": "https://example.org/", "measurement_start_time": "2024-01-01 00:00:00",
    "test_start_time": "2024-01-01 00:00:00", "test_keys": {}}}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_fastpath_pool_restarts_a_dead_manager_and_rescores_its_batch():
    got, done = [], threading.Event()

    def sink(res):
        got.extend(res)
        if len(got) >= 3:
            done.set()

    pool = ProcessPool(1, sink)
    real_assign, failed = pool._assign, []

    def assign_once_broken():
        # Dies after the batch was handed to the worker: the batch is in flight.
        real_assign()
        if not failed and pool._open and not pool._queue:
            failed.append(pool.worker_pids())
            raise RuntimeError("manager bug")

    pool._assign = assign_once_broken
    pool.start()
    try:
        raw = json.dumps(MSM).encode()
        assert pool.submit([(f"2024_{i}", raw) for i in range(3)], timeout=5)
        assert done.wait(60), got
        assert pool.restarts >= 1
        [old] = failed[0]
        deadline = time.monotonic() + 10
        while _alive(old) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(old)
        assert pool.worker_pids() and pool.worker_pids() != [old]
        assert sorted(r.uid for r in got) == ["2024_0", "2024_1", "2024_2"]
        assert all(r.status == "scored" for r in got)
    finally:
        pool.stop()
    assert all(not _alive(p) for p in [old] + pool.worker_pids())
