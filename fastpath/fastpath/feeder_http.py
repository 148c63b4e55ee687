"""The local HTTP feeder of the live daemon (§10.1).

``POST /<measurement_uid>`` with the raw post as body queues it for scoring
and answers 200 with an empty body (parsing happens later, so a malformed
body still gets 200). A path not starting with ``/2`` answers 500 as the
legacy server did, but with a JSON error instead of a crash. Any other method
answers 200 empty (liveness probe), except ``GET /metrics``: Prometheus text,
and ``GET /health``: ``UP``, or 503 with a JSON error when scoring is stuck
(work waiting, nothing written for ``FASTPATH_STUCK_AFTER`` seconds).

Backpressure: a POST waits for room in the queue for at most
``FASTPATH_QUEUE_PUT_TIMEOUT`` seconds (negative: without limit, the legacy
default). Deviation: when the wait runs out the answer is 503 (retry later),
not the legacy 500, since nothing is wrong with the request; the
measurement is in the API's spool and the spool feeder picks it up.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

import ujson
from werkzeug.serving import WSGIRequestHandler, make_server

from ooni_common.metrics import Metrics

log = logging.getLogger("fastpath")

MAX_BODY = 64 * 1024 * 1024

Put = Callable[[str, bytes, "float | None"], bool]


def _answer(start_response, status: str, body: bytes = b"",
            ctype: str = "text/plain; charset=utf-8"):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _error(start_response, status: str, msg: str):
    return _answer(start_response, status, ujson.dumps({"error": msg}).encode(),
                   "application/json")


def make_app(put: Put, metrics: Metrics, put_timeout: float | None = None,
             health: Callable[[], "str | None"] | None = None):
    """WSGI app; ``put(uid, body, timeout)`` queues a measurement;
    ``health()`` says why scoring is stuck, None when it is not."""
    timeout = None if put_timeout is None or put_timeout < 0 else put_timeout

    def app(environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or ""
        if method != "POST":
            if method == "GET" and path == "/metrics":
                return _answer(start_response, "200 OK", metrics.prometheus_text().encode(),
                               "text/plain; version=0.0.4; charset=utf-8")
            if method == "GET" and path == "/health" and health is not None:
                problem = health()
                if problem:
                    return _error(start_response, "503 Service Unavailable", problem)
                return _answer(start_response, "200 OK", b"UP")
            return _answer(start_response, "200 OK")
        if not path.startswith("/2"):
            metrics.incr("feeder_bad_path")
            return _error(start_response, "500 Internal Server Error",
                          "the path must be /<measurement_uid>")
        uid = path[1:]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _error(start_response, "400 Bad Request", "invalid Content-Length")
        if length > MAX_BODY:
            return _error(start_response, "413 Request Entity Too Large", "body too large")
        try:
            body = environ["wsgi.input"].read(length) if length else b""
        except OSError as e:
            metrics.incr("worker_exception")
            return _error(start_response, "400 Bad Request", f"cannot read the body: {e}")
        if not put(uid, body, timeout):
            return _error(start_response, "503 Service Unavailable",
                          "the fastpath queue is full or stopping")
        return _answer(start_response, "200 OK")

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kw) -> None:
        pass


class FeederServer:
    """The threaded HTTP server around ``make_app`` (127.0.0.1:8472 by default)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 8472):
        self._server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
        self._server.daemon_threads = True
        self.host, self.port = host, self._server.server_port
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fastpath-http-feeder", daemon=True)
        self._thread.start()
        log.info("HTTP feeder listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
