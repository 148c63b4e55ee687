"""Private Explorer routes under ``/api/_`` (api.md §6): country, network,
website, IM and circumvention statistics, and domain/ASN metadata. The
queries live in ``ooniapi.explorer.stats``; this module parses parameters
and shapes the answers Explorer depends on."""
from __future__ import annotations

import datetime as dt
import logging
import math
from urllib.parse import urlencode, urljoin

from flask import Response, request

from ooni_common.db import DatabaseError, QueryTimeout

from ooniapi.core.context import services
from ooniapi.core.errors import ApiError, BadRequest, DatabaseTimeout
from ooniapi.core.fixed_data import COUNTRY_NAMES, TEST_NAMES, test_names_of_groups
from ooniapi.core.http import base_url, json_response
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.core.params import parse_input, parse_int, parse_probe_asn, parse_probe_cc
from ooniapi.explorer import stats

log = logging.getLogger("ooni-api")

bp = ApiBlueprint("private", __name__, tag="private")

PREFIX = "/api/_"
# Longest value of the free-text parameters (domain, input) worth a query.
MAX_TEXT = 2048
WEBSITE_URLS_MAX_LIMIT = 10_000


def _stats() -> stats.ExplorerStats:
    svc = services()
    # api.md §17: interactive queries run at priority 3 with a 28 s cap.
    return stats.ExplorerStats(svc.db, {
        "max_execution_time": svc.cfg.get_int("QUERY_MAX_EXECUTION_TIME", 28),
        "priority": 3,
    })


def _probe_cc() -> str:
    try:
        cc = parse_probe_cc(request.args.get("probe_cc"))
    except BadRequest:
        cc = None
    if cc is None:
        raise BadRequest("missing or incorrect probe_cc")
    return cc


def _probe_asn() -> int:
    try:
        asn = parse_probe_asn(request.args.get("probe_asn"))
    except BadRequest:
        asn = None
    if asn is None:
        raise BadRequest("missing or incorrect probe_asn")
    return asn


def _iso_midnight(d: dt.date) -> str:
    """The date format these routes have always sent (api.md §1.2)."""
    return f"{d.isoformat()}T00:00:00+00:00"


def _monthly(rows, field: str) -> list[dict]:
    """``[{"date": <month>, "value": <row.field>}]``, the shape of the by-month routes."""
    return [{"date": _iso_midnight(r.month), "value": getattr(r, field)} for r in rows]


def _db_error_v0(e: DatabaseError, status: int = 500) -> ApiError:
    """The ``{"v": 0, "error"}`` answer of the routes whose errors carry ``v``
    (api.md §1.3), without the engine's text, which goes to the log."""
    log.warning("database error on %s: %s", request.path, e)
    if isinstance(e, QueryTimeout):
        return DatabaseTimeout("Database query timeout", v=0)
    return ApiError("Database query error", status, v=0)


@bp.route(f"{PREFIX}/asn_by_month")
def asn_by_month() -> Response:
    """Distinct networks (ASNs) with measurements, per month.
    ---
    summary: Network count per month over the last 24 months
    responses:
      200: {description: "Months with data, ascending, from 24 months ago to the current month.", schema: {$ref: '#/definitions/AsnByMonth'}}
    """
    return json_response(_monthly(_stats().distinct_by_month("probe_asn"), "value"),
                         max_age=86400)


@bp.route(f"{PREFIX}/countries_by_month")
def countries_by_month() -> Response:
    """Distinct countries with measurements, per month.
    ---
    summary: Country count per month over the last 24 months
    responses:
      200: {description: "Months with data, ascending, from 24 months ago to the current month.", schema: {$ref: '#/definitions/CountriesByMonth'}}
    """
    return json_response(_monthly(_stats().distinct_by_month("probe_cc"), "value"),
                         max_age=86400)


@bp.route(f"{PREFIX}/test_names")
def test_names() -> Response:
    """Test names and their display names.
    ---
    summary: Test ids and display names for Explorer
    responses:
      200: {description: "The 24 tests of api.md §20.1, in a fixed order.", schema: {$ref: '#/definitions/TestNames'}}
    """
    return json_response({"test_names": [{"id": i, "name": n} for i, n in TEST_NAMES]},
                         max_age=3600)


