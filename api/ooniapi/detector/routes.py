"""Detector routes: ``/api/v1/detector/changepoints`` (the contract of
upstream oonimeasurements) and the Atom feeds of block/unblock events
(docs/jobs.md, "Blocking-event detector")."""
from __future__ import annotations

import datetime as dt
import re

from flask import Response, request

from ooni_common.timeutil import utcnow

from ooniapi.core.context import services
from ooniapi.core.errors import BadRequest
from ooniapi.core.http import json_response, set_cached
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.core.params import asn_value, is_domain_or_ip, parse_date, parse_probe_asn, parse_probe_cc
from ooniapi.detector import feeds

bp = ApiBlueprint("detector", __name__, tag="detector")

DEFAULT_EXPLORER = "https://explorer.ooni.org"
# Feeds and changepoints change once an hour, when the detector runs.
CACHE_SECONDS = 300
_CC = re.compile(r"^[A-Za-z]{2}$")
MAX_DOMAIN = 253

CHANGEPOINTS_SQL = """
SELECT probe_asn, probe_cc, domain, test_name, ts, last_ts, count_isp_resolver,
    count_other_resolver, count, dns_isp_blocked, dns_other_blocked, tcp_blocked,
    tls_blocked, change_dir, s_pos, s_neg, current_mean, previous_mean, h,
    current_state, block_type
FROM event_detector_changepoints FINAL
WHERE ts >= {since:DateTime64(3)} AND ts <= {until:DateTime64(3)} {filters}
ORDER BY ts, probe_cc, probe_asn, domain, test_name
LIMIT {limit:UInt32}
"""

# Upstream's per-layer fields come from its observation tables; this
# detector works on fastpath scores and leaves them null.
_LAYER_FIELDS = [f"{layer}_{part}" for layer in
                 ("dns_isp_blocked", "dns_other_blocked", "tcp_blocked", "tls_blocked")
                 for part in ("obs_w_sum", "w_sum", "s_pos", "s_neg")]


def _nan_to_none(v):
    return None if isinstance(v, float) and v != v else v


def list_changepoints(since: dt.datetime, until: dt.datetime, probe_cc: str | None,
                      probe_asn: int | None, domain: str | None, limit: int) -> list[dict]:
    params: dict = {"since": since, "until": until, "limit": limit}
    filters = ""
    if probe_cc is not None:
        filters += " AND probe_cc = {probe_cc:String}"
        params["probe_cc"] = probe_cc
    if probe_asn is not None:
        filters += " AND probe_asn = {probe_asn:UInt32}"
        params["probe_asn"] = probe_asn
    if domain is not None:
        filters += " AND domain = {domain:String}"
        params["domain"] = domain
    rows = services().db.query(CHANGEPOINTS_SQL.replace("{filters}", filters), params)
    out = []
    for r in rows:
        e = {
            "probe_asn": r["probe_asn"], "probe_cc": r["probe_cc"], "domain": r["domain"],
            "test_name": r["test_name"],
            "start_time": r["ts"], "end_time": r["last_ts"],
            "count_isp_resolver": r["count_isp_resolver"],
            "count_other_resolver": r["count_other_resolver"], "count": r["count"],
        }
        for k in ("dns_isp_blocked", "dns_other_blocked", "tcp_blocked", "tls_blocked"):
            e[k] = _nan_to_none(r[k])
        for k in _LAYER_FIELDS:
            e[k] = None
        d = r["change_dir"]
        e["change_dir"] = None if d is None else ("down" if d == -1 else "up")
        for k in ("s_pos", "s_neg", "current_mean", "previous_mean", "h"):
            e[k] = _nan_to_none(r[k])
        e["current_state"] = r["current_state"]
        e["block_type"] = r["block_type"]
        out.append(e)
    return out


