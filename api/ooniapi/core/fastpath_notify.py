"""Notifying the fastpath daemon of a freshly spooled measurement.

The probe's answer never waits on the fastpath (api.md §16): notifications go
through a bounded in-memory queue drained by a background thread with a short
timeout. A full queue or a failed POST loses nothing, because the fastpath's
spool feeder picks up every entry it has not handled; but a fastpath that is
down must be visible from the API: failures are counted
(``fastpath_notify_error``, ``fastpath_notify_dropped``) and logged at
WARNING, at most one line per ``warn_every`` seconds with the count since the
previous line."""
from __future__ import annotations

import logging
import queue
import threading
import time
import urllib.request
from typing import Callable

from ooni_common.metrics import Metrics

log = logging.getLogger("ooni-api")


class HttpNotifier:
    def __init__(self, base_url: str, timeout: float = 2.0, max_pending: int = 1000,
                 metrics: Metrics | None = None, warn_every: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.metrics = metrics
        self.warn_every = warn_every
        self._clock = clock
        self._q: queue.Queue[tuple[str, bytes]] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        self.failed = 0
        self._unreported = 0
        self._last_warning: float | None = None

    def _ensure_thread(self) -> None:
        # Started lazily so that a gunicorn worker starts it after the fork.
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="fastpath-notify",
                                                    daemon=True)
                    self._thread.start()

    def __call__(self, uid: str, body: bytes) -> None:
        self._ensure_thread()
        try:
            self._q.put_nowait((uid, body))
        except queue.Full:
            with self._lock:
                self.dropped += 1
            if self.metrics:
                self.metrics.incr("fastpath_notify_dropped")
            self._failed(f"queue full ({self._q.maxsize} pending)")

    def _failed(self, reason: str) -> None:
        now = self._clock()
        with self._lock:
            self._unreported += 1
            if self._last_warning is not None and now - self._last_warning < self.warn_every:
                return
            n, self._unreported, self._last_warning = self._unreported, 0, now
        log.warning("fastpath notification failed (%d since the last warning; the spool "
                    "feeder scores them later): %s", n, reason)

    def notify(self, uid: str, body: bytes) -> bool:
        """One POST; False (counted, maybe logged) when it failed."""
        req = urllib.request.Request(f"{self.base_url}/{uid}", data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                r.read()
            return True
        except Exception as e:  # the spool feeder covers every failure
            with self._lock:
                self.failed += 1
            if self.metrics:
                self.metrics.incr("fastpath_notify_error")
            self._failed(f"{self.base_url}: {e}")
            return False

    def _run(self) -> None:
        while True:
            uid, body = self._q.get()
            self.notify(uid, body)
