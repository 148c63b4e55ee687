"""The standalone backend as a user runs it: the real ``ooni-backend run``
process on a loopback port, driven over HTTP like a probe and a researcher,
then killed with SIGKILL and restarted without losing an acknowledged
measurement."""
from __future__ import annotations

import datetime as dt
import http.client as http_client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent / "ooni-backend"
SAMPLES = ["report1.json", "report2.json", "report2blocked.json", "bug_352.json",
           "web_connectivity_no_body.json", "web_connectivity_b64_hdr.json", "requests_none.json",
           "test_keys_none.json", "web_connectivity_null2.json", "telegram_nourl.json",
           "whatsapp.json", "signal_022.json", "tor.json", "vanilla_tor.json", "torsf_1.json",
           "meek.json", "riseupvpn.json", "openvpn.json", "http_requests_1.json",
           "http_header_field_manipulation_1.json"]


def http(method: str, url: str, body: bytes | None = None, timeout: float = 30):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Backend:
    def __init__(self, data_dir: Path, env: dict, cwd: Path, new_session: bool = False):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"backend-{self.port}.log"
        self.proc = subprocess.Popen(
            [str(BIN), "run", "--port", str(self.port), "--data-dir", str(data_dir)],
            env=env, cwd=cwd, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
            start_new_session=new_session)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if http("GET", self.base + "/health", timeout=2) == (200, b"UP"):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail("ooni-backend did not come up:\n" + self.log.read_text())

    def get_json(self, path: str):
        status, data = http("GET", self.base + path)
        assert status == 200, (path, status, data)
        return json.loads(data)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def measurement(shared_data: Path, name: str, report_id: str, i: int) -> dict:
    m = json.loads((shared_data / "measurements" / name).read_text())
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    # Fresh times keep it in the listing's default 30-day window; a probe
    # session is on one network.
    m.update(report_id=report_id, probe_cc="IT", probe_asn="AS30722",
             measurement_start_time=now, test_start_time=now)
    m["annotations"] = {**(m.get("annotations") or {}), "e2e_seq": str(i)}
    return m


def listed_uids(be: Backend, report_id: str) -> set[str]:
    d = be.get_json(f"/api/v1/measurements?report_id={report_id}&limit=100")
    return {r["measurement_uid"] for r in d["results"]}


def wait_listed(be: Backend, report_id: str, uids: set[str], timeout: float = 60) -> set[str]:
    deadline = time.monotonic() + timeout
    found: set[str] = set()
    while time.monotonic() < deadline:
        found = listed_uids(be, report_id)
        if uids <= found:
            return found
        time.sleep(0.3)
    pytest.fail(f"{len(uids - found)} of {len(uids)} measurements never listed; log:\n"
                + be.log.read_text()[-3000:])


def assert_bodies_intact(be: Backend, sent: dict[str, dict]) -> None:
    for uid, content in sent.items():
        status, data = http("GET", f"{be.base}/api/v1/raw_measurement?measurement_uid={uid}")
        assert status == 200, (uid, status, data[:200])
        assert json.loads(data) == content, uid


def open_report(be: Backend, test_name: str = "web_connectivity") -> str:
    meta = {"data_format_version": "0.2.0", "format": "json", "probe_asn": "AS30722",
            "probe_cc": "IT", "software_name": "ooniprobe-android", "software_version": "5.0.0",
            "test_name": test_name, "test_start_time": "2026-08-20 10:11:12",
            "test_version": "0.4.3"}
    status, data = http("POST", be.base + "/report", json.dumps(meta).encode())
    assert status == 200
    return json.loads(data)["report_id"]


def submit(be: Backend, report_id: str, content: dict, timeout: float = 30) -> str:
    body = json.dumps({"format": "json", "content": content}).encode()
    status, data = http("POST", f"{be.base}/report/{report_id}", body, timeout)
    assert status == 200, data
    return json.loads(data)["measurement_uid"]


@pytest.fixture
def env(subprocess_env):
    return {**subprocess_env, "OONI_JOB_START_DELAY": "3600",
            "OONI_FASTPATH_SPOOL_MIN_AGE": "0.5", "OONI_FASTPATH_SPOOL_SCAN_INTERVAL": "1"}


