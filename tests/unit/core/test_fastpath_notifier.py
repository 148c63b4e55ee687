"""A dead fastpath is visible from the API: failed notifications are counted
and logged at WARNING, at most once per interval."""
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ooni_common.metrics import Metrics
from tests.conftest import free_port

from ooniapi.core.fastpath_notify import HttpNotifier


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def fastpath():
    """A local fastpath feeder answering 200, or 503 when told to."""
    state = {"status": 200, "got": []}

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            state["got"].append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(state["status"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", state
    srv.shutdown()
    srv.server_close()


def warnings_of(caplog):
    return [r for r in caplog.records if r.name == "ooni-api" and r.levelno == logging.WARNING]


def test_failures_counted_and_warned_once_per_interval(caplog):
    m, clock = Metrics("ooni-api", enabled=False), Clock()
    n = HttpNotifier(f"http://127.0.0.1:{free_port()}", timeout=1, metrics=m,
                     warn_every=60, clock=clock)
    with caplog.at_level(logging.INFO, logger="ooni-api"):
        for _ in range(5):
            assert n.notify("20240101T000000Z_x_IT_1_n1_abc", b"{}") is False
            clock.t += 10
        assert m.counters["ooni-api.fastpath_notify_error"] == 5
        w = warnings_of(caplog)
        assert len(w) == 1 and "(1 since the last warning" in w[0].getMessage()
        assert "\n" not in w[0].getMessage()
        clock.t += 20  # 70 s after the first warning
        n.notify("u", b"{}")
        w = warnings_of(caplog)
        assert len(w) == 2 and "(5 since the last warning" in w[1].getMessage()
    assert m.counters["ooni-api.fastpath_notify_error"] == 6 and n.failed == 6


def test_http_error_is_a_failure_and_success_is_not(fastpath, caplog):
    url, state = fastpath
    m = Metrics("ooni-api", enabled=False)
    n = HttpNotifier(url, metrics=m)
    assert n.notify("uid1", b'{"a": 1}') is True
    assert state["got"] == [("/uid1", b'{"a": 1}')]
    assert "ooni-api.fastpath_notify_error" not in m.counters
    state["status"] = 503
    with caplog.at_level(logging.WARNING, logger="ooni-api"):
        assert n.notify("uid2", b"{}") is False
    assert m.counters["ooni-api.fastpath_notify_error"] == 1
    assert "503" in warnings_of(caplog)[0].getMessage()


def test_full_queue_is_counted(caplog):
    m = Metrics("ooni-api", enabled=False)
    n = HttpNotifier("http://127.0.0.1:9", metrics=m, max_pending=1)
    n._ensure_thread = lambda: None  # nothing drains the queue
    n("a", b"{}")
    n("b", b"{}")
    assert m.counters["ooni-api.fastpath_notify_dropped"] == 1 and n.dropped == 1
