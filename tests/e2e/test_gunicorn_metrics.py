"""``ooni-api`` with 2 gunicorn workers: /metrics sums the counters of both
workers, whichever answers the scrape, and they never go back."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent / "ooni-api"
RID = "20210709T004340Z_webconnectivity_IT_30722_n1_YCM7J9mGcEHds2K3"


def submit(base: str, i: int) -> int:
    body = json.dumps({"format": "json", "content": {"report_id": RID, "i": i}}).encode()
    req = urllib.request.Request(f"{base}/report/{RID}", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def scrape(base: str) -> dict[str, float]:
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        text = r.read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^([a-zA-Z_:][\w:]*) (\S+)$", text, re.M)}


def worker_pids(mdir: Path) -> set[str]:
    # one file per process and kind: counter files of the workers that counted
    return {f.stem.rsplit("_", 1)[1] for f in mdir.glob("gauge_sum_*.db")}


def test_metrics_are_summed_over_two_workers(tmp_path, subprocess_env):
    port = free_port()
    mdir = tmp_path / "prom"
    mdir.mkdir()
    (mdir / "gauge_sum_99999.db").write_bytes(b"stale file of a previous run")
    conf = tmp_path / "api.toml"
    conf.write_text(
        f'[api]\nDATA_DIR = "{tmp_path / "data"}"\n'
        f'CLICKHOUSE_URL = "clickhouse://127.0.0.1:{free_port()}/default?connect_timeout=0.5"\n'
        f'FASTPATH_URL = "http://127.0.0.1:{free_port()}"\n'
        f"LISTEN_PORT = {port}\nAPI_WORKERS = 2\nRATE_LIMIT_ENABLED = false\n"
        f"BASE_URL = \"http://127.0.0.1:{port}/\"\n")
    env = {**subprocess_env, "OONI_CONF": str(conf), "PROMETHEUS_MULTIPROC_DIR": str(mdir)}
    log = tmp_path / "api.log"
    p = subprocess.Popen([str(BIN)], env=env, cwd=tmp_path, stdout=open(log, "wb"),
                         stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert p.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(base + "/robots.txt", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert not (mdir / "gauge_sum_99999.db").exists()

        sent = 0
        last = {}
        with ThreadPoolExecutor(4) as ex:
            # Parallel bursts until both workers have counted something.
            for burst in range(30):
                statuses = list(ex.map(lambda i: submit(base, i), range(sent, sent + 8)))
                assert all(s == 200 for s in statuses), (statuses, log.read_text()[-3000:])
                sent += len(statuses)
                for _ in range(3):  # several scrapes, any worker may answer
                    m = scrape(base)
                    assert m["ooni_api_receive_measurement_ms_count"] == sent, (m, sent)
                    for k, v in last.items():
                        if k.endswith(("_total", "_count", "_sum")):
                            assert m.get(k, 0) >= v, (k, v, m.get(k))
                    last = m
                if len(worker_pids(mdir)) >= 2 and burst >= 2:
                    break
        assert len(worker_pids(mdir)) == 2, sorted(mdir.iterdir())
        # The notifications to the dead fastpath failed in both workers.
        deadline = time.monotonic() + 30
        while scrape(base).get("ooni_api_fastpath_notify_error_total", 0) < sent:
            assert time.monotonic() < deadline, scrape(base)
            time.sleep(0.3)
        assert scrape(base)["ooni_api_fastpath_notify_error_total"] == sent
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    text = log.read_text()
    assert "Traceback" not in text, text
    assert "fastpath notification failed" in text
    assert "does not answer" in text  # the one-line warning at start
