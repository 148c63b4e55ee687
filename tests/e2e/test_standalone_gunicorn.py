"""The production server ``ooni-api`` (gunicorn, several workers): configured
from the file named by OONI_CONF, it takes measurements with no database
reachable at all."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ooni_common.spool import Spool
from tests.conftest import free_port

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent / "ooni-api"
RID = "20210709T004340Z_webconnectivity_IT_30722_n1_YCM7J9mGcEHds2K3"


def post(url: str, body: bytes):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_ooni_api_takes_submissions_without_database(tmp_path, subprocess_env):
    port = free_port()
    conf = tmp_path / "api.toml"
    conf.write_text(
        f'[api]\nDATA_DIR = "{tmp_path / "data"}"\n'
        f'CLICKHOUSE_URL = "clickhouse://127.0.0.1:{free_port()}/default?connect_timeout=0.5"\n'
        f'FASTPATH_URL = "http://127.0.0.1:{free_port()}"\n'
        f"LISTEN_PORT = {port}\nAPI_WORKERS = 3\nRATE_LIMIT_ENABLED = false\n"
        f"BASE_URL = \"http://127.0.0.1:{port}/\"\n")
    env = {**subprocess_env, "OONI_CONF": str(conf)}
    log = tmp_path / "api.log"
    p = subprocess.Popen([str(BIN)], env=env, cwd=tmp_path, stdout=open(log, "wb"),
                         stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert p.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(base + "/robots.txt", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        uids = []
        for i in range(6):
            body = json.dumps({"format": "json", "content": {"report_id": RID, "i": i}}).encode()
            status, ans = post(f"{base}/report/{RID}", body)
            assert status == 200, ans
            uids.append(ans["measurement_uid"])
            assert Spool(tmp_path / "data" / "spool").read(ans["measurement_uid"]) == body
        status, ans = post(f"{base}/report/{RID}", b"{broken")
        assert status == 400 and "error" in ans
        try:
            urllib.request.urlopen(base + "/health", timeout=30)
            pytest.fail("health must not be UP without a database")
        except urllib.error.HTTPError as e:
            assert e.code == 503
        # The first worker may answer before the last one has said so.
        deadline = time.monotonic() + 15
        while log.read_text().count("Booting worker") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.read_text().count("Booting worker") == 3, log.read_text()
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0


def test_ooni_api_refuses_embedded_database(tmp_path, subprocess_env):
    env = {**subprocess_env, "OONI_DATA_DIR": str(tmp_path)}
    r = subprocess.run([str(BIN)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "ooni-api: ooni-api needs a ClickHouse server (CLICKHOUSE_URL=clickhouse://...); "
        "the embedded database is served by 'ooni-backend run'"]


def test_ooni_api_requires_base_url(tmp_path, subprocess_env):
    # Without it, links would be built from a Host header any client chooses.
    env = {**subprocess_env, "OONI_DATA_DIR": str(tmp_path),
           "OONI_CLICKHOUSE_URL": "clickhouse://127.0.0.1:9/default"}
    env.pop("OONI_BASE_URL", None)
    r = subprocess.run([str(BIN)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "ooni-api: BASE_URL is required: the public URL of the API, used in next_url links"]
