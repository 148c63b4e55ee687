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
from collections import Counter
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
        non-blocking enqueue, usable as the API's fastpath notifier; False
        when the queue is full (the spool feeder picks it up later).
    ``put(uid, body, timeout=None) -> bool``
        blocking enqueue (None: until there is room or the daemon stops).
    ``wait_idle(timeout) -> bool``
        True once everything submitted so far is written and marked.
    ``stop(timeout=10)``
        stops intake, drains the queue, flushes, stops the workers.

    Config keys: FASTPATH_NUM_WORKERS, FASTPATH_QUEUE_SIZE (50 x workers),
    FASTPATH_BATCH_SIZE (measurements per worker task, 20),
    FASTPATH_WRITE_BATCH_ROWS (1000), FASTPATH_FLUSH_INTERVAL (0.2 s),
    FASTPATH_FINGERPRINTS_POLL (60 s), FASTPATH_SPOOL_SCAN_INTERVAL (10 s),
    FASTPATH_SPOOL_MIN_AGE (30 s), FASTPATH_MAX_ATTEMPTS (3), MSMT_SPOOL_DIR.
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
                              max_pending=2 * max(1, self.workers), metrics=metrics)
        self._fps_dir = Path(tempfile.mkdtemp(prefix="fastpath-fingerprints-"))
        self.fingerprints = FingerprintPublisher(db, self._fps_dir)
        self.spool_feeder = SpoolFeeder(
            self.spool, self.put, self._skip_spool_entry, metrics,
            interval=cfg.get_float("FASTPATH_SPOOL_SCAN_INTERVAL", 10.0),
            min_age=cfg.get_float("FASTPATH_SPOOL_MIN_AGE", 30.0))
        self._cond = threading.Condition()
        self._outstanding = 0
        self._inflight: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._accepting = False
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- intake -----------------------------------------------------------

    def _admit(self, uid: str) -> None:
        with self._cond:
            self._outstanding += 1
            self._inflight[uid] += 1

    def _unadmit(self, uid: str) -> None:
        self._settle([uid])

    def submit(self, uid: str, body: bytes) -> bool:
        if not self._accepting:
            return False
        self._admit(uid)
        try:
            self.queue.put_nowait((uid, body))
        except queue.Full:
            self._unadmit(uid)
            self.metrics.incr("queue_full")
            return False
        return True

    def put(self, uid: str, body: bytes, timeout: float | None = None) -> bool:
        if not self._accepting:
            return False
        self._admit(uid)
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
            return self._inflight[uid] > 0 or self._failures[uid] >= self.max_attempts

    # --- completion -------------------------------------------------------

    def _settle(self, uids: list[str]) -> None:
        with self._cond:
            for u in uids:
                self._outstanding -= 1
                n = self._inflight[u] - 1
                if n > 0:
                    self._inflight[u] = n
                else:
                    del self._inflight[u]
            self._cond.notify_all()

    def _flushed(self, handled: list[str], failed: list[str]) -> None:
        if handled:
            try:
                self.spool.mark_handled(handled)
            except OSError as e:
                # Only costs a re-score after a restart.
                log.error("cannot mark %d spool entries handled: %s", len(handled), e)
        if failed:
            with self._cond:
                for u in failed:
                    self._failures[u] += 1
        self._settle(handled + failed)

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
