"""Slow clients neither starve ordinary requests nor hold threads for good
(issue 16, defect 5), against the gunicorn server and the standalone one,
with no proxy in front: a request that finds every thread busy gets an
immediate 503, and a client stalled mid-request is cut at the read timeout."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
RID = "20210709T004340Z_webconnectivity_IT_30722_n1_YCM7J9mGcEHds2K3"
READ_TIMEOUT = 2


@pytest.fixture(params=["ooni-api", "ooni-backend"])
def port(request, tmp_path, subprocess_env):
    port = free_port()
    data = tmp_path / "data"
    lines = [f'DATA_DIR = "{data}"', f"LISTEN_PORT = {port}", "RATE_LIMIT_ENABLED = false",
             'BASE_URL = "http://127.0.0.1/"', f"API_READ_TIMEOUT = {READ_TIMEOUT}",
             "API_WORKERS = 1", "API_THREADS = 4", "STANDALONE_HTTP_THREADS = 4",
             f'FASTPATH_URL = "http://127.0.0.1:{free_port()}"']
    if request.param == "ooni-api":
        lines.append(f'CLICKHOUSE_URL = "clickhouse://127.0.0.1:{free_port()}/default?connect_timeout=0.5"')
        cmd = [str(BIN / "ooni-api")]
    else:
        cmd = [str(BIN / "ooni-backend"), "run", "--port", str(port), "--data-dir", str(data)]
    conf = tmp_path / "api.toml"
    conf.write_text("[api]\n" + "\n".join(lines) + "\n")
    log = tmp_path / "server.log"
    p = subprocess.Popen(cmd, env={**subprocess_env, "OONI_CONF": str(conf)}, cwd=tmp_path,
                         stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert p.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/robots.txt", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield port
    finally:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def _stall(port: int) -> socket.socket:
    """Headers and the first byte of a body it never finishes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall((f"POST /report/{RID} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: 100000\r\n\r\n{").encode())
    return s


def _get(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/robots.txt", timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        assert e.headers.get("Content-Type") == "application/json"
        return e.code


def test_slow_clients_do_not_starve_others(port):
    stalled = [_stall(port) for _ in range(30)]
    try:
        time.sleep(0.5)
        started = time.monotonic()
        # Every ordinary request is answered at once: served, or told 503.
        statuses = [_get(port) for _ in range(5)]
        assert set(statuses) <= {200, 503}, statuses
        assert time.monotonic() - started < 5 * 3
        # The stalled clients are cut at the read timeout; then all is served.
        deadline = time.monotonic() + 3 * READ_TIMEOUT + 5
        while _get(port) != 200:
            assert time.monotonic() < deadline, "still busy long after the read timeout"
            time.sleep(0.2)
        # Threads of the cut clients may still be finishing: a busy 503 is
        # allowed while they do, a hang or a failure is not.
        for _ in range(5):
            while (status := _get(port)) == 503:
                assert time.monotonic() < deadline, "still busy long after the read timeout"
                time.sleep(0.2)
            assert status == 200
        for s in stalled:
            s.settimeout(5)
            try:
                assert s.recv(65536) is not None  # an answer or EOF, not a hang
            except ConnectionResetError:
                pass
    finally:
        for s in stalled:
            s.close()
