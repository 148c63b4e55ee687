"""The live fastpath daemon against the real embedded ClickHouse."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from pathlib import Path

import pytest

from fastpath.daemon import FastpathDaemon
from ooni_common.metrics import Metrics
from ooni_common.spool import Spool


def make_uid(cc: str, testname: str, when: dt.datetime, body: bytes) -> str:
    return (f"{when:%Y%m%d%H%M%S.%f}_{cc}_{testname.replace('_', '')}_"
            f"{hashlib.sha512(body).hexdigest()[:16]}")


def wrap(msm: dict) -> bytes:
    return json.dumps({"format": "json", "content": msm}).encode()


def post_for(msm: dict, salt: str = "") -> tuple[str, bytes]:
    """A (uid, body) whose uid time matches the start time, so the
    wrong-date check of §2.2 leaves the scores alone."""
    body = wrap(msm)
    start = dt.datetime.strptime(msm["measurement_start_time"], "%Y-%m-%d %H:%M:%S")
    cc = msm.get("probe_cc") or "XX"
    return make_uid(cc, msm.get("test_name") or "x", start, body + salt.encode()), body


def load_samples(shared_data: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text())
            for p in sorted((shared_data / "measurements").glob("*.json"))}


def load_fingerprints(db, shared_data: Path) -> None:
    for kind in ("dns", "http"):
        rows = json.loads((shared_data / "fingerprints" / f"fingerprints_{kind}.json").read_text())
        db.insert_dicts(f"fingerprints_{kind}", rows)


def rows_by_uid(db, uids) -> dict[str, dict]:
    rows = db.query("SELECT * FROM fastpath FINAL WHERE measurement_uid IN {u:Array(String)}",
                    {"u": list(uids)})
    return {r["measurement_uid"]: r for r in rows}


@pytest.fixture
def fp_cfg(cfg):
    return cfg.with_overrides(FASTPATH_SPOOL_SCAN_INTERVAL="0.2", FASTPATH_SPOOL_MIN_AGE="0",
                              FASTPATH_FINGERPRINTS_POLL="0.2")


@pytest.fixture
def metrics():
    return Metrics("fastpath", enabled=False)


@pytest.fixture
def daemon_factory(fp_cfg, db, metrics):
    started = []

    def make(workers: int = 0, cfg=None, **kw) -> FastpathDaemon:
        d = FastpathDaemon(cfg or fp_cfg, db, metrics, workers=workers, **kw)
        d.start()
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


def test_samples_scored_into_fastpath(daemon_factory, db, shared_data, metrics, fp_cfg):
    load_fingerprints(db, shared_data)
    d = daemon_factory(workers=0)
    samples = load_samples(shared_data)
    uids = {}
    spool = Spool(fp_cfg.spool_dir)
    for name, msm in samples.items():
        uid, body = post_for(msm)
        uids[name] = uid
        if spool.read(uid) is not None:
            continue  # two sample files are identical: one uid, one submission
        spool.write(uid, body)
        assert d.submit(uid, body)
    assert d.wait_idle(30)
    rows = rows_by_uid(db, uids.values())
    assert set(rows) == set(uids.values())
    bug = rows[uids["bug_352.json"]]
    assert (bug["anomaly"], bug["confirmed"], bug["msm_failure"]) == ("t", "t", "f")
    assert bug["blocking_type"] == "dns"
    assert rows[uids["test_keys_none.json"]]["msm_failure"] == "t"
    assert rows[uids["report1.json"]]["anomaly"] == "f"
    ovpn = db.query("SELECT measurement_uid, last_handshake_transaction_id FROM obs_openvpn")
    assert ovpn == [{"measurement_uid": uids["openvpn.json"], "last_handshake_transaction_id": 8}]
    assert metrics.counters["fastpath.processed"] == len(set(uids.values()))
    # Every entry is marked handled so that the uploader may archive it.
    handled = set()
    for hd in spool.hour_dirs():
        handled |= spool.handled(hd)
    assert handled == set(uids.values())


def test_discards_and_errors_counted_by_reason_and_processing_continues(
        daemon_factory, db, shared_data, metrics):
    d = daemon_factory(workers=0)
    good = load_samples(shared_data)["report1.json"]
    zz = dict(good, probe_cc="ZZ")
    no_rid = {k: v for k, v in good.items() if k != "report_id"}
    no_asn = {k: v for k, v in good.items() if k != "probe_asn"}
    bad = [
        ("20190720201830.000000_US_webconnectivity_0000000000000001", wrap(good)[:50]),
        ("20190720201830.000000_US_webconnectivity_0000000000000002", b"[1, 2]"),
        ("20190720201830.000000_US_webconnectivity_0000000000000003",
         json.dumps({"format": "xml", "content": good}).encode()),
        ("20190720201830.000000_US_webconnectivity_0000000000000004", b"\xff\xfe\x00binary"),
        ("20190720201830.000000_US_webconnectivity_0000000000000005", wrap(no_asn)),
        ("20190720201830.000000_ZZ_webconnectivity_0000000000000006", wrap(zz)),
        ("20190720201830.000000_US_webconnectivity_0000000000000007", wrap(no_rid)),
    ]
    for uid, body in bad:
        assert d.submit(uid, body)
    uid, body = post_for(good)
    assert d.submit(uid, body)
    assert d.wait_idle(30)
    assert list(rows_by_uid(db, [uid])) == [uid]
    c = metrics.counters
    assert c["fastpath.discarded_measurement"] == 2
    assert c["fastpath.unhandled_exception"] == 5
    assert c["fastpath.failed.json_parse"] == 2
    assert c["fastpath.failed.not_an_object"] == 1
    assert c["fastpath.failed.bad_format"] == 1
    assert sum(v for k, v in c.items() if k.startswith("fastpath.failed.")) == 5
    assert c["fastpath.processed"] == 8
    assert db.execute("SELECT count() FROM fastpath")[0][0] == 1


def test_unscored_spool_entries_are_scored_after_a_restart(daemon_factory, db, shared_data,
                                                             fp_cfg, metrics):
    samples = load_samples(shared_data)
    spool = Spool(fp_cfg.spool_dir)
    first = []
    for name in ["report1.json", "report2.json", "bug_352.json"]:
        uid, body = post_for(samples[name])
        spool.write(uid, body)
        first.append(uid)
    # No periodic rescans: only the scan at start feeds the spool.
    cfg_no_scan = fp_cfg.with_overrides(FASTPATH_SPOOL_SCAN_INTERVAL="3600")
    d = daemon_factory(workers=0, cfg=cfg_no_scan)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(rows_by_uid(db, first)) < 3:
        time.sleep(0.05)
    assert d.wait_idle(10)
    d.stop()
    assert set(rows_by_uid(db, first)) == set(first)
    # Measurements spooled while the fastpath is down (never notified).
    db.command("TRUNCATE TABLE fastpath")
    later = []
    for name in ["whatsapp.json", "torsf_2.json"]:
        uid, body = post_for(samples[name])
        spool.write(uid, body)
        later.append(uid)
    metrics.counters.clear()
    d2 = daemon_factory(workers=0, cfg=cfg_no_scan)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and set(rows_by_uid(db, later)) != set(later):
        time.sleep(0.05)
    assert set(rows_by_uid(db, later)) == set(later)
    assert d2.wait_idle(10)
    # Entries handled by the first run are not fed again.
    assert rows_by_uid(db, first) == {}
    assert metrics.counters["fastpath.spool_fed"] == 2


def _scored(msm: dict, uid: str):
    from fastpath.core import process_measurement
    from fastpath.fingerprints import Fingerprints
    from fastpath.pool import Scored
    o = process_measurement(None, msm, uid, Fingerprints.empty())
    return Scored(uid, o.status, o.reason, o.row.as_tuple(), None, 1.0)


def test_one_bad_row_does_not_drop_its_batch(db, shared_data, metrics):
    from fastpath.rows import FASTPATH_COLUMNS, OBS_OPENVPN_COLUMNS
    from fastpath.writer import RowWriter
    msm = load_samples(shared_data)["report1.json"]
    batch = [_scored(msm, f"20190720201830.{i:06d}_US_webconnectivity_{i:016x}")
             for i in range(9)]
    bad = list(batch[4].row)
    bad[FASTPATH_COLUMNS.index("test_start_time")] = "not a date"
    batch[4] = batch[4]._replace(row=tuple(bad))
    flushed = []
    w = RowWriter(db, metrics, fastpath_columns=FASTPATH_COLUMNS,
                  openvpn_columns=OBS_OPENVPN_COLUMNS, batch_rows=100,
                  on_flushed=lambda h, f: flushed.append((h, f)))
    w.flush_batch(batch)
    written = {r[0] for r in db.execute("SELECT measurement_uid FROM fastpath")}
    assert written == {s.uid for s in batch} - {batch[4].uid}
    assert flushed == [([s.uid for s in batch if s is not batch[4]], [batch[4].uid])]
    assert metrics.counters["fastpath.db.fastpath_failed_rows"] == 1
    assert metrics.counters["fastpath.failed_batch_inserts"] >= 1


def test_failed_rows_stay_unhandled_in_the_spool(daemon_factory, db, shared_data, fp_cfg,
                                                 monkeypatch):
    d = daemon_factory(workers=0)
    spool = Spool(fp_cfg.spool_dir)
    msm = load_samples(shared_data)["report1.json"]
    uid_ok, body = post_for(msm, "ok")
    uid_bad, body_bad = post_for(msm, "bad")
    spool.write(uid_ok, body)
    spool.write(uid_bad, body_bad)
    real_insert = db.insert

    def insert(table, cols, rows, settings=None):
        if any(uid_bad in r for r in rows):
            from ooni_common.db import DatabaseError
            raise DatabaseError("refused")
        return real_insert(table, cols, rows, settings)

    monkeypatch.setattr(db, "insert", insert)
    assert d.wait_idle(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and d._failures[uid_bad] < d.max_attempts:
        time.sleep(0.05)
    # Retried by the spool feeder, then given up on; never marked handled.
    assert d._failures[uid_bad] == d.max_attempts
    handled = set().union(*(spool.handled(h) for h in spool.hour_dirs()))
    assert uid_ok in handled and uid_bad not in handled
    assert set(rows_by_uid(db, [uid_ok, uid_bad])) == {uid_ok}


def test_fingerprints_reload_in_worker_processes_without_restart(daemon_factory, db,
                                                                 shared_data):
    d = daemon_factory(workers=1)
    msm = load_samples(shared_data)["bug_352.json"]
    uid1, body1 = post_for(msm, "1")
    assert d.submit(uid1, body1)
    assert d.wait_idle(60)
    assert rows_by_uid(db, [uid1])[uid1]["confirmed"] == "f"
    version = d.fingerprints.current.version
    # The updater swaps new tables in; the poller notices within its period.
    load_fingerprints(db, shared_data)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and d.fingerprints.current.version == version:
        time.sleep(0.05)
    assert d.fingerprints.current.version == version + 1
    uid2, body2 = post_for(msm, "2")
    assert d.submit(uid2, body2)
    assert d.wait_idle(30)
    row = rows_by_uid(db, [uid2])[uid2]
    assert (row["anomaly"], row["confirmed"]) == ("t", "t")
    assert "ooni.ir_10dot10_ipv4_1" in row["scores"]


def test_spec_timer_names_are_sent(cfg, db, shared_data):
    """fastpath.md §12: the write timers and full_run per measurement."""
    m = Metrics("fastpath", enabled=False)
    samples = sorted((shared_data / "measurements").glob("*.json"))[:3]
    d = FastpathDaemon(cfg, db, m, workers=0)
    d.start()
    try:
        for i, p in enumerate(samples):
            uid = f"20240305100000.{i:06d}_IT_webconnectivity_{i:016x}"
            body = json.dumps({"format": "json", "content": json.loads(p.read_text())}).encode()
            assert d.put(uid, body, timeout=10)
        assert d.wait_idle(60)
    finally:
        d.stop()
    assert m.timers["fastpath.full_run"][0] == len(samples)
    assert m.timers["fastpath.clickhouse_upsert"][0] >= 1
    assert m.timers["fastpath.db.clickhouse_upsert_summary"][0] == m.timers["fastpath.clickhouse_upsert"][0]
    text = m.prometheus_text()
    assert "fastpath_db_clickhouse_upsert_summary_ms_count" in text


def test_spec_scoring_timers_come_from_the_worker_processes(cfg, db, shared_data):
    """fastpath.md §12: score_measurement for each scored measurement, the
    per-test timers, match_fingerprints where fingerprints are matched."""
    m = Metrics("fastpath", enabled=False)
    names = ["web_connectivity_no_body.json", "telegram_nourl.json", "whatsapp.json", "tor.json"]
    samples = load_samples(shared_data)
    d = FastpathDaemon(cfg, db, m, workers=1)
    d.start()
    try:
        for name in names:
            assert d.put(*post_for(samples[name]), timeout=10)
        assert d.wait_idle(60)
    finally:
        d.stop()
    counts = {k.removeprefix("fastpath."): v[0] for k, v in m.timers.items()}
    assert counts["score_measurement"] == len(names)
    assert counts["score_web_connectivity"] == 1
    assert counts["match_fingerprints"] == 1
    assert counts["score_measurement_telegram"] == 1
    assert counts["score_measurement_whatsapp"] == 1
    assert "score_vanilla_tor" not in counts  # tor has no timer of its own
