"""Probe services (api.md §7 except report open/submit/close, which live in
routes/submission.py): check-in, geolocation, probe register/login, test
helpers, token-gated psiphon and tor configuration, collectors, bouncer.
Answers have the exact JSON types the Go client decodes
(probe-protocol.md §3); every field a probe sends is validated first."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, request

from ooni_common.timeutil import utcnow

from ooniapi.core import auth

from ooniapi.core import ids
from ooniapi.core.context import services
from ooniapi.core.errors import ApiError, BadRequest
from ooniapi.core.client_ip import DEFAULT_TRUSTED_PROXIES, client_ip, parse_networks
from ooniapi.probe.geoip import GeoIP, Location
from ooniapi.core.http import json_response
from ooniapi.prioritization.rules import url_limit
from ooniapi.prioritization.cache import Prioritizer, checkin_test_list
from ooniapi.probe.conf import ProbeConf
from ooniapi.core.validation import (category_codes, check_cc, json_body, opt_asn,
                                opt_bool, opt_cc, opt_choice, opt_str, opt_str_list)

log = logging.getLogger("ooni-api.probe_services")

bp = Blueprint("probe_services", __name__)

BUNDLED = Path(__file__).resolve().parent / "probe_data"

# Tests that get a report_id in the v1 check-in (api.md §7.1).
CHECKIN_V1_TESTS = [
    "bridge_reachability", "dash", "dns_consistency", "dnscheck", "facebook_messenger",
    "http_header_field_manipulation", "http_host", "http_invalid_request_line",
    "http_requests", "meek_fronted_requests_test", "multi_protocol_traceroute", "ndt",
    "psiphon", "riseupvpn", "tcp_connect", "telegram", "tor", "urlgetter", "vanilla_tor",
    "web_connectivity", "whatsapp",
]

# Nettests of the private v2 check-in (api.md §7.1).
CHECKIN_V2_TESTS = [
    "bridge_reachability", "dash", "dns_consistency", "dnscheck", "dnsping", "echcheck",
    "facebook_messenger", "http_header_field_manipulation", "http_host",
    "http_invalid_request_line", "http_requests", "meek_fronted_requests_test",
    "multi_protocol_traceroute", "ndt", "portfiltering", "psiphon", "quicping",
    "riseupvpn", "signal", "simplequicping", "sniblocking", "stunreachability",
    "tcp_connect", "tcpping", "telegram", "tlsmiddlebox", "tlsping", "tor", "torsf",
    "urlgetter", "vanilla_tor", "web_connectivity", "whatsapp",
]

# api.md §20.4
DNSCHECK_INPUTS = [
    "https://dns.google/dns-query", "https://8.8.8.8/dns-query", "dot://8.8.8.8:853/",
    "dot://8.8.4.4:853/", "https://8.8.4.4/dns-query", "https://cloudflare-dns.com/dns-query",
    "https://1.1.1.1/dns-query", "https://1.0.0.1/dns-query", "dot://1.1.1.1:853/",
    "dot://1.0.0.1:853/", "https://dns.quad9.net/dns-query", "https://9.9.9.9/dns-query",
    "dot://9.9.9.9:853/", "dot://dns.quad9.net/", "https://family.cloudflare-dns.com/dns-query",
    "dot://family.cloudflare-dns.com/dns-query", "https://dns11.quad9.net/dns-query",
    "dot://dns11.quad9.net/dns-query", "https://dns9.quad9.net/dns-query",
    "dot://dns9.quad9.net/dns-query", "https://dns12.quad9.net/dns-query",
    "dot://dns12.quad9.net/dns-query", "https://1dot1dot1dot1.cloudflare-dns.com/dns-query",
    "dot://1dot1dot1dot1.cloudflare-dns.com/dns-query", "https://dns.adguard.com/dns-query",
    "dot://dns.adguard.com/dns-query", "https://dns-family.adguard.com/dns-query",
    "dot://dns-family.adguard.com/dns-query", "https://dns.cloudflare.com/dns-query",
    "https://adblock.doh.mullvad.net/dns-query", "dot://adblock.doh.mullvad.net/dns-query",
    "https://dns.alidns.com/dns-query", "dot://dns.alidns.com/dns-query",
    "https://doh.opendns.com/dns-query", "https://dns.nextdns.io/dns-query",
    "dot://dns.nextdns.io/dns-query", "https://dns10.quad9.net/dns-query",
    "dot://dns10.quad9.net/dns-query", "https://security.cloudflare-dns.com/dns-query",
    "dot://security.cloudflare-dns.com/dns-query", "https://dns.switch.ch/dns-query",
    "dot://dns.switch.ch/dns-query",
]
STUNREACHABILITY_INPUTS = [
    "stun://stun.voip.blackberry.com:3478", "stun://stun.antisip.com:3478",
    "stun://stun.bluesip.net:3478", "stun://stun.dus.net:3478", "stun://stun.epygi.com:3478",
    "stun://stun.sonetel.com:3478", "stun://stun.sonetel.net:3478",
    "stun://stun.uls.co.za:3478", "stun://stun.voipgate.com:3478", "stun://stun.voys.nl:3478",
]

MAX_GEOLOOKUP_ADDRESSES = 1000


def init_app(app: Flask) -> None:
    """Long-lived helpers, built once so that configuration errors show at
    start-up rather than on a probe's request."""
    svc = app.extensions["ooni"]
    cfg = svc.cfg
    svc.extras["probe_conf"] = ProbeConf.from_config(cfg)
    svc.extras["geoip"] = GeoIP.from_config(cfg)
    svc.extras["trusted_proxies"] = parse_networks(
        cfg.get_list("TRUSTED_PROXIES", DEFAULT_TRUSTED_PROXIES))
    svc.extras["prioritizer"] = Prioritizer.from_config(cfg)


