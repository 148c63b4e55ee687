"""Daily pre-aggregated counters for /api/v1/aggregation over any range.

``fastpath_daily`` holds the five counters per (day, probe_cc, test_name),
computed from ``fastpath FINAL`` one day at a time by ``refresh`` (the
``aggregation-summary`` job). A day's summary is used only while it is
*clean*: no fastpath row of that day was inserted after the summary was
computed. ``fastpath_day_touch`` (a materialized view of every insert into
``fastpath``) records the last insert time of each day, so a re-scored
measurement -- a new row that ReplacingMergeTree will merge with the old one
-- makes its day dirty until the next refresh.

A query reads the clean days from the summary and every other day of its
range from ``fastpath FINAL``, in one statement: the answer is the one the
raw table gives, whatever the refresh lag; the lag only decides how many days
are read raw. Queries the summary cannot answer (other dimensions or
filters, ranges not on whole days, the hour grain) read the raw table.

Exactness on a ClickHouse server additionally assumes that an insert becomes
visible within ``SETTLE`` of the time its rows were stamped (``update_time``)
and that the materialized view's part is committed with the table's; the
embedded database runs every insert and query under one lock, where both
hold by construction.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.metrics import Metrics, job_metrics

from ooniapi.aggregation.filters import conditions

log = logging.getLogger("ooni-api.aggregation")

SETTLE = dt.timedelta(seconds=5)

COUNTERS_SQL = """
    countIf(anomaly = 't' AND confirmed = 'f' AND msm_failure = 'f') AS anomaly_count,
    countIf(confirmed = 't' AND msm_failure = 'f') AS confirmed_count,
    countIf(msm_failure = 't') AS failure_count,
    countIf(anomaly = 'f' AND confirmed = 'f' AND msm_failure = 'f') AS ok_count,
    count() AS measurement_count"""
COUNTERS = ("anomaly_count", "confirmed_count", "failure_count", "ok_count",
            "measurement_count")

# Dimensions the summary holds, and the day expressions of each time grain.
SUMMARY_AXES = {"probe_cc": "probe_cc", "test_name": "test_name"}
GRAIN_SQL = {
    "day": "toString(day)",
    "week": "toString(toStartOfWeek(day))",
    "month": "toString(toStartOfMonth(day))",
    "year": "toString(toStartOfYear(day))",
}


@dataclass(frozen=True)
class Plan:
    """Which days of the query's range come from the summary."""
    clean: list[dt.date]
    dirty_ranges: list[tuple[dt.date, dt.date]]  # [start, end) in days


def applicable(q) -> bool:
    """True when the summary holds what the query asks (an
    ``aggregation.routes.AggregationQuery``)."""
    if q.probe_asn or q.domain or q.input is not None or q.category_code is not None \
            or q.ooni_run_link_id:
        return False
    for axis in q.axes:
        if axis == "measurement_start_day":
            if q.time_grain not in GRAIN_SQL:
                return False
        elif axis not in SUMMARY_AXES:
            return False
    for t in (q.since, q.until):
        if t is not None and t.time() != dt.time():
            return False
    return True


def plan(db: Database, since: dt.datetime | None, until: dt.datetime | None,
         settings: dict[str, Any]) -> Plan | None:
    """The clean and dirty days of [since, until); None when no day is clean
    (the raw query is then as good)."""
    where, p = [], {}
    if since is not None:
        where.append("day >= {since:Date}")
        p["since"] = since.date()
    if until is not None:
        where.append("day < {until:Date}")
        p["until"] = until.date()
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    rows = db.execute(f"""
        SELECT t.day, t.last_insert <= s.version AS clean
        FROM (SELECT day, max(last_insert) AS last_insert FROM fastpath_day_touch {cond}
              GROUP BY day) AS t
        LEFT JOIN (SELECT day, max(version) AS version FROM fastpath_daily_days {cond}
                   GROUP BY day) AS s USING day
        ORDER BY t.day""", p, settings)
    clean = [r[0] for r in rows if r[1]]
    if not clean:
        return None
    dirty = [r[0] for r in rows if not r[1]]
    return Plan(clean, _ranges(dirty))


