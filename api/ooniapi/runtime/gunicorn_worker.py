"""gunicorn's threaded worker, bounded: a connection that arrives while
every thread is busy is answered at once with a 503 instead of waiting,
unseen, in the pool's queue. With the body read timeout of
``ooniapi.core.body`` it keeps slow clients from starving the others when
``ooni-api`` runs without nginx in front (nginx absorbs most of this,
docs/operations.md)."""
from __future__ import annotations

import threading

from gunicorn.workers.gthread import ThreadWorker

from ooniapi.runtime.busy import send_busy


class BoundedThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._busy = 0
        self._busy_lock = threading.Lock()

    def enqueue_req(self, conn):
        with self._busy_lock:
            full = self._busy >= self.cfg.threads
            if not full:
                self._busy += 1
        if full:
            self.nr_conns -= 1
            send_busy(conn.sock)
            conn.sock.close()
            return
        super().enqueue_req(conn)

    def handle(self, conn):
        try:
            return super().handle(conn)
        finally:
            with self._busy_lock:
                self._busy -= 1