def probe_conf() -> ProbeConf:
    return services().extras["probe_conf"]


def prioritizer() -> Prioritizer:
    return services().extras["prioritizer"]


def probe_ip() -> str | None:
    return client_ip(request.remote_addr, request.headers, services().extras["trusted_proxies"])


def geolocate(ip: str | None) -> Location:
    loc = services().extras["geoip"].lookup(ip)
    services().metrics.incr("geoip_ipaddr_found" if loc.cc else "geoip_ipaddr_not_found")
    return loc


# --- check-in ---------------------------------------------------------------

def _checkin_common() -> dict[str, Any]:
    """Validates the check-in body and computes what both versions share."""
    body = json_body()
    probe_cc = opt_cc(body)
    probe_asn = opt_asn(body)
    opt_str(body, "platform", 32)
    opt_str(body, "software_name", 64)
    opt_str(body, "software_version", 64)
    opt_bool(body, "on_wifi")
    charging = opt_bool(body, "charging")
    run_type = opt_choice(body, "run_type", ("manual", "timed")) or "timed"
    wc = body.get("web_connectivity")
    if wc is not None and not isinstance(wc, dict):
        raise BadRequest("Invalid web_connectivity: expected an object")
    codes = category_codes((wc or {}).get("category_codes"))

    ip = probe_ip()
    loc = geolocate(ip)
    claimed_cc = probe_cc or "ZZ"
    claimed_asn = probe_asn or 0
    m = services().metrics
    if claimed_cc != "ZZ" and claimed_cc != loc.probe_cc:
        m.incr("geoip_cc_differs")
    if claimed_asn != 0 and claimed_asn != (loc.asn or 0):
        m.incr("geoip_asn_differs")
    if claimed_cc == "ZZ" and claimed_asn == 0:
        cc, asn = loc.probe_cc, loc.asn or 0
    else:
        # A probe behind a circumvention tool knows its network better.
        cc, asn = claimed_cc, claimed_asn
    limit = url_limit(run_type, True if charging is None else charging)
    return {"ip": ip, "loc": loc, "cc": cc, "asn": asn, "codes": codes, "limit": limit}


def _test_list(cc: str, asn: int, codes: list[str], limit: int) -> list[dict]:
    svc = services()
    try:
        with svc.metrics.timer("generate_test_list"):
            return checkin_test_list(svc, cc, asn, codes, limit)
    except Exception as e:  # the check-in must succeed without URLs
        log.error("test list generation failed for %s AS%d: %s", cc, asn, e)
        svc.metrics.incr("generate_test_list_error")
        return []


