"""Probe services (api.md §7 except report open/submit/close, which live in
collector_routes.py, and anonymous credentials, in credentials_routes.py):
check-in, geolocation, probe register/login/update, test helpers,
token-gated psiphon and tor configuration, VPN configuration, collectors,
bouncer, version.
Answers have the exact JSON types the Go client decodes
(probe-protocol.md §3); every field a probe sends is validated first."""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import random
import re
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from ooni_common.config import ConfigError
from ooni_common.timeutil import utcnow

from ooniapi.core import auth, ids, validation
from ooniapi.core.client_ip import DEFAULT_TRUSTED_PROXIES, client_ip, parse_networks
from ooniapi.core.context import services
from ooniapi.core.errors import ApiError, BadRequest, NotFound
from ooniapi.core.http import json_response
from ooniapi.core.openapi import ApiBlueprint
from ooniapi.prioritization import checkin
from ooniapi.probe import live_test_helpers
from ooniapi.probe.conf import ProbeConf, served_test_helpers
from ooniapi.probe.geoip import GeoIP, Location

log = logging.getLogger("ooni-api.probe_services")

bp = ApiBlueprint("probe_services", __name__, tag="probe services")

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
    svc.extras["vpn_providers"] = vpn_providers(cfg)


def probe_conf() -> ProbeConf:
    return live_test_helpers.probe_conf(services())


def probe_ip() -> str | None:
    return client_ip(request.remote_addr, request.headers, services().extras["trusted_proxies"])


def geolocate(ip: str | None) -> Location:
    loc = services().extras["geoip"].lookup(ip)
    services().metrics.incr("geoip_ipaddr_found" if loc.cc else "geoip_ipaddr_not_found")
    return loc


# --- check-in ---------------------------------------------------------------

def _checkin_common() -> dict[str, Any]:
    """Validates the check-in body and computes what both versions share."""
    body = validation.json_body()
    probe_cc = validation.opt_cc(body)
    probe_asn = validation.opt_asn(body)
    validation.opt_str(body, "platform", 32)
    validation.opt_str(body, "software_name", 64)
    validation.opt_str(body, "software_version", 64)
    validation.opt_bool(body, "on_wifi")
    charging = validation.opt_bool(body, "charging")
    run_type = validation.opt_choice(body, "run_type", ("manual", "timed")) or "timed"
    wc = body.get("web_connectivity")
    if wc is not None and not isinstance(wc, dict):
        raise BadRequest("Invalid web_connectivity: expected an object")
    codes = validation.category_codes((wc or {}).get("category_codes"))

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
    limit = checkin.url_limit(run_type, True if charging is None else charging)
    return {"ip": ip, "loc": loc, "cc": cc, "asn": asn, "codes": codes, "limit": limit}


def _test_list(cc: str, asn: int, codes: list[str], limit: int) -> list[dict]:
    svc = services()
    try:
        with svc.metrics.timer("generate_test_list"):
            return checkin.test_list(svc, cc, asn, codes, limit)
    except Exception as e:  # the check-in must succeed without URLs
        log.error("test list generation failed for %s AS%d: %s", cc, asn, e)
        svc.metrics.incr("generate_test_list_error")
        return []


def _checkin_answer(c: dict, v: int, pc: ProbeConf) -> dict[str, Any]:
    """What both check-in versions answer besides their tests."""
    loc: Location = c["loc"]
    return {"v": v, "probe_cc": loc.probe_cc, "probe_asn": loc.probe_asn,
            "probe_network_name": loc.as_name,
            "utc_time": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "conf": {"features": dict(pc.features),
                     "test_helpers": served_test_helpers(pc, c["ip"])}}


