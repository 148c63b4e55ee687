"""The daily summary of /api/v1/aggregation stays exact as measurements are
re-scored: every answer equals the raw fastpath FINAL answer before a
refresh, after it, after more re-scores and after merges."""
from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from ooniapi.aggregation import summary
from ooniapi.core.app import create_app
from tests.functional import msm_rows

START = dt.datetime(2021, 3, 1)
QUERIES = [
    "axis_x=measurement_start_day&axis_y=probe_cc&since=2021-02-20&until=2021-04-10",
    "axis_x=measurement_start_day&since=2021-03-01&until=2021-03-20&time_grain=week",
    "axis_x=probe_cc&axis_y=test_name&since=2021-03-03&until=2021-03-09",
    "axis_x=test_name&probe_cc=IT,DE&since=2021-01-01&until=2022-01-01",
    "since=2021-03-02&until=2021-03-12&test_name=web_connectivity",
    "axis_x=measurement_start_day&since=2021-01-01&until=2021-12-31&time_grain=month&format=CSV",
]


def make_app(cfg, db, notifier, **kw):
    a = create_app(cfg.with_overrides(RATE_LIMIT_ENABLED="false", **kw), db=db,
                   notify_fastpath=notifier)
    a.testing = True
    return a


def answers(client, q):
    r = client.get(f"/api/v1/aggregation?{q}")
    assert r.status_code == 200, r.get_data()
    if "format=CSV" in q:
        return r.get_data(as_text=True)
    return json.loads(r.get_data())["result"]


def rescore(rows, rnd, n):
    """New versions of ``n`` rows with other outcomes (the fastpath inserts
    a re-scored measurement again; ReplacingMergeTree keeps the newest)."""
    out = []
    for r in rnd.sample(rows, n):
        a, c, f = rnd.choice([("t", "f", "f"), ("t", "t", "f"), ("f", "f", "t"), ("f", "f", "f")])
        out.append(dict(r, anomaly=a, confirmed=c, msm_failure=f,
                        scores=msm_rows.scores_for(a == "t", c == "t", f == "t")))
    return out


@pytest.fixture
def apps(cfg, db, notifier):
    return (make_app(cfg, db, notifier).test_client(),
            make_app(cfg, db, notifier, AGGREGATION_SUMMARY="false").test_client())


def check_equal(apps):
    fast, raw = apps
    for q in QUERIES:
        assert answers(fast, q) == answers(raw, q), q


def test_summary_exact_through_rescoring_and_merges(db, apps):
    rnd = random.Random(5)
    rows = msm_rows.generate(600, seed=11, start=START, span=dt.timedelta(days=14))
    msm_rows.insert(db, rows)
    check_equal(apps)  # nothing summarised yet: every day is read raw

    settle = summary.SETTLE
    summary.SETTLE = dt.timedelta(0)  # the embedded database needs none
    try:
        assert summary.refresh(db) == 14
        plan = summary.plan(db, dt.datetime(2021, 2, 1), dt.datetime(2021, 5, 1), {})
        assert plan is not None and len(plan.clean) == 14 and plan.dirty_ranges == []
        check_equal(apps)

        # re-scores after the refresh: their days are dirty and read raw
        early = [r for r in rows if r["measurement_start_time"] < START + dt.timedelta(days=4)]
        again = rescore(early, rnd, 30)
        msm_rows.insert(db, again)
        plan = summary.plan(db, dt.datetime(2021, 2, 1), dt.datetime(2021, 5, 1), {})
        dirty_days = {r["measurement_start_time"].date() for r in again}
        assert sum((b - a).days for a, b in plan.dirty_ranges) == len(dirty_days)
        check_equal(apps)

        # a new day and a row re-scored twice, then a refresh of some days only
        msm_rows.insert(db, msm_rows.generate(30, seed=12, start=START + dt.timedelta(days=20),
                                              span=dt.timedelta(days=1)))
        twice = rescore(again, rnd, 10)
        msm_rows.insert(db, twice)
        summary.refresh(db, max_days=3)
        check_equal(apps)
        assert summary.refresh(db) > 0
        plan = summary.plan(db, dt.datetime(2021, 2, 1), dt.datetime(2021, 5, 1), {})
        assert plan.dirty_ranges == []
        check_equal(apps)

        # merges remove the old versions: the answers do not move
        db.command("OPTIMIZE TABLE fastpath FINAL")
        db.command("OPTIMIZE TABLE fastpath_daily FINAL")
        check_equal(apps)
    finally:
        summary.SETTLE = settle


def test_summary_is_used_and_raw_only_where_needed(cfg, db, notifier, apps):
    app = make_app(cfg, db, notifier)
    m = app.extensions["ooni"].metrics
    rows = msm_rows.generate(100, seed=13, start=START, span=dt.timedelta(days=5))
    msm_rows.insert(db, rows)
    settle = summary.SETTLE
    summary.SETTLE = dt.timedelta(0)
    try:
        summary.refresh(db)
    finally:
        summary.SETTLE = settle
    c = app.test_client()
    assert c.get(f"/api/v1/aggregation?{QUERIES[0]}").status_code == 200
    assert m.counters.get("ooni-api.aggregation_summary_days") == 5
    # not answerable from the summary: no plan, the raw table
    for q in ("axis_x=probe_asn&since=2021-03-01&until=2021-03-09",
              "axis_x=probe_cc&since=2021-03-01T12:00:00Z&until=2021-03-09",
              "axis_x=measurement_start_day&since=2021-03-01&until=2021-03-03&time_grain=hour",
              "axis_x=probe_cc&domain=example.org&since=2021-03-01&until=2021-03-09"):
        assert c.get(f"/api/v1/aggregation?{q}").status_code == 200
    assert m.counters.get("ooni-api.aggregation_summary_days") == 5
    check_equal(apps)


def test_days_stamped_after_the_version_stay_dirty(db):
    """With the real settle lag, a day inserted just now is not clean yet."""
    msm_rows.insert(db, msm_rows.generate(20, seed=14, start=START, span=dt.timedelta(days=1)))
    summary.refresh(db)
    assert summary.plan(db, None, None, {}) is None


def test_job_runs_from_the_registry(cfg, db):
    # The standalone scheduler and `ooni-backend job` call every job as
    # run(cfg, db, metrics_root): this one once took two arguments only.
    from analysis.jobs import all_jobs
    from ooni_common.metrics import Metrics
    day = dt.datetime(2024, 3, 1, 12)
    msm_rows.insert(db, [msm_rows.row(measurement_start_time=day)])
    root = Metrics("ooni-backend", enabled=False)
    all_jobs()["aggregation-summary"].run(cfg, db, root)
    assert root.sibling("aggregation_summary").counters.get("aggregation_summary.days_refreshed") >= 1
