"""Issue 16 for the live fastpath against the real embedded ClickHouse: a
full queue keeps notifications in a backlog, unpaired surrogates are scored
once (row valid, raw body as sent, counted), and stuck scoring shows in
``/health`` until the pool kills its wedged worker."""
from __future__ import annotations

import datetime as dt
import os
import signal
import time

from werkzeug.test import Client

from fastpath.daemon import FastpathDaemon
from fastpath.feeder_http import make_app
from ooni_common.spool import Spool

from .test_fastpath_daemon import load_samples, post_for, rows_by_uid  # noqa: F401 (fixtures)
from .test_fastpath_daemon import daemon_factory, fp_cfg, metrics  # noqa: F401


def _no_rescan(cfg, **kw):
    # The spool rescan must not be what rescues a measurement here.
    return cfg.with_overrides(FASTPATH_SPOOL_SCAN_INTERVAL="3600", FASTPATH_SPOOL_MIN_AGE="3600",
                              **kw)


def _posts(shared_data, n: int) -> list[tuple[str, bytes]]:
    msm = load_samples(shared_data)["web_connectivity_no_body.json"]
    return [post_for(msm, salt=str(i)) for i in range(n)]


def test_fastpath_notifications_beyond_the_queue_size_are_all_scored_promptly(
        daemon_factory, db, shared_data, fp_cfg, metrics):
    d = daemon_factory(workers=0, cfg=_no_rescan(fp_cfg, FASTPATH_QUEUE_SIZE="4",
                                                 FASTPATH_BACKLOG_SIZE="400"))
    spool = Spool(fp_cfg.spool_dir)
    posts = _posts(shared_data, 300)
    accepted = []
    # Nothing is written while they arrive, so the queue surely overflows
    # (a fast consumer would otherwise keep it from filling).
    with d.writer._cond:
        for uid, body in posts:
            spool.write(uid, body)
            accepted.append(d.submit(uid, body))
    assert all(accepted)
    assert metrics.counters.get("fastpath.backlogged", 0) > 0  # the queue was full
    assert d.wait_idle(60)
    assert set(rows_by_uid(db, [u for u, _ in posts])) == {u for u, _ in posts}
    assert metrics.counters.get("fastpath.queue_full", 0) == 0


def test_fastpath_full_backlog_is_refused_and_left_to_the_spool(daemon_factory, shared_data,
                                                                 fp_cfg, metrics):
    d = daemon_factory(workers=0, cfg=_no_rescan(fp_cfg, FASTPATH_QUEUE_SIZE="1",
                                                 FASTPATH_BACKLOG_SIZE="2"))
    d.writer.max_buffer = 1
    # The writer blocked: nothing moves, so queue and backlog fill up.
    with d.writer._cond:
        results = [d.submit(uid, body) for uid, body in _posts(shared_data, 30)]
    assert results.count(False) > 0 and results[:3] == [True, True, True]
    assert metrics.counters.get("fastpath.queue_full", 0) == results.count(False)


