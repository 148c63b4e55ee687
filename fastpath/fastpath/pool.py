"""The scoring worker pool shared by the live daemon and reprocessing.

Scoring is CPU-bound pure Python, so it runs in worker processes (``spawn``
context: the parent may hold an embedded chdb engine with threads, which a
``fork`` would copy in an undefined state). Workers never touch the
database: they receive batches of ``(uid, raw bytes)``, score them with
``fastpath.core.process_measurement`` and send back row tuples; the parent
writes them.

Backpressure: at most ``max_pending`` batches are in flight; ``submit``
blocks beyond that. A worker that dies (segfault, OOM kill, kill -9) is
restarted; the batch it held is retried one measurement at a time, and a
measurement whose worker died ``max_deaths`` (3) times while scoring it
alone is reported as an error with reason ``worker_crash`` instead of being
retried forever. Each worker has its own pipe (no shared queue whose lock a
killed worker could keep), dies with its parent (PR_SET_PDEATHSIG), and a
watchdog restarts the pool's manager thread when it stops making progress.

``workers=0`` scores in the calling thread (no processes): the cheapest
setup for tests and for small standalone installations.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait as mp_wait
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
    replaced_text: int = 0  # row fields whose unpaired surrogates were replaced
    timings: tuple[tuple[str, float], ...] = ()  # Outcome.timings


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
            out.append(Scored(uid, o.status, o.reason, row, ovpn, ms, o.replaced_text, o.timings))
        return out


_PR_SET_PDEATHSIG = 1
_READY = "ready"


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent goes, even by
    SIGKILL (an orphaned worker would otherwise hold fds and the
    multiprocessing resource tracker's pipe for ever). The signal is tied
    to the parent *thread* that spawned us, which is why the pool spawns
    from its long-lived manager thread."""
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the EOF on the pipe still ends us
        pass
    # The parent may have died before prctl took effect.
    if os.getppid() != parent_pid:
        os._exit(1)


def _worker_main(conn, parent_pid: int, build_row: bool, log_level: int) -> None:
    die_with_parent(parent_pid)
    # Ctrl-C in a terminal reaches the whole process group; the parent
    # decides when workers end (end marker), after draining their batches.
    # A parent may spawn with SIGINT blocked so that the start-up window is
    # covered too; a signal pending from then is discarded here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    logging.basicConfig(level=log_level, format="%(asctime)s fastpath[worker %(process)d] "
                        "%(levelname)s %(message)s")
    scorer = _Scorer(build_row)
    # Batches go only to a worker that said it is ready: one killed while
    # starting up (the slow part) then holds none, and an innocent retried
    # measurement is not charged with its death.
    try:
        conn.send(_READY)
    except OSError:
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if msg is None:
            return
        batch_id, files, items = msg
        scorer.use(files)
        try:
            res = scorer.score(items)
        except Exception as e:  # process_measurement never raises; belt and braces
            log.exception("batch %d failed", batch_id)
            res = [Scored(uid, "error", f"worker_exception: {type(e).__name__}", None, None, 0.0)
                   for uid, _ in items]
        try:
            conn.send((batch_id, res))
        except (BrokenPipeError, OSError):
            return


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


@dataclass
class _Batch:
    id: int
    items: list
    holds_slot: bool      # releases a submit() slot when done
    single: bool = False  # a retry of one measurement after a worker death
    deaths: int = 0       # workers that died holding this (single) item


@dataclass
class _Worker:
    idx: int
    proc: object
    conn: object                 # the parent's end of this worker's own pipe
    batch: _Batch | None = None
    since: float = 0.0           # when the current batch was sent
    ready: bool = False          # started up, waiting for batches


