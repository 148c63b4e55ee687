"""The real ``fastpath`` process, fed over HTTP on a loopback port."""
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

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FASTPATH = [str(REPO / ".venv" / "bin" / "python"), "-m", "fastpath.cli"]


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_up(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"fastpath exited early: {proc.stderr.read().decode()[-2000:]}")
        try:
            if http("GET", base + "/")[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("fastpath did not come up")


def metric(base: str, name: str) -> float:
    text = http("GET", base + "/metrics")[1].decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def query(data_dir: Path, sql: str) -> list:
    code = ("import json,sys; from ooni_common.db import connect; "
            f"db = connect('chdb://{data_dir / 'db'}'); "
            "print(json.dumps(db.execute(sys.argv[1]), default=str))")
    out = subprocess.run([sys.executable, "-c", code, sql], capture_output=True, check=True,
                         timeout=120)
    return json.loads(out.stdout)


def test_fastpath_daemon_process_fed_over_http(tmp_path, port, subprocess_env, shared_data):
    env = dict(subprocess_env, OONI_DATA_DIR=str(tmp_path), OONI_FASTPATH_API_PORT=str(port),
               OONI_FASTPATH_NUM_WORKERS="1", OONI_FASTPATH_QUEUE_PUT_TIMEOUT="5")
    proc = subprocess.Popen(FASTPATH, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base, proc)
        # A second fastpath on the same embedded database: one clear line.
        env2 = dict(env, OONI_FASTPATH_API_PORT=str(port + 1))
        second = subprocess.run(FASTPATH, env=env2, capture_output=True, timeout=60, cwd=tmp_path)
        assert second.returncode != 0
        err = second.stderr.decode().strip().splitlines()
        assert len(err) == 1 and "in use by" in err[0] and "Traceback" not in err[0]

        samples = sorted((shared_data / "measurements").glob("*.json"))
        uids = []
        for i, p in enumerate(samples):
            uid = f"20240305100000.{i:06d}_IT_webconnectivity_{i:016x}"
            body = json.dumps({"format": "json", "content": json.loads(p.read_text())}).encode()
            assert http("POST", f"{base}/{uid}", body) == (200, b"")
            uids.append(uid)
        assert http("POST", f"{base}/20240305100000.999999_IT_x_1", b"{trunc") == (200, b"")
        status, body = http("POST", f"{base}/not-a-uid", b"{}")
        assert status == 500 and "error" in json.loads(body)
        assert http("GET", base + "/anything") == (200, b"")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and metric(base, "fastpath_processed_total") < len(uids) + 1:
            time.sleep(0.1)
        assert metric(base, "fastpath_processed_total") == len(uids) + 1
        assert metric(base, "fastpath_failed_json_parse_total") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    rows = query(tmp_path, "SELECT measurement_uid FROM fastpath FINAL")
    assert {r[0] for r in rows} == set(uids)
