"""The detector job over a seeded week of fastpath rows."""
from __future__ import annotations

import datetime as dt

import pytest

from analysis.detector import job

from tests.functional.detector_rows import (BLOCK_END, BLOCK_START, BLOCKED_ASN, BLOCKED_CC, BLOCKED_DOMAIN,
                            T0, WEEK, seed)


def _events(db):
    return db.execute("SELECT probe_cc, probe_asn, test_name, input, status, time "
                      "FROM blocking_events ORDER BY time")


def _changepoints(db):
    return db.execute("SELECT probe_cc, probe_asn, test_name, domain, ts, change_dir, "
                      "current_state FROM event_detector_changepoints ORDER BY ts")


def _close(t: dt.datetime, expected: dt.datetime, hours: int = 2) -> bool:
    return abs(t - expected) <= dt.timedelta(hours=hours)


@pytest.fixture
def week_db(db):
    seed(db)
    return db


def test_block_and_unblock_events(week_db, cfg):
    db = week_db
    r = job.run(cfg, db, since=T0, until=WEEK)
    assert r.chunks == 7 and r.rows > 0
    ev = _events(db)
    assert [(e[0], e[1], e[2], e[3], e[4]) for e in ev] == [
        (BLOCKED_CC, BLOCKED_ASN, "web_connectivity", BLOCKED_DOMAIN, "BLOCKED"),
        (BLOCKED_CC, BLOCKED_ASN, "web_connectivity", BLOCKED_DOMAIN, "OK")]
    assert _close(ev[0][5], BLOCK_START) and _close(ev[1][5], BLOCK_END)
    cps = _changepoints(db)
    assert [(c[0], c[1], c[3], c[5], c[6]) for c in cps] == [
        (BLOCKED_CC, BLOCKED_ASN, BLOCKED_DOMAIN, 1, "blocked"),
        (BLOCKED_CC, BLOCKED_ASN, BLOCKED_DOMAIN, -1, "ok")]
    assert r.changepoints == 2 and r.events == 2

    # The same hours again, and a forward run: nothing added.
    r2 = job.run(cfg, db, since=T0, until=WEEK)
    assert (r2.changepoints, r2.events) == (0, 0) and len(r2.found) == 2
    r3 = job.run(cfg, db, until=WEEK)
    assert r3.chunks == 0
    assert db.execute("SELECT count() FROM blocking_events")[0][0] == 2
    assert db.execute("SELECT count() FROM event_detector_changepoints")[0][0] == 2


def test_hourly_runs_continue_from_the_checkpoint(week_db, cfg):
    db = week_db
    job.run(cfg, db, since=T0, until=T0 + dt.timedelta(days=2))
    # Hourly runs as the timer does them, from the checkpoint on.
    c = cfg.with_overrides(DETECTOR_DELAY_HOURS=0)
    for h in range(2 * 24, 7 * 24 + 1):
        job.run(c, db, now=T0 + dt.timedelta(hours=h))
    ev = _events(db)
    assert [e[4] for e in ev] == ["BLOCKED", "OK"]
    assert _close(ev[0][5], BLOCK_START) and _close(ev[1][5], BLOCK_END)
    cp, _ = job.load_state(db)
    assert cp == WEEK


class Crash(Exception):
    pass


@pytest.mark.parametrize("stage", ["changes", "state"])
@pytest.mark.parametrize("day", [3, 5])
def test_crash_mid_run_resumes_from_checkpoint(week_db, cfg, stage, day):
    db = week_db
    crash_at = T0 + dt.timedelta(days=day + 1)

    def hook(s, chunk_end):
        if s == stage and chunk_end == crash_at:
            raise Crash(f"{s} {chunk_end}")

    with pytest.raises(Crash):
        job.run(cfg, db, since=T0, until=WEEK, hook=hook)
    cp, _ = job.load_state(db)
    assert cp == (crash_at if stage == "state" else crash_at - dt.timedelta(days=1))
    job.run(cfg, db, until=WEEK)
    ev = _events(db)
    assert [e[4] for e in ev] == ["BLOCKED", "OK"]
    assert _close(ev[0][5], BLOCK_START) and _close(ev[1][5], BLOCK_END)
    assert db.execute("SELECT count() FROM event_detector_changepoints")[0][0] == 2
    assert job.load_state(db)[0] == WEEK


def test_nothing_without_data_and_bad_config(db, cfg):
    r = job.run(cfg, db, since=T0, until=WEEK)
    assert (r.rows, r.changepoints, r.events) == (0, 0, 0)
    from analysis.runner import JobError
    from ooni_common.config import ConfigError
    with pytest.raises(JobError):
        job.run(cfg.with_overrides(DETECTOR_OK_SHARE=0.9), db, since=T0, until=WEEK)
    with pytest.raises(ConfigError):
        job.run(cfg.with_overrides(DETECTOR_DOMAINS="not a domain"), db, since=T0, until=WEEK)


def test_command_line(week_db, cfg, capsys, monkeypatch):
    monkeypatch.setenv("OONI_CLICKHOUSE_URL", cfg.clickhouse_url)
    monkeypatch.setenv("OONI_STATSD_ENABLED", "false")
    assert job.main(["--since", "2024-05-06", "--until", "2024-05-13"]) == 0
    out = capsys.readouterr().out
    assert "2 new changepoints, 2 new events" in out
    with pytest.raises(SystemExit) as e:
        job.main(["--since", "2024-05-13", "--until", "2024-05-06"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        job.main(["--since", "yesterday"])


def test_registered_job(week_db, cfg):
    from analysis.jobs import all_jobs
    all_jobs()["detector"].run(cfg.with_overrides(DETECTOR_INITIAL_HOURS=int((dt.datetime.utcnow() - T0).total_seconds() // 3600) + 24,
                                                   DETECTOR_CHUNK_HOURS=24 * 30), week_db)
    assert [e[4] for e in _events(week_db)] == ["BLOCKED", "OK"]
