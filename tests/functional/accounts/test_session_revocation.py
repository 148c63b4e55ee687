"""Issue 16, defect 2: a session expunge and a role change hold at the next
request, to the millisecond, refresh included; role changes can be made
conditional (defect 3) and the loser of a race is told with a 409."""
from __future__ import annotations

import datetime as dt
import threading

import jwt
import pytest

from ooniapi.accounts import store as accounts_store
from ooniapi.core import auth

JWT_KEY = "jwt-test-key-of-at-least-32-bytes"
VICTIM = "victim@example.org"


@pytest.fixture
def cfg(cfg):
    return cfg.with_overrides(JWT_ENCRYPTION_KEY=JWT_KEY,
                              ACCOUNT_ID_HASHING_KEY="account-test-key")


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + tok}


def admin_hdr(cfg, email="boss@example.org"):
    return bearer(auth.session_token(cfg, auth.account_id(cfg, email), "admin"))


def refresh(client, tok):
    return client.get("/api/v1/user_refresh_token", headers=bearer(tok))


def test_token_of_the_expunge_millisecond_is_refused(client, cfg, db):
    aid = auth.account_id(cfg, VICTIM)
    # Late in a second, so that a whole-second threshold would let it pass.
    t = dt.datetime.utcnow().replace(microsecond=987_654)
    same_ms = auth.session_token(cfg, aid, "admin", now=t)
    next_ms = auth.session_token(cfg, aid, "admin", now=t + dt.timedelta(milliseconds=1))
    accounts_store.expunge_sessions(db, aid, now=t)

    for path in ("/api/v1/user_refresh_token", "/api/v1/get_account_role/x@example.org"):
        r = client.get(path, headers=bearer(same_ms))
        assert (r.status_code, r.get_json()) == (401, {"error": "Authentication token expired"})
    r = client.get("/api/_/account_metadata", headers=bearer(same_ms))
    assert (r.status_code, r.get_json()) == (401, {"logged_in": False})
    # One millisecond later is a new session.
    assert refresh(client, next_ms).status_code == 200


def test_token_issued_earlier_in_the_expunge_second_is_refused(client, cfg, db):
    aid = auth.account_id(cfg, VICTIM)
    t = dt.datetime.utcnow().replace(microsecond=100_000)
    tok = auth.session_token(cfg, aid, "admin", now=t)
    accounts_store.expunge_sessions(db, aid, now=t + dt.timedelta(milliseconds=800))
    assert refresh(client, tok).status_code == 401


def test_token_without_ms_claim_is_refused_in_the_expunge_second(client, cfg, db):
    """A token made before iat_ms existed (or by another issuer) counts as
    issued at the start of its second."""
    aid = auth.account_id(cfg, VICTIM)
    t = dt.datetime.utcnow().replace(microsecond=0)
    ts = int(t.replace(tzinfo=dt.timezone.utc).timestamp())
    tok = jwt.encode({"nbf": ts, "iat": ts, "exp": ts + 3600, "aud": "user_auth",
                      "account_id": aid, "login_time": ts, "role": "admin"},
                     JWT_KEY, algorithm="HS256")
    assert refresh(client, tok).status_code == 200
    accounts_store.expunge_sessions(db, aid, now=t + dt.timedelta(milliseconds=999))
    assert refresh(client, tok).status_code == 401


def test_refresh_after_expunge_is_refused_and_refreshed_tokens_die_too(client, cfg, db):
    aid = auth.account_id(cfg, VICTIM)
    tok = auth.session_token(cfg, aid, "admin")
    r = refresh(client, tok)
    assert r.status_code == 200
    refreshed = r.get_json()["bearer"]
    # The expunge goes through the route, right after the refresh.
    r = client.post("/api/v1/set_session_expunge", json={"email_address": VICTIM},
                    headers=admin_hdr(cfg))
    assert r.status_code == 200
    for t in (tok, refreshed):
        r = refresh(client, t)
        assert (r.status_code, r.get_json()) == (401, {"error": "Authentication token expired"})


def test_expunge_stores_milliseconds(client, cfg, db):
    aid = auth.account_id(cfg, VICTIM)
    t = dt.datetime(2026, 3, 4, 5, 6, 7, 891_234)
    accounts_store.expunge_sessions(db, aid, now=t)
    [row] = db.query("SELECT account_id, threshold_ms FROM session_revocation")
    assert row == {"account_id": aid, "threshold_ms": auth.epoch_ms(t)}
    assert auth.epoch_ms(t) % 1000 == 891
    [row] = db.query("SELECT threshold FROM session_expunge")
    assert row["threshold"] == t.replace(microsecond=0)


def test_demotion_applies_at_the_next_request_and_to_refresh(client, cfg, db):
    adm = admin_hdr(cfg)
    aid = auth.account_id(cfg, VICTIM)
    accounts_store.set_role(db, aid, "admin")
    tok = auth.session_token(cfg, aid, "admin")
    assert client.get("/api/v1/get_account_role/x@example.org",
                      headers=bearer(tok)).get_json() == {"error": "Account not found"}

    r = client.post("/api/v1/set_account_role", json={"email_address": VICTIM, "role": "user"},
                    headers=adm)
    assert r.status_code == 200
    r = client.get("/api/v1/get_account_role/x@example.org", headers=bearer(tok))
    assert (r.status_code, r.get_json()) == (401, {"error": "Role not authorized"})
    assert client.get("/api/_/account_metadata", headers=bearer(tok)).get_json() == \
        {"logged_in": True, "role": "user"}
    # A refresh hands out the current role, not the token's.
    r = refresh(client, tok)
    assert r.status_code == 200
    claims = jwt.decode(r.get_json()["bearer"], JWT_KEY, algorithms=["HS256"],
                        audience="user_auth")
    assert claims["role"] == "user"


def test_conditional_role_change(client, cfg, db):
    adm = admin_hdr(cfg)
    body = {"email_address": VICTIM, "role": "admin", "current_role": "admin"}
    r = client.post("/api/v1/set_account_role", json=body, headers=adm)
    assert (r.status_code, r.get_json()) == (409, {"error": "current_role: the role is now user"})
    assert db.query("SELECT role FROM accounts") == []
    body["current_role"] = "user"
    assert client.post("/api/v1/set_account_role", json=body, headers=adm).status_code == 200
    assert db.query("SELECT role FROM accounts") == [{"role": "admin"}]
    r = client.post("/api/v1/set_account_role", json=dict(body, current_role="boss"),
                    headers=adm)
    assert (r.status_code, r.get_json()) == (400, {"error": "Invalid current_role"})


def test_concurrent_conditional_role_changes_have_one_winner(app, cfg, db):
    """Two admins change the same account away from the role they both saw:
    one 200, one 409. 50 runs."""
    adm = admin_hdr(cfg)
    aid = auth.account_id(cfg, VICTIM)
    for run in range(50):
        seen, target = ("user", "admin") if run % 2 == 0 else ("admin", "user")
        accounts_store.set_role(db, aid, seen)
        answers: list[int] = []
        barrier = threading.Barrier(2)

        def change():
            c = app.test_client()
            barrier.wait()
            r = c.post("/api/v1/set_account_role", headers=adm,
                       json={"email_address": VICTIM, "role": target, "current_role": seen})
            answers.append(r.status_code)

        threads = [threading.Thread(target=change) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(answers) == [200, 409], (run, answers)
        assert accounts_store.get_role(db, aid) == target, run