def _checkin_head(c: dict, v: int) -> dict[str, Any]:
    loc: Location = c["loc"]
    return {"v": v, "probe_cc": loc.probe_cc, "probe_asn": loc.probe_asn,
            "probe_network_name": loc.as_name,
            "utc_time": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}


@bp.route("/api/v1/check-in", methods=["POST"])
def check_in() -> Response:
    """Probe check-in: geolocation, prioritized URLs, report ids, test helpers, feature flags.
    ---
    tags: [probe services]
    consumes: [application/json]
    parameters:
      - in: body
        name: body
        required: true
        schema:
          type: object
          properties:
            probe_cc: {type: string, example: IT}
            probe_asn: {type: string, example: AS3269}
            platform: {type: string, example: android}
            software_name: {type: string}
            software_version: {type: string}
            on_wifi: {type: boolean}
            charging: {type: boolean}
            run_type: {type: string, enum: [manual, timed]}
            web_connectivity:
              type: object
              properties:
                category_codes: {type: array, items: {type: string}}
    responses:
      200:
        description: >-
          {v, probe_cc, probe_asn, probe_network_name, utc_time, conf: {features,
          test_helpers}, tests: {<test_name>: {report_id}, web_connectivity: {report_id, urls}}}
      400:
        description: invalid body or field
    """
    svc = services()
    with svc.metrics.timer("check_in"):
        c = _checkin_common()
        urls = _test_list(c["cc"], c["asn"], c["codes"], c["limit"])
        now = utcnow()
        cid = svc.cfg.collector_id
        tests: dict[str, dict] = {
            t: {"report_id": ids.generate_report_id(t, c["cc"], c["asn"], cid, now)}
            for t in CHECKIN_V1_TESTS}
        tests["web_connectivity"]["urls"] = urls
        pc = probe_conf()
        out = _checkin_head(c, 1)
        out["conf"] = {"features": dict(pc.features), "test_helpers": pc.test_helpers(c["ip"])}
        out["tests"] = tests
        return json_response(out, nocache=True)


def _v2_features(ip: str | None) -> dict[str, bool]:
    # Legacy A/B rollout of web_connectivity 0.5 by the second octet.
    feats: dict[str, bool] = {}
    parts = (ip or "").split(".")
    if len(parts) == 4 and parts[1] in ("34", "239"):
        feats["webconnectivity_0.5"] = True
    return feats


@bp.route("/api/_/check-in", methods=["POST"])
def check_in_v2() -> Response:
    """Experimental check-in (v2): one element per nettest with its targets.
    ---
    tags: [probe services]
    consumes: [application/json]
    parameters:
      - in: body
        name: body
        required: true
        schema: {type: object}
    responses:
      200:
        description: "{v: 2, probe_cc, probe_asn, probe_network_name, utc_time, conf, nettests: [{test_name, report_id, targets}]}"
      400:
        description: invalid body or field
    """
    svc = services()
    c = _checkin_common()
    urls = _test_list(c["cc"], c["asn"], c["codes"], c["limit"])
    now = utcnow()
    cid = svc.cfg.collector_id
    nettests = []
    for t in CHECKIN_V2_TESTS:
        if t == "web_connectivity":
            targets = [{"attributes": {"category_code": u["category_code"],
                                       "country_code": u["country_code"]},
                        "input": u["url"], "options": {}} for u in urls]
        elif t == "dnscheck":
            targets = [{"attributes": {}, "input": i, "options": {}} for i in DNSCHECK_INPUTS]
        elif t == "stunreachability":
            targets = [{"attributes": {}, "input": i, "options": {}}
                       for i in STUNREACHABILITY_INPUTS]
        else:
            targets = []
        nettests.append({"test_name": t,
                         "report_id": ids.generate_report_id(t, c["cc"], c["asn"], cid, now),
                         "targets": targets})
    out = _checkin_head(c, 2)
    out["conf"] = {"features": _v2_features(c["ip"]),
                   "test_helpers": probe_conf().test_helpers(c["ip"])}
    out["nettests"] = nettests
    return json_response(out, nocache=True)


# --- geolocation ------------------------------------------------------------

