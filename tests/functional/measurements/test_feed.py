"""/api/v1/measurements/feed in-process: events of rows inserted after the
subscriber connected, filters, resuming with Last-Event-ID, bad ids, the
subscriber bound."""
from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time

import pytest

from ooniapi.core.app import create_app
from tests.functional import msm_rows


def make_app(cfg, db, notifier, **overrides):
    a = create_app(cfg.with_overrides(RATE_LIMIT_ENABLED="false", FEED_POLL_SECONDS="0.05",
                                      FEED_HEARTBEAT_SECONDS="0.5", **overrides),
                   db=db, notify_fastpath=notifier)
    a.testing = True
    return a


class Subscriber:
    """Reads an SSE response in a thread; events and comments go to a queue."""

    def __init__(self, client, url, headers=None):
        self.q: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.other: list[dict] = []
        self.status: queue.Queue = queue.Queue()
        # The whole request runs in the reading thread: Flask's streamed
        # context belongs to the thread that started the response.
        self.t = threading.Thread(target=self._read, args=(client, url, headers or {}),
                                  daemon=True)
        self.t.start()
        code, body = self.status.get(timeout=10)
        assert code == 200, body

    def _read(self, client, url, headers):
        resp = client.get(url, headers=headers, buffered=False)
        self.status.put((resp.status_code, None if resp.status_code == 200 else resp.get_data()))
        buf = ""
        try:
            for chunk in resp.response:
                if self.stop.is_set():
                    break
                buf += chunk.decode() if isinstance(chunk, bytes) else chunk
                while "\n\n" in buf:
                    block, buf = buf.split("\n\n", 1)
                    fields: dict = {}
                    for line in block.split("\n"):
                        if line.startswith(":"):
                            fields["comment"] = line[1:].strip()
                        elif ":" in line:
                            k, v = line.split(":", 1)
                            fields[k] = v[1:] if v.startswith(" ") else v
                    self.q.put((time.monotonic(), fields))
        finally:
            # closed from the reading thread, as a WSGI server does when
            # its write to a gone client fails
            resp.close()

    def events(self, n, timeout=5.0):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            try:
                t, f = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if f.get("event") == "measurement":
                out.append((t, f))
            else:
                self.other.append(f)
        return out

    def close(self):
        self.stop.set()
        self.t.join(5)
        assert not self.t.is_alive()


def fresh_rows(n, seed, **kw):
    now = dt.datetime.utcnow().replace(microsecond=0)
    rows = msm_rows.generate(n, seed=seed, start=now - dt.timedelta(hours=1),
                             span=dt.timedelta(hours=1))
    for r in rows:
        r.update(kw)
    return rows


def test_new_rows_arrive_and_resume_gets_exactly_the_missed(cfg, db, notifier):
    app = make_app(cfg, db, notifier)
    c = app.test_client()
    old = fresh_rows(5, 1)
    msm_rows.insert(db, old)  # before the subscriber: never sent
    time.sleep(0.3)
    s = Subscriber(c, "/api/v1/measurements/feed")
    time.sleep(0.2)
    first = fresh_rows(10, 2)
    t_insert = time.monotonic()
    msm_rows.insert(db, first)
    got = s.events(10)
    assert [json.loads(f["data"])["measurement_uid"] for _, f in got] == \
        sorted(r["measurement_uid"] for r in first)
    assert max(t for t, _ in got) - t_insert < 2.0
    ev = json.loads(got[0][1]["data"])
    assert set(ev) >= {"measurement_uid", "report_id", "probe_cc", "probe_asn", "test_name",
                       "measurement_start_time", "anomaly", "confirmed", "msm_failure", "scores"}
    assert isinstance(ev["scores"], dict)
    last_id = got[-1][1]["id"]
    s.close()

    # while disconnected: more rows, one of them a re-score of a row sent
    missed = fresh_rows(7, 3)
    msm_rows.insert(db, missed[:4])
    rescored = dict(first[0], anomaly="t")
    msm_rows.insert(db, [rescored])
    msm_rows.insert(db, missed[4:])
    time.sleep(0.3)
    s2 = Subscriber(c, "/api/v1/measurements/feed", {"Last-Event-ID": last_id})
    got2 = s2.events(9, timeout=3)
    uids = [json.loads(f["data"])["measurement_uid"] for _, f in got2]
    assert uids == sorted(r["measurement_uid"] for r in missed[:4]) + \
        [first[0]["measurement_uid"]] + sorted(r["measurement_uid"] for r in missed[4:])
    assert json.loads(got2[4][1]["data"])["anomaly"] == "t"
    # and then only new ones, no repeat
    assert s2.events(1, timeout=0.5) == []
    s2.close()


def test_filters_and_heartbeats(cfg, db, notifier):
    app = make_app(cfg, db, notifier)
    s = Subscriber(app.test_client(), "/api/v1/measurements/feed?probe_cc=DE&anomaly=true")
    time.sleep(0.2)
    rows = fresh_rows(40, 4)
    msm_rows.insert(db, rows)
    want = sorted(r["measurement_uid"] for r in rows
                  if r["probe_cc"] == "DE" and r["anomaly"] == "t")
    got = s.events(len(want) + 1, timeout=2)
    assert [json.loads(f["data"])["measurement_uid"] for _, f in got] == want
    time.sleep(0.6)
    s.events(1, timeout=0.1)
    assert {"comment": "heartbeat"} in s.other
    s.close()


@pytest.mark.parametrize("value", ["abc", "12", "-uid", "1700000000000-", "1-a b",
                                   "99999999999999999-x"])
def test_malformed_last_event_id_is_400(client, db, value):
    r = client.get("/api/v1/measurements/feed", headers={"Last-Event-ID": value})
    assert r.status_code == 400
    assert "Last-Event-ID" in r.get_json()["error"]


def test_old_last_event_id_is_410(cfg, db, notifier):
    app = make_app(cfg, db, notifier, FEED_RETENTION="60")
    old = int((time.time() - 120) * 1000)
    r = app.test_client().get(f"/api/v1/measurements/feed?last_event_id={old}-x")
    assert r.status_code == 410 and "retention" in r.get_json()["error"]


def test_bad_filter_is_400(client, db):
    r = client.get("/api/v1/measurements/feed?probe_asn=ASX")
    assert r.status_code == 400 and "error" in r.get_json()


def test_subscribers_are_bounded(cfg, db, notifier):
    app = make_app(cfg, db, notifier, FEED_MAX_SUBSCRIBERS="2")
    c = app.test_client()
    subs = [Subscriber(c, "/api/v1/measurements/feed") for _ in range(2)]
    r = c.get("/api/v1/measurements/feed")
    assert r.status_code == 503 and "subscribers" in r.get_json()["error"]
    subs[0].close()
    s3 = Subscriber(c, "/api/v1/measurements/feed")
    s3.close()
    subs[1].close()
