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
from ooni_common.metrics import Metrics, from_config as metrics_from_config
from ooni_common.spool import Spool

from ooniapi.core import auth

from ooniapi.core import openapi

from ooniapi.core import ratelimit
from ooniapi.core.context import Services
from ooniapi.core.errors import ApiError
from ooniapi.core.http import OoniJSONProvider, json_response

log = logging.getLogger("ooni-api")

# One module per API area, each exposing a Blueprint named ``bp``.
BLUEPRINTS = [
    "ooniapi.pages.routes",
    "ooniapi.accounts.quotas_routes",
    "ooniapi.aggregation.routes",
    "ooniapi.probe.collector_routes",
    "ooniapi.measurements.routes",
    "ooniapi.measurements.export_routes",
    "ooniapi.measurements.feed_routes",
    "ooniapi.probe.routes",
    "ooniapi.prioritization.routes",
    "ooniapi.oonirun.routes",
    "ooniapi.explorer.routes",
    "ooniapi.findings.routes",
    "ooniapi.accounts.routes",
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
    app.config["MAX_CONTENT_LENGTH"] = cfg.get_int("MAX_BODY_SIZE", DEFAULT_MAX_BODY)
    app.url_map.strict_slashes = False

    if notify_fastpath is None:
        from ooniapi.core.fastpath_notify import HttpNotifier
        notify_fastpath = HttpNotifier(cfg.get_str("FASTPATH_URL", "http://127.0.0.1:8472"))
    svc = Services(
        cfg=cfg,
        spool=Spool(cfg.spool_dir),
        metrics=metrics or metrics_from_config(cfg, "ooni-api"),
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
    openapi.init_app(app)

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


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(e: ApiError):
        return json_response(e.body(), e.status, nocache=True)

    @app.errorhandler(QueryTimeout)
    def _db_timeout(e: QueryTimeout):
        log.warning("database timeout on %s: %s", request.path, e)
        return json_response({"error": "Database query timeout"}, 504, nocache=True)

    @app.errorhandler(DatabaseError)
    def _db_error(e: DatabaseError):
        log.error("database error on %s: %s", request.path, e)
        return json_response({"error": "Database query error"}, 500, nocache=True)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        if not _wants_json() and e.code == 404:
            return e
        msg = e.description if e.code not in (404, 405) else e.name
        if e.code == 413:
            msg = f"Request body too large (limit {app.config['MAX_CONTENT_LENGTH']} bytes)"
        resp = json_response({"error": msg}, e.code or 500, nocache=True)
        if e.code == 405 and hasattr(e, "valid_methods") and e.valid_methods:
            resp.headers["Allow"] = ", ".join(e.valid_methods)
        return resp

    @app.errorhandler(Exception)
    def _unhandled(e: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response({"error": "Internal server error"}, 500, nocache=True)
