"""The statistics behind the private Explorer routes (api.md §6): one query
per function, plus the pure helpers that fill and pivot their results.

Counts read ``fastpath FINAL``: the table is a ReplacingMergeTree and a
re-scored measurement would otherwise count twice until a merge. Day
windows are computed from the database's ``today()`` (UTC), taken once per
request, so that the SQL window and the zero-filled day list agree even
around midnight.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from itertools import product
from typing import Any, Mapping

from ooni_common.db import Database

from ooniapi.core.fixed_data import CIRCUMVENTION_TESTS, TEST_GROUPS

IM_TESTS = tuple(sorted(TEST_GROUPS["im"]))


@dataclass(frozen=True)
class MonthValue:
    month: dt.date
    value: int


@dataclass(frozen=True)
class MonthlyTotals:
    month: dt.date
    networks: int
    countries: int
    measurements: int


@dataclass(frozen=True)
class GroupDayCount:
    test_group: str
    test_day: dt.date
    count: int


@dataclass(frozen=True)
class DayCount:
    test_day: dt.date
    count: int


@dataclass(frozen=True)
class DayCounters:
    test_day: dt.date
    anomaly_count: int
    confirmed_count: int
    failure_count: int
    total_count: int


@dataclass(frozen=True)
class InputCounters:
    input: str
    anomaly_count: int
    confirmed_count: int
    failure_count: int
    total_count: int


@dataclass(frozen=True)
class TorNetwork:
    probe_asn: int
    total_count: int
    success_count: int
    failure_count: int
    last_tested: dt.date


@dataclass(frozen=True)
class ImNetwork:
    test_name: str
    probe_asn: int
    total_count: int
    last_tested: dt.date


@dataclass(frozen=True)
class CountryOverview:
    first_bucket_date: dt.date | None
    measurement_count: int
    network_count: int


@dataclass(frozen=True)
class GlobalOverview:
    network_count: int
    country_count: int
    measurement_count: int


@dataclass(frozen=True)
class RuntimeStat:
    test_name: str
    probe_cc: str
    date: dt.date
    p50: float
    p90: float
    cnt: int


@dataclass(frozen=True)
class DomainMetadata:
    category_code: str
    canonical_domain: str


@dataclass(frozen=True)
class NetworkCount:
    probe_asn: int
    cnt: int
    org_name: str


@dataclass(frozen=True)
class NetworkStats:
    probe_asn: int
    org_name: str
    measurement_count: int
    anomaly_count: int
    confirmed_count: int
    failure_count: int
    last_measurement: dt.datetime


@dataclass(frozen=True)
class DomainCount:
    domain_name: str
    category_code: str
    measurement_count: int


# --- pure helpers ------------------------------------------------------------

def days(first: dt.date, end: dt.date) -> list[dt.date]:
    """Every day in ``[first, end)``."""
    return [first + dt.timedelta(days=i) for i in range((end - first).days)]


def pivot_test_coverage(rows: list[GroupDayCount], groups: list[str],
                        window: list[dt.date]) -> list[GroupDayCount]:
    """One entry per (group, day), groups outermost, zero-filled."""
    counts = {(r.test_group, r.test_day): r.count for r in rows}
    return [GroupDayCount(g, d, counts.get((g, d), 0)) for g in groups for d in window]


def fill_days(rows: list[DayCount], window: list[dt.date]) -> list[DayCount]:
    counts = {r.test_day: r.count for r in rows}
    return [DayCount(d, counts.get(d, 0)) for d in window]


def runtime_grid(rows: list[RuntimeStat]) -> list[tuple[str, str, dt.date, list]]:
    """The cartesian product of seen test names x CCs x dates (each sorted),
    with ``[p50, p90, count]`` where there is data and ``[]`` elsewhere."""
    cells = {(r.test_name, r.probe_cc, r.date): [r.p50, r.p90, r.cnt] for r in rows}
    tests = sorted({r.test_name for r in rows})
    ccs = sorted({r.probe_cc for r in rows})
    dates = sorted({r.date for r in rows})
    return [(t, c, d, cells.get((t, c, d), [])) for t, c, d in product(tests, ccs, dates)]


def notok_networks(nets: list[TorNetwork]) -> int:
    """Networks with more than 5 measurements and under 60% successes."""
    return sum(1 for n in nets if n.total_count > 5 and n.success_count / n.total_count < 0.6)


# --- queries -----------------------------------------------------------------

class ExplorerStats:
    def __init__(self, db: Database, settings: Mapping[str, Any]):
        self.db = db
        self.settings = dict(settings)

    def _rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        return self.db.execute(sql, params or {}, settings=self.settings)

    def today(self) -> dt.date:
        return self._rows("SELECT today()")[0][0]

    def distinct_by_month(self, column: str) -> list[MonthValue]:
        """Distinct ``probe_asn`` or ``probe_cc`` per month, from 24 months
        ago to the current month. Distinct counts need no FINAL."""
        if column not in ("probe_asn", "probe_cc"):
            raise ValueError(column)
        rows = self._rows(f"""
            SELECT toStartOfMonth(measurement_start_time) AS month, uniqExact({column})
            FROM fastpath
            WHERE measurement_start_time >= subtractMonths(toStartOfMonth(today()), 24)
              AND measurement_start_time < addMonths(toStartOfMonth(today()), 1)
            GROUP BY month ORDER BY month""")
        return [MonthValue(m, v) for m, v in rows]

    def monthly_totals(self) -> list[MonthlyTotals]:
        rows = self._rows("""
            SELECT toStartOfMonth(measurement_start_time) AS month,
                   uniqExact(probe_asn), uniqExact(probe_cc), count()
            FROM fastpath FINAL
            WHERE measurement_start_time >= subtractMonths(toStartOfMonth(today()), 24)
              AND measurement_start_time < addMonths(toStartOfMonth(today()), 1)
            GROUP BY month ORDER BY month""")
        return [MonthlyTotals(*r) for r in rows]

    def count_by_country(self) -> list[tuple[str, int]]:
        return [(cc, n) for cc, n in self._rows("""
            SELECT probe_cc, count() FROM fastpath FINAL
            GROUP BY probe_cc ORDER BY probe_cc""")]

    def test_group_names(self) -> list[str]:
        return [r[0] for r in self._rows(
            "SELECT DISTINCT test_group FROM test_groups ORDER BY test_group")]

    def test_group_counts(self, probe_cc: str, first: dt.date, end: dt.date) -> list[GroupDayCount]:
        rows = self._rows("""
            SELECT test_group, toDate(measurement_start_time) AS day, count()
            FROM fastpath FINAL ANY LEFT JOIN test_groups USING (test_name)
            WHERE probe_cc = {cc:String}
              AND measurement_start_time >= {first:Date} AND measurement_start_time < {end:Date}
            GROUP BY test_group, day""", {"cc": probe_cc, "first": first, "end": end})
        return [GroupDayCount(*r) for r in rows]

    def networks_per_day(self, probe_cc: str, first: dt.date, end: dt.date,
                         test_names: list[str] | None) -> list[DayCount]:
        """Distinct ASNs per day; ``test_names`` None means every test."""
        rows = self._rows("""
            SELECT toDate(measurement_start_time) AS day, uniqExact(probe_asn)
            FROM fastpath
            WHERE probe_cc = {cc:String}
              AND measurement_start_time >= {first:Date} AND measurement_start_time < {end:Date}
              AND ({all:UInt8} OR has({tests:Array(String)}, test_name))
            GROUP BY day ORDER BY day""",
            {"cc": probe_cc, "first": first, "end": end, "all": int(test_names is None),
             "tests": test_names or []})
        return [DayCount(*r) for r in rows]

    def count_by_asn(self, probe_cc: str, first: dt.date, end: dt.date) -> list[tuple[int, int]]:
        return [(asn, n) for asn, n in self._rows("""
            SELECT probe_asn, count() AS cnt FROM fastpath FINAL
            WHERE probe_cc = {cc:String}
              AND measurement_start_time >= {first:Date} AND measurement_start_time < {end:Date}
            GROUP BY probe_asn ORDER BY cnt DESC, probe_asn""",
            {"cc": probe_cc, "first": first, "end": end})]

    def input_counters_by_day(self, probe_cc: str, probe_asn: int, inp: str,
                              first: dt.date, end: dt.date) -> list[DayCounters]:
        rows = self._rows("""
            SELECT toDate(measurement_start_time) AS day, countIf(anomaly = 't'),
                   countIf(confirmed = 't'), countIf(msm_failure = 't'), count()
            FROM fastpath FINAL
            WHERE probe_cc = {cc:String} AND probe_asn = {asn:UInt32} AND input = {input:String}
              AND measurement_start_time >= {first:Date} AND measurement_start_time < {end:Date}
            GROUP BY day ORDER BY day""",
            {"cc": probe_cc, "asn": probe_asn, "input": inp, "first": first, "end": end})
        return [DayCounters(*r) for r in rows]

    def distinct_inputs(self, probe_cc: str, probe_asn: int, first: dt.date, end: dt.date) -> int:
        return self._rows("""
            SELECT uniqExact(input) FROM fastpath
            WHERE test_name = 'web_connectivity' AND probe_cc = {cc:String}
              AND probe_asn = {asn:UInt32}
              AND measurement_start_time >= {first:Date} AND measurement_start_time < {end:Date}""",
            {"cc": probe_cc, "asn": probe_asn, "first": first, "end": end})[0][0]

    def input_counters(self, probe_cc: str, probe_asn: int, first: dt.date, end: dt.date,
                       limit: int, offset: int) -> list[InputCounters]:
        rows = self._rows("""
            SELECT input, countIf(anomaly = 't') AS anomaly_count,
                   countIf(confirmed = 't') AS confirmed_count,
                   countIf(msm_failure = 't') AS failure_count, count() AS total_count
            FROM fastpath FINAL
            WHERE test_name = 'web_connectivity' AND probe_cc = {cc:String}
              AND probe_asn = {asn:UInt32}
              AND measurement_start_time >= {first:Date} AND measurement_start_time < {end:Date}
            GROUP BY input
            ORDER BY confirmed_count DESC, total_count DESC, anomaly_count DESC, input ASC
            LIMIT {limit:UInt64} OFFSET {offset:UInt64}""",
            {"cc": probe_cc, "asn": probe_asn, "first": first, "end": end,
             "limit": limit, "offset": offset})
        return [InputCounters(*r) for r in rows]

    def vanilla_tor_networks(self, probe_cc: str, today: dt.date) -> list[TorNetwork]:
        rows = self._rows("""
            SELECT probe_asn, count() AS total, total - countIf(anomaly = 't'),
                   countIf(msm_failure = 't'), toDate(max(measurement_start_time))
            FROM fastpath FINAL
            WHERE test_name = 'vanilla_tor' AND probe_cc = {cc:String}
              AND measurement_start_time > subtractMonths({today:Date}, 6)
            GROUP BY probe_asn ORDER BY probe_asn""", {"cc": probe_cc, "today": today})
        return [TorNetwork(*r) for r in rows]

    def im_networks(self, probe_cc: str, first: dt.date, end: dt.date) -> list[ImNetwork]:
        rows = self._rows("""
            SELECT test_name, probe_asn, count() AS total, toDate(max(measurement_start_time))
            FROM fastpath FINAL
            WHERE probe_cc = {cc:String} AND has({tests:Array(String)}, test_name)
              AND measurement_start_time >= {first:Date} AND measurement_start_time < {end:Date}
            GROUP BY test_name, probe_asn
            ORDER BY test_name, total DESC, probe_asn""",
            {"cc": probe_cc, "tests": list(IM_TESTS), "first": first, "end": end})
        return [ImNetwork(str(t), *r) for t, *r in rows]

    def test_counts_by_day(self, test_name: str, probe_cc: str, probe_asn: int,
                           first: dt.date, end: dt.date) -> list[DayCount]:
        rows = self._rows("""
            SELECT toDate(measurement_start_time) AS day, count() FROM fastpath FINAL
            WHERE test_name = {test:String} AND probe_cc = {cc:String} AND probe_asn = {asn:UInt32}
              AND measurement_start_time >= {first:Date} AND measurement_start_time < {end:Date}
            GROUP BY day ORDER BY day""",
            {"test": test_name, "cc": probe_cc, "asn": probe_asn, "first": first, "end": end})
        return [DayCount(*r) for r in rows]

    def country_overview(self, probe_cc: str) -> CountryOverview:
        n, first, nets = self._rows("""
            SELECT count(), toDate(min(measurement_start_time)), uniqExact(probe_asn)
            FROM fastpath FINAL
            WHERE probe_cc = {cc:String} AND measurement_start_time >= '2012-12-01 00:00:00'""",
            {"cc": probe_cc})[0]
        # min() over no rows is the epoch, which is no measurement's date.
        return CountryOverview(first if n else None, n, nets)

    def global_overview(self) -> GlobalOverview:
        nets, ccs, n = self._rows("""
            SELECT uniqExact(probe_asn), uniqExact(probe_cc), count() FROM fastpath FINAL""")[0]
        return GlobalOverview(nets, ccs, n)

    def circumvention_counts(self, today: dt.date) -> list[tuple[str, int]]:
        return [(cc, n) for cc, n in self._rows("""
            SELECT probe_cc, count() FROM fastpath FINAL
            WHERE has({tests:Array(String)}, test_name)
              AND measurement_start_time > subtractMonths({today:Date}, 6)
              AND measurement_start_time < {today:Date}
            GROUP BY probe_cc ORDER BY probe_cc""",
            {"tests": list(CIRCUMVENTION_TESTS), "today": today})]

    def circumvention_runtimes(self, today: dt.date) -> list[RuntimeStat]:
        rows = self._rows("""
            SELECT test_name, probe_cc, toDate(measurement_start_time) AS day,
                   quantile(0.5)(rt), quantile(0.9)(rt), count()
            FROM (
                SELECT test_name, probe_cc, measurement_start_time,
                       JSONExtractFloat(scores, 'extra', 'test_runtime') AS rt
                FROM fastpath FINAL
                WHERE has({tests:Array(String)}, test_name)
                  AND measurement_start_time > subtractMonths({today:Date}, 6)
                  AND measurement_start_time < {today:Date}
                  AND JSONHas(scores, 'extra', 'test_runtime')
            )
            GROUP BY test_name, probe_cc, day""",
            {"tests": list(CIRCUMVENTION_TESTS), "today": today})
        return [RuntimeStat(str(t), str(c), d, float(p50), float(p90), int(n))
                for t, c, d, p50, p90, n in rows]

    def domain_metadata(self, domain: str) -> DomainMetadata:
        if domain.startswith("www."):
            default, candidates = domain[4:], [domain[4:], domain]
        else:
            default, candidates = domain, [domain, "www." + domain]
        # Global-list entries first, then the shortest URL.
        rows = self._rows("""
            SELECT category_code, domain FROM citizenlab FINAL
            WHERE has({domains:Array(String)}, domain)
            ORDER BY cc != 'ZZ', length(url), url, domain
            LIMIT 1""", {"domains": candidates})
        if not rows:
            return DomainMetadata("MISC", default)
        return DomainMetadata(*rows[0])

    def org_name(self, asn: int) -> str | None:
        rows = self._rows("""
            SELECT org_name FROM asnmeta WHERE asn = {asn:UInt32}
            ORDER BY changed DESC LIMIT 1""", {"asn": asn})
        return rows[0][0] if rows else None

    def networks(self) -> list[NetworkCount]:
        # Unmatched LEFT JOIN columns take their type's default ('' and 0
        # below), which is what the routes serve for unknown names/counts.
        rows = self._rows("""
            SELECT c.probe_asn, c.cnt, o.org_name
            FROM (SELECT probe_asn, count() AS cnt FROM fastpath FINAL GROUP BY probe_asn) AS c
            LEFT JOIN (SELECT asn, argMax(org_name, changed) AS org_name
                       FROM asnmeta GROUP BY asn) AS o
            ON o.asn = c.probe_asn
            ORDER BY c.probe_asn""")
        return [NetworkCount(*r) for r in rows]

    def network_count(self, probe_cc: str, first: dt.date, end: dt.date) -> int:
        return self._rows("""
            SELECT uniqExact(probe_asn) FROM fastpath
            WHERE probe_cc = {cc:String}
              AND measurement_start_time >= {first:Date} AND measurement_start_time < {end:Date}""",
            {"cc": probe_cc, "first": first, "end": end})[0][0]

    def network_stats(self, probe_cc: str, first: dt.date, end: dt.date, limit: int,
                      offset: int) -> list[NetworkStats]:
        """One page of a country's networks, most measured first."""
        rows = self._rows("""
            SELECT c.probe_asn, o.org_name, c.cnt, c.anomalies, c.confirmed, c.failures, c.last
            FROM (
                SELECT probe_asn, count() AS cnt, countIf(anomaly = 't') AS anomalies,
                       countIf(confirmed = 't') AS confirmed,
                       countIf(msm_failure = 't') AS failures,
                       max(measurement_start_time) AS last
                FROM fastpath FINAL
                WHERE probe_cc = {cc:String}
                  AND measurement_start_time >= {first:Date}
                  AND measurement_start_time < {end:Date}
                GROUP BY probe_asn
                ORDER BY cnt DESC, probe_asn
                LIMIT {limit:UInt64} OFFSET {offset:UInt64}
            ) AS c
            LEFT JOIN (SELECT asn, argMax(org_name, changed) AS org_name
                       FROM asnmeta GROUP BY asn) AS o
            ON o.asn = c.probe_asn
            ORDER BY c.cnt DESC, c.probe_asn""",
            {"cc": probe_cc, "first": first, "end": end, "limit": limit, "offset": offset})
        return [NetworkStats(*r) for r in rows]

    def domains(self) -> list[DomainCount]:
        rows = self._rows("""
            SELECT d.domain, d.category, m.cnt
            FROM (
                SELECT domain,
                       argMin(category_code, (cc != 'ZZ', category_code)) AS category
                FROM citizenlab FINAL
                WHERE category_code != '' AND domain != ''
                GROUP BY domain
            ) AS d
            LEFT JOIN (
                SELECT domain, count() AS cnt FROM fastpath FINAL
                WHERE test_name = 'web_connectivity'
                  AND domain IN (SELECT domain FROM citizenlab)
                GROUP BY domain
            ) AS m ON m.domain = d.domain
            ORDER BY d.domain""")
        return [DomainCount(*r) for r in rows]
