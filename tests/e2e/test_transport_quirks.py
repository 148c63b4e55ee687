"""Bodies that lie about their size, over raw sockets against both servers
(issue 16, defect 9): a chunked body over the cap is a 413, a body shorter
than its Content-Length is a 400, and neither is spooled."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
RID = "20210709T004340Z_webconnectivity_IT_30722_n1_YCM7J9mGcEHds2K3"
CAP = 4096


def _wait(p: subprocess.Popen, base: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert p.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(base + "/robots.txt", timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)


@pytest.fixture(params=["ooni-api", "ooni-backend"])
def server(request, tmp_path, subprocess_env):
    port = free_port()
    data = tmp_path / "data"
    conf = tmp_path / "api.toml"
    lines = [f'DATA_DIR = "{data}"', f"LISTEN_PORT = {port}", f"MAX_BODY_SIZE = {CAP}",
             "RATE_LIMIT_ENABLED = false", 'BASE_URL = "http://127.0.0.1/"',
             f'FASTPATH_URL = "http://127.0.0.1:{free_port()}"']
    if request.param == "ooni-api":
        lines += [f'CLICKHOUSE_URL = "clickhouse://127.0.0.1:{free_port()}/default?connect_timeout=0.5"',
                  "API_WORKERS = 1"]
        cmd = [str(BIN / "ooni-api")]
    else:
        cmd = [str(BIN / "ooni-backend"), "run", "--port", str(port), "--data-dir", str(data)]
    conf.write_text("[api]\n" + "\n".join(lines) + "\n")
    log = tmp_path / "server.log"
    p = subprocess.Popen(cmd, env={**subprocess_env, "OONI_CONF": str(conf)}, cwd=tmp_path,
                         stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        _wait(p, f"http://127.0.0.1:{port}", log)
        yield port, data / "spool"
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def _exchange(port: int, head: bytes, body: bytes, half_close: bool = False) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head + body)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                hdr, _, rest = data.partition(b"\r\n\r\n")
                n = [int(l.split(b":")[1]) for l in hdr.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if n and len(rest) >= n[0]:
                    break
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.partition(b"\r\n\r\n")[2] or b"{}")


def _spooled(spool: Path) -> list[Path]:
    return [p for p in spool.rglob("*") if p.is_file()] if spool.exists() else []


def test_chunked_body_over_the_cap_is_413(server):
    port, spool = server
    doc = json.dumps({"format": "json", "content": {"report_id": RID, "pad": "x" * (2 * CAP)}}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(doc[i:i + 1000]), doc[i:i + 1000])
                      for i in range(0, len(doc), 1000)) + b"0\r\n\r\n"
    head = (f"POST /report/{RID} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    status, ans = _exchange(port, head, chunks)
    assert status == 413, ans
    assert "error" in ans
    assert _spooled(spool) == []


def test_body_shorter_than_content_length_is_400(server):
    port, spool = server
    doc = json.dumps({"format": "json", "content": {"report_id": RID}}).encode()
    head = (f"POST /report/{RID} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(doc) + 50}\r\nConnection: close\r\n\r\n").encode()
    status, ans = _exchange(port, head, doc, half_close=True)
    assert status == 400, ans
    assert _spooled(spool) == []