@bp.route(f"{PREFIX}/countries")
def countries() -> Response:
    """Measurement count per country.
    ---
    summary: Countries with measurements, with their names and counts
    responses:
      200: {description: "Measurement count per country over all time, ordered by country code. Codes without a country name (ZZ) are left out.", schema: {$ref: '#/definitions/Countries'}}
    """
    out = [{"alpha_2": cc, "name": COUNTRY_NAMES[cc], "count": n}
           for cc, n in _stats().count_by_country() if cc in COUNTRY_NAMES]
    return json_response({"countries": out}, max_age=86400)


@bp.route(f"{PREFIX}/test_coverage")
def test_coverage() -> Response:
    """Measurements per test group and networks per day in a country.
    ---
    summary: Test and network coverage of a country over the last 30 days
    parameters:
      - $ref: '#/parameters/ProbeCC'
      - {name: test_groups, in: query, type: string, description: "comma separated test group names, e.g. websites,im"}
    responses:
      200: {description: "test_coverage: one entry per (test group, day) for the days [today-32, today-2), zero-filled; network_coverage: distinct ASNs per day for [today-31, today-1), restricted to the given test groups.", schema: {$ref: '#/definitions/TestCoverage'}}
      400: {$ref: '#/responses/BadProbeCC'}
    """
    cc = _probe_cc()
    raw_groups = request.args.get("test_groups")
    groups = [g.strip() for g in raw_groups.split(",") if g.strip()] if raw_groups else None
    st = _stats()
    today = st.today()
    t = dt.timedelta
    tc_window = stats.days(today - t(days=32), today - t(days=2))
    tc = stats.pivot_test_coverage(st.test_group_counts(cc, tc_window[0], today - t(days=2)),
                             st.test_group_names(), tc_window)
    nc_window = stats.days(today - t(days=31), today - t(days=1))
    tests = None if groups is None else test_names_of_groups(groups)
    nc = stats.fill_days(st.networks_per_day(cc, nc_window[0], today - t(days=1), tests), nc_window)
    return json_response({
        "network_coverage": [{"count": r.count, "test_day": r.test_day} for r in nc],
        "test_coverage": [{"count": r.count, "test_day": r.test_day, "test_group": r.test_group}
                          for r in tc],
    }, max_age=3600)


def _last_31_days(st: stats.ExplorerStats) -> tuple[dt.date, dt.date]:
    today = st.today()
    return today - dt.timedelta(days=31), today


@bp.route(f"{PREFIX}/website_networks")
def website_networks() -> Response:
    """Measurement count per network in a country.
    ---
    summary: Networks of a country by measurement count, last 31 days
    parameters:
      - $ref: '#/parameters/ProbeCC'
    responses:
      200: {description: "All tests from today-31 to yesterday, per ASN, by count descending.", schema: {$ref: '#/definitions/WebsiteNetworks'}}
      400: {$ref: '#/responses/BadProbeCC'}
    """
    cc = _probe_cc()
    st = _stats()
    rows = st.count_by_asn(cc, *_last_31_days(st))
    return json_response({"results": [{"count": n, "probe_asn": asn} for asn, n in rows]},
                         max_age=0)


@bp.route(f"{PREFIX}/website_stats")
def website_stats() -> Response:
    """Daily counters of one URL on one network.
    ---
    summary: Daily anomaly/confirmed/failure counts of a URL in a network, last 31 days
    parameters:
      - $ref: '#/parameters/ProbeCC'
      - {name: probe_asn, in: query, type: string, required: true, description: "ASN, e.g. 3269 or AS3269"}
      - {name: input, in: query, type: string, required: true, description: the tested URL}
    responses:
      200: {description: "One entry per day with measurements, ascending.", schema: {$ref: '#/definitions/WebsiteStats'}}
      400: {description: "missing or incorrect probe_cc, probe_asn or input", schema: {$ref: '#/definitions/Error'}}
    """
    cc = _probe_cc()
    asn = _probe_asn()
    inp = parse_input(request.args.get("input"))
    if inp is None or len(inp) > MAX_TEXT:
        raise BadRequest("missing or incorrect input")
    st = _stats()
    rows = st.input_counters_by_day(cc, asn, inp, *_last_31_days(st))
    return json_response({"results": [{
        "test_day": r.test_day, "anomaly_count": r.anomaly_count,
        "confirmed_count": r.confirmed_count, "failure_count": r.failure_count,
        "total_count": r.total_count} for r in rows]}, max_age=0)


