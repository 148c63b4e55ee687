"""The live fastpath: a bounded queue of fresh measurements, a pool of
scoring workers, one writer, the spool feeder and the fingerprint poller.

Data flow (DESIGN.md steps 3-5)::

    HTTP feeder / API notifier / spool feeder
        -> submit()/put()  [bounded queue of (uid, body)]
        -> dispatcher thread  [batches]
        -> worker processes  [score, build rows]
        -> writer thread  [batched INSERTs into fastpath, obs_openvpn]
        -> Spool.mark_handled  [the uploader may archive them]
"""
from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import Counter, deque
from pathlib import Path

from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.metrics import Metrics
from ooni_common.spool import Spool

from .fingerprint_snapshot import FingerprintPublisher
from .pool import make_pool
from .rows import FASTPATH_COLUMNS, OBS_OPENVPN_COLUMNS
from .spool_feeder import SpoolFeeder
from .writer import RowWriter

log = logging.getLogger("fastpath")

_STOP = object()


class FastpathDaemon:
    """Scores fresh measurements and upserts their rows.

    Stable interface (the standalone runner and the HTTP feeder rely on it):

    ``FastpathDaemon(cfg, db, metrics, *, workers=None, in_process=False)``
        ``workers``: number of scoring processes; default
        ``FASTPATH_NUM_WORKERS`` (2), or the number of cores when
        ``in_process`` (standalone: API and fastpath share one process and
        this one database handle). ``0`` scores in a thread, no processes.
    ``start()``
        loads fingerprints, starts workers, writer, fingerprint poller and
        the spool feeder (which first scores every unhandled spool entry).
    ``submit(uid, body) -> bool``
        non-blocking enqueue, usable as the API's fastpath notifier. When
        the queue is full the measurement waits in a bounded backlog, moved
        into the queue as room frees; False only when the backlog is full
        too (the spool feeder then picks it up within seconds).
    ``put(uid, body, timeout=None) -> bool``
        blocking enqueue (None: until there is room or the daemon stops).
    ``wait_idle(timeout) -> bool``
        True once everything submitted so far is written and marked.
    ``stop(timeout=10)``
        stops intake, drains the queue, flushes, stops the workers.
    ``health_problem() -> str | None``
        why scoring counts as stuck (work waiting, nothing written for
        ``FASTPATH_STUCK_AFTER`` seconds), None when healthy: the fastpath's
        ``GET /health`` and the standalone API's ``/health`` answer 503 then.

    Gauges (``fastpath.``, every second): ``queue_depth`` (measurements
    accepted, not yet written), ``oldest_unscored_age`` (seconds since the
    oldest of them was acknowledged; spool mtime for those the spool feeder
    found). Timer ``ack_to_written``: from acknowledgement (or admission)
    to the row written and the spool entry marked.

    Config keys: FASTPATH_NUM_WORKERS, FASTPATH_QUEUE_SIZE (50 x workers),
    FASTPATH_BATCH_SIZE (measurements per worker task, 20),
    FASTPATH_WRITE_BATCH_ROWS (1000), FASTPATH_FLUSH_INTERVAL (0.2 s),
    FASTPATH_FINGERPRINTS_POLL (60 s), FASTPATH_SPOOL_SCAN_INTERVAL (5 s),
    FASTPATH_SPOOL_MIN_AGE (10 s), FASTPATH_MAX_ATTEMPTS (3), MSMT_SPOOL_DIR,
    FASTPATH_BACKLOG_SIZE (20 x queue size), FASTPATH_BACKLOG_MAX_BYTES
    (256 MiB), FASTPATH_STUCK_AFTER (120 s), FASTPATH_TASK_TIMEOUT (300 s, a
    worker holding one batch longer is killed), FASTPATH_WEDGE_TIMEOUT (30 s,
    the pool's watchdog).
    """

    def __init__(self, cfg: Config, db: Database, metrics: Metrics, *,
                 workers: int | None = None, in_process: bool = False):
        self.cfg = cfg
        self.db = db
        self.metrics = metrics
        if workers is None:
            workers = (os.cpu_count() or 2) if in_process else cfg.get_int("FASTPATH_NUM_WORKERS", 2)
        self.workers = max(0, workers)
        self.in_process = in_process
        self.spool = Spool(cfg.spool_dir)
        self.queue: queue.Queue = queue.Queue(
            max(1, cfg.get_int("FASTPATH_QUEUE_SIZE", 50 * max(1, self.workers))))
        self.batch_size = max(1, cfg.get_int("FASTPATH_BATCH_SIZE", 20))
        self.max_attempts = cfg.get_int("FASTPATH_MAX_ATTEMPTS", 3)
        self.fps_poll = cfg.get_float("FASTPATH_FINGERPRINTS_POLL", 60.0)
        self.writer = RowWriter(
            db, metrics, fastpath_columns=FASTPATH_COLUMNS, openvpn_columns=OBS_OPENVPN_COLUMNS,
            batch_rows=cfg.get_int("FASTPATH_WRITE_BATCH_ROWS", 1000),
            flush_interval=cfg.get_float("FASTPATH_FLUSH_INTERVAL", 0.2),
            on_flushed=self._flushed)
        self.pool = make_pool(self.workers, self.writer.add,
                              max_pending=2 * max(1, self.workers), metrics=metrics,
                              task_timeout=cfg.get_float("FASTPATH_TASK_TIMEOUT", 300.0),
                              wedge_timeout=cfg.get_float("FASTPATH_WEDGE_TIMEOUT", 30.0))
        self._fps_dir = Path(tempfile.mkdtemp(prefix="fastpath-fingerprints-"))
        self.fingerprints = FingerprintPublisher(db, self._fps_dir)
        self.spool_feeder = SpoolFeeder(
            self.spool, self._feed_from_spool, self._skip_spool_entry, metrics,
            interval=cfg.get_float("FASTPATH_SPOOL_SCAN_INTERVAL", 5.0),
            min_age=cfg.get_float("FASTPATH_SPOOL_MIN_AGE", 10.0))
        self.backlog_size = cfg.get_int("FASTPATH_BACKLOG_SIZE", 20 * self.queue.maxsize)
        self.backlog_max_bytes = cfg.get_int("FASTPATH_BACKLOG_MAX_BYTES", 256 * 1024 * 1024)
        self.stuck_after = cfg.get_float("FASTPATH_STUCK_AFTER", 120.0)
        self._backlog: deque[tuple[str, bytes]] = deque()
        self._backlog_bytes = 0
        self._backlog_cond = threading.Condition()
        self._cond = threading.Condition()
        self._outstanding = 0
        self._inflight: Counter[str] = Counter()
        # uid -> when it was acknowledged (wall clock), for the age gauge
        self._since: dict[str, float] = {}
        self._busy_since = time.monotonic()
        self._last_progress = time.monotonic()
        self._failures: Counter[str] = Counter()
        # uid -> when it was marked handled. A spool pass reads a directory's
        # .handled list once, so what is scored after that read (from a
        # notification) would be fed again; kept until a newer pass began.
        self._done: dict[str, float] = {}
        self._accepting = False
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- intake -----------------------------------------------------------

    def _admit(self, uid: str, since: float | None = None) -> None:
        with self._cond:
            if self._outstanding == 0:
                self._busy_since = time.monotonic()
            self._outstanding += 1
            self._inflight[uid] += 1
            self._since.setdefault(uid, time.time() if since is None else since)

    def _admit_new(self, uid: str, since: float | None = None) -> bool:
        """``_admit`` unless the uid is already known: at start-up the spool
        feeder and the notification of one measurement can both bring it."""
        with self._cond:
            if self._known(uid):
                return False
            self._admit(uid, since)
            return True

    def _unadmit(self, uid: str) -> None:
        self._settle([uid], progress=False)

    def submit(self, uid: str, body: bytes) -> bool:
        if not self._accepting:
            return False
        if not self._admit_new(uid):
            return True  # the spool feeder got to it first
        with self._backlog_cond:
            # Behind a backlog the queue must not be jumped (the feeder
            # thread keeps the order), so only an empty backlog tries it.
            if not self._backlog:
                try:
                    self.queue.put_nowait((uid, body))
                    return True
                except queue.Full:
                    pass
            if (len(self._backlog) < self.backlog_size
                    and self._backlog_bytes + len(body) <= self.backlog_max_bytes):
                self._backlog.append((uid, body))
                self._backlog_bytes += len(body)
                self._backlog_cond.notify()
                self.metrics.incr("backlogged")
                return True
        self._unadmit(uid)
        self.metrics.incr("queue_full")
        return False

    def _feed_backlog(self) -> None:
        """Moves backlogged measurements into the queue as room frees."""
        while True:
            with self._backlog_cond:
                while not self._backlog and not self._stopping.is_set():
                    self._backlog_cond.wait(0.5)
                if not self._backlog:
                    return
                uid, body = self._backlog[0]
            while True:
                try:
                    self.queue.put((uid, body), timeout=0.5)
                    break
                except queue.Full:
                    if self._stopping.is_set() and not self._accepting and self._drop_backlog():
                        return
            with self._backlog_cond:
                self._backlog.popleft()
                self._backlog_bytes -= len(body)

    def _drop_backlog(self) -> bool:
        """At stop, when the queue stays full: what is left stays in the spool."""
        with self._backlog_cond:
            left = [u for u, _ in self._backlog]
            self._backlog.clear()
            self._backlog_bytes = 0
        if left:
            log.warning("stopping: %d backlogged measurements left to the spool", len(left))
            self._settle(left, progress=False)
        return True

    def put(self, uid: str, body: bytes, timeout: float | None = None,
            since: float | None = None) -> bool:
        if not self._accepting:
            return False
        self._admit(uid, since)
        return self._enqueue(uid, body, timeout)

    def _feed_from_spool(self, uid: str, body: bytes, since: float | None = None) -> bool:
        """The spool feeder's ``feed``: a uid already queued or scored by the
        time its body was read is not fed again (True: nothing to do)."""
        if not self._accepting:
            return False
        if not self._admit_new(uid, since):
            return True
        return self._enqueue(uid, body, None)

    def _enqueue(self, uid: str, body: bytes, timeout: float | None) -> bool:
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        while self._accepting:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                break
            try:
                self.queue.put((uid, body), timeout=wait)
                return True
            except queue.Full:
                continue
        self._unadmit(uid)
        self.metrics.incr("queue_full")
        return False

    def _skip_spool_entry(self, uid: str) -> bool:
        with self._cond:
            return self._known(uid)

    def _known(self, uid: str) -> bool:
        """Queued, scored since the spool pass began, or given up on."""
        return (self._inflight[uid] > 0 or uid in self._done
                or self._failures[uid] >= self.max_attempts)

    # --- completion -------------------------------------------------------

    def _settle(self, uids: list[str], progress: bool = True) -> None:
        now = time.time()
        with self._cond:
            for u in uids:
                self._outstanding -= 1
                n = self._inflight[u] - 1
                if n > 0:
                    self._inflight[u] = n
                else:
                    del self._inflight[u]
                    since = self._since.pop(u, None)
                    if progress and since is not None:
                        self.metrics.timing("ack_to_written", (now - since) * 1000)
            if progress and uids:
                self._last_progress = time.monotonic()
            self._cond.notify_all()

    # --- monitoring -------------------------------------------------------

    def queue_depth(self) -> int:
        """Measurements accepted and not yet written (or given up on)."""
        with self._cond:
            return self._outstanding

    def oldest_unscored_age(self) -> float:
        with self._cond:
            oldest = min(self._since.values(), default=None)
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def stuck_for(self) -> float:
        """Seconds with work waiting and nothing written; 0 when idle."""
        with self._cond:
            if self._outstanding <= 0:
                return 0.0
            return time.monotonic() - max(self._last_progress, self._busy_since)

    def health_problem(self) -> str | None:
        if not self._threads and not self._accepting:
            return None  # not started, or stopped on purpose
        stuck = self.stuck_for()
        if stuck > self.stuck_after:
            return (f"fastpath scoring stuck for {stuck:.0f} s with {self.queue_depth()} "
                    f"measurements waiting")
        return None

    def monitor_once(self) -> str | None:
        """Update the gauges; returns the health problem, if any."""
        self.metrics.gauge("queue_depth", self.queue_depth())
        self.metrics.gauge("oldest_unscored_age", round(self.oldest_unscored_age(), 3))
        return self.health_problem()

    def _monitor(self) -> None:
        while not self._stopping.wait(1.0):
            problem = self.monitor_once()
            if problem:
                log.error("%s", problem)

    def _flushed(self, handled: list[str], failed: list[str]) -> None:
        if handled:
            try:
                self.spool.mark_handled(handled)
            except OSError as e:
                # Only costs a re-score after a restart.
                log.error("cannot mark %d spool entries handled: %s", len(handled), e)
            else:
                self._remember_done(handled)
        if failed:
            with self._cond:
                for u in failed:
                    self._failures[u] += 1
        self._settle(handled + failed)

    def _remember_done(self, uids: list[str]) -> None:
        now = time.monotonic()
        with self._cond:
            for u in uids:
                self._done.pop(u, None)  # keeps the dict ordered by time
                self._done[u] = now
            horizon = self.spool_feeder.pass_started
            while self._done:
                oldest = next(iter(self._done))
                if self._done[oldest] >= horizon:
                    break
                del self._done[oldest]

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._outstanding > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # --- threads ----------------------------------------------------------

    def _dispatch(self) -> None:
        q = self.queue
        while True:
            item = q.get()
            if item is _STOP:
                return
            batch = [item]
            stop_after = False
            while len(batch) < self.batch_size:
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop_after = True
                    break
                batch.append(nxt)
            while not self.pool.submit(batch, timeout=0.5):
                pass
            self.metrics.gauge("queue_size", q.qsize())
            if stop_after:
                return

    def _poll_fingerprints(self) -> None:
        while not self._stopping.wait(self.fps_poll):
            self.reload_fingerprints()

    def reload_fingerprints(self) -> bool:
        """Publish the tables' fingerprints to the workers if they changed."""
        with self.metrics.child("db").timer("fetch_fingerprints"):
            changed = self.fingerprints.refresh()
        if changed:
            self.pool.set_fingerprints(self.fingerprints.current)
        return changed

    def start(self) -> None:
        self.writer.start()
        self.reload_fingerprints()
        self.pool.start()
        self._accepting = True
        for target, name in ((self._dispatch, "fastpath-dispatcher"),
                             (self._feed_backlog, "fastpath-backlog"),
                             (self._monitor, "fastpath-monitor"),
                             (self._poll_fingerprints, "fastpath-fingerprints")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.spool_feeder.start()
        log.info("fastpath daemon started: %d workers (%s), spool %s", self.workers,
                 "in process" if self.in_process else "standalone daemon", self.spool.root)

    def stop(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        self._accepting = False
        self._stopping.set()
        self.spool_feeder.stop(timeout=max(0.1, deadline - time.monotonic()))
        # The backlog goes into the queue first, then the end marker behind it.
        with self._backlog_cond:
            self._backlog_cond.notify_all()
        for t in self._threads:
            if t.name == "fastpath-backlog":
                t.join(max(0.1, deadline - time.monotonic()))
        # The end marker goes behind everything already queued.
        while True:
            try:
                self.queue.put(_STOP, timeout=max(0.1, deadline - time.monotonic()))
                break
            except queue.Full:
                if time.monotonic() > deadline:
                    break
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        self._threads = []
        self.pool.stop(timeout=max(0.5, deadline - time.monotonic()))
        self.writer.stop(timeout=max(0.5, deadline - time.monotonic()))
        self.metrics.incr("shut_down")
        shutil.rmtree(self._fps_dir, ignore_errors=True)
        log.info("fastpath daemon stopped")
