"""Probe and researcher in one: waits for a standalone backend's /health,
opens a report, submits one measurement over loopback HTTP and polls
/api/v1/measurements until the fastpath has scored it. Standard library only
(it runs on the host, against the backend inside the chroot).

    python3 submit_and_find.py http://127.0.0.1:PORT [SERVER_PID]
"""
import datetime as dt
import json
import sys
import time
import urllib.error
import urllib.request


def http(method, url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def alive(pid: int | None) -> bool:
    if pid is None:
        return True
    # The server is the shell's child: once dead it stays a zombie until
    # the shell waits for it, so read its state rather than signal it.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def main(base: str, pid: int | None = None) -> int:
    deadline = time.monotonic() + 180
    while True:
        if not alive(pid):
            print("the backend exited before answering /health")
            return 1
        try:
            if http("GET", base + "/health", timeout=2) == (200, b"UP"):
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            print("backend never answered /health UP")
            return 1
        time.sleep(0.5)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    status, body = http("POST", base + "/report", {
        "probe_cc": "IT", "probe_asn": "AS30722", "test_name": "web_connectivity",
        "software_name": "deploy-test", "software_version": "1", "test_start_time": now,
        "test_version": "0.4.3", "data_format_version": "0.2.0", "format": "json"})
    if status != 200:
        print(f"POST /report: {status} {body[:200]!r}")
        return 1
    rid = json.loads(body)["report_id"]
    status, body = http("POST", f"{base}/report/{rid}", {"format": "json", "content": {
        "report_id": rid, "probe_cc": "IT", "probe_asn": "AS30722",
        "test_name": "web_connectivity", "input": "https://example.org/deploy-test",
        "measurement_start_time": now, "test_start_time": now, "test_keys": {}}})
    if status != 200:
        print(f"POST /report/{rid}: {status} {body[:200]!r}")
        return 1
    uid = json.loads(body)["measurement_uid"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body = http("GET", f"{base}/api/v1/measurements?report_id={rid}")
        if status == 200 and any(r.get("measurement_uid") == uid
                                 for r in json.loads(body).get("results", [])):
            print(f"measurement {uid} submitted and found (report {rid})")
            return 0
        time.sleep(1)
    print(f"measurement {uid} not found within 60 s; last answer {status} {body[:300]!r}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None))
