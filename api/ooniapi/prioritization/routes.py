"""Test-list routes (api.md §8.2-8.4) and URL priority rule management
(§10.5-10.6). The algorithm is in ooniapi.prioritization.rules."""
from __future__ import annotations

import csv
import io
import logging
import re
from typing import Any

from flask import Flask, Response, request

from ooni_common.db import DatabaseError

from ooniapi.core.auth import require_role
from ooniapi.core.context import services
from ooniapi.core.errors import BadRequest, OoniError, StorageUnavailable
from ooniapi.core.http import json_response
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.core.params import asn_value
from ooniapi.core.validation import category_codes, check_cc, json_body
from ooniapi.prioritization import rules as prio
from ooniapi.prioritization.cache import Prioritizer
from ooniapi.prioritization.checkin import prioritizer

log = logging.getLogger("ooni-api.prioritization")

bp = ApiBlueprint("prioritization", __name__, tag="prioritization")


DEFAULT_LIMIT = 9999
_RULE_KEYS = {"category_code", "cc", "domain", "url", "priority"}
_RULE_CAT_RE = re.compile(r"^(\*|[A-Z]{1,16})$")


def init_app(app: Flask) -> None:
    svc = app.extensions["ooni"]
    svc.extras["prioritizer"] = Prioritizer.from_config(svc.cfg)


def _limit(value: str | None) -> int:
    if value is None or value.strip() in ("", "-1"):
        return DEFAULT_LIMIT
    try:
        n = int(value)
    except ValueError:
        raise BadRequest("Invalid limit: expected an integer") from None
    if n <= 0:
        raise BadRequest("Invalid limit: must be positive or -1")
    return n


def _cc_param(*names: str) -> str:
    for n in names:
        v = request.args.get(n, "").strip()
        if v:
            return check_cc(v, n)
    return "ZZ"


def _asn_param(value: str | None) -> int:
    if value is None or not value.strip():
        return 0
    asn = asn_value(value)
    if asn is None:
        raise BadRequest("Invalid probe_asn")
    return asn


@bp.route("/api/v1/test-list/urls")
def test_list_urls() -> Response:
    """Prioritized URLs for web_connectivity in a country.
    ---
    parameters:
      - {in: query, name: country_code, type: string, description: two-letter country code (default ZZ)}
      - {in: query, name: probe_cc, type: string, description: alias of country_code}
      - {in: query, name: category_codes, type: string, description: comma-separated category codes}
      - {in: query, name: limit, type: integer, description: "maximum URLs (-1 or absent: 9999)"}
      - {in: query, name: debug, type: boolean}
    responses:
      200: {description: '{"metadata": {...}, "results": [{"category_code", "country_code", "url"}]}'}
      400: {description: "invalid parameter"}
    """
    cc = _cc_param("country_code", "probe_cc")
    codes = category_codes(request.args.get("category_codes"))
    limit = _limit(request.args.get("limit"))
    debug = request.args.get("debug", "").lower() in ("true", "1", "yes")
    p = prioritizer()
    try:
        results = p.test_list(services().db, cc, 0, codes, limit, debug)
    except DatabaseError as e:
        log.error("test list from the database failed, serving the global list: %s", e)
        services().metrics.incr("test_list_urls_failover")
        if not p.global_list:
            raise StorageUnavailable("Test list unavailable, please retry later") from None
        results = p.failover(codes, limit)
    meta = {"count": len(results), "current_page": -1, "limit": -1, "next_url": "", "pages": 1}
    return json_response({"metadata": meta, "results": results}, max_age=1)


@bp.route("/api/_/debug_prioritization")
def debug_prioritization() -> Response:
    """Prioritization internals for one country and network.
    ---
    parameters:
      - {in: query, name: probe_cc, type: string}
      - {in: query, name: probe_asn, type: string}
      - {in: query, name: category_codes, type: string}
      - {in: query, name: limit, type: integer}
    responses:
      200: {description: '{"test_items": [...], "entries": [...], "prio_rules": [...]}'}
      400: {description: "invalid parameter"}
    """
    cc = _cc_param("probe_cc")
    asn = _asn_param(request.args.get("probe_asn"))
    codes = category_codes(request.args.get("category_codes"))
    limit = _limit(request.args.get("limit"))
    db = services().db
    rules = prio.fetch_rules(db, cc)
    candidates = prio.fetch_candidates(db, cc)
    counts = prio.fetch_counts(db, cc, asn)
    scored = prio.score_candidates(candidates, rules)
    items = prio.prioritize(scored, counts, codes, limit, debug=True)
    entries = [{"category_code": c.category_code, "domain": c.domain, "url": c.url,
                "cc": c.cc, "msmt_cnt": counts.get(c.url, 0)} for c in candidates]
    used = [r.as_dict() for r in rules if any(prio.rule_matches(r, c) for c in candidates)]
    return json_response({"test_items": items, "entries": entries, "prio_rules": used},
                         max_age=0)