@bp.route("/api/v1/geolookup", methods=["POST"])
def geolookup() -> Response:
    """Geolocate IP addresses (country, ASN, network name).
    ---
    tags: [probe services]
    consumes: [application/json]
    parameters:
      - in: body
        name: body
        required: true
        schema:
          type: object
          properties:
            addresses: {type: array, items: {type: string}}
    responses:
      200:
        description: '{"v": 1, "geolocation": {"<ip>": {"cc": "IT", "asn": 3269, "as_name": "..."}}}'
      400:
        description: invalid body
    """
    body = json_body()
    addrs = body.get("addresses")
    if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
        raise BadRequest("Invalid addresses: expected a list of strings")
    if len(addrs) > MAX_GEOLOOKUP_ADDRESSES:
        raise BadRequest(f"Invalid addresses: more than {MAX_GEOLOOKUP_ADDRESSES} items")
    g: GeoIP = services().extras["geoip"]
    out = {}
    for a in addrs:
        loc = g.lookup(a)
        out[a] = {"cc": loc.cc, "asn": loc.asn, "as_name": loc.as_name}
    return json_response({"v": 1, "geolocation": out}, nocache=True)


# --- probe credentials ------------------------------------------------------

@bp.route("/api/v1/register", methods=["POST"])
def register() -> Response:
    """Register a probe: returns its client_id.
    ---
    tags: [probe services]
    consumes: [application/json]
    parameters:
      - in: body
        name: body
        required: true
        schema:
          type: object
          properties:
            password: {type: string}
            platform: {type: string}
            probe_asn: {type: string}
            probe_cc: {type: string}
            software_name: {type: string}
            software_version: {type: string}
            supported_tests: {type: array, items: {type: string}}
    responses:
      200:
        description: '{"client_id": "<JWT>"}'
      400:
        description: not JSON or an invalid field
    """
    if request.mimetype != "application/json":
        raise BadRequest("error: JSON expected!")
    body = json_body()
    pw = body.get("password")
    if pw is not None and (not isinstance(pw, str) or len(pw) > 1024):
        raise BadRequest("Invalid password: expected a string")
    opt_str(body, "platform", 32)
    opt_cc(body)
    opt_asn(body)
    opt_str(body, "software_name", 64)
    opt_str(body, "software_version", 64)
    opt_str_list(body, "supported_tests")
    return json_response({"client_id": auth.probe_client_id(services().cfg)}, nocache=True)


@bp.route("/api/v1/login", methods=["POST"])
def login() -> Response:
    """Log a probe in: returns a token for the token-gated routes.
    ---
    tags: [probe services]
    consumes: [application/json]
    parameters:
      - in: body
        name: body
        required: true
        schema:
          type: object
          properties:
            username: {type: string, description: the client_id from register}
            password: {type: string}
    responses:
      200:
        description: '{"token": "<JWT>", "expire": "2021-07-16T10:00:00Z"}'
      400:
        description: not JSON or an invalid field
      401:
        description: forged or foreign client_id
    """
    body = json_body()
    username = body.get("username")
    password = body.get("password")
    if username is not None and (not isinstance(username, str) or len(username) > 4096):
        raise BadRequest("Invalid username: expected a string")
    if password is not None and (not isinstance(password, str) or len(password) > 1024):
        raise BadRequest("Invalid password: expected a string")
    res = auth.probe_login(services().cfg, username)
    return json_response({"token": res.token,
                          "expire": res.expire.strftime("%Y-%m-%dT%H:%M:%SZ")}, nocache=True)


# --- configuration for probes -----------------------------------------------

@bp.route("/api/v1/test-helpers")
def test_helpers() -> Response:
    """Test helpers for the probes, load-balanced.
    ---
    tags: [probe services]
    responses:
      200:
        description: helper name -> list of {address, type, front?}
    """
    return json_response(probe_conf().test_helpers(probe_ip()), max_age=0)


def _serve_json_file(key: str, default_name: str, what: str) -> Response:
    cfg = services().cfg
    auth.check_probe_token(cfg, request.headers.get("Authorization"))
    path = Path(cfg.get_str(key, str(BUNDLED / default_name)))
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        log.error("%s: %s does not exist", key, path)
        raise ApiError(f"{what} unavailable: configuration file missing") from None
    except (OSError, ValueError) as e:
        log.error("%s: cannot read %s: %s", key, path, e)
        raise ApiError(f"{what} unavailable: configuration file unreadable") from None
    if not isinstance(doc, dict):
        log.error("%s: %s is not a JSON object", key, path)
        raise ApiError(f"{what} unavailable: configuration file is not a JSON object")
    return json_response(doc, nocache=True)


