"""Landing page, health check, robots.txt, metrics and legacy redirects
(api.md §3)."""
from __future__ import annotations

import datetime as dt
import re

from flask import Response, redirect, request

from ooni_common.db import DatabaseError
from ooni_common.server_version import check_server, one_line

from ooniapi.core.context import services
from ooniapi.core.errors import ApiError, BadRequest, NotFound
from ooniapi.core.http import json_response, set_cached
from ooniapi.core.openapi import ApiBlueprint

bp = ApiBlueprint("pages", __name__, tag="pages")

EXPLORER = "https://explorer.ooni.org"
DAY_RE = re.compile(r"^\d{4}-[0-1]\d-[0-3]\d$")

LANDING_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Welcome to the OONI API</title></head>
<body>
<h1>Welcome to the OONI API</h1>
<p>The Open Observatory of Network Interference collects network measurements
from probes around the world and publishes them openly.</p>
<p>Read the <a href="/apidocs/">API documentation</a>, or browse the data with
<a href="https://explorer.ooni.org">OONI Explorer</a>.</p>
</body>
</html>
"""

# Bots once loaded the API heavily; these paths are expensive or obsolete.
ROBOTS_TXT = "\n".join([
    "User-agent: *",
    *(f"Disallow: {p}" for p in (
        "/api/_", "/api/v1/aggregation", "/api/v1/measurement_meta",
        "/api/v1/raw_measurement", "/api/v1/test-list/urls", "/api/v1/torsf_stats",
        "/files", "/stats", "/201", "/202")),
    "Crawl-delay: 300",
]) + "\n"


def _parse_day(day: str) -> dt.date | None:
    if not DAY_RE.match(day):
        return None
    try:
        return dt.date.fromisoformat(day)
    except ValueError:
        return None


def _explorer_day_search(date: str, invalid: ApiError) -> Response:
    """The redirect to the OONI Explorer search of one day; ``invalid`` is
    raised when ``date`` is not a day (YYYY-MM-DD)."""
    day = _parse_day(date)
    if day is None:
        raise invalid
    return redirect(f"{EXPLORER}/search?until={day + dt.timedelta(days=1)}&since={day}", 301)


@bp.route("/")
def index() -> Response:
    """Landing page (HTML).
    ---
    produces: [text/html]
    responses:
      200: {description: "an HTML page linking to the API documentation"}
    """
    return Response(LANDING_PAGE, mimetype="text/html")


@bp.route("/health")
def health() -> Response:
    """Health check: ``UP`` when the database answers and is recent enough
    (and, in the standalone process, the fastpath is not stuck).
    ---
    produces: [text/plain]
    responses:
      200: {description: "the service and its database are up"}
      503: {description: "DOWN and the reason: the database does not answer, its version is older than the minimum, or fastpath scoring is stuck"}
    """
    try:
        check_server(services().db)
    except DatabaseError as e:
        return Response(f"DOWN: {one_line(e)}\n", status=503, mimetype="text/plain",
                        headers={"Cache-Control": "no-cache, max-age=0"})
    # Set by the process that runs the fastpath in-process (standalone).
    fastpath_problem = services().extras.get("fastpath_health")
    problem = fastpath_problem() if fastpath_problem is not None else None
    if problem:
        return Response(f"DOWN: {problem}\n", status=503, mimetype="text/plain",
                        headers={"Cache-Control": "no-cache, max-age=0"})
    return Response("UP", mimetype="text/plain")


@bp.route("/robots.txt")
def robots_txt() -> Response:
    """robots.txt keeping crawlers off expensive routes.
    ---
    produces: [text/plain]
    responses:
      200: {description: "the robots.txt text"}
    """
    return set_cached(Response(ROBOTS_TXT, mimetype="text/plain"), 86400)


@bp.route("/metrics")
def metrics() -> Response:
    """Metrics in the Prometheus text format: under ``ooni-api`` summed over
    every gunicorn worker; under ``ooni-backend run`` the API's, the
    fastpath's and the jobs'.
    ---
    produces: [text/plain]
    responses:
      200: {description: "counters, gauges and timer summaries (ms)"}
    """
    return Response(services().metrics.prometheus_text(),
                    mimetype="text/plain", headers={"Cache-Control": "no-cache, max-age=0"})


@bp.route("/stats")
def stats() -> Response:
    """Legacy page, now on OONI Explorer.
    ---
    responses:
      301: {description: "redirect to OONI Explorer"}
    """
    return redirect(EXPLORER, 301)


@bp.route("/files")
@bp.route("/files/by_date")
@bp.route("/files/by_country")
def files() -> Response:
    """Legacy file listings, now the OONI Explorer search.
    ---
    responses:
      301: {description: "redirect to the OONI Explorer search"}
    """
    return redirect(f"{EXPLORER}/search", 301)


@bp.route("/files/by_date/<date>")
def files_by_date(date: str) -> Response:
    """Legacy listing of one day, now an OONI Explorer search of that day.
    ---
    parameters:
      - $ref: '#/parameters/DayPath'
    responses:
      301: {description: "redirect to the OONI Explorer search of that day"}
      400: {description: "not a valid date"}
    """
    return _explorer_day_search(date, BadRequest("Invalid date format"))


@bp.route("/files/by_country/<country_code>")
def files_by_country(country_code: str) -> Response:
    """Legacy listing of one country, now an OONI Explorer search.
    ---
    parameters:
      - {in: path, name: country_code, type: string, required: true}
    responses:
      301: {description: "redirect to the OONI Explorer search of that country"}
      400: {description: "the country code is not two characters"}
    """
    if len(country_code) != 2:
        raise BadRequest("Country code must be two characters")
    return redirect(f"{EXPLORER}/search?probe_cc={country_code.upper()}", 301)


@bp.route("/<date>")
def legacy_day(date: str) -> Response:
    """Legacy day page, now an OONI Explorer search of that day.
    ---
    parameters:
      - $ref: '#/parameters/DayPath'
    responses:
      301: {description: "redirect to the OONI Explorer search of that day"}
      404: {description: "not a day"}
    """
    return _explorer_day_search(date, NotFound("Not Found"))


@bp.route("/<date>/<report_file>")
def legacy_report_file(date: str, report_file: str) -> Response:
    """Legacy report download link.
    ---
    parameters:
      - $ref: '#/parameters/DayPath'
      - {in: path, name: report_file, type: string, required: true}
    responses:
      302: {description: "redirect to the legacy download path"}
      404: {description: "not a day or not a .json file"}
    """
    if _parse_day(date) is None or not report_file.endswith(".json"):
        raise NotFound("Not Found")
    return redirect(f"{request.host_url}files/download/{report_file}", 302)


@bp.route("/api/")
def api_root() -> Response:
    """The API root points at its documentation.
    ---
    responses:
      302: {description: "redirect to /apidocs"}
    """
    return redirect(f"{request.host_url}apidocs", 302)


@bp.route("/invalidpath")
def invalid_path() -> Response:
    """Always 404 with a numeric error: probes use it to test error handling.
    ---
    responses:
      404: {description: '{"error": 404}'}
    """
    return json_response({"error": 404}, 404)