@bp.route("/api/_/show_countries_prioritization")
def show_countries_prioritization() -> Response:
    """Every citizenlab URL with its priority and last week's measurements.
    ---
    parameters:
      - {in: query, name: format, type: string, enum: [JSON, CSV]}
    responses:
      200: {description: "list of {domain, url, cc, category_code, msmt_cnt, anomaly_perc, priority}"}
      400: {description: "invalid format"}
    """
    fmt = request.args.get("format", "JSON").upper() or "JSON"
    if fmt not in ("JSON", "CSV"):
        raise BadRequest("Invalid format: expected JSON or CSV")
    db = services().db
    rules = prio.fetch_rules(db)
    candidates = prio.fetch_all_candidates(db)
    stats = prio.fetch_country_stats(db)
    rows = []
    for s in prio.score_candidates(candidates, rules):
        c = s.candidate
        cnt, perc = stats.get((c.cc.upper(), c.url), (None, None))
        rows.append({"domain": c.domain, "url": c.url, "cc": c.cc.upper(),
                     "category_code": c.category_code, "msmt_cnt": cnt,
                     "anomaly_perc": perc, "priority": s.priority})
    rows.sort(key=lambda r: (r["cc"], -r["priority"]))
    if fmt == "CSV":
        buf = io.StringIO()
        fields = sorted(rows[0].keys()) if rows else sorted(
            ["domain", "url", "cc", "category_code", "msmt_cnt", "anomaly_perc", "priority"])
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return Response(buf.getvalue(), mimetype="text/csv")
    return json_response(rows, max_age=1)


@bp.route("/api/_/url-priorities/list")
def list_url_priorities() -> Response:
    """All active URL priority rules.
    ---
    responses:
      200: {description: '{"rules": [{"category_code", "cc", "domain", "url", "priority"}]}'}
    """
    rules = prio.fetch_rules(services().db)
    out = []
    for r in rules:
        d = r.as_dict()
        for k in ("category_code", "cc", "domain", "url"):
            d[k] = d[k] or "*"
        out.append(d)
    return json_response({"rules": out}, max_age=1)


def parse_rule(obj: Any, name: str) -> prio.Rule | None:
    """A rule of §10.6: exactly the five keys once empty strings are
    filled with ``*``; None for an absent or empty entry."""
    if obj is None or obj == {}:
        return None
    if not isinstance(obj, dict):
        raise OoniError("err_request_params", "Invalid parameters in the request")
    d = dict(obj)
    for k in ("category_code", "cc", "domain", "url"):
        v = d.get(k)
        if v is None or v == "":
            d[k] = "*"
        elif not isinstance(v, str) or len(v) > 2048:
            raise OoniError("err_request_params", "Invalid parameters in the request",
                            err_args={"field": f"{name}.{k}"})
    if set(d) != _RULE_KEYS:
        raise OoniError("err_request_params", "Invalid parameters in the request",
                        err_args={"fields": sorted(set(d) ^ _RULE_KEYS)})
    p = d["priority"]
    if isinstance(p, bool) or not isinstance(p, int) or abs(p) > 2**31 - 1:
        raise OoniError("err_request_params", "Invalid parameters in the request",
                        err_args={"field": f"{name}.priority"})
    cat = d["category_code"].upper()
    if not _RULE_CAT_RE.fullmatch(cat):
        raise OoniError("err_bad_category_code", "Invalid category code")
    cc = d["cc"].upper()
    if cc != "*":
        try:
            check_cc(cc, "cc")
        except BadRequest:
            raise OoniError("err_invalid_country_code", "Country code is invalid") from None
    return prio.Rule(cat, cc, d["domain"], d["url"], p)


@bp.route("/api/_/url-priorities/update", methods=["POST"])
@require_role("admin")
def update_url_priority() -> Response:
    """Add, change or delete a URL priority rule (admin).
    ---
    consumes: [application/json]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/UpdateUrlPriorityBody'}}
    responses:
      200: {description: "the number 1"}
      400: {description: "no change, duplicate rule or invalid rule"}
      404: {description: "old_entry is not an active rule"}
    """
    body = json_body()
    extra = set(body) - {"old_entry", "new_entry"}
    if extra:
        raise OoniError("err_request_params", "Invalid parameters in the request",
                        err_args={"fields": sorted(extra)})
    old = parse_rule(body.get("old_entry"), "old_entry")
    new = parse_rule(body.get("new_entry"), "new_entry")
    if old is None and new is None or old == new:
        raise OoniError("err_no_proposed_changes", "No changes are being proposed")
    db = services().db
    active = prio.fetch_rules(db)
    if old is not None and old not in active:
        # A deletion without its insertion would cancel a future re-insert.
        raise OoniError("err_rule_not_found", "Rule not found error", status=404)
    if new is not None:
        for r in active:
            if r.match_key == new.match_key and r != old:
                raise OoniError("err_duplicate_rule", "Duplicate rule", err_args=new.as_dict())
    if old is not None:
        prio.insert_rule(db, old, -1)
    if new is not None:
        prio.insert_rule(db, new, 1)
    prioritizer().invalidate()
    log.info("url priority rule change: %s -> %s", old, new)
    return json_response(1)