def test_fastpath_surrogate_measurement_scored_once_and_counted(daemon_factory, db, shared_data,
                                                                fp_cfg, metrics):
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    ts = now.strftime("%Y-%m-%d %H:%M:%S")
    # As a probe may send it: JSON text with an unpaired \ud800 escape.
    body = ('{"format":"json","content":{"report_id":"20240101T000000Z_webconnectivity_IT_1_n1_x",'
            '"probe_cc":"IT","probe_asn":"AS1","test_name":"web_connectivity",'
            '"input":"https://example.org/\\ud800x","measurement_start_time":"' + ts + '",'
            '"test_start_time":"' + ts + '","software_name":"s\\udfff","test_keys":{}}}').encode()
    uid = f"{now:%Y%m%d%H%M%S.%f}_IT_webconnectivity_00000000deadbeef"
    spool = Spool(fp_cfg.spool_dir)
    cfg = _no_rescan(fp_cfg)
    entry = spool.write(uid, body)
    d = daemon_factory(workers=0, cfg=cfg)
    assert d.submit(uid, body)
    assert d.wait_idle(30)
    row = rows_by_uid(db, [uid])[uid]
    assert row["input"] == "https://example.org/\ufffdx"
    assert row["software_name"] == "s\ufffd"
    assert metrics.counters["fastpath.invalid_unicode_replaced"] == 1
    assert metrics.counters["fastpath.processed"] == 1
    assert metrics.counters.get("fastpath.failed_inserts", 0) == 0
    # Raw body untouched, entry marked handled: a restart does not retry it.
    path = entry if isinstance(entry, os.PathLike) else None
    if path is not None:
        assert open(path, "rb").read() == body
    d.stop()
    again = FastpathDaemon(cfg.with_overrides(FASTPATH_SPOOL_MIN_AGE="0"), db, metrics, workers=0)
    again.start()
    try:
        time.sleep(1.0)
        assert again.wait_idle(30)
    finally:
        again.stop()
    assert metrics.counters["fastpath.processed"] == 1
    assert len(db.query("SELECT measurement_uid FROM fastpath WHERE measurement_uid = {u:String}",
                        {"u": uid})) == 1


def test_fastpath_notification_after_the_start_up_scan_scored_it_is_not_scored_again(
        daemon_factory, db, shared_data, fp_cfg, metrics):
    # The API spooled it, then the fastpath (re)started and its first scan
    # scored it before the API's notification arrived.
    uid, body = _posts(shared_data, 1)[0]
    Spool(fp_cfg.spool_dir).write(uid, body)
    d = daemon_factory(workers=0, cfg=fp_cfg.with_overrides(FASTPATH_SPOOL_SCAN_INTERVAL="3600"))
    deadline = time.monotonic() + 30
    while not rows_by_uid(db, [uid]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert d.wait_idle(30)
    assert d.submit(uid, body)
    assert d.wait_idle(30)
    assert metrics.counters["fastpath.processed"] == 1


def test_fastpath_stuck_scoring_turns_health_503_until_the_wedged_worker_is_killed(
        daemon_factory, db, shared_data, fp_cfg, metrics):
    cfg = _no_rescan(fp_cfg, FASTPATH_STUCK_AFTER="1", FASTPATH_TASK_TIMEOUT="5")
    d = daemon_factory(workers=1, cfg=cfg)
    feeder = Client(make_app(d.put, metrics, 1, health=d.health_problem))
    (uid0, body0), (uid1, body1) = _posts(shared_data, 2)
    assert d.submit(uid0, body0) and d.wait_idle(60)
    assert feeder.get("/health").status_code == 200
    [pid] = d.pool.worker_pids()
    os.kill(pid, signal.SIGSTOP)  # alive, never answers: wedged
    try:
        assert d.submit(uid1, body1)
        deadline = time.monotonic() + 4
        while d.health_problem() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        r = feeder.get("/health")
        assert r.status_code == 503 and "stuck" in r.get_json()["error"]
        d.monitor_once()
        assert metrics.gauges["fastpath.queue_depth"] == 1
        assert metrics.gauges["fastpath.oldest_unscored_age"] >= 1
        # The pool kills the worker after FASTPATH_TASK_TIMEOUT and rescores.
        assert d.wait_idle(60)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert uid1 in rows_by_uid(db, [uid1])
    assert d.health_problem() is None
    assert feeder.get("/health").status_code == 200
    assert metrics.counters["fastpath.worker_timeout"] == 1
    assert d.pool.worker_pids() != [pid]


def test_fastpath_stuck_makes_the_standalone_api_health_503(app, client):
    assert client.get("/health").status_code == 200
    app.extensions["ooni"].extras["fastpath_health"] = lambda: "fastpath scoring stuck for 200 s"
    r = client.get("/health")
    assert r.status_code == 503 and b"stuck" in r.data
