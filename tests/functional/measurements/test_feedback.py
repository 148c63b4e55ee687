"""Measurement feedback (api.md §4.6-4.7)."""
from __future__ import annotations

import pytest

from ooniapi.core.auth import session_token

UID = "20210709005529.664022_MY_webconnectivity_68e5bea1060d1874"


def auth(cfg, account, role="user"):
    return {"Authorization": f"Bearer {session_token(cfg, account, role)}"}


def submit(client, headers, uid=UID, status="ok"):
    return client.post("/api/_/measurement_feedback", headers=headers,
                       json={"measurement_uid": uid, "status": status})


def summary(client, headers=None, uid=UID):
    return client.get(f"/api/_/measurement_feedback/{uid}", headers=headers or {})


def test_submit_and_summary(client, cfg, db):
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    r = submit(client, auth(cfg, a), status=" blocked.dns ")
    assert (r.status_code, r.get_json()) == (200, {})
    assert "no-cache" in r.headers["Cache-Control"] and "max-age=0" in r.headers["Cache-Control"]
    assert submit(client, auth(cfg, b), status="ok").status_code == 200
    assert submit(client, auth(cfg, c, "admin"), status="ok").status_code == 200
    # a second submission replaces the first
    assert submit(client, auth(cfg, a), status="blocked").status_code == 200

    r = summary(client)
    assert r.status_code == 200
    assert r.get_json() == {"summary": {"blocked": 1, "ok": 2}}
    assert r.headers["Cache-Control"] == "max-age=0"
    r = summary(client, auth(cfg, a))
    assert r.get_json() == {"summary": {"blocked": 1, "ok": 2}, "user_feedback": "blocked"}
    assert "no-cache" in r.headers["Cache-Control"]
    # logged in without feedback: no user_feedback key
    assert summary(client, auth(cfg, "d" * 32)).get_json() == {"summary": {"blocked": 1, "ok": 2}}


def test_unknown_uid_and_bad_token(client, cfg, db):
    assert summary(client, uid="nothing-here").get_json() == {"summary": {}}
    # an invalid token on the optional-session route is anonymous, not an error
    r = summary(client, {"Authorization": "Bearer nope"})
    assert (r.status_code, r.get_json()) == (200, {"summary": {}})


def test_submit_requires_user(client, cfg, db):
    r = submit(client, {})
    assert (r.status_code, r.get_json()) == (401, {"error": "Authentication required"})
    r = submit(client, {"Authorization": "Bearer garbage"})
    assert r.status_code == 401
    assert db.execute("SELECT count() FROM msmt_feedback")[0][0] == 0


@pytest.mark.parametrize("body,error", [
    ({"measurement_uid": UID, "status": "blocked.maybe"}, "Invalid status"),
    ({"measurement_uid": UID, "status": "' OR 1=1 --"}, "Invalid status"),
    ({"measurement_uid": UID}, "Invalid status"),
    ({"measurement_uid": "", "status": "ok"}, "Invalid measurement_uid"),
    ({"measurement_uid": "  ", "status": "ok"}, "Invalid measurement_uid"),
    ({"measurement_uid": "x" * 101, "status": "ok"}, "Invalid measurement_uid"),
    ({"measurement_uid": 5, "status": "ok"}, "Invalid measurement_uid"),
    ([1, 2], "Invalid JSON body"),
])
def test_submit_bad_body(client, cfg, db, body, error):
    r = client.post("/api/_/measurement_feedback", headers=auth(cfg, "a" * 32), json=body)
    assert (r.status_code, r.get_json()) == (400, {"error": error})
    assert db.execute("SELECT count() FROM msmt_feedback")[0][0] == 0


def test_submit_not_json(client, cfg, db):
    r = client.post("/api/_/measurement_feedback", headers=auth(cfg, "a" * 32), data=b"{oops")
    assert r.status_code == 400 and "error" in r.get_json()
