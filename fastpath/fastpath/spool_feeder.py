"""Feeds the daemon the spool entries it has not handled yet (§10.1
[reconciled]): at start every unhandled ``<spool>/incoming/*/<uid>.post``, and
then periodically those older than ``min_age`` seconds (younger ones are
normally on their way over HTTP). This is what makes a crash, a stop, a full
queue or a failed notification lose nothing.

Memory stays bounded: one directory listing at a time, bodies read one by one
and handed to a blocking ``feed`` that waits for room in the daemon's queue.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

from ooni_common.metrics import Metrics
from ooni_common.spool import Spool

log = logging.getLogger("fastpath")


class SpoolFeeder:
    def __init__(self, spool: Spool, feed: Callable[..., bool],
                 skip: Callable[[str], bool], metrics: Metrics, *,
                 interval: float = 10.0, min_age: float = 30.0):
        """``feed(uid, body, since=ack_time)`` blocks until queued and returns
        False when the daemon is stopping (``since``: the entry's mtime, when
        it was acknowledged); ``skip(uid)`` is True for uids already queued or
        given up on."""
        self.spool = spool
        self.feed = feed
        self.skip = skip
        self.metrics = metrics
        self.interval = interval
        self.min_age = min_age
        # When the current (or last) pass began: every uid marked handled
        # before then is in the ``.handled`` lists this pass reads.
        self.pass_started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scan(self, min_age: float = 0.0) -> int:
        """Feed every unhandled entry older than ``min_age`` seconds; returns
        how many were fed."""
        fed = 0
        self.pass_started = time.monotonic()
        newest = time.time() - min_age
        for d in self.spool.hour_dirs():
            handled = self.spool.handled(d)
            for entry in self.spool.entries(d):
                if self._stop.is_set():
                    return fed
                uid = entry.uid
                if uid in handled or self.skip(uid):
                    continue
                try:
                    mtime = os.stat(entry.path).st_mtime
                    if min_age and mtime > newest:
                        continue
                    body = entry.path.read_bytes()
                except OSError:
                    continue  # archived by the uploader meanwhile
                if not self.feed(uid, body, since=mtime):
                    return fed
                fed += 1
        if fed:
            self.metrics.incr("spool_fed", fed)
            log.info("fed %d unhandled spool entries", fed)
        return fed

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                self.scan(0.0 if first else self.min_age)
                first = False
            except Exception:
                log.exception("spool scan failed")
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fastpath-spool-feeder",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