@bp.route(f"{PREFIX}/website_urls")
def website_urls() -> Response:
    """Web Connectivity counters per URL on one network.
    ---
    summary: URLs tested in a network over the last 31 days, paged
    parameters:
      - $ref: '#/parameters/ProbeCC'
      - {name: probe_asn, in: query, type: string, required: true, description: "ASN, e.g. 209 or AS209"}
      - {name: limit, in: query, type: integer, default: 10, description: "page size; 0 or less means 10"}
      - {name: offset, in: query, type: integer, default: 0}
    responses:
      200: {description: "Ordered by confirmed, total and anomaly counts (descending), then URL. metadata.total_count is the number of distinct URLs; next_url is set when the page is full.", schema: {$ref: '#/definitions/WebsiteUrls'}}
      400: {description: "bad probe_cc, probe_asn, limit or offset", schema: {$ref: '#/definitions/Error'}}
    """
    limit = parse_int("limit", request.args.get("limit"), 10, maximum=WEBSITE_URLS_MAX_LIMIT)
    if limit <= 0:
        limit = 10
    offset = parse_int("offset", request.args.get("offset"), 0, minimum=0)
    cc = _probe_cc()
    asn = _probe_asn()
    st = _stats()
    first, end = _last_31_days(st)
    total = st.distinct_inputs(cc, asn, first, end)
    rows = st.input_counters(cc, asn, first, end, limit, offset)
    next_url = None
    if len(rows) >= limit:
        base = base_url()
        qs = urlencode({"limit": limit, "offset": offset + limit, "probe_asn": asn, "probe_cc": cc})
        next_url = urljoin(base, f"{PREFIX}/website_urls?{qs}")
    metadata = {"offset": offset, "limit": limit, "current_page": math.ceil(offset / limit) + 1,
                "total_count": total, "next_url": next_url}
    return json_response({"metadata": metadata, "results": [{
        "input": r.input, "anomaly_count": r.anomaly_count, "confirmed_count": r.confirmed_count,
        "failure_count": r.failure_count, "total_count": r.total_count} for r in rows]},
        max_age=3600)


NETWORK_STATS_DAYS = 30
NETWORK_STATS_MAX_LIMIT = 1000


