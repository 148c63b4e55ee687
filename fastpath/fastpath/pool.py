"""The scoring worker pool shared by the live daemon and reprocessing.

Scoring is CPU-bound pure Python, so it runs in worker processes (``spawn``
context: the parent may hold an embedded chdb engine with threads, which a
``fork`` would copy in an undefined state). Workers never touch the
database: they receive batches of ``(uid, raw bytes)``, score them with
``fastpath.core.process_measurement`` and send back row tuples; the parent
writes them.

Backpressure: at most ``max_pending`` batches are in flight; ``submit``
blocks beyond that. A worker that dies (segfault, OOM kill) is restarted;
the batch it held is retried one measurement at a time, and a measurement
that kills a worker on its own is reported as an error with reason
``worker_crash`` instead of being retried forever.

``workers=0`` scores in the calling thread (no processes): the cheapest
setup for tests and for small standalone installations.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import signal
import threading
import time
from typing import Callable, NamedTuple, Sequence

from .fingerprint_snapshot import FingerprintFiles

log = logging.getLogger("fastpath")

# (uid, raw bytes of the post or of one JSON line)
WorkItem = tuple[str, bytes]


class Scored(NamedTuple):
    """What the parent needs from one processed measurement."""
    uid: str
    status: str            # "scored" | "discarded" | "error"
    reason: str | None
    row: tuple | None      # fastpath row, FASTPATH_COLUMNS order
    openvpn_row: tuple | None
    ms: float              # wall time of process_measurement


ResultSink = Callable[[list[Scored]], None]


class _Scorer:
    """Scores items with the fingerprints of the newest version it was told of."""

    def __init__(self, build_row: bool = True):
        from .fingerprints import Fingerprints
        self.fps = Fingerprints.empty()
        self.version: int | None = None
        self.build_row = build_row

    def use(self, files: FingerprintFiles | None) -> None:
        if files is None or files.version == self.version:
            return
        from .fingerprints import load_from_files
        try:
            self.fps = load_from_files(files.dns_path, files.http_path)
            self.version = files.version
        except Exception:
            # §5.3: a failed load keeps the previous fingerprints.
            log.exception("cannot load fingerprints version %s", files.version)
            self.version = files.version

    def score(self, items: Sequence[WorkItem]) -> list[Scored]:
        from .core import process_measurement
        out = []
        perf = time.perf_counter
        for uid, raw in items:
            t0 = perf()
            o = process_measurement(raw, None, uid, self.fps, build_row=self.build_row)
            ms = (perf() - t0) * 1000
            row = o.row.as_tuple() if o.row is not None else None
            ovpn = o.openvpn_row.as_tuple() if o.openvpn_row is not None else None
            out.append(Scored(uid, o.status, o.reason, row, ovpn, ms))
        return out


def _worker_main(idx: int, tasks, results, current, build_row: bool, log_level: int) -> None:
    # Ctrl-C in a terminal reaches the whole process group; the parent
    # decides when workers end (end marker), after draining their batches.
    # A parent may spawn with SIGINT blocked so that the start-up window is
    # covered too; a signal pending from then is discarded here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    logging.basicConfig(level=log_level, format="%(asctime)s fastpath[worker %(process)d] "
                        "%(levelname)s %(message)s")
    scorer = _Scorer(build_row)
    while True:
        msg = tasks.get()
        if msg is None:
            return
        batch_id, files, items = msg
        current.value = batch_id
        scorer.use(files)
        try:
            res = scorer.score(items)
        except Exception as e:  # process_measurement never raises; belt and braces
            log.exception("batch %d failed", batch_id)
            res = [Scored(uid, "error", f"worker_exception: {type(e).__name__}", None, None, 0.0)
                   for uid, _ in items]
        results.put((batch_id, res))
        current.value = -1


class InlinePool:
    """Same interface as ProcessPool; scores in the caller's thread."""

    def __init__(self, sink: ResultSink, build_row: bool = True):
        self.sink = sink
        self._scorer = _Scorer(build_row)
        self._files: FingerprintFiles | None = None
        self.workers = 0

    def set_fingerprints(self, files: FingerprintFiles | None) -> None:
        self._files = files

    def start(self) -> None:
        pass

    def submit(self, items: Sequence[WorkItem], timeout: float | None = None) -> bool:
        self._scorer.use(self._files)
        self.sink(self._scorer.score(items))
        return True

    def pending(self) -> int:
        return 0

    def stop(self, timeout: float = 10) -> None:
        pass