def test_probe_session_crash_and_restart(tmp_path, env, shared_data):
    if not BIN.exists():
        pytest.skip(f"{BIN} not installed (pip install -e .)")
    data_dir = tmp_path / "data"
    be = Backend(data_dir, env, tmp_path)
    try:
        # --- a probe session: one report per experiment (the server refuses
        # a measurement whose test_name contradicts its report id), 20
        # submissions, close
        rids: dict[str, str] = {}

        def rid_for(name: str) -> str:
            tn = json.loads((shared_data / "measurements" / name).read_text())["test_name"]
            if tn not in rids:
                rids[tn] = open_report(be, tn)
            return rids[tn]
        rid = rid_for(SAMPLES[0])
        sent: dict[str, dict] = {}
        by_rid: dict[str, set[str]] = {}
        for i, name in enumerate(SAMPLES):
            content = measurement(shared_data, name, rid_for(name), i)
            uid = submit(be, rid_for(name), content)
            sent[uid] = content
            by_rid.setdefault(rid_for(name), set()).add(uid)
        assert len(sent) == 20
        status, data = http("POST", f"{be.base}/report/{rid}/close", b"{}")
        assert (status, json.loads(data)) == (200, {})

        # --- a desktop probe's single-shot submission
        single = measurement(shared_data, "report1.json", "", 99)
        del single["report_id"]
        status, data = http("POST", be.base + "/api/v1/submit_measurement", json.dumps(
            {"format": "json", "content": json.dumps(single), "nym": None}).encode())
        assert status == 200
        single_ans = json.loads(data)

        # --- a researcher finds all of them, bodies intact
        for r, uids in by_rid.items():
            assert wait_listed(be, r, uids) == uids
        assert_bodies_intact(be, sent)
        wait_listed(be, single_ans["report_id"], {single_ans["measurement_uid"]})
        assert_bodies_intact(be, {single_ans["measurement_uid"]: {**single,
                                                                  "report_id": single_ans["report_id"]}})
        page = be.get_json("/api/v1/measurements?probe_cc=IT&limit=100")
        assert set(sent) <= {r["measurement_uid"] for r in page["results"]}

        # --- a second process on the same database: one clear line, no traceback
        second = subprocess.run([str(BIN), "run", "--port", str(free_port()), "--data-dir",
                                 str(data_dir)], env=env, cwd=tmp_path, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode != 0
        err = second.stderr.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in second.stderr, second.stderr
        assert "in use by pid" in err[0] and str(be.proc.pid) in err[0]

        # --- a job run by the running process through its control socket
        job = subprocess.run([str(BIN), "job", "uploader", "--data-dir", str(data_dir)],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert "run by the running ooni-backend" in job.stdout, (job.stdout, job.stderr)
        assert job.returncode == 0 and job.stdout.startswith("job uploader: ok"), job.stdout
        bad = subprocess.run([str(BIN), "job", "no-such-job", "--data-dir", str(data_dir)],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0 and "known jobs" in bad.stderr

        # --- more submissions, then SIGKILL while they are still coming
        acked: dict[str, dict] = {}
        stop = threading.Event()

        def probe():
            i = 100
            while not stop.is_set():
                name = SAMPLES[i % len(SAMPLES)]
                content = measurement(shared_data, name, rid_for(name), i)
                try:
                    acked[submit(be, rid_for(name), content, timeout=10)] = content
                except (OSError, http_client.HTTPException, AssertionError):
                    return
                i += 1
        t = threading.Thread(target=probe)
        t.start()
        deadline = time.monotonic() + 60
        while len(acked) < 30 and time.monotonic() < deadline and t.is_alive():
            time.sleep(0.01)
        be.proc.send_signal(signal.SIGKILL)
        be.proc.wait(30)
        stop.set()
        t.join(30)
        assert len(acked) >= 30
    finally:
        be.stop()

    # --- restart: every measurement answered 200 is there
    be = Backend(data_dir, env, tmp_path)
    try:
        want = set(sent) | set(acked)
        deadline = time.monotonic() + 60
        while True:
            found = set().union(*(listed_uids(be, r) for r in rids.values()))
            if want <= found or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        # Beyond those: at most the one submission in flight at the kill,
        # stored but never answered (the probe would send it again).
        assert want <= found and len(found - want) <= 1
        # all of them, including those the uploader job has archived since
        assert_bodies_intact(be, {**sent, **acked})
    finally:
        assert be.stop() == 0
    assert "Traceback" not in be.log.read_text()

    # --- with no backend running, the job command opens the database itself
    job = subprocess.run([str(BIN), "job", "uploader", "--data-dir", str(data_dir)],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert job.returncode == 0, (job.stdout, job.stderr)
    assert job.stdout.startswith("job uploader: ok") and "(run in this process)" in job.stdout
    assert not (data_dir / "db" / "holder.lock").read_text()


def test_ctrl_c_stops_cleanly(tmp_path, env):
    if not BIN.exists():
        pytest.skip(f"{BIN} not installed (pip install -e .)")
    be = Backend(tmp_path / "data", env, tmp_path, new_session=True)
    try:
        # Ctrl-C in a terminal signals the whole process group, fastpath
        # worker processes included.
        os.killpg(be.proc.pid, signal.SIGINT)
        assert be.proc.wait(60) == 0
    finally:
        be.stop()
    log = be.log.read_text()
    assert "Traceback" not in log and log.rstrip().endswith("stopped"), log
    assert not (tmp_path / "data" / "control.sock").exists()