@bp.route(f"{PREFIX}/network_stats")
def network_stats() -> Response:
    """Measurement and anomaly counts per network in a country.
    ---
    summary: Networks of a country over the last 30 days, most measured first, paged
    parameters:
      - $ref: '#/parameters/ProbeCC'
      - {name: limit, in: query, type: integer, default: 10, description: "page size, at most 1000; 0 or less means 10"}
      - {name: offset, in: query, type: integer, default: 0}
    responses:
      200:
        description: >
          All tests, measurement_start_time from today-30 (00:00 UTC) to now.
          Ordered by measurement_count descending, then ASN. anomaly_share is
          anomaly_count / measurement_count; org_name is "" when unknown.
          metadata.total_count is the number of networks; next_url is set
          when more networks follow this page.
        schema:
          type: object
          properties:
            metadata:
              type: object
              properties:
                offset: {type: integer}
                limit: {type: integer}
                current_page: {type: integer}
                total_count: {type: integer}
                next_url: {type: string, x-nullable: true}
            results:
              type: array
              items:
                type: object
                properties:
                  probe_asn: {type: integer, example: 30722}
                  org_name: {type: string}
                  measurement_count: {type: integer}
                  anomaly_count: {type: integer}
                  confirmed_count: {type: integer}
                  failure_count: {type: integer}
                  anomaly_share: {type: number, example: 0.25}
                  last_measurement: {type: string, example: "2021-07-09T00:55:13Z"}
      400:
        description: missing or incorrect probe_cc, bad limit or offset
        schema:
          $ref: '#/definitions/Error'
    """
    limit = parse_int("limit", request.args.get("limit"), 10, maximum=NETWORK_STATS_MAX_LIMIT)
    if limit <= 0:
        limit = 10
    offset = parse_int("offset", request.args.get("offset"), 0, minimum=0)
    cc = _probe_cc()
    st = _stats()
    today = st.today()
    first, end = today - dt.timedelta(days=NETWORK_STATS_DAYS), today + dt.timedelta(days=1)
    total = st.network_count(cc, first, end)
    rows = st.network_stats(cc, first, end, limit, offset) if offset < total else []
    next_url = None
    if offset + len(rows) < total:
        base = base_url()
        qs = urlencode({"limit": limit, "offset": offset + limit, "probe_cc": cc})
        next_url = urljoin(base, f"{PREFIX}/network_stats?{qs}")
    metadata = {"offset": offset, "limit": limit, "current_page": math.ceil(offset / limit) + 1,
                "total_count": total, "next_url": next_url}
    return json_response({"metadata": metadata, "results": [{
        "probe_asn": r.probe_asn, "org_name": r.org_name,
        "measurement_count": r.measurement_count, "anomaly_count": r.anomaly_count,
        "confirmed_count": r.confirmed_count, "failure_count": r.failure_count,
        "anomaly_share": round(r.anomaly_count / r.measurement_count, 4),
        "last_measurement": r.last_measurement.strftime("%Y-%m-%dT%H:%M:%SZ")}
        for r in rows]}, max_age=3600)


@bp.route(f"{PREFIX}/vanilla_tor_stats")
def vanilla_tor_stats() -> Response:
    """Vanilla Tor reachability per network in a country.
    ---
    summary: vanilla_tor results per network over the last 6 months
    parameters:
      - $ref: '#/parameters/ProbeCC'
    responses:
      200: {description: 'success_count = total_count minus anomalies; a network is "not ok" with more than 5 measurements and under 60% successes.', schema: {$ref: '#/definitions/VanillaTorStats'}}
      400: {$ref: '#/responses/BadProbeCC'}
    """
    cc = _probe_cc()
    st = _stats()
    nets = st.vanilla_tor_networks(cc, st.today())
    return json_response({
        "networks": [{
            "probe_asn": n.probe_asn, "total_count": n.total_count,
            "success_count": n.success_count, "failure_count": n.failure_count,
            "last_tested": n.last_tested, "test_runtime_avg": None,
            "test_runtime_max": None, "test_runtime_min": None} for n in nets],
        "notok_networks": stats.notok_networks(nets),
        "last_tested": max((n.last_tested for n in nets), default=None),
    }, max_age=0)


@bp.route(f"{PREFIX}/im_networks")
def im_networks() -> Response:
    """Networks where instant messaging tests ran in a country.
    ---
    summary: IM test networks per app over the last 31 days
    parameters:
      - $ref: '#/parameters/ProbeCC'
    responses:
      200: {description: "One key per IM test (facebook_messenger, signal, telegram, whatsapp) with data; ok_networks by measurement count descending; anomaly_networks is always empty.", schema: {$ref: '#/definitions/ImNetworks'}}
      400: {$ref: '#/responses/BadProbeCC'}
    """
    cc = _probe_cc()
    st = _stats()
    out: dict[str, dict] = {}
    for r in st.im_networks(cc, *_last_31_days(st)):
        e = out.setdefault(r.test_name, {"anomaly_networks": [], "ok_networks": [],
                                         "last_tested": r.last_tested})
        e["ok_networks"].append({"asn": r.probe_asn, "name": "", "total_count": r.total_count,
                                 "last_tested": r.last_tested})
        e["last_tested"] = max(e["last_tested"], r.last_tested)
    return json_response(out, max_age=3600)