@bp.route("/api/v1/check-in", methods=["POST"])
def check_in() -> Response:
    """Probe check-in: geolocation, prioritized URLs, report ids, test helpers, feature flags.
    ---
    consumes: [application/json]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/CheckInBody'}}
    responses:
      200: {description: "{v, probe_cc, probe_asn, probe_network_name, utc_time, conf: {features, test_helpers}, tests: {<test_name>: {report_id}, web_connectivity: {report_id, urls}}}"}
      400: {description: "invalid body or field"}
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
        out = _checkin_answer(c, 1, probe_conf())
        out["tests"] = tests
        return json_response(out, nocache=True)


@bp.route("/api/_/check-in", methods=["POST"])
def check_in_v2() -> Response:
    """Experimental check-in (v2): one element per nettest with its targets.
    ---
    consumes: [application/json]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/CheckInV2Body'}}
    responses:
      200: {description: "{v: 2, probe_cc, probe_asn, probe_network_name, utc_time, conf, nettests: [{test_name, report_id, targets}]}"}
      400: {description: "invalid body or field"}
    """
    svc = services()
    c = _checkin_common()
    urls = _test_list(c["cc"], c["asn"], c["codes"], c["limit"])
    now = utcnow()
    cid = svc.cfg.collector_id
    pc = probe_conf()
    nettests = []
    for t in CHECKIN_V2_TESTS:
        if t == "web_connectivity":
            targets = [{"attributes": {"category_code": u["category_code"],
                                       "country_code": u["country_code"]},
                        "input": u["url"], "options": {}} for u in urls]
        elif t == "dnscheck":
            targets = [{"attributes": {}, "input": i, "options": {}}
                       for i in pc.dnscheck_inputs]
        elif t == "stunreachability":
            targets = [{"attributes": {}, "input": i, "options": {}}
                       for i in pc.stunreachability_inputs]
        else:
            targets = []
        nettests.append({"test_name": t,
                         "report_id": ids.generate_report_id(t, c["cc"], c["asn"], cid, now),
                         "targets": targets})
    out = _checkin_answer(c, 2, pc)
    out["nettests"] = nettests
    return json_response(out, nocache=True)


# --- geolocation ------------------------------------------------------------

@bp.route("/api/v1/geolookup", methods=["POST"])
def geolookup() -> Response:
    """Geolocate IP addresses (country, ASN, network name).
    ---
    consumes: [application/json]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/GeolookupBody'}}
    responses:
      200: {description: '{"v": 1, "geolocation": {"<ip>": {"cc": "IT", "asn": 3269, "as_name": "..."}}}'}
      400: {description: "invalid body"}
    """
    body = validation.json_body()
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
    consumes: [application/json]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/RegisterBody'}}
    responses:
      200: {description: '{"client_id": "<JWT>"}'}
      400: {description: "not JSON or an invalid field"}
    """
    if request.mimetype != "application/json":
        raise BadRequest("error: JSON expected!")
    body = validation.json_body()
    pw = body.get("password")
    if pw is not None and (not isinstance(pw, str) or len(pw) > 1024):
        raise BadRequest("Invalid password: expected a string")
    validation.opt_str(body, "platform", 32)
    validation.opt_cc(body)
    validation.opt_asn(body)
    validation.opt_str(body, "software_name", 64)
    validation.opt_str(body, "software_version", 64)
    validation.opt_str_list(body, "supported_tests")
    return json_response({"client_id": auth.probe_client_id(services().cfg)}, nocache=True)


@bp.route("/api/v1/login", methods=["POST"])
def login() -> Response:
    """Log a probe in: returns a token for the token-gated routes.
    ---
    consumes: [application/json]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/LoginBody'}}
    responses:
      200: {description: '{"token": "<JWT>", "expire": "2021-07-16T10:00:00Z"}'}
      400: {description: "not JSON or an invalid field"}
      401: {description: "forged or foreign client_id"}
    """
    body = validation.json_body()
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
    responses:
      200: {description: "helper name -> list of {address, type, front?}"}
    """
    return json_response(served_test_helpers(probe_conf(), probe_ip()), max_age=0)


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
    parameters:
      - $ref: '#/parameters/ProbeToken'
    responses:
      200: {description: "the psiphon configuration object"}
      401: {description: "missing, forged or foreign token"}
      500: {description: "the configuration file is missing or unreadable"}
    """
    return _serve_json_file("PSIPHON_CONFFILE", "psiphon_config.json", "Psiphon configuration")