@bp.route("/api/v1/detector/changepoints")
def changepoints() -> Response:
    """Changepoints found by the blocking-event detector (CUSUM over hourly blocking shares).
    ---
    parameters:
      - {name: probe_cc, in: query, type: string, description: two-letter country code}
      - {name: probe_asn, in: query, type: string, description: "ASN, as AS1234 or 1234"}
      - {name: domain, in: query, type: string, description: exact domain}
      - {name: since, in: query, type: string, description: "start time (default: 30 days ago)"}
      - {name: until, in: query, type: string, description: "end time (default: now)"}
    responses:
      200: {description: "{results: [{probe_asn, probe_cc, domain, test_name, start_time, end_time, count, change_dir (up|down), s_pos, s_neg, current_mean, previous_mean, h, current_state, block_type, ...}]}"}
      400: {description: "invalid parameter"}
    """
    a = request.args
    probe_cc = parse_probe_cc(a.get("probe_cc"))
    probe_asn = parse_probe_asn(a.get("probe_asn"))
    domain = a.get("domain") or None
    if domain is not None and (len(domain) > MAX_DOMAIN or not is_domain_or_ip(domain)):
        raise BadRequest("Invalid domain in parameter domain")
    now = utcnow().replace(microsecond=0)
    since = parse_date("since", a.get("since"), round_up=True) or now - dt.timedelta(days=30)
    until = parse_date("until", a.get("until")) or now
    if until < since:
        raise BadRequest("until must not be before since")
    limit = services().cfg.get_int("DETECTOR_API_MAX_ROWS", 10_000)
    return json_response({"results": list_changepoints(since, until, probe_cc, probe_asn,
                                                        domain, limit)}, max_age=CACHE_SECONDS)


# --- feeds ------------------------------------------------------------------------

def _feed(spec: feeds.FeedSpec) -> Response:
    svc = services()
    limit = svc.cfg.get_int("DETECTOR_FEED_ENTRIES", 100)
    events = feeds.load_events(svc.db, spec, limit)
    base = svc.cfg.get_str("BASE_URL", "https://api.ooni.io/")
    explorer = svc.cfg.get_str("EXPLORER_URL", DEFAULT_EXPLORER)
    body = feeds.render(spec, events, base, explorer)
    resp = Response(body, mimetype=feeds.ATOM_MIME)
    resp.set_etag(feeds.etag(spec, events))
    resp.last_modified = feeds.feed_updated(events).replace(tzinfo=dt.timezone.utc)
    set_cached(resp, CACHE_SECONDS)
    # 304 when If-None-Match or If-Modified-Since says the reader has it.
    return resp.make_conditional(request)


@bp.route("/api/v1/detector/feeds/global.atom")
def feed_global() -> Response:
    """Atom feed of every block/unblock event the detector found.
    ---
    produces: [application/atom+xml]
    responses:
      200: {$ref: '#/responses/AtomFeed'}
      304: {$ref: '#/responses/NotModified'}
    """
    return _feed(feeds.FeedSpec("global", None, request.path))


@bp.route("/api/v1/detector/feeds/by-country/<cc>.atom")
def feed_country(cc: str) -> Response:
    """Atom feed of block/unblock events in one country.
    ---
    produces: [application/atom+xml]
    parameters:
      - {name: cc, in: path, type: string, required: true, description: two-letter country code}
    responses:
      200: {$ref: '#/responses/AtomFeed'}
      304: {$ref: '#/responses/NotModified'}
      400: {description: "invalid country code"}
    """
    if not _CC.match(cc):
        raise BadRequest("Invalid country code")
    return _feed(feeds.FeedSpec("country", cc.upper(), request.path))


@bp.route("/api/v1/detector/feeds/by-asn/<asn>.atom")
def feed_asn(asn: str) -> Response:
    """Atom feed of block/unblock events in one network.
    ---
    produces: [application/atom+xml]
    parameters:
      - {name: asn, in: path, type: string, required: true, description: "ASN, as AS1234 or 1234"}
    responses:
      200: {$ref: '#/responses/AtomFeed'}
      304: {$ref: '#/responses/NotModified'}
      400: {description: "invalid ASN"}
    """
    n = asn_value(asn)
    if n is None:
        raise BadRequest("Invalid ASN")
    return _feed(feeds.FeedSpec("asn", n, request.path))


@bp.route("/api/v1/detector/feeds/by-domain/<domain>.atom")
def feed_domain(domain: str) -> Response:
    """Atom feed of block/unblock events for one domain.
    ---
    produces: [application/atom+xml]
    parameters:
      - {name: domain, in: path, type: string, required: true, description: domain name}
    responses:
      200: {$ref: '#/responses/AtomFeed'}
      304: {$ref: '#/responses/NotModified'}
      400: {description: "invalid domain"}
    """
    if len(domain) > MAX_DOMAIN or ":" in domain or not is_domain_or_ip(domain):
        raise BadRequest("Invalid domain")
    return _feed(feeds.FeedSpec("domain", domain.lower(), request.path))