@bp.route(f"{PREFIX}/im_stats")
def im_stats() -> Response:
    """Daily measurement count of an IM test on one network.
    ---
    summary: Daily counts of an IM test in a network, today-31 to today
    parameters:
      - {name: test_name, in: query, type: string, required: true, enum: [facebook_messenger, signal, telegram, whatsapp]}
      - $ref: '#/parameters/ProbeCC'
      - {name: probe_asn, in: query, type: string, required: true, description: "ASN, e.g. 3269 or AS3269"}
    responses:
      200: {description: "Exactly 32 entries, one per day, zero-filled; anomaly_count is always null.", schema: {$ref: '#/definitions/ImStats'}}
      400: {description: "invalid test_name, or missing or incorrect probe_cc / probe_asn", schema: {$ref: '#/definitions/Error'}}
    """
    test_name = request.args.get("test_name")
    if test_name not in stats.IM_TESTS:
        raise BadRequest("invalid test_name")
    cc = _probe_cc()
    asn = _probe_asn()
    st = _stats()
    today = st.today()
    # today-31 .. today inclusive: 32 days.
    end = today + dt.timedelta(days=1)
    window = stats.days(today - dt.timedelta(days=31), end)
    rows = stats.fill_days(st.test_counts_by_day(test_name, cc, asn, window[0], end), window)
    return json_response({"results": [{
        "test_day": _iso_midnight(r.test_day), "total_count": r.count, "anomaly_count": None}
        for r in rows]}, max_age=3600)


@bp.route(f"{PREFIX}/country_overview")
def country_overview() -> Response:
    """Overview of a country's measurements.
    ---
    summary: First measurement date, measurement and network counts of a country
    parameters:
      - $ref: '#/parameters/ProbeCC'
    responses:
      200: {description: "Over all time since 2012-12-01; first_bucket_date is the date of the oldest measurement, null when the country has none.", schema: {$ref: '#/definitions/CountryOverview'}}
      400: {$ref: '#/responses/BadProbeCC'}
    """
    cc = _probe_cc()
    o = _stats().country_overview(cc)
    return json_response({"first_bucket_date": o.first_bucket_date,
                          "measurement_count": o.measurement_count,
                          "network_count": o.network_count}, max_age=86400)


@bp.route(f"{PREFIX}/global_overview")
def global_overview() -> Response:
    """Global measurement, network and country counts.
    ---
    summary: Totals over the whole measurement table
    responses:
      200: {description: "Distinct networks and countries, and measurements, over all time.", schema: {$ref: '#/definitions/GlobalOverview'}}
    """
    o = _stats().global_overview()
    return json_response({"network_count": o.network_count, "country_count": o.country_count,
                          "measurement_count": o.measurement_count}, max_age=86400)


@bp.route(f"{PREFIX}/global_overview_by_month")
def global_overview_by_month() -> Response:
    """Global networks, countries and measurements per month.
    ---
    summary: Monthly global totals over the last 24 months
    responses:
      200: {description: "Three series of {date, value}, months with data, ascending.", schema: {$ref: '#/definitions/GlobalOverviewByMonth'}}
    """
    rows = _stats().monthly_totals()
    return json_response({
        "networks_by_month": _monthly(rows, "networks"),
        "countries_by_month": _monthly(rows, "countries"),
        "measurements_by_month": _monthly(rows, "measurements"),
    }, max_age=86400)


@bp.route(f"{PREFIX}/circumvention_stats_by_country")
def circumvention_stats_by_country() -> Response:
    """Circumvention test measurements per country.
    ---
    summary: torsf, tor, stunreachability, psiphon and riseupvpn measurements per country
    responses:
      200: {description: 'Last 6 months up to yesterday, ordered by country. A database error is answered 200 with {"v": 0, "error": ...} and max-age 0 (api.md §6).', schema: {$ref: '#/definitions/CircumventionStatsByCountry'}}
    """
    try:
        st = _stats()
        rows = st.circumvention_counts(st.today())
    except DatabaseError as e:
        log.warning("database error on %s: %s", request.path, e)
        return json_response({"v": 0, "error": "Database query error"}, max_age=0)
    return json_response({"v": 0, "results": [{"probe_cc": cc, "cnt": n} for cc, n in rows]},
                         max_age=86400)


