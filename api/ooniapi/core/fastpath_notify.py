"""Notifying the fastpath daemon of a freshly spooled measurement.

The probe's answer never waits on the fastpath (api.md §16): notifications go
through a bounded in-memory queue drained by a background thread with a short
timeout. A full queue or a failed POST loses nothing, because the fastpath's
spool feeder picks up every entry it has not handled."""
from __future__ import annotations

import logging
import queue
import threading
import urllib.request

log = logging.getLogger("ooni-api")


class HttpNotifier:
    def __init__(self, base_url: str, timeout: float = 2.0, max_pending: int = 1000):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._q: queue.Queue[tuple[str, bytes]] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0

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
            self.dropped += 1

    def _run(self) -> None:
        while True:
            uid, body = self._q.get()
            req = urllib.request.Request(f"{self.base_url}/{uid}", data=body, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    r.read()
            except Exception as e:  # the spool feeder covers every failure
                log.debug("fastpath notification for %s failed: %s", uid, e)