@bp.route("/api/v1/test-list/tor-targets")
def tor_targets() -> Response:
    """Tor targets (probe token required).
    ---
    parameters:
      - $ref: '#/parameters/ProbeToken'
      - in: query
        name: country_code
        type: string
        description: the probe's country (ZZ if unknown)
    responses:
      200: {description: "target id -> {address, name, params, protocol, source}"}
      400: {description: "invalid country_code"}
      401: {description: "missing, forged or foreign token"}
      500: {description: "the targets file is missing or unreadable"}
    """
    cc = request.args.get("country_code")
    if cc:
        validation.check_cc(cc, "country_code")
    return _serve_json_file("TOR_TARGETS_CONFFILE", "tor_targets.json", "Tor targets")


@bp.route("/api/v1/collectors")
def collectors() -> Response:
    """Collectors the probes may submit to.
    ---
    responses:
      200: {description: "list of {address, type, front?}"}
    """
    return json_response(probe_conf().collectors, max_age=3600)


@bp.route("/bouncer/net-tests", methods=["POST"])
def bouncer_net_tests() -> Response:
    """Legacy bouncer for MK probes: collector and test helpers for a net-test.
    ---
    consumes: [application/json]
    parameters:
      - {in: body, name: body, required: true, schema: {$ref: '#/definitions/BouncerNetTestsBody'}}
    responses:
      200: {description: '{"net-tests": [{collector, collector-alternate, name, test-helpers, ...}]}'}
      400: {description: "malformed request"}
    """
    try:
        body = validation.json_body()
    except BadRequest:
        raise BadRequest("Malformed request") from None
    nts = body.get("net-tests")
    if not isinstance(nts, list) or not nts or not isinstance(nts[0], dict):
        raise BadRequest("Malformed request")
    name, version = nts[0].get("name"), nts[0].get("version")
    if not isinstance(name, str) or not isinstance(version, str) or len(name) > 64 \
            or len(version) > 64:
        raise BadRequest("Malformed request")
    pc = probe_conf()
    # The first collector is the main one, the others its alternates; the
    # helpers are the first of each configured list.
    main, *alternate = pc.collectors or [{"address": "", "type": "https"}]
    helpers = {k: v for k in ("tcp-echo", "http-return-json-headers")
               if (v := pc.first_helper(k)) is not None}
    helpers["web-connectivity"] = pc.bouncer_web_connectivity
    out = {"net-tests": [{
        "collector": main["address"],
        "collector-alternate": [dict(c) for c in alternate],
        "input-hashes": None,
        "name": name,
        "test-helpers": helpers,
        "test-helpers-alternate": {"web-connectivity": [
            dict(h) for h in pc.bouncer_web_connectivity_alternate]},
        "version": version}]}
    return json_response(out, nocache=True)


@bp.route("/api/_/check_report_id")
def check_report_id() -> Response:
    """Legacy report_id check: always found.
    ---
    parameters:
      - in: query
        name: report_id
        type: string
    responses:
      200: {description: '{"v": 0, "found": true}'}
    """
    return json_response({"v": 0, "found": True}, max_age=1)


# --- smaller probe routes ---------------------------------------------------

_PROVIDER_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")
VPN_ENDPOINTS_SERVED = 4


def vpn_providers(cfg) -> dict[str, Path]:
    """``VPN_PROVIDERS = "riseupvpn=/etc/ooni/riseupvpn.json"``: the
    providers served and the file holding each one's configuration."""
    out = {}
    for item in cfg.get_list("VPN_PROVIDERS", []):
        name, sep, path = item.partition("=")
        if not sep or not _PROVIDER_RE.match(name) or not path:
            raise ConfigError(f"VPN_PROVIDERS: expected name=/path/to/file.json, got {item!r}")
        out[name] = Path(path)
    return out


