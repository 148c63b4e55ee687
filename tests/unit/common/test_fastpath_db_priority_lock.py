"""The embedded database's statement lock lets the fastpath writer go first
(issue 16, defect 8: the writer queued behind API queries and jobs)."""
from __future__ import annotations

import threading
import time

from ooni_common.db import PriorityLock


def _wait_waiting(lock: PriorityLock, n: int) -> None:
    # Waiters block in Condition.wait, which releases the inner lock.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with lock._cond:
            if len(lock._cond._waiters) >= n:
                return
        time.sleep(0.005)
    raise AssertionError("waiters did not queue")


def test_fastpath_writer_goes_before_waiting_jobs_and_queries():
    lock = PriorityLock()
    order: list[str] = []
    lock.acquire()  # a job's statement in progress

    def ordinary(name: str) -> None:
        with lock:
            order.append(name)

    def writer() -> None:
        with lock.priority(), lock:
            order.append("writer")

    threads = [threading.Thread(target=ordinary, args=(f"job{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    _wait_waiting(lock, 3)
    w = threading.Thread(target=writer)
    w.start()
    _wait_waiting(lock, 4)
    lock.release()
    for t in threads + [w]:
        t.join(5)
    assert order[0] == "writer" and sorted(order[1:]) == ["job0", "job1", "job2"]


def test_fastpath_priority_lock_is_reentrant_and_checks_its_owner():
    lock = PriorityLock()
    with lock, lock:
        with lock.priority(), lock:
            pass
    got = []
    t = threading.Thread(target=lambda: (lock.acquire(), got.append(1), lock.release()))
    t.start()
    t.join(5)
    assert got == [1]
    try:
        lock.release()
    except RuntimeError:
        pass
    else:
        raise AssertionError("release without owning must fail")


def test_fastpath_jobs_in_background_wait_for_api_queries():
    lock = PriorityLock()
    order: list[str] = []
    lock.acquire()

    def job() -> None:
        with lock.background(), lock:
            order.append("job")

    def query() -> None:
        with lock:
            order.append("query")

    j = threading.Thread(target=job)
    j.start()
    _wait_waiting(lock, 1)
    q = threading.Thread(target=query)
    q.start()
    _wait_waiting(lock, 2)
    lock.release()
    j.join(5)
    q.join(5)
    assert order == ["query", "job"]
