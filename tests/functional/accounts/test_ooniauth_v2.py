"""ooniauth v2 (docs/auth.md): the login mail through a loopback SMTP sink,
the login token exchanged for a session token, refresh, "who am I", and
v1/v2 tokens accepted alike."""
from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from ooni_common.timeutil import utcnow
from ooniapi.accounts import store as accounts_store
from ooniapi.core import auth
from tests.conftest import free_port
from tests.functional.smtp_sink import SmtpSink

JWT_KEY = "jwt-test-key-of-at-least-32-bytes"
EMAIL = "Nick@Example.org"
REDIRECT = "https://run.ooni.org/"


@pytest.fixture
def sink():
    with SmtpSink() as s:
        yield s


@pytest.fixture
def cfg(cfg, sink):
    return cfg.with_overrides(MAIL_SERVER="127.0.0.1", MAIL_PORT=str(sink.port),
                              MAIL_USE_SSL="false", MAIL_SOURCE_ADDRESS="contact@ooni.org",
                              JWT_ENCRYPTION_KEY=JWT_KEY,
                              ACCOUNT_ID_HASHING_KEY="account-test-key",
                              ADMIN_EMAILS="boss@example.org, Chief@Example.org")


def request_login(client, email=EMAIL, redirect_to=REDIRECT):
    return client.post("/api/v2/ooniauth/user-login",
                       json={"email_address": email, "redirect_to": redirect_to})


def mailed_token(sink) -> str:
    msg = sink.messages[-1].message
    url = re.search(r"https://\S+", msg.get_body(("plain",)).get_content()).group(0)
    u = urlsplit(url)
    assert (u.scheme, u.netloc, u.path) == ("https", "run.ooni.org", "/login")
    return parse_qs(u.query)["token"][0]


def log_in(client, sink, email=EMAIL) -> dict:
    assert request_login(client, email).status_code == 200
    r = client.post("/api/v2/ooniauth/user-session", json={"login_token": mailed_token(sink)})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def bearer(tok):
    return {"Authorization": f"Bearer {tok}"}


