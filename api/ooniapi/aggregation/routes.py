"""``GET /api/v1/aggregation`` (api.md §5): counters over ``fastpath``,
optionally grouped by one or two dimensions, as JSON or CSV."""
from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import ujson
from flask import Response, request

from ooni_common.db import DatabaseError, QueryTimeout

from ooniapi.aggregation import filters, summary
from ooniapi.core import params
from ooniapi.core.context import services
from ooniapi.core.errors import BadRequest
from ooniapi.core.openapi import ApiBlueprint

log = logging.getLogger("ooni-api.aggregation")

bp = ApiBlueprint("aggregation", __name__, tag="aggregation")

# Dimension name -> SQL expression. measurement_start_day depends on the
# time grain (TIME_GRAIN_SQL); category_code comes from the citizenlab join.
DIMENSIONS = {
    "blocking_type": "JSONExtractString(scores, 'analysis', 'blocking_type')",
    "category_code": "cl.category_code",
    "domain": "domain",
    "input": "input",
    "measurement_start_day": None,
    "probe_asn": "probe_asn",
    "probe_cc": "probe_cc",
    "test_name": "test_name",
}

# Formatted by the engine as api.md §1.2 serialises them (ISO strings sort
# chronologically): a year by day for 200 countries is 70k rows, and
# converting each date in Python costs more than the query.
TIME_GRAIN_SQL = {
    "hour": "formatDateTime(toStartOfHour(measurement_start_time), '%Y-%m-%dT%H:%i:%SZ')",
    "day": "toString(toDate(measurement_start_time))",
    "week": "toString(toStartOfWeek(measurement_start_time))",
    "month": "toString(toStartOfMonth(measurement_start_time))",
    "year": "toString(toStartOfYear(measurement_start_time))",
}
TIME_GRAINS = ("hour", "day", "week", "month", "year", "auto")


# ClickHouse priority 4: below interactive queries (api.md §5.1, §17).
DEFAULT_PRIORITY = 4
DEFAULT_MAX_EXECUTION_TIME = 28


