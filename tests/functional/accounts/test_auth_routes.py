"""Auth routes (api.md §9, §14): the e-mail login flow through a loopback
SMTP sink, token errors, roles and session expunge."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from tests.conftest import free_port
from tests.functional.smtp_sink import SmtpSink

from ooniapi.core import auth

EMAIL = "Nick@Example.org"
REDIRECT = "https://explorer.ooni.org/country/IT"
ALLOWED_ORIGIN = "https://explorer.ooni.org"
JWT_KEY = "jwt-test-key-of-at-least-32-bytes"


@pytest.fixture
def sink():
    with SmtpSink() as s:
        yield s


@pytest.fixture
def cfg(cfg, sink):
    return cfg.with_overrides(MAIL_SERVER="127.0.0.1", MAIL_PORT=str(sink.port),
                              MAIL_USE_SSL="false", MAIL_SOURCE_ADDRESS="contact@ooni.org",
                              JWT_ENCRYPTION_KEY=JWT_KEY,
                              ACCOUNT_ID_HASHING_KEY="account-test-key")


def admin_hdr(cfg, email="admin@example.org", **kw):
    aid = auth.account_id(cfg, email)
    return {"Authorization": "Bearer " + auth.session_token(cfg, aid, "admin", **kw)}


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + tok}


def register(client, email=EMAIL, redirect_to=REDIRECT, **kw):
    return client.post("/api/v1/user_register",
                       json={"email_address": email, "redirect_to": redirect_to}, **kw)


def link_token(sink, n=-1) -> str:
    msg = sink.messages[n].message
    url = re.search(r"https://\S+", msg.get_body(("plain",)).get_content()).group(0)
    u = urlsplit(url)
    assert (u.scheme, u.netloc, u.path) == ("https", "explorer.ooni.org", "/login")
    return parse_qs(u.query)["token"][0]


def login(client, sink, email=EMAIL) -> str:
    assert register(client, email).status_code == 200
    r = client.get("/api/v1/user_login", query_string={"k": link_token(sink)})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["bearer"]


def test_account_id_is_keyed_blake2b_of_the_normalised_address(cfg):
    want = hashlib.blake2b(b"nick@example.org", key=b"account-test-key", digest_size=16).hexdigest()
    assert auth.account_id(cfg, "  Nick@Example.ORG ") == want
    other = cfg.with_overrides(ACCOUNT_ID_HASHING_KEY="production-key")
    assert auth.account_id(other, "nick@example.org") != want


def test_login_flow(client, sink, cfg):
    r = register(client)
    assert (r.status_code, r.get_json()) == (200, {"msg": "ok"})
    assert "no-cache" in r.headers["Cache-Control"]
    [got] = sink.messages
    assert got.rcpt_to == ["nick@example.org"]
    assert got.message["Subject"] == "OONI Account activation"
    assert got.message["From"] == "contact@ooni.org"
    assert got.message.get_body(("html",)) is not None
    token = link_token(sink)
    claims = jwt.decode(token, JWT_KEY, algorithms=["HS256"], audience="register")
    assert claims["exp"] - claims["nbf"] == 86400
    assert claims["account_id"] == auth.account_id(cfg, EMAIL)

    r = client.get("/api/v1/user_login", query_string={"k": token})
    assert r.status_code == 200
    body = r.get_json()
    assert body["redirect_to"] == REDIRECT and body["email_address"] == "nick@example.org"
    assert "no-cache" in r.headers["Cache-Control"]
    sess = jwt.decode(body["bearer"], JWT_KEY, algorithms=["HS256"], audience="user_auth")
    assert sess["role"] == "user" and sess["account_id"] == claims["account_id"]
    assert sess["exp"] - sess["iat"] == 2 * 86400

    # The link works on several devices.
    assert client.get("/api/v1/user_login", query_string={"k": token}).status_code == 200

    r = client.get("/api/_/account_metadata", headers=bearer(body["bearer"]))
    assert (r.status_code, r.get_json()) == (200, {"logged_in": True, "role": "user"})
    assert "no-cache" in r.headers["Cache-Control"]

    r = client.get("/api/v1/user_refresh_token", headers=bearer(body["bearer"]))
    assert r.status_code == 200
    new = jwt.decode(r.get_json()["bearer"], JWT_KEY, algorithms=["HS256"],
                     audience="user_auth")
    assert (new["account_id"], new["role"], new["login_time"]) == \
        (sess["account_id"], "user", sess["login_time"])


def test_form_body_is_accepted(client, sink):
    r = client.post("/api/v1/user_register",
                    data={"email_address": "nick@example.org", "redirect_to": REDIRECT})
    assert (r.status_code, r.get_json()) == (200, {"msg": "ok"})
    assert len(sink.messages) == 1


def test_account_metadata_without_a_valid_session(client, cfg):
    for hdr in ({}, bearer("garbage"), bearer(auth.probe_client_id(cfg)),
                bearer(auth.session_token(cfg, "a" * 32, "user", now=dt.datetime(2012, 1, 1)))):
        r = client.get("/api/_/account_metadata", headers=hdr)
        assert (r.status_code, r.get_json()) == (401, {"logged_in": False})
        assert "no-cache" in r.headers["Cache-Control"]


@pytest.mark.parametrize("email,error", [
    ("", "Invalid request"),
    (None, "Invalid request"),
    ("   ", "Invalid request"),
    (123, "Invalid request"),
    ("nick@localhost", "Invalid email address"),
    ("nick", "Invalid email address"),
    ("nick@@example.org", "Invalid email address"),
    ("ni ck@example.org", "Invalid email address"),
    ("nick@exa_mple.org", "Invalid email address"),
    ("niñ@example.org", "Invalid email address"),
    ("nick@example.org\nBcc: victim@example.org", "Invalid email address"),
    ("nick@example.org>, <victim@example.org", "Invalid email address"),
])
def test_bad_email(client, sink, email, error):
    r = register(client, email)
    assert (r.status_code, r.get_json()) == (400, {"error": error})
    assert sink.messages == []


@pytest.mark.parametrize("redirect_to", [
    None, "", 42, "explorer.ooni.org",
    "http://explorer.ooni.org/",
    "https://evil.example.org/",
    "https://explorer.ooni.org.evil.example.org/",
    "https://explorer.ooni.org:8443/",
    "https://user@explorer.ooni.org/",
    "https://evil.example.org\\@explorer.ooni.org/",
    "javascript:alert(1)//explorer.ooni.org",
    "https://[::1/",
])
def test_disallowed_redirect(client, sink, redirect_to):
    r = register(client, redirect_to=redirect_to)
    assert (r.status_code, r.get_json()) == (400, {"error": "Invalid request"})
    assert sink.messages == []


@pytest.mark.parametrize("redirect_to", [
    "https://run.ooni.org/", "https://test-lists.test.ooni.org/x?y=1", "https://run-v2.ooni.org",
])
def test_allowed_redirects(client, sink, redirect_to):
    assert register(client, redirect_to=redirect_to).status_code == 200
    host = urlsplit(redirect_to).netloc
    text = sink.messages[-1].message.get_body(("plain",)).get_content()
    assert f"https://{host}/login?token=" in text


def test_redirect_hosts_are_configurable(app, client, sink, cfg):
    app.extensions["ooni"].cfg = cfg.with_overrides(LOGIN_REDIRECT_HOSTS="ui.example.net")
    assert register(client, redirect_to="https://ui.example.net/").status_code == 200
    assert register(client, redirect_to=REDIRECT).status_code == 400


def test_invalid_json_body(client, sink):
    for data in ("[1, 2]", "{", '"x"'):
        r = client.post("/api/v1/user_register", data=data, content_type="application/json")
        assert (r.status_code, r.get_json()) == (400, {"error": "Invalid request"})
    assert sink.messages == []


def _raw(claims, key=JWT_KEY):
    return jwt.encode(claims, key, algorithm="HS256")


def test_login_token_errors(client, cfg):
    now = int(dt.datetime.now(dt.timezone.utc).timestamp())
    good = {"nbf": now, "exp": now + 3600, "aud": "register", "account_id": "a" * 32,
            "email_address": "nick@example.org", "redirect_to": REDIRECT}
    two_days_ago = dt.datetime.utcnow() - dt.timedelta(days=2)
    cases = [
        (None, "Invalid credentials"),
        ("", "Invalid credentials"),
        ("garbage", "Invalid credentials"),
        ("a.b.c", "Invalid credentials"),
        (_raw(good, key="another-key-of-at-least-32-bytes!"), "Invalid credential signature"),
        (auth.registration_token(cfg, "nick@example.org", REDIRECT, now=two_days_ago),
         "Expired token"),
        (_raw({**good, "nbf": now + 3600}), "Invalid credentials"),
        (auth.session_token(cfg, "a" * 32, "admin"), "Invalid credentials"),
        (auth.probe_client_id(cfg), "Invalid credentials"),
        (_raw({k: v for k, v in good.items() if k != "aud"}), "Invalid token type"),
        (_raw({k: v for k, v in good.items() if k != "email_address"}), "Invalid token type"),
        (_raw({k: v for k, v in good.items() if k != "exp"}), "Invalid token type"),
        (_raw({**good, "account_id": 5}), "Invalid token type"),
    ]
    for token, error in cases:
        qs = {} if token is None else {"k": token}
        r = client.get("/api/v1/user_login", query_string=qs,
                       headers={"Origin": ALLOWED_ORIGIN})
        assert (r.status_code, r.get_json()) == (401, {"error": error}), token
        assert "no-cache" in r.headers["Cache-Control"]
        assert r.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    r = client.get("/api/v1/user_login", query_string={"k": _raw(good)})
    assert r.status_code == 200


def test_cors_of_auth_routes(client, sink):
    r = register(client, headers={"Origin": ALLOWED_ORIGIN})
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    r = register(client, email="", headers={"Origin": ALLOWED_ORIGIN})
    assert r.status_code == 400
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    for path in ("/api/v1/user_register", "/api/_/account_metadata"):
        r = client.open(path, method="OPTIONS", headers={
            "Origin": "https://run.test.ooni.org", "Access-Control-Request-Method": "POST"})
        assert r.status_code == 200
        assert r.headers["Access-Control-Allow-Origin"] == "https://run.test.ooni.org"
        assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    r = client.get("/api/_/account_metadata", headers={"Origin": "https://evil.example.org"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = register(client, headers={"Origin": "https://ooni.org.evil.example.org"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_smtp_down(app, client, sink, cfg, caplog):
    app.extensions["ooni"].cfg = cfg.with_overrides(MAIL_PORT=str(free_port()))
    with caplog.at_level(logging.ERROR, logger="ooni-api"):
        r = register(client)
    assert (r.status_code, r.get_json()) == (400, {"error": "Unable to send the email"})
    assert r.mimetype == "application/json"
    assert "not sent" in caplog.text
    # The address never reaches the logs (api.md §14).
    assert "nick@example.org" not in caplog.text.lower()


def test_smtp_refuses_recipient(client, sink):
    sink.state.rcpt_reply = "550 no such user"
    r = register(client)
    assert (r.status_code, r.get_json()) == (400, {"error": "Unable to send the email"})


def test_smtp_login(app, client, sink, cfg):
    sink.state.credentials = ("ooni-api", "pw")
    app.extensions["ooni"].cfg = cfg.with_overrides(MAIL_USERNAME="ooni-api", MAIL_PASSWORD="pw")
    assert register(client).status_code == 200
    assert sink.messages[0].auth == ("ooni-api", "pw")
    app.extensions["ooni"].cfg = cfg.with_overrides(MAIL_USERNAME="ooni-api", MAIL_PASSWORD="no")
    assert register(client).status_code == 400


def test_admin_routes_need_admin(client, cfg):
    user = bearer(auth.session_token(cfg, "b" * 32, "user"))
    calls = [
        ("post", "/api/v1/set_account_role", {"email_address": EMAIL, "role": "admin"}),
        ("get", "/api/v1/get_account_role/nick@example.org", None),
        ("post", "/api/v1/set_session_expunge", {"email_address": EMAIL}),
    ]
    for method, path, body in calls:
        r = getattr(client, method)(path, json=body)
        assert (r.status_code, r.get_json()) == (401, {"error": "Authentication required"})
        r = getattr(client, method)(path, json=body, headers=user)
        assert (r.status_code, r.get_json()) == (401, {"error": "Role not authorized"})
        assert "no-cache" in r.headers["Cache-Control"]
    r = client.get("/api/v1/user_refresh_token")
    assert (r.status_code, r.get_json()) == (401, {"error": "Authentication required"})


def test_account_role_validation(client, cfg):
    adm = admin_hdr(cfg)
    r = client.post("/api/v1/set_account_role", json={"email_address": "x@localhost",
                                                      "role": "admin"}, headers=adm)
    assert (r.status_code, r.get_json()) == (400, {"error": "Invalid email address"})
    for role in ("root", "", None, 1):
        r = client.post("/api/v1/set_account_role", json={"email_address": EMAIL, "role": role},
                        headers=adm)
        assert (r.status_code, r.get_json()) == (400, {"error": "Invalid role"})
    r = client.get("/api/v1/get_account_role/nick@example.org", headers=adm)
    assert (r.status_code, r.get_json()) == (400, {"error": "Account not found"})
    r = client.get("/api/v1/get_account_role/not-an-address", headers=adm)
    assert (r.status_code, r.get_json()) == (400, {"error": "Invalid email address"})
    r = client.post("/api/v1/set_session_expunge", json={"email_address": "nope"}, headers=adm)
    assert (r.status_code, r.get_json()) == (400, {"error": "Invalid email address"})
    r = client.post("/api/v1/set_account_role", data="[", content_type="application/json",
                    headers=adm)
    assert r.status_code == 400


def test_role_change_applies_at_next_request(client, sink, cfg, db):
    adm = admin_hdr(cfg)
    old = login(client, sink)
    r = client.post("/api/v1/set_account_role",
                    data={"email_address": " NICK@example.org ", "role": " Admin "}, headers=adm)
    assert (r.status_code, r.get_json()) == (200, {})
    r = client.get("/api/v1/get_account_role/nick@example.org", headers=adm)
    assert (r.status_code, r.get_json()) == (200, {"role": "admin"})
    rows = db.query("SELECT account_id, role FROM accounts")
    assert rows == [{"account_id": auth.account_id(cfg, EMAIL), "role": "admin"}]

    # The stored role wins over the token's (issue 16): the session made
    # as a user is an admin from its next request...
    meta = client.get("/api/_/account_metadata", headers=bearer(old)).get_json()
    assert meta == {"logged_in": True, "role": "admin"}
    r = client.post("/api/v1/set_session_expunge", json={"email_address": "x@example.org"},
                    headers=bearer(old))
    assert (r.status_code, r.get_json()) == (200, {})
    # ...and so is the next login.
    new = login(client, sink)
    meta = client.get("/api/_/account_metadata", headers=bearer(new)).get_json()
    assert meta == {"logged_in": True, "role": "admin"}
    r = client.get("/api/v1/get_account_role/nick@example.org", headers=bearer(new))
    assert r.get_json() == {"role": "admin"}

    # Downgrade: an upsert, not a second row.
    client.post("/api/v1/set_account_role", json={"email_address": EMAIL, "role": "user"},
                headers=adm)
    assert db.query("SELECT role FROM accounts") == [{"role": "user"}]
    assert client.get("/api/_/account_metadata",
                      headers=bearer(login(client, sink))).get_json()["role"] == "user"


def test_session_expunge(client, sink, cfg, db):
    adm = admin_hdr(cfg)
    aid = auth.account_id(cfg, EMAIL)
    hour_ago = dt.datetime.utcnow() - dt.timedelta(hours=1)
    old = auth.session_token(cfg, aid, "admin", now=hour_ago)
    other = auth.session_token(cfg, auth.account_id(cfg, "other@example.org"), "admin",
                               now=hour_ago)
    assert client.get("/api/v1/user_refresh_token", headers=bearer(old)).status_code == 200

    r = client.post("/api/v1/set_session_expunge", data={"email_address": EMAIL}, headers=adm)
    assert (r.status_code, r.get_json()) == (200, {})
    [row] = db.query("SELECT account_id, threshold FROM session_expunge")
    assert row["account_id"] == aid
    assert abs(row["threshold"] - dt.datetime.utcnow()) < dt.timedelta(minutes=5)

    for path in ("/api/v1/user_refresh_token", "/api/v1/get_account_role/x@example.org"):
        r = client.get(path, headers=bearer(old))
        assert (r.status_code, r.get_json()) == (401, {"error": "Authentication token expired"})
    r = client.get("/api/_/account_metadata", headers=bearer(old))
    assert (r.status_code, r.get_json()) == (401, {"logged_in": False})
    # Other accounts keep their sessions.
    assert client.get("/api/v1/user_refresh_token", headers=bearer(other)).status_code == 200
    # A new login after the expunge works.
    new = login(client, sink)
    assert client.get("/api/v1/user_refresh_token", headers=bearer(new)).status_code == 200


def test_refresh_never_extends_the_login(client, cfg):
    login_time = dt.datetime.utcnow() - dt.timedelta(days=6, hours=12)
    lt = int(login_time.replace(tzinfo=dt.timezone.utc).timestamp())
    tok = auth.session_token(cfg, "c" * 32, "user", login_time=lt,
                             now=login_time + dt.timedelta(days=6))
    r = client.get("/api/v1/user_refresh_token", headers=bearer(tok))
    assert r.status_code == 200
    claims = jwt.decode(r.get_json()["bearer"], JWT_KEY, algorithms=["HS256"],
                        audience="user_auth")
    assert claims["login_time"] == lt
    assert claims["exp"] == lt + 7 * 86400


def test_account_admin_cli_makes_the_first_admin(tmp_path, client, sink, cfg, db, capsys):
    from ooniapi.accounts.admin_cli import main
    conf = tmp_path / "backend.toml"
    conf.write_text(f'[database]\nCLICKHOUSE_URL = "{db.url}"\n'
                    f'[api]\nACCOUNT_ID_HASHING_KEY = "account-test-key"\n')
    aid = auth.account_id(cfg, EMAIL)
    assert main(["--config", str(conf), "get-role", EMAIL]) == 1
    assert main(["--config", str(conf), "set-role", EMAIL, "admin"]) == 0
    assert capsys.readouterr().out.split() == [aid, "admin"]
    assert main(["--config", str(conf), "get-role", "nick@example.org"]) == 0
    assert capsys.readouterr().out.split() == [aid, "admin"]
    assert main(["--config", str(conf), "set-role", "nick@localhost", "admin"]) == 2

    tok = login(client, sink)
    assert client.get("/api/_/account_metadata", headers=bearer(tok)).get_json() == \
        {"logged_in": True, "role": "admin"}
    old = auth.session_token(cfg, aid, "admin", now=dt.datetime.utcnow() - dt.timedelta(hours=1))
    assert main(["--config", str(conf), "expunge", EMAIL]) == 0
    r = client.get("/api/v1/user_refresh_token", headers=bearer(old))
    assert r.get_json() == {"error": "Authentication token expired"}