def _ranges(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    out: list[tuple[dt.date, dt.date]] = []
    for d in days:
        if out and out[-1][1] == d:
            out[-1] = (out[-1][0], d + dt.timedelta(days=1))
        else:
            out.append((d, d + dt.timedelta(days=1)))
    return out


def build_sql(q, pl: Plan) -> tuple[str, dict[str, Any]]:
    """The aggregation's SELECT (axes as d0, d1, then the counters) over the
    summary's clean days and the raw table's other days."""
    p: dict[str, Any] = {"clean": pl.clean}
    # The only filters the summary holds (see applicable).
    filters = conditions(q, ("probe_cc", "test_name"), p)
    # The summary rows of a day's current version only: a group that no
    # longer exists keeps an older version.
    summary_sql = f"""SELECT s.day AS day, s.probe_cc AS probe_cc, s.test_name AS test_name,
            {', '.join(f's.{c} AS {c}' for c in COUNTERS)}
        FROM fastpath_daily AS s
        INNER JOIN (SELECT day, max(version) AS version FROM fastpath_daily_days
                    WHERE day IN {{clean:Array(Date)}} GROUP BY day) AS v
            ON s.day = v.day AND s.version = v.version
        WHERE {' AND '.join(['s.day IN {clean:Array(Date)}'] + ['s.' + f for f in filters])}"""
    parts = [summary_sql]
    if pl.dirty_ranges:
        ranges = []
        for i, (a, b) in enumerate(pl.dirty_ranges):
            ranges.append(f"(measurement_start_time >= {{r{i}a:DateTime}} "
                          f"AND measurement_start_time < {{r{i}b:DateTime}})")
            p[f"r{i}a"] = dt.datetime.combine(a, dt.time())
            p[f"r{i}b"] = dt.datetime.combine(b, dt.time())
        raw_where = [f"({' OR '.join(ranges)})"] + filters
        parts.append(f"""SELECT toDate(measurement_start_time) AS day, probe_cc, test_name,
            {COUNTERS_SQL}
        FROM fastpath FINAL
        WHERE {' AND '.join(raw_where)}
        GROUP BY day, probe_cc, test_name""")
    select, group = [], []
    for i, axis in enumerate(q.axes):
        expr = GRAIN_SQL[q.time_grain] if axis == "measurement_start_day" \
            else f"toString({SUMMARY_AXES[axis]})"
        select.append(f"{expr} AS d{i}")
        group.append(f"d{i}")
    sums = ", ".join(f"sum({c}) AS {c}" for c in COUNTERS)
    sql = f"SELECT {', '.join(select + [sums])}\nFROM ({' UNION ALL '.join(parts)})"
    if group:
        sql += f"\nGROUP BY {', '.join(group)}\nORDER BY {', '.join(group)}"
    return sql, p


# --- refresh ------------------------------------------------------------------

def refresh(db: Database, max_days: int | None = None) -> int:
    """Recomputes the summary of every dirty day (oldest first, at most
    ``max_days``); returns how many days were refreshed."""
    rows = db.execute("""
        SELECT t.day FROM (SELECT day, max(last_insert) AS last_insert
                           FROM fastpath_day_touch GROUP BY day) AS t
        LEFT JOIN (SELECT day, max(version) AS version FROM fastpath_daily_days
                   GROUP BY day) AS s USING day
        WHERE s.version IS NULL OR t.last_insert > s.version
        ORDER BY t.day""", settings={"join_use_nulls": 1})
    days = [r[0] for r in rows][:max_days] if max_days else [r[0] for r in rows]
    for day in days:
        refresh_day(db, day)
    return len(days)


def refresh_day(db: Database, day: dt.date) -> None:
    # The version is taken before the rows are read: a row stamped after it
    # makes the day dirty again; one stamped before it is visible once
    # SETTLE has passed, so the read below includes it.
    version = db.execute("SELECT now64(3) - toIntervalMillisecond({ms:UInt32})",
                         {"ms": int(SETTLE.total_seconds() * 1000)})[0][0]
    p = {"a": dt.datetime.combine(day, dt.time()),
         "b": dt.datetime.combine(day + dt.timedelta(days=1), dt.time()),
         "v": version, "day": day}
    db.execute(f"""INSERT INTO fastpath_daily (day, probe_cc, test_name,
            {', '.join(COUNTERS)}, version)
        SELECT {{day:Date}}, probe_cc, test_name, {COUNTERS_SQL}, {{v:DateTime64(3)}}
        FROM fastpath FINAL
        WHERE measurement_start_time >= {{a:DateTime}} AND measurement_start_time < {{b:DateTime}}
        GROUP BY probe_cc, test_name""", p)
    db.insert("fastpath_daily_days", ["day", "version"], [[day, version]])


def run_job(cfg: Config, db: Database, metrics_root: Metrics | None = None) -> None:
    """The ``aggregation-summary`` job (analysis.jobs)."""
    n = refresh(db, cfg.get_int("AGGREGATION_SUMMARY_MAX_DAYS", 0) or None)
    log.info("aggregation summary: %d days refreshed", n)
    metrics = job_metrics(metrics_root, "aggregation_summary")
    if metrics is not None:
        metrics.incr("days_refreshed", n)