def _vpn_doc(name: str, path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
    except (OSError, ValueError) as e:
        log.error("VPN_PROVIDERS: cannot read %s for %s: %s", path, name, e)
        raise ApiError("VPN configuration unavailable", 503) from None
    ok = isinstance(doc, dict) and isinstance(doc.get("config"), dict) \
        and all(isinstance(v, str) for v in doc["config"].values()) \
        and isinstance(doc.get("endpoints", []), list) \
        and all(isinstance(e, str) for e in doc.get("endpoints", [])) \
        and isinstance(doc.get("protocol", "openvpn"), str) \
        and isinstance(doc.get("date_updated", ""), str)
    if not ok:
        log.error("VPN_PROVIDERS: %s for %s is not {config: {..strings}, endpoints: [strings]}",
                  path, name)
        raise ApiError("VPN configuration unavailable", 503)
    return {"provider": name, "protocol": doc.get("protocol", "openvpn"),
            "config": doc["config"], "endpoints": doc.get("endpoints", []),
            "date_updated": doc.get("date_updated")
            or mtime.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


@bp.route("/api/v2/ooniprobe/vpn-config/<provider>")
def vpn_config(provider: str) -> Response:
    """VPN configuration of one provider (openvpn experiment), from its configured file.
    ---
    parameters:
      - in: path
        name: provider
        type: string
        required: true
        description: e.g. riseupvpn (the probe appends "vpn" to the provider name)
      - in: query
        name: country_code
        type: string
        description: the probe's country (optional)
    responses:
      200: {description: '{provider, protocol, config: {ca, cert, key, ...}, endpoints: [string], date_updated}'}
      400: {description: "invalid country_code"}
      404: {description: "unknown provider"}
      503: {description: "the provider's configuration file is missing or unreadable"}
    """
    cc = request.args.get("country_code")
    if cc:
        validation.check_cc(cc, "country_code")
    path = services().extras["vpn_providers"].get(provider)
    if path is None:
        raise NotFound("provider not found")
    out = _vpn_doc(provider, path)
    eps = out["endpoints"]
    # As OONI's service: a few endpoints per answer spread the probes.
    out["endpoints"] = random.sample(eps, min(len(eps), VPN_ENDPOINTS_SERVED))
    return json_response(out, nocache=True)


_UPDATE_STR_FIELDS = ("probe_cc", "probe_asn", "platform", "software_name", "software_version",
                      "network_type", "available_bandwidth", "language", "token",
                      "probe_family", "probe_id", "password")


@bp.route("/api/v1/update/<client_id>", methods=["PUT"])
def probe_update(client_id: str) -> Response:
    """Probe metadata update (orchestra era): accepted and not stored, as OONI's service.
    ---
    consumes: [application/json]
    parameters:
      - in: path
        name: client_id
        type: string
        required: true
      - in: body
        name: body
        required: true
        schema:
          type: object
          properties:
            probe_cc: {type: string}
            probe_asn: {type: string}
            platform: {type: string}
            software_name: {type: string}
            software_version: {type: string}
            supported_tests: {type: array, items: {type: string}}
            network_type: {type: string}
            available_bandwidth: {type: string}
            language: {type: string}
            token: {type: string}
            probe_family: {type: string}
            probe_id: {type: string}
            password: {type: string}
    responses:
      200: {description: '{"status": "ok"}'}
      400: {description: "not a JSON object or a field of the wrong type"}
    """
    if len(client_id) > 4096:
        raise BadRequest("Invalid client_id: too long")
    body = validation.json_body()
    for k in _UPDATE_STR_FIELDS:
        validation.opt_str(body, k, 1024)
    validation.opt_str_list(body, "supported_tests")
    services().metrics.incr("probe_update")
    return json_response({"status": "ok"}, nocache=True)


@bp.route("/version")
def version() -> Response:
    """Version of this backend.
    ---
    responses:
      200: {description: '{"version": "0.1.0", "build_label": "..."}'}
    """
    try:
        v = importlib.metadata.version("ooni-backend")
    except importlib.metadata.PackageNotFoundError:
        v = "unknown"
    label = services().cfg.get_str("BUILD_LABEL", v)
    return json_response({"version": v, "build_label": label}, max_age=60)