class AggregationError(BadRequest):
    """Every aggregation error carries ``"v": 0`` (api.md §1.3)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message, status, v=0)


@dataclass
class AggregationQuery:
    """The validated request."""
    axis_x: str | None = None
    axis_y: str | None = None
    probe_cc: list[str] = field(default_factory=list)
    probe_asn: list[int] = field(default_factory=list)
    test_name: list[str] = field(default_factory=list)
    domain: list[str] = field(default_factory=list)
    input: str | None = None
    category_code: str | None = None
    ooni_run_link_id: list[int] = field(default_factory=list)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    time_grain: str = "auto"
    format: str = "JSON"
    download: bool = False

    @property
    def axes(self) -> list[str]:
        return [a for a in (self.axis_x, self.axis_y) if a]


def allowed_time_grains(delta: dt.timedelta) -> tuple[str, ...]:
    """The grains api.md §5.1 allows for a time range; the first one is
    what ``auto`` means."""
    if delta <= dt.timedelta(days=7):
        return ("hour", "day")
    if delta <= dt.timedelta(days=365):
        return ("day", "week", "month") if delta > dt.timedelta(days=30) else ("day", "week")
    return ("day", "week", "month", "year")


def resolve_time_grain(grain: str, since: dt.datetime | None,
                       until: dt.datetime | None) -> str:
    if since is None or until is None or until <= since:
        raise AggregationError("Invalid since and until values")
    allowed = allowed_time_grains(until - since)
    if grain == "auto":
        return allowed[0]
    if grain not in allowed:
        choices = ", ".join(allowed + ("auto",))
        raise AggregationError(f"Choose time_grain between {choices} for the given time range")
    return grain


def _axis(name: str, value: str | None) -> str | None:
    axis = params.parse_lowercase_underscore(value)
    if axis is not None and axis not in DIMENSIONS:
        raise AggregationError("Invalid axis name")
    return axis


def parse_query(args) -> AggregationQuery:
    try:
        q = AggregationQuery(
            axis_x=_axis("axis_x", args.get("axis_x")),
            axis_y=_axis("axis_y", args.get("axis_y")),
            probe_cc=params.parse_probe_cc_list(args.get("probe_cc")),
            probe_asn=params.parse_probe_asn_list(args.get("probe_asn")),
            test_name=params.parse_test_name_list(args.get("test_name")),
            domain=params.parse_domain_list(args.get("domain")),
            input=params.parse_input(args.get("input")),
            category_code=params.parse_uppercase(args.get("category_code")),
            ooni_run_link_id=params.parse_uint_list("ooni_run_link_id",
                                                    args.get("ooni_run_link_id")),
            # ">= since" and "< until" below
            since=params.parse_date("since", args.get("since"), round_up=True),
            until=params.parse_date("until", args.get("until"), round_up=True),
            download=params.parse_download(args.get("download")),
        )
    except AggregationError:
        raise
    except BadRequest as e:
        raise AggregationError(e.message) from None

    grain = (args.get("time_grain") or "auto").strip().lower()
    if grain not in TIME_GRAINS:
        raise AggregationError(
            f"Invalid time_grain: choose between {', '.join(TIME_GRAINS)}")
    q.time_grain = grain
    fmt = (args.get("format") or "JSON").strip().upper()
    if fmt not in ("JSON", "CSV"):
        raise AggregationError("Invalid format: choose between JSON and CSV")
    q.format = fmt

    if q.axis_x and q.axis_x == q.axis_y:
        raise AggregationError("Axis X and Y cannot be the same")
    if q.axis_y and not q.axis_x:
        # Legacy groups by axis_y alone; the result shape then has one
        # dimension, which is what clients expect from dimension_count.
        q.axis_x, q.axis_y = q.axis_y, None
    if "measurement_start_day" in q.axes:
        q.time_grain = resolve_time_grain(q.time_grain, q.since, q.until)
    return q


def build_sql(q: AggregationQuery,
              plan: summary.Plan | None = None) -> tuple[str, dict[str, Any]]:
    """The SELECT for a validated query, with its parameters. Only
    identifiers from DIMENSIONS / TIME_GRAIN_SQL reach the SQL text. With a
    ``plan`` the clean days come from the daily summary (summary.py)."""
    if plan is not None:
        return summary.build_sql(q, plan)
    p: dict[str, Any] = {}
    where = filters.conditions(q, filters.CONDITIONS, p)

    # Only URLs of the test lists are counted when the category is involved.
    # The join is on DISTINCT (url, category_code) pairs: a URL listed for
    # several countries under one category counts once, not once per list.
    join = ""
    if q.category_code is not None or "category_code" in q.axes:
        cl_where = []
        if q.category_code is not None:
            cl_where.append("category_code = {category_code:String}")
            p["category_code"] = q.category_code
            if q.probe_cc:
                cl_where.append("(cc IN {lccs:Array(String)} OR cc = 'ZZ')")
                p["lccs"] = [c.lower() for c in q.probe_cc]
            else:
                cl_where.append("cc = 'ZZ'")
        cl_filter = f"WHERE {' AND '.join(cl_where)}" if cl_where else ""
        join = ("INNER JOIN (SELECT DISTINCT url, category_code FROM citizenlab "
                f"{cl_filter}) AS cl ON cl.url = fastpath.input")

    select, group = [], []
    for i, axis in enumerate(q.axes):
        expr = TIME_GRAIN_SQL[q.time_grain] if axis == "measurement_start_day" else DIMENSIONS[axis]
        alias = f"d{i}"
        select.append(f"{expr} AS {alias}")
        group.append(alias)

    # FINAL: a re-scored measurement is one row, not two, until merges.
    sql = f"SELECT {', '.join(select + [summary.COUNTERS_SQL])}\nFROM fastpath FINAL {join}"
    if where:
        sql += "\nWHERE " + " AND ".join(where)
    if group:
        sql += f"\nGROUP BY {', '.join(group)}\nORDER BY {', '.join(group)}"
    return sql, p


def build_named_sql(q: AggregationQuery,
                    plan: summary.Plan | None = None) -> tuple[str, dict[str, Any]]:
    """``build_sql`` with the answer's keys as column names (the axes, then
    the counters), for the engine to write the JSON objects itself."""
    sql, p = build_sql(q, plan)
    cols = [f"d{i} AS {axis}" for i, axis in enumerate(q.axes)] + list(summary.COUNTERS)
    # The outer ORDER BY restates the inner one: a subquery's order is not
    # guaranteed to survive the outer SELECT.
    return (f"SELECT {', '.join(cols)}\nFROM ({sql})\nORDER BY {', '.join(q.axes)}", p)


def _summary_plan(q: AggregationQuery) -> summary.Plan | None:
    """The days the daily summary answers exactly, when it can answer the
    query at all; otherwise (or on any error) the raw table is read."""
    svc = services()
    if not svc.cfg.get_bool("AGGREGATION_SUMMARY", True) or not summary.applicable(q):
        return None
    try:
        plan = summary.plan(svc.db, q.since, q.until, {"max_execution_time": 10})
    except DatabaseError as e:
        log.warning("aggregation summary unavailable, reading fastpath: %s", e)
        return None
    if plan is not None:
        svc.metrics.incr("aggregation_summary_days", len(plan.clean))
    return plan


def _run_db(method: str, sql: str, p: dict[str, Any]):
    """Runs ``svc.db.<method>`` with the aggregation settings; engine errors
    become JSON answers. Returns (result, seconds)."""
    svc = services()
    settings = {
        "priority": svc.cfg.get_int("AGGREGATION_QUERY_PRIORITY", DEFAULT_PRIORITY),
        "max_execution_time": svc.cfg.get_int("AGGREGATION_MAX_EXECUTION_TIME",
                                              DEFAULT_MAX_EXECUTION_TIME),
    }
    t0 = time.perf_counter()
    try:
        res = getattr(svc.db, method)(sql, p, settings)
    except QueryTimeout:
        log.warning("aggregation query timed out: %s %s", sql, p)
        raise AggregationError("Database query timeout", 504) from None
    except DatabaseError as e:
        log.error("aggregation query failed: %s", e)
        raise AggregationError("Database query error") from None
    elapsed = time.perf_counter() - t0
    svc.metrics.timing("aggregation_query", elapsed * 1000)
    return res, elapsed


def _db_stats(st, elapsed: float) -> dict[str, Any]:
    return {
        "row_count": int(st.get("rows_read", 0)),
        "bytes": int(st.get("bytes_read", 0)),
        "total_row_count": int(st.get("total_rows", st.get("rows_read", 0))),
        "elapsed_seconds": round(float(st.get("elapsed", elapsed)), 6),
    }


def run_query(q: AggregationQuery) -> tuple[Any, dict[str, Any]]:
    """The result as Python values: a counters object without axes, else a
    list of them."""
    sql, p = build_sql(q, _summary_plan(q))
    res, elapsed = _run_db("select", sql, p)
    # SELECT order: the axes (d0, d1), then the counters.
    keys = q.axes + list(summary.COUNTERS)
    rows = [dict(zip(keys, r)) for r in res.rows]
    if q.axes:
        result: Any = rows
    else:
        result = rows[0] if rows else {c: 0 for c in summary.COUNTERS}
    return result, _db_stats(res.stats, elapsed)


def run_query_json(q: AggregationQuery) -> tuple[bytes, dict[str, Any]]:
    """A grouped result (``q.axes`` not empty) as the JSON array ``run_query``
    would give, written by the engine: a year by day for 200 countries is
    61k objects, and building then encoding them in Python costs about as
    much as the query."""
    sql, p = build_named_sql(q, _summary_plan(q))
    res, elapsed = _run_db("select_json_rows", sql, p)
    return res.array(), _db_stats(res.stats, elapsed)


def to_csv(result: Any, axes: list[str]) -> str:
    """Header of the sorted keys, then one line per result; an empty
    grouped result is a header-only file."""
    rows = result if isinstance(result, list) else [result]
    keys = sorted(summary.COUNTERS + tuple(axes))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(keys)
    for r in rows:
        w.writerow([r[k] for k in keys])
    return buf.getvalue()


@bp.route("/api/v1/aggregation")
def aggregation() -> Response:
    """Aggregate counters of measurements, optionally by one or two dimensions.
    ---
    summary: Aggregated measurement counters (MAT, Explorer, researchers)
    description: >
      Counts measurements of the fastpath table matching the filters, grouped
      by `axis_x` and `axis_y` when given. `since` is inclusive and `until`
      exclusive. With `measurement_start_day` as an axis both `since` and
      `until` are required and `time_grain` must suit the range: up to 7 days
      hour/day; up to 30 days day/week; up to 365 days day/week/month; longer
      day/week/month/year (`auto` picks hour for up to 7 days, else day).
    produces: [application/json, text/csv]
    parameters:
      - {name: axis_x, in: query, type: string, enum: [blocking_type, category_code, domain, input, measurement_start_day, probe_asn, probe_cc, test_name], description: first grouping dimension}
      - {name: axis_y, in: query, type: string, enum: [blocking_type, category_code, domain, input, measurement_start_day, probe_asn, probe_cc, test_name], description: "second grouping dimension, different from axis_x"}
      - {name: probe_cc, in: query, type: string, description: "comma separated two-letter country codes, e.g. IT,DE"}
      - {name: probe_asn, in: query, type: string, description: "comma separated ASNs, AS-prefixed or bare, e.g. AS3269,30722"}
      - {name: test_name, in: query, type: string, description: "comma separated test names, e.g. web_connectivity"}
      - {name: domain, in: query, type: string, description: comma separated domain names or IP addresses}
      - {name: input, in: query, type: string, description: exact input (URL) of the measurements}
      - {name: category_code, in: query, type: string, description: "CitizenLab category code, e.g. NEWS; counts only URLs of the test lists"}
      - {name: ooni_run_link_id, in: query, type: string, description: comma separated OONI Run link ids}
      - {name: since, in: query, type: string, format: date-time, description: "start of the range, inclusive (e.g. 2021-07-01 or 2021-07-01T12:00:00Z)"}
      - {name: until, in: query, type: string, format: date-time, description: "end of the range, exclusive"}
      - {name: time_grain, in: query, type: string, enum: [hour, day, week, month, year, auto], default: auto, description: granularity of measurement_start_day}
      - {name: format, in: query, type: string, enum: [JSON, CSV], default: JSON}
      - {name: download, in: query, type: boolean, default: false, description: answer as a file attachment}
    definitions:
      AggregationCounters:
        type: object
        properties:
          anomaly_count: {type: integer, description: "anomaly, not confirmed, not failed"}
          confirmed_count: {type: integer, description: "confirmed, not failed"}
          failure_count: {type: integer}
          ok_count: {type: integer, description: "neither anomaly, confirmed nor failed"}
          measurement_count: {type: integer}
          blocking_type: {type: string}
          category_code: {type: string}
          domain: {type: string}
          input: {type: string}
          measurement_start_day: {type: string, description: "YYYY-MM-DD, or a datetime for the hour grain"}
          probe_asn: {type: integer}
          probe_cc: {type: string}
          test_name: {type: string}
    responses:
      200: {description: "JSON: `result` is an object of counters with no axis, else a list of objects (counters plus one key per axis) ascending by axis_x, axis_y. CSV: header row of the sorted keys, one line per result.", schema: {$ref: '#/definitions/Aggregation'}}
      400: {description: "invalid parameter or database error", schema: {$ref: '#/definitions/AggregationError'}}
      504: {description: "the database query timed out", schema: {$ref: '#/definitions/AggregationError'}}
    """
    q = parse_query(request.args)
    if q.format == "CSV":
        result, _ = run_query(q)
        resp = Response(to_csv(result, q.axes), mimetype="text/csv")
        if q.download:
            resp.headers["Content-Disposition"] = "attachment; filename=ooni-aggregate-data.csv"
        return resp
    if q.axes:
        rows_json, db_stats = run_query_json(q)
        head = ujson.dumps({"v": 0, "dimension_count": len(q.axes)})
        # Same keys in the same order as the encoded dict below.
        body = b"".join((head[:-1].encode(), b',"result":', rows_json, b',"db_stats":',
                         ujson.dumps(db_stats).encode(), b"}\n"))
    else:
        result, db_stats = run_query(q)
        doc = {"v": 0, "dimension_count": 0, "result": result, "db_stats": db_stats}
        body = ujson.dumps(doc, ensure_ascii=False, escape_forward_slashes=False) + "\n"
    resp = Response(body, mimetype="application/json")
    if q.download:
        resp.headers["Content-Disposition"] = "attachment; filename=ooni-aggregate-data.json"
    return resp
