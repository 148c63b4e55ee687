"""Export and feed on the real standalone process (``ooni-backend run``):
1M generated rows exported in each format with the server's peak RSS
measured (it must not grow with the row count: 100k rows vs 1M rows), a
client that disconnects mid-stream stops the paging, and the feed sends a
submitted measurement within 2 s of its scoring and resumes exactly."""
from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, SHARED_DATA
from tests.e2e.standalone_process import standalone

pytestmark = pytest.mark.e2e

ROWS = 1_000_000
# What the process may gain between the 100k-row and the 1M-row exports
# (a 10k-row page is a few MB in any format; the rest is allocator slack).
RSS_GROWTH_LIMIT_MB = 48


def vm(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {key} for {pid}")


def server_pid(port: int) -> int:
    """The pid listening on ``port`` (the standalone process)."""
    inode = None
    want = f":{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1].endswith(want) and f[3] == "0A":
            inode = f[9]
    assert inode, f"nothing listens on {port}"
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            for fd in (p / "fd").iterdir():
                if fd.readlink().name == f"socket:[{inode}]":
                    return int(p.name)
        except OSError:
            continue
    raise AssertionError("listening process not found")


def export(port: int, fmt: str, query: str, out: Path) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("GET", f"/api/v1/measurements/export?format={fmt}&{query}")
    r = c.getresponse()
    assert r.status == 200, r.read()[:500]
    assert fmt in r.getheader("Content-Disposition")
    with out.open("wb") as f:
        while chunk := r.read(1 << 20):
            f.write(chunk)
    c.close()
    if fmt == "parquet":
        return pq.ParquetFile(out).metadata.num_rows
    with out.open("rb") as f:
        return sum(1 for _ in f) - (1 if fmt == "csv" else 0)


def metric(base: str, name: str) -> float:
    text = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
    m = re.search(rf"^ooni_api_{name}_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    if not (SHARED_DATA / "test-lists" / "lists").is_dir():
        pytest.skip(f"gen_fastpath needs the CitizenLab test lists under {SHARED_DATA}")
    d = tmp_path_factory.mktemp("export-1m")
    subprocess.run([sys.executable, str(REPO / "tests" / "bench" / "gen_fastpath.py"),
                    "--data-dir", str(d / "data"), "--rows", str(ROWS), "--days", "10"],
                   check=True, capture_output=True, timeout=900)
    return d


def test_export_memory_is_bounded_and_disconnect_stops(million, subprocess_env):
    from tests.conftest import free_port
    port = free_port()
    # glibc gives each new thread (one per request here) its own arena,
    # which keeps what it freed: two arenas, as for any threaded server
    # Pages of 10k rows: the 100k-row exports already run at full pages, so
    # what differs from the 1M-row ones is the row count only.
    env = dict(subprocess_env, OONI_RATE_LIMIT_ENABLED="false", MALLOC_ARENA_MAX="2",
               OONI_EXPORT_PAGE_ROWS="10000")
    with standalone(million, port, env, data_dir=million / "data") as base:
        pid = server_pid(port)
        # the first ~10% of the rows (the volume grows over the 10 days)
        days = json.load(urllib.request.urlopen(
            base + "/api/v1/aggregation?axis_x=measurement_start_day&since=2000-01-01"
            "&until=2100-01-01&time_grain=day", timeout=120))["result"]
        total, first = 0, days[0]["measurement_start_day"]
        for d in days:
            total += d["measurement_count"]
            if total >= ROWS // 10:
                small_until = d["measurement_start_day"]
                break
        small = f"since=2000-01-01&until={small_until}T23:59:59Z"
        everything = "since=2000-01-01&until=2100-01-01"
        counts: dict[str, dict[str, int]] = {"small": {}, "all": {}}
        # twice: the first pages of a process set up the engine's and the
        # allocator's working set, which is then reused
        for _ in range(2):
            for fmt in ("jsonl", "csv", "parquet"):
                counts["small"][fmt] = export(port, fmt, small, million / f"s.{fmt}")
        peak_small = vm(pid, "VmHWM")
        for fmt in ("jsonl", "csv", "parquet"):
            counts["all"][fmt] = export(port, fmt, everything, million / f"a.{fmt}")
        peak_all = vm(pid, "VmHWM")
        print(f"rows {counts}; peak RSS after 100k-row exports {peak_small:.0f} MB, "
              f"after 1M-row exports {peak_all:.0f} MB (first day {first})")
        assert len(set(counts["small"].values())) == 1
        assert len(set(counts["all"].values())) == 1
        assert 80_000 <= counts["small"]["jsonl"] <= 400_000
        assert counts["all"]["jsonl"] >= 0.99 * ROWS  # all but unknown country/network
        assert peak_all - peak_small < RSS_GROWTH_LIMIT_MB

        # a client that goes away mid-stream: the paging stops
        aborted = metric(base, "export_aborted")
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET /api/v1/measurements/export?format=jsonl&{everything} HTTP/1.1\r\n"
                  "Host: x\r\n\r\n".encode())
        got = 0
        while got < 2_000_000:
            got += len(s.recv(1 << 16))
        s.close()
        deadline = time.monotonic() + 30
        while metric(base, "export_aborted") == aborted:
            assert time.monotonic() < deadline, "the export went on after the disconnect"
            time.sleep(0.2)
        pages = metric(base, "export_pages")
        time.sleep(1.5)
        assert metric(base, "export_pages") == pages


RID = "20260101T000000Z_webconnectivity_IT_30722_n1_AbCdEfGhIjKlMnOp"


def submit(base: str, rid: str, i: int) -> tuple[str, float]:
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    body = json.dumps({"format": "json", "content": {
        "report_id": rid, "probe_cc": "IT", "probe_asn": "AS30722",
        "test_name": "web_connectivity", "input": f"https://example.org/{i}",
        "measurement_start_time": now, "test_start_time": now, "software_name": "e2e",
        "software_version": "1", "test_version": "0.4.3", "data_format_version": "0.2.0",
        "test_keys": {}}}).encode()
    req = urllib.request.Request(f"{base}/report/{rid}", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)["measurement_uid"], time.time()


def open_report(base: str) -> str:
    doc = {"probe_cc": "IT", "probe_asn": "AS30722", "test_name": "web_connectivity",
           "software_name": "e2e", "software_version": "1",
           "test_start_time": "2026-01-01 00:00:00", "test_version": "0.4.3",
           "data_format_version": "0.2.0", "format": "json"}
    req = urllib.request.Request(f"{base}/report", data=json.dumps(doc).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)["report_id"]


class Feed:
    """Reads SSE events from the real server in a thread."""

    def __init__(self, base: str, last_id: str | None = None):
        headers = {"Last-Event-ID": last_id} if last_id else {}
        self.resp = urllib.request.urlopen(
            urllib.request.Request(base + "/api/v1/measurements/feed", headers=headers),
            timeout=30)
        assert self.resp.status == 200
        self.events: list[tuple[float, str, dict]] = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        ev: dict = {}
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if not line:
                    if "data" in ev:
                        self.events.append((time.time(), ev["id"], json.loads(ev["data"])))
                    ev = {}
                elif not line.startswith(":") and ":" in line:
                    k, v = line.split(":", 1)
                    ev[k] = v.lstrip(" ")
        except (OSError, ValueError, AttributeError):
            pass  # closed by close() while reading

    def wait(self, n: int, timeout: float = 10) -> list:
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.events)

    def close(self):
        self.resp.close()


def test_feed_on_the_standalone_process(tmp_path, port, subprocess_env):
    env = dict(subprocess_env, OONI_RATE_LIMIT_ENABLED="false")
    with standalone(tmp_path, port, env) as base:
        rid = open_report(base)
        feed = Feed(base)
        time.sleep(0.5)
        sent = [submit(base, rid, i) for i in range(3)]
        got = feed.wait(3)
        assert [e[2]["measurement_uid"] for e in got] == [u for u, _ in sent]
        for (t_recv, event_id, _), (_, t_ack) in zip(got, sent):
            scored_at = int(event_id.split("-", 1)[0]) / 1000
            assert t_recv - scored_at < 2.0, (t_recv, scored_at)
        last = got[-1][1]
        feed.close()
        missed = [submit(base, rid, 10 + i)[0] for i in range(4)]
        time.sleep(2)
        again = Feed(base, last)
        got = again.wait(4)
        time.sleep(1)
        assert [e[2]["measurement_uid"] for e in again.events] == missed
        again.close()
