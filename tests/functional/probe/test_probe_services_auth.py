"""require_role / optional_session as other blueprints use them."""
import datetime as dt

import pytest
from flask import Blueprint

from ooniapi.core import auth
from ooniapi.core.errors import BadRequest
from ooniapi.core.http import json_response


@pytest.fixture
def role_app(app):
    bp = Blueprint("roletest", __name__)

    @bp.route("/api/_/roletest")
    @auth.require_role("admin")
    def admin_only():
        return json_response({"account": auth.current_session().account_id})

    @bp.route("/api/_/roletest_user")
    @auth.require_role("user", "admin")
    def user_route():
        raise BadRequest("nope")

    @bp.route("/api/_/roletest_opt")
    @auth.optional_session
    def opt():
        s = auth.current_session()
        return json_response({"role": s.role if s else None})

    app.register_blueprint(bp)
    return app


def _tok(cfg, role, account="a" * 32, now=None):
    return {"Authorization": "Bearer " + auth.session_token(cfg, account, role, now=now)}


def test_admin_route(role_app, cfg):
    c = role_app.test_client()
    r = c.get("/api/_/roletest", headers=_tok(cfg, "admin"))
    assert r.status_code == 200
    assert r.get_json() == {"account": "a" * 32}
    assert "no-cache" in r.headers["Cache-Control"]
    assert "Access-Control-Allow-Origin" not in r.headers


def test_admin_route_refuses(role_app, cfg):
    c = role_app.test_client()
    r = c.get("/api/_/roletest")
    assert (r.status_code, r.get_json()) == (401, {"error": "Authentication required"})
    r = c.get("/api/_/roletest", headers=_tok(cfg, "user"))
    assert (r.status_code, r.get_json()) == (401, {"error": "Role not authorized"})
    r = c.get("/api/_/roletest", headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 401
    old = _tok(cfg, "admin", now=dt.datetime(2012, 1, 1))
    assert c.get("/api/_/roletest", headers=old).status_code == 401


def test_errors_in_protected_route_keep_cors_and_nocache(role_app, cfg):
    c = role_app.test_client()
    r = c.get("/api/_/roletest_user", headers={**_tok(cfg, "user"),
                                               "Origin": "https://explorer.ooni.org"})
    assert r.status_code == 400 and r.get_json() == {"error": "nope"}
    assert r.headers["Access-Control-Allow-Origin"] == "https://explorer.ooni.org"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert "no-cache" in r.headers["Cache-Control"]


def test_session_expunge(role_app, cfg, db):
    c = role_app.test_client()
    hdr = _tok(cfg, "admin", now=dt.datetime.utcnow() - dt.timedelta(hours=1))
    assert c.get("/api/_/roletest", headers=hdr).status_code == 200
    db.insert("session_expunge", ["account_id", "threshold"],
              [["a" * 32, dt.datetime.utcnow().replace(microsecond=0)]])
    r = c.get("/api/_/roletest", headers=hdr)
    assert (r.status_code, r.get_json()) == (401, {"error": "Authentication token expired"})
    # optional session ignores the expunged token instead of failing
    r = c.get("/api/_/roletest_opt", headers=hdr)
    assert r.get_json() == {"role": None}


def test_optional_session(role_app, cfg):
    c = role_app.test_client()
    assert c.get("/api/_/roletest_opt").get_json() == {"role": None}
    assert c.get("/api/_/roletest_opt", headers=_tok(cfg, "user")).get_json() == {"role": "user"}
