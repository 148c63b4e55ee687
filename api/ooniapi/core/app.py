"""Application factory: wires config, services, blueprints and the one place
where errors become HTTP answers."""
from __future__ import annotations

import importlib
import logging
from typing import Callable

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException

from ooni_common.config import Config
from ooni_common.db import Database, DatabaseError, QueryTimeout
from ooni_common.metrics import Metrics
from ooni_common.metrics import from_config as metrics_from_config
from ooni_common.server_version import one_line
from ooni_common.spool import Spool

from ooniapi.core import auth, openapi, ratelimit
from ooniapi.core.body import CAP_KEY
from ooniapi.core.context import Services
from ooniapi.core.errors import ApiError
from ooniapi.core.http import OoniJSONProvider, json_response

log = logging.getLogger("ooni-api")

# One routes module per blueprint, each exposing a Blueprint named ``bp`` and
# optionally ``init_app(app)``; its package may hold an ``openapi.yml``.
BLUEPRINTS = [
    "ooniapi.pages.routes",
    "ooniapi.accounts.quotas_routes",
    "ooniapi.aggregation.routes",
    "ooniapi.probe.collector_routes",
    "ooniapi.measurements.routes",
    "ooniapi.measurements.export_routes",
    "ooniapi.measurements.feed_routes",
    "ooniapi.probe.routes",
    "ooniapi.probe.credentials_routes",
    "ooniapi.prioritization.routes",
    "ooniapi.oonirun.routes",
    "ooniapi.explorer.routes",
    "ooniapi.findings.routes",
    "ooniapi.accounts.routes",
    "ooniapi.testlists.routes",
    "ooniapi.detector.routes",
    "ooniapi.accounts.v2_routes",
]

# Prefixes whose errors are JSON (api.md §1.3); elsewhere HTML is allowed.
JSON_PREFIXES = ("/api/", "/report", "/bouncer/")

# Largest accepted request body. OONI measurements reach several MB; the
# probe refuses answers over 16 MiB and api.md §7.10 asks for at least that.
DEFAULT_MAX_BODY = 32 * 1024 * 1024


def create_app(cfg: Config, *, db: Database | None = None,
               notify_fastpath: Callable[[str, bytes], None] | None = None,
               metrics: Metrics | None = None) -> Flask:
    app = Flask(__name__)
    app.json = OoniJSONProvider(app)
    cap = cfg.get_int("MAX_BODY_SIZE", DEFAULT_MAX_BODY)
    app.config[CAP_KEY] = cap
    # One byte over the cap, so that a chunked body cut at the limit is seen
    # as over it (ooniapi.core.body) rather than taken as complete.
    app.config["MAX_CONTENT_LENGTH"] = cap + 1
    app.url_map.strict_slashes = False

    metrics = metrics or metrics_from_config(cfg, "ooni-api")
    if notify_fastpath is None:
        from ooniapi.core.fastpath_notify import HttpNotifier
        notify_fastpath = HttpNotifier(cfg.get_str("FASTPATH_URL", "http://127.0.0.1:8472"),
                                       metrics=metrics,
                                       warn_every=cfg.get_float("FASTPATH_NOTIFY_WARN_EVERY", 60))
    svc = Services(
        cfg=cfg,
        spool=Spool(cfg.spool_dir),
        metrics=metrics,
        notify_fastpath=notify_fastpath,
        _db=db,
    )
    app.extensions["ooni"] = svc

    # First, so that its timer wraps every other hook of the request.
    ratelimit.init_app(app)

    for name in BLUEPRINTS:
        mod = importlib.import_module(name)
        app.register_blueprint(mod.bp)
        init = getattr(mod, "init_app", None)
        if init is not None:
            init(app)

    register_error_handlers(app)
    openapi.init_app(app, BLUEPRINTS)

    @app.after_request
    def _cors(resp):
        if request.method == "OPTIONS" and request.url_rule is not None and \
                auth.is_credentialed_view(app.view_functions.get(request.url_rule.endpoint)):
            auth.add_credentialed_cors(resp)
        # Auth-aware routes set their own, origin-restricted, header
        # (ooniapi.core.auth sets g.cors_credentialed; no "*" for them).
        if not g.get("cors_credentialed"):
            resp.headers.setdefault("Access-Control-Allow-Origin", "*")
        if request.method == "OPTIONS":
            resp.headers.setdefault("Access-Control-Allow-Headers", "Authorization, Content-Type")
            resp.headers.setdefault("Access-Control-Allow-Methods",
                                    "GET, HEAD, POST, PUT, DELETE, OPTIONS")
        return resp

    return app


def _wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES) or request.path == "/api"


def _close_if_body(resp):
    """An error answer to a request with a body may leave that body unread
    (refused early, cut, stalled): close the connection rather than have
    the server wait to read the rest before the next request."""
    if request.content_length or request.headers.get("Transfer-Encoding"):
        resp.headers["Connection"] = "close"
    return resp


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(e: ApiError):
        return _close_if_body(json_response(e.body(), e.status, nocache=True))

    @app.errorhandler(QueryTimeout)
    def _db_timeout(e: QueryTimeout):
        log.warning("database timeout on %s: %s", request.path, one_line(e))
        return json_response({"error": "Database query timeout"}, 504, nocache=True)

    @app.errorhandler(DatabaseError)
    def _db_error(e: DatabaseError):
        # The driver's text carries the server's stack trace: one line for
        # the operator, the whole of it at DEBUG.
        log.error("database error on %s: %s", request.path, one_line(e))
        log.debug("database error on %s", request.path, exc_info=e)
        return json_response({"error": "Database query error"}, 500, nocache=True)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        if not _wants_json() and e.code == 404:
            return e
        msg = e.description if e.code not in (404, 405) else e.name
        if e.code == 413:
            msg = f"Request body too large (limit {app.config[CAP_KEY]} bytes)"
        resp = _close_if_body(json_response({"error": msg}, e.code or 500, nocache=True))
        if e.code == 405 and hasattr(e, "valid_methods") and e.valid_methods:
            resp.headers["Allow"] = ", ".join(e.valid_methods)
        return resp

    @app.errorhandler(Exception)
    def _unhandled(e: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response({"error": "Internal server error"}, 500, nocache=True)