@bp.route("/api/v1/test-list/psiphon-config")
def psiphon_config() -> Response:
    """Psiphon configuration (probe token required).
    ---
    tags: [probe services]
    parameters:
      - in: header
        name: Authorization
        type: string
        required: true
        description: Bearer <token from /api/v1/login>
    responses:
      200:
        description: the psiphon configuration object
      401:
        description: missing, forged or foreign token
      500:
        description: the configuration file is missing or unreadable
    """
    return _serve_json_file("PSIPHON_CONFFILE", "psiphon_config.json", "Psiphon configuration")


@bp.route("/api/v1/test-list/tor-targets")
def tor_targets() -> Response:
    """Tor targets (probe token required).
    ---
    tags: [probe services]
    parameters:
      - in: header
        name: Authorization
        type: string
        required: true
        description: Bearer <token from /api/v1/login>
      - in: query
        name: country_code
        type: string
        description: the probe's country (ZZ if unknown)
    responses:
      200:
        description: target id -> {address, name, params, protocol, source}
      400:
        description: invalid country_code
      401:
        description: missing, forged or foreign token
      500:
        description: the targets file is missing or unreadable
    """
    cc = request.args.get("country_code")
    if cc:
        check_cc(cc, "country_code")
    return _serve_json_file("TOR_TARGETS_CONFFILE", "tor_targets.json", "Tor targets")


@bp.route("/api/v1/collectors")
def collectors() -> Response:
    """Collectors the probes may submit to.
    ---
    tags: [probe services]
    responses:
      200:
        description: list of {address, type, front?}
    """
    return json_response(probe_conf().collectors, max_age=3600)


@bp.route("/bouncer/net-tests", methods=["POST"])
def bouncer_net_tests() -> Response:
    """Legacy bouncer for MK probes: collector and test helpers for a net-test.
    ---
    tags: [probe services]
    consumes: [application/json]
    parameters:
      - in: body
        name: body
        required: true
        schema:
          type: object
          properties:
            net-tests:
              type: array
              items:
                type: object
                properties:
                  name: {type: string}
                  version: {type: string}
    responses:
      200:
        description: '{"net-tests": [{collector, collector-alternate, name, test-helpers, ...}]}'
      400:
        description: malformed request
    """
    try:
        body = json_body()
    except BadRequest:
        raise BadRequest("Malformed request") from None
    nts = body.get("net-tests")
    if not isinstance(nts, list) or not nts or not isinstance(nts[0], dict):
        raise BadRequest("Malformed request")
    name, version = nts[0].get("name"), nts[0].get("version")
    if not isinstance(name, str) or not isinstance(version, str) or len(name) > 64 \
            or len(version) > 64:
        raise BadRequest("Malformed request")
    out = {"net-tests": [{
        "collector": "httpo://guegdifjy7bjpequ.onion",
        "collector-alternate": [
            {"type": "https", "address": "https://ams-pg.ooni.org"},
            {"front": "dkyhjv0wpi2dk.cloudfront.net", "type": "cloudfront",
             "address": "https://dkyhjv0wpi2dk.cloudfront.net"}],
        "input-hashes": None,
        "name": name,
        "test-helpers": {"tcp-echo": "37.218.241.93",
                         "http-return-json-headers": "http://37.218.241.94:80",
                         "web-connectivity": "httpo://y3zq5fwelrzkkv3s.onion"},
        "test-helpers-alternate": {"web-connectivity": [
            {"type": "https", "address": "https://wcth.ooni.io"},
            {"front": "d33d1gs9kpq1c5.cloudfront.net", "type": "cloudfront",
             "address": "https://d33d1gs9kpq1c5.cloudfront.net"}]},
        "version": version}]}
    return json_response(out, nocache=True)


@bp.route("/api/_/check_report_id")
def check_report_id() -> Response:
    """Legacy report_id check: always found.
    ---
    tags: [probe services]
    parameters:
      - in: query
        name: report_id
        type: string
    responses:
      200:
        description: '{"v": 0, "found": true}'
    """
    return json_response({"v": 0, "found": True}, max_age=1)