def test_login_mail_and_session(client, cfg, sink, db):
    before = utcnow()
    r = request_login(client)
    assert r.status_code == 200, r.get_json()
    assert r.headers["Cache-Control"] == "no-cache, max-age=0"
    j = r.get_json()
    assert j["email_address"] == "nick@example.org"
    exp = dt.datetime.strptime(j["login_token_expiration"], "%Y-%m-%dT%H:%M:%SZ")
    assert before + dt.timedelta(hours=23) < exp <= utcnow() + dt.timedelta(days=1)
    [got] = sink.messages
    assert got.rcpt_to == ["nick@example.org"] and got.mail_from == "contact@ooni.org"

    r = client.post("/api/v2/ooniauth/user-session", json={"login_token": mailed_token(sink)},
                    headers={"Origin": "https://run.ooni.org"})
    assert r.status_code == 200, r.get_json()
    assert r.headers["Access-Control-Allow-Origin"] == "https://run.ooni.org"
    s = r.get_json()
    aid = auth.account_id(cfg, EMAIL)
    assert {k: s[k] for k in ("redirect_to", "email_address", "role", "account_id",
                              "is_logged_in")} == \
        {"redirect_to": REDIRECT, "email_address": "nick@example.org", "role": "user",
         "account_id": aid, "is_logged_in": True}
    claims = jwt.decode(s["session_token"], JWT_KEY, algorithms=["HS256"], audience="user_auth")
    assert (claims["email_address"], claims["role"], claims["account_id"]) == \
        ("nick@example.org", "user", aid)
    assert claims["exp"] - claims["iat"] == 2 * 86400
    assert s["login_time"] == dt.datetime.fromtimestamp(
        claims["login_time"], dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    # who am I
    w = client.get("/api/v2/ooniauth/user-session", headers=bearer(s["session_token"])).get_json()
    assert (w["is_logged_in"], w["email_address"], w["role"], w["session_token"]) == \
        (True, "nick@example.org", "user", "")
    # the v1 routes take the v2 token
    r = client.get("/api/_/account_metadata", headers=bearer(s["session_token"]))
    assert r.get_json() == {"logged_in": True, "role": "user"}
    r = client.get("/api/v1/user_refresh_token", headers=bearer(s["session_token"]))
    assert r.status_code == 200
    assert jwt.decode(r.get_json()["bearer"], JWT_KEY, algorithms=["HS256"],
                      audience="user_auth")["email_address"] == "nick@example.org"


def test_refresh_keeps_the_login_time_and_recomputes_the_role(client, cfg, sink, db):
    old = auth.session_token(cfg, auth.account_id(cfg, EMAIL), "user",
                             now=utcnow() - dt.timedelta(days=1), email_address="nick@example.org")
    old_claims = jwt.decode(old, JWT_KEY, algorithms=["HS256"], audience="user_auth")
    accounts_store.set_role(db, auth.account_id(cfg, EMAIL), "admin")
    r = client.post("/api/v2/ooniauth/user-session", headers=bearer(old))
    assert r.status_code == 200, r.get_json()
    new = jwt.decode(r.get_json()["session_token"], JWT_KEY, algorithms=["HS256"],
                     audience="user_auth")
    assert new["login_time"] == old_claims["login_time"]
    assert new["role"] == r.get_json()["role"] == "admin"
    # LOGIN_EXPIRY_DAYS (7) from the login, not from the refresh
    assert new["exp"] <= old_claims["login_time"] + 7 * 86400
    assert new["iat"] > old_claims["iat"]


def test_admin_emails_from_config(client, cfg, sink, db):
    s = log_in(client, sink, "chief@example.org")
    assert s["role"] == "admin"
    r = client.post("/api/v1/set_session_expunge", headers=bearer(s["session_token"]),
                    json={"email_address": "someone@example.org"})
    assert r.status_code == 200
    assert log_in(client, sink, "Boss@example.org")["role"] == "admin"
    assert log_in(client, sink, "boss2@example.org")["role"] == "user"


def test_v1_token_without_email_is_a_session_too(client, cfg, db):
    tok = auth.session_token(cfg, "f" * 32, "user")
    w = client.get("/api/v2/ooniauth/user-session", headers=bearer(tok)).get_json()
    assert (w["is_logged_in"], w["email_address"], w["account_id"]) == (True, "", "f" * 32)
    r = client.post("/api/v2/ooniauth/user-session", headers=bearer(tok))
    assert r.status_code == 200 and r.get_json()["account_id"] == "f" * 32


def test_no_session(client, cfg, db):
    empty = {"session_token": "", "redirect_to": "", "email_address": "", "role": "",
             "account_id": "", "login_time": None, "is_logged_in": False}
    expired = auth.session_token(cfg, "f" * 32, "user", now=utcnow() - dt.timedelta(days=10),
                                 email_address="x@example.org")
    probe = auth.probe_login(cfg, None).token
    for h in ({}, bearer("garbage"), bearer(expired), bearer(probe), {"Authorization": "x"}):
        r = client.get("/api/v2/ooniauth/user-session", headers=h)
        assert (r.status_code, r.get_json()) == (200, empty)
        r = client.post("/api/v2/ooniauth/user-session", headers=h)
        assert r.status_code == 401 and "error" in r.get_json()


def test_expunged_session_cannot_refresh(client, cfg, sink, db):
    s = log_in(client, sink)
    accounts_store.expunge_sessions(db, auth.account_id(cfg, EMAIL),
                                    now=utcnow() + dt.timedelta(seconds=2))
    r = client.post("/api/v2/ooniauth/user-session", headers=bearer(s["session_token"]))
    assert r.status_code == 401


@pytest.mark.parametrize("token,status", [
    ("garbage", 401),
    ("a.b.c", 401),
])
def test_bad_login_tokens(client, cfg, db, token, status):
    r = client.post("/api/v2/ooniauth/user-session", json={"login_token": token})
    assert r.status_code == status and "error" in r.get_json()


def test_login_token_kinds(client, cfg, sink, db):
    # a session token is not a login token
    sess = auth.session_token(cfg, "f" * 32, "user", email_address="x@example.org")
    r = client.post("/api/v2/ooniauth/user-session", json={"login_token": sess})
    assert r.status_code == 401
    # an expired login link
    old = auth.registration_token(cfg, "nick@example.org", REDIRECT,
                                  now=utcnow() - dt.timedelta(days=2))
    r = client.post("/api/v2/ooniauth/user-session", json={"login_token": old})
    assert (r.status_code, r.get_json()) == (401, {"error": "Expired token"})
    # another key
    other = auth.registration_token(cfg.with_overrides(JWT_ENCRYPTION_KEY="x" * 40),
                                    "nick@example.org", REDIRECT)
    assert client.post("/api/v2/ooniauth/user-session",
                       json={"login_token": other}).status_code == 401


@pytest.mark.parametrize("body,field", [
    ({"redirect_to": REDIRECT}, "email_address"),
    ({"email_address": 5, "redirect_to": REDIRECT}, "email_address"),
    ({"email_address": "nick", "redirect_to": REDIRECT}, "email_address"),
    ({"email_address": "nick@localhost", "redirect_to": REDIRECT}, "email_address"),
    ({"email_address": "a@b.c" + "c" * 260, "redirect_to": REDIRECT}, "email_address"),
    ({"email_address": EMAIL}, "redirect_to"),
    ({"email_address": EMAIL, "redirect_to": ["https://run.ooni.org/"]}, "redirect_to"),
    ({"email_address": EMAIL, "redirect_to": "http://run.ooni.org/"}, "redirect_to"),
    ({"email_address": EMAIL, "redirect_to": "https://evil.example.org/"}, "redirect_to"),
    ({"email_address": EMAIL, "redirect_to": "https://run.ooni.org:8443/"}, "redirect_to"),
])
def test_bad_login_requests(client, sink, db, body, field):
    r = client.post("/api/v2/ooniauth/user-login", json=body)
    assert r.status_code == 400 and field in r.get_json()["error"], r.get_json()
    assert sink.messages == []


@pytest.mark.parametrize("raw", [b"", b"nope", b"[]", b"{" * 3000, b"x" * 20000])
def test_bad_bodies(client, sink, db, raw):
    r = client.post("/api/v2/ooniauth/user-login", data=raw, content_type="application/json")
    assert r.status_code == 400 and "error" in r.get_json()
    assert sink.messages == []
    r = client.post("/api/v2/ooniauth/user-session", data=raw,
                    content_type="application/json")
    if raw:
        assert r.status_code == 400 and "error" in r.get_json()
    r = client.post("/api/v2/ooniauth/user-session", json={"login_token": 12})
    assert r.status_code == 400 and "login_token" in r.get_json()["error"]


def test_mail_server_down(client, cfg, db):
    app_cfg = client.application.extensions["ooni"].cfg
    client.application.extensions["ooni"].cfg = app_cfg.with_overrides(
        MAIL_PORT=str(free_port()), MAIL_TIMEOUT="2")
    r = request_login(client)
    assert (r.status_code, r.get_json()) == (503, {"error": "Unable to send the email"})