@bp.route(f"{PREFIX}/circumvention_runtime_stats")
def circumvention_runtime_stats() -> Response:
    """Runtime percentiles of circumvention tests.
    ---
    summary: p50/p90 of test_runtime and count, per test, country and day
    responses:
      200: {description: "Last 6 months up to yesterday. The full product of the test names, countries and dates seen; v is [p50, p90, count], or [] for a cell without data.", schema: {$ref: '#/definitions/CircumventionRuntimeStats'}}
      400: {description: "database error", schema: {$ref: '#/definitions/AggregationError'}}
    """
    try:
        st = _stats()
        rows = st.circumvention_runtimes(st.today())
    except DatabaseError as e:
        raise _db_error_v0(e, 400) from None
    return json_response({"v": 0, "results": [
        {"test_name": t, "probe_cc": c, "date": d, "v": v} for t, c, d, v in stats.runtime_grid(rows)]},
        max_age=86400)


@bp.route(f"{PREFIX}/domain_metadata")
def domain_metadata() -> Response:
    """Category code and canonical form of a domain.
    ---
    summary: Primary category code and canonical domain from the test lists
    parameters:
      - {name: domain, in: query, type: string, required: true, x-example: www.facebook.com}
    responses:
      200: {description: 'The category and domain of the test-list entry with the shortest URL for the domain with or without "www.", global list first; MISC and the domain without "www." when no list has it.', schema: {$ref: '#/definitions/DomainMetadata'}}
      400: {description: "missing domain", schema: {$ref: '#/definitions/Error'}}
    """
    domain = (request.args.get("domain") or "").strip()
    if not domain:
        raise BadRequest("missing domain")
    if len(domain) > MAX_TEXT:
        raise BadRequest("invalid domain")
    m = _stats().domain_metadata(domain)
    return json_response({"category_code": m.category_code,
                          "canonical_domain": m.canonical_domain}, max_age=7200)


@bp.route(f"{PREFIX}/asnmeta")
def asnmeta() -> Response:
    """Organisation name of an ASN.
    ---
    summary: Newest organisation name of an autonomous system
    parameters:
      - {name: asn, in: query, type: string, required: true, description: "ASN, e.g. 3269 or AS3269"}
    responses:
      200: {description: 'The newest known name, or "Unknown".', schema: {$ref: '#/definitions/Asnmeta'}}
      400: {description: "missing or non-integer asn", schema: {$ref: '#/definitions/Error'}}
    """
    raw = request.args.get("asn")
    if not raw:
        raise BadRequest("missing asn")
    try:
        asn = parse_probe_asn(raw)
    except BadRequest:
        raise BadRequest("invalid asn: it must be an integer") from None
    name = _stats().org_name(asn)
    return json_response({"org_name": "Unknown" if name is None else name}, max_age=7200)


@bp.route(f"{PREFIX}/networks")
def networks() -> Response:
    """Every network with measurements.
    ---
    summary: Measurement count and organisation name per ASN, over all time
    responses:
      200: {description: 'Ordered by ASN; org_name is "" when unknown.', schema: {$ref: '#/definitions/Networks'}}
      500: {$ref: '#/responses/DatabaseError'}
    """
    try:
        rows = _stats().networks()
    except DatabaseError as e:
        raise _db_error_v0(e) from None
    return json_response({"v": 0, "results": [
        {"probe_asn": r.probe_asn, "cnt": r.cnt, "org_name": r.org_name} for r in rows]},
        max_age=7200)


@bp.route(f"{PREFIX}/domains")
def domains() -> Response:
    """Every test-list domain with its Web Connectivity measurement count.
    ---
    summary: Test-list domains, category codes and measurement counts
    responses:
      200: {description: "Domains of the test lists that have a category (the global list's category preferred), with their web_connectivity measurement count over all time (0 when none), ordered by domain.", schema: {$ref: '#/definitions/Domains'}}
      500: {$ref: '#/responses/DatabaseError'}
    """
    try:
        rows = _stats().domains()
    except DatabaseError as e:
        raise _db_error_v0(e) from None
    return json_response({"v": 0, "results": [
        {"domain_name": r.domain_name, "category_code": r.category_code,
         "measurement_count": r.measurement_count} for r in rows]}, max_age=7200)