class ProcessPool:
    """Scoring processes, each with its own pipe.

    No queue, lock or shared memory is shared between processes: a worker
    killed at any instant (OOM killer, kill -9) can only break its own pipe,
    which the manager thread sees as EOF or as the process sentinel. Its
    batch is then re-queued (see the module docstring), and a new worker
    spawned in its place. A batch's result comes back as one message, so a
    batch is either scored once or re-queued, never half-counted; rows are
    upserts (ReplacingMergeTree keyed on the uid) in any case.

    ``task_timeout``: a worker holding one batch longer than this is killed
    as wedged (its batch then handled like a crash). ``wedge_timeout``: the
    watchdog kills all workers and restarts the manager thread when the
    manager made no progress for this long outside the result sink (whose
    backpressure, e.g. a database down, is not a wedge).
    """

    def __init__(self, workers: int, sink: ResultSink, *, max_pending: int | None = None,
                 build_row: bool = True, metrics=None, task_timeout: float = 300.0,
                 wedge_timeout: float = 30.0, max_deaths: int = 3):
        self.workers = workers
        self.sink = sink
        self.build_row = build_row
        self.metrics = metrics
        self.task_timeout = task_timeout
        self.wedge_timeout = wedge_timeout
        self.max_deaths = max(1, max_deaths)
        self._ctx = mp.get_context("spawn")
        self._slots = threading.BoundedSemaphore(max_pending or 2 * workers)
        self._lock = threading.Lock()
        self._queue: deque[_Batch] = deque()
        self._open: dict[int, _Batch] = {}   # queued or running, not yet done
        self._next_id = 0
        self._workers: list[_Worker | None] = [None] * workers
        self._files: FingerprintFiles | None = None
        self._stopping = threading.Event()
        # slot -> not before this time: a worker that dies before it is
        # ready (broken install, no memory) is not respawned in a busy loop.
        self._spawn_after = [0.0] * workers
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._manager: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._beat = time.monotonic()
        self._in_sink = False
        self.restarts = 0

    def set_fingerprints(self, files: FingerprintFiles | None) -> None:
        self._files = files

    # --- public interface -------------------------------------------------

    def start(self) -> None:
        self._start_manager()
        self._watchdog = threading.Thread(target=self._watch, name="fastpath-pool-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def submit(self, items: Sequence[WorkItem], timeout: float | None = None) -> bool:
        """Queue one batch; False when no slot freed up within ``timeout``."""
        if not self._slots.acquire(timeout=timeout):
            return False
        with self._lock:
            b = _Batch(self._next_id, list(items), True)
            self._next_id += 1
            self._open[b.id] = b
            self._queue.append(b)
        self._wake()
        return True

    def pending(self) -> int:
        with self._lock:
            return len(self._open)

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w is not None and w.proc.pid]

    def stop(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        # Let queued batches finish first, then end the workers.
        while self.pending() and time.monotonic() < deadline and self._manager_alive():
            time.sleep(0.02)
        self._stopping.set()
        self._wake()
        if self._manager is not None:
            self._manager.join(max(0.5, deadline - time.monotonic()) + 2)
        if self._watchdog is not None:
            self._watchdog.join(2)
        for w in self._workers:
            if w is not None and w.proc.is_alive():
                w.proc.kill()
                w.proc.join(1)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # --- manager thread ---------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # already awake (pipe full) or stopped

    def _manager_alive(self) -> bool:
        return self._manager is not None and self._manager.is_alive()

    def _start_manager(self) -> None:
        self._beat = time.monotonic()
        self._manager = threading.Thread(target=self._manage, name="fastpath-pool", daemon=True)
        self._manager.start()

    def _spawn(self, idx: int) -> _Worker:
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        p = self._ctx.Process(
            target=_worker_main, name=f"fastpath-worker-{idx}",
            args=(child_end, os.getpid(), self.build_row,
                  logging.getLogger("fastpath").getEffectiveLevel()),
            daemon=True)
        p.start()
        # Only the worker may hold its end: EOF then means it died.
        child_end.close()
        if self.metrics:
            self.metrics.incr("num_workers")
        return _Worker(idx, p, parent_end)

    def _manage(self) -> None:
        try:
            self._manage_loop()
        except Exception:
            # The watchdog restarts the manager; the workers it spawned die
            # with it (PDEATHSIG is per spawning thread) and their batches
            # are re-queued by the next manager.
            log.exception("scoring pool manager failed")

    def _manage_loop(self) -> None:
        while True:
            self._beat = time.monotonic()
            for i, w in enumerate(self._workers):
                if w is not None and not w.proc.is_alive() and not w.conn.poll():
                    self._lost(w, "dead")
                    w = self._workers[i] = None
                if (w is None and not self._stopping.is_set()
                        and time.monotonic() >= self._spawn_after[i]):
                    self._workers[i] = self._spawn(i)
            if self._stopping.is_set():
                self._end_workers()
                return
            self._assign()
            waitables = [self._wake_r]
            for w in self._workers:
                if w is not None:
                    waitables += [w.conn, w.proc.sentinel]
            ready = set(mp_wait(waitables, timeout=0.5))
            if self._wake_r in ready:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except (BlockingIOError, OSError):
                    pass
            now = time.monotonic()
            for i, w in enumerate(self._workers):
                if w is None:
                    continue
                if w.conn in ready or w.proc.sentinel in ready:
                    if not self._receive(w):
                        self._lost(w, "dead")
                        self._workers[i] = None
                elif w.batch is not None and now - w.since > self.task_timeout:
                    log.error("worker %d (pid %s) held batch %d for %.0f s: killing it",
                              i, w.proc.pid, w.batch.id, now - w.since)
                    if self.metrics:
                        self.metrics.incr("worker_timeout")
                    w.proc.kill()
                    w.proc.join(5)
                    self._lost(w, "wedged")
                    self._workers[i] = None

    def _assign(self) -> None:
        for i, w in enumerate(self._workers):
            if w is None or w.batch is not None or not w.ready:
                continue
            with self._lock:
                if not self._queue:
                    return
                b = self._queue.popleft()
            w.batch, w.since = b, time.monotonic()
            try:
                w.conn.send((b.id, self._files, b.items))
            except (OSError, ValueError):
                # Died meanwhile: the sentinel reports it, the batch is re-queued.
                pass

    def _receive(self, w: _Worker) -> bool:
        """Read every finished result of ``w``; False when it is gone."""
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                if msg == _READY:
                    w.ready = True
                    continue
                bid, res = msg
                b = w.batch
                w.batch = None
                if b is None or b.id != bid:
                    log.error("worker %d sent batch %d, not the one it held", w.idx, bid)
                    continue
                self._finish(b, res)
        except (EOFError, OSError):
            return False
        except Exception:
            # A message cut short by the worker's death unpickles as garbage.
            log.exception("cannot read the result of worker %d", w.idx)
            return False
        return w.proc.is_alive()

    def _finish(self, b: _Batch, res: list[Scored]) -> None:
        with self._lock:
            self._open.pop(b.id, None)
        if b.holds_slot:
            self._slots.release()
        self._in_sink = True
        try:
            self.sink(res)
        except Exception:
            log.exception("result sink failed")
        finally:
            self._in_sink = False
            self._beat = time.monotonic()

    def _lost(self, w: _Worker, how: str) -> None:
        """``w`` is dead; re-queue what it held."""
        if not w.ready:
            self._spawn_after[w.idx] = time.monotonic() + 1.0
        w.proc.join(1)
        try:
            w.conn.close()
        except OSError:
            pass
        if self.metrics:
            self.metrics.incr("num_workers", -1)
            self.metrics.incr("worker_crash")
        b = w.batch
        w.batch = None
        log.error("worker %d (pid %s) %s with exit code %s%s", w.idx, w.proc.pid, how,
                  w.proc.exitcode, "" if b is None else f" holding batch {b.id} "
                  f"({len(b.items)} measurements)")
        if b is None:
            return
        if not b.single and len(b.items) > 1:
            # Which one killed it is unknown: retry them one by one.
            with self._lock:
                self._open.pop(b.id, None)
                for it in b.items:
                    r = _Batch(self._next_id, [it], False, single=True, deaths=0)
                    self._next_id += 1
                    self._open[r.id] = r
                    self._queue.appendleft(r)
            if b.holds_slot:
                self._slots.release()
            return
        b.single = True
        b.deaths += 1
        if b.deaths < self.max_deaths:
            with self._lock:
                self._queue.appendleft(b)
            return
        # Killed its worker every time it was scored alone: give up on it
        # (reported, marked handled) rather than retry for ever.
        self._finish(b, [Scored(uid, "error", "worker_crash", None, None, 0.0)
                         for uid, _ in b.items])

    def _end_workers(self) -> None:
        for w in self._workers:
            if w is None:
                continue
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 5
        for i, w in enumerate(self._workers):
            if w is None:
                continue
            w.proc.join(max(0.1, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(1)
            try:
                self._receive(w)
            except Exception:
                pass
            w.conn.close()
            if self.metrics:
                self.metrics.incr("num_workers", -1)
            self._workers[i] = None

    # --- watchdog ---------------------------------------------------------

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            if not self._manager_alive():
                self._restart("its manager thread died")
            elif not self._in_sink and time.monotonic() - self._beat > self.wedge_timeout:
                self._restart(f"no progress for {time.monotonic() - self._beat:.0f} s")

    def _restart(self, why: str) -> None:
        log.error("scoring pool wedged (%s): killing its workers and restarting it", why)
        self.restarts += 1
        if self.metrics:
            self.metrics.incr("pool_restart")
        # Killing the workers unblocks a manager stuck on one of their pipes.
        for w in list(self._workers):
            if w is not None and w.proc.pid:
                try:
                    os.kill(w.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
        if self._manager is not None:
            self._manager.join(5)
        if not self._manager_alive() and not self._stopping.is_set():
            self._start_manager()


def make_pool(workers: int, sink: ResultSink, *, max_pending: int | None = None,
              build_row: bool = True, metrics=None, task_timeout: float = 300.0,
              wedge_timeout: float = 30.0):
    if workers <= 0:
        return InlinePool(sink, build_row)
    return ProcessPool(workers, sink, max_pending=max_pending, build_row=build_row,
                       metrics=metrics, task_timeout=task_timeout, wedge_timeout=wedge_timeout)