class ProcessPool:
    def __init__(self, workers: int, sink: ResultSink, *, max_pending: int | None = None,
                 build_row: bool = True, metrics=None):
        self.workers = workers
        self.sink = sink
        self.build_row = build_row
        self.metrics = metrics
        self._ctx = mp.get_context("spawn")
        self._tasks = self._ctx.Queue()
        self._results = self._ctx.Queue()
        self._slots = threading.BoundedSemaphore(max_pending or 2 * workers)
        self._lock = threading.Lock()
        # batch_id -> (items, holds_slot, is_retry)
        self._pending: dict[int, tuple[Sequence[WorkItem], bool, bool]] = {}
        self._next_id = 0
        self._procs: list = []
        self._current: list = []
        self._files: FingerprintFiles | None = None
        self._stopping = threading.Event()
        self._collector: threading.Thread | None = None

    def set_fingerprints(self, files: FingerprintFiles | None) -> None:
        self._files = files

    def _spawn(self, idx: int):
        cur = self._ctx.Value("q", -1, lock=False)
        p = self._ctx.Process(
            target=_worker_main, name=f"fastpath-worker-{idx}",
            args=(idx, self._tasks, self._results, cur, self.build_row,
                  logging.getLogger("fastpath").getEffectiveLevel()),
            daemon=True)
        p.start()
        if self.metrics:
            self.metrics.incr("num_workers")
        return p, cur

    def start(self) -> None:
        for i in range(self.workers):
            p, cur = self._spawn(i)
            self._procs.append(p)
            self._current.append(cur)
        self._collector = threading.Thread(target=self._collect, name="fastpath-collector",
                                           daemon=True)
        self._collector.start()

    def _put(self, items: Sequence[WorkItem], holds_slot: bool, retry: bool) -> None:
        with self._lock:
            bid = self._next_id
            self._next_id += 1
            self._pending[bid] = (items, holds_slot, retry)
        self._tasks.put((bid, self._files, list(items)))

    def submit(self, items: Sequence[WorkItem], timeout: float | None = None) -> bool:
        """Queue one batch; False when no slot freed up within ``timeout``."""
        if not self._slots.acquire(timeout=timeout):
            return False
        self._put(items, True, False)
        return True

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _done(self, bid: int) -> tuple[Sequence[WorkItem], bool, bool] | None:
        with self._lock:
            entry = self._pending.pop(bid, None)
        if entry is not None and entry[1]:
            self._slots.release()
        return entry

    def _collect(self) -> None:
        while not self._stopping.is_set():
            try:
                bid, res = self._results.get(timeout=0.5)
            except queue.Empty:
                self._check_workers()
                continue
            except (EOFError, OSError):
                return
            if self._done(bid) is not None:
                try:
                    self.sink(res)
                except Exception:
                    log.exception("result sink failed")

    def _check_workers(self) -> None:
        for i, p in enumerate(self._procs):
            if p.is_alive() or self._stopping.is_set():
                continue
            bid = self._current[i].value
            log.error("worker %d (pid %s) died with exit code %s while holding batch %d",
                      i, p.pid, p.exitcode, bid)
            if self.metrics:
                self.metrics.incr("num_workers", -1)
                self.metrics.incr("worker_crash")
            self._procs[i], self._current[i] = self._spawn(i)
            if bid < 0:
                continue
            entry = self._done(bid)
            if entry is None:
                continue
            items, _, retry = entry
            if retry or len(items) == 1:
                self.sink([Scored(uid, "error", "worker_crash", None, None, 0.0)
                           for uid, _ in items])
            else:
                for it in items:
                    self._put([it], False, True)

    def stop(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        # Let queued batches finish first, then send one end marker per worker.
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stopping.set()
        for _ in self._procs:
            self._tasks.put(None)
        for p in self._procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join(1)
            if self.metrics:
                self.metrics.incr("num_workers", -1)
        if self._collector is not None:
            self._collector.join(2)
        # Results that arrived between the last poll and the stop flag.
        while True:
            try:
                bid, res = self._results.get_nowait()
            except (queue.Empty, EOFError, OSError):
                break
            if self._done(bid) is not None:
                self.sink(res)
        self._tasks.close()
        self._results.close()


def make_pool(workers: int, sink: ResultSink, *, max_pending: int | None = None,
              build_row: bool = True, metrics=None):
    if workers <= 0:
        return InlinePool(sink, build_row)
    return ProcessPool(workers, sink, max_pending=max_pending, build_row=build_row,
                       metrics=metrics)
