"""``ooni-backend run``: one /metrics with the API's, the fastpath's and the
jobs' metrics; its request log lines carry no colour escapes."""
from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import free_port
from tests.e2e.standalone_process import BIN, standalone

pytestmark = pytest.mark.e2e

def scrape(base: str) -> dict[str, float]:
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        text = r.read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^([a-zA-Z_:][\w:]*) (\S+)$", text, re.M)}


def test_one_metrics_page_for_api_fastpath_and_jobs(tmp_path, subprocess_env, shared_data):
    env = {**subprocess_env, "OONI_JOB_START_DELAY": "3600",
           # the job fails at once: nothing listens there
           "OONI_CITIZENLAB_REPO_URL": f"http://127.0.0.1:{free_port()}/test-lists.git"}
    port = free_port()
    sample = sorted((shared_data / "measurements").glob("*.json"))[0]
    with standalone(tmp_path, port, env) as base:
        content = json.loads(sample.read_text())
        body = json.dumps({"format": "json", "content": content}).encode()
        req = urllib.request.Request(f"{base}/report/{content['report_id']}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
        deadline = time.monotonic() + 60
        while scrape(base).get("fastpath_full_run_ms_count", 0) < 1:
            assert time.monotonic() < deadline, scrape(base)
            time.sleep(0.3)
        job = subprocess.run([str(BIN), "job", "citizenlab", "--data-dir", str(tmp_path / "data")],
                             env=env, capture_output=True, timeout=120)
        assert job.returncode == 1, job.stderr
        m = scrape(base)
        assert m["ooni_api_receive_measurement_ms_count"] == 1
        assert m["fastpath_full_run_ms_count"] == 1
        assert m["ooni_backend_job_citizenlab_failed_total"] == 1
        assert m["citizenlab_test_lists_updater_fetch_citizen_lab_lists_ms_count"] == 1
        try:
            urllib.request.urlopen(base + "/no/such/page", timeout=10)
        except urllib.error.HTTPError as e:
            assert e.code == 404
    log = (tmp_path / "backend.log").read_text()
    assert "/no/such/page" in log and "\x1b[" not in log, log
    assert len([line for line in log.splitlines() if "job citizenlab failed" in line]) == 1, log
