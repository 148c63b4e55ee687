"""Incidents over HTTP against the real ``ooni-backend run`` process: a
user's finding stays hidden until an admin publishes it, then anonymous
Explorer visitors see it without the reporter's e-mail address."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from ooni_common.config import Config
from tests.e2e.standalone_process import standalone

from ooniapi.core.auth import account_id, session_token

pytestmark = pytest.mark.e2e

SECRETS = {"JWT_ENCRYPTION_KEY": "e2e-incidents-jwt-key-long-enough-for-hs256",
           "ACCOUNT_ID_HASHING_KEY": "e2e-incidents-hashing-key"}
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"


def call(base, method, path, body=None, headers=None):
    h = {"User-Agent": BROWSER_UA, **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def backend(tmp_path, subprocess_env, port):
    env = {**subprocess_env, "OONI_COLLECTOR_ID": "3", "OONI_JOB_START_DELAY": "3600",
           **{f"OONI_{k}": v for k, v in SECRETS.items()}}
    with standalone(tmp_path, port, env) as base:
        yield base


def test_user_finding_published_by_admin(backend):
    base = backend
    cfg = Config(dict(SECRETS))
    email = "reporter@example.org"
    user = {"Authorization": "Bearer " + session_token(cfg, account_id(cfg, email), "user")}
    admin = {"Authorization": "Bearer " + session_token(cfg, "e" * 32, "admin")}
    finding = {"title": "Social media blocked", "short_description": "s", "text": "# Details",
               "reported_by": "OONI", "email_address": email, "event_type": "incident",
               "published": False, "start_time": "2024-01-01T00:00:00Z", "end_time": None,
               "CCs": ["IR"], "ASNs": [197207], "domains": ["twitter.com"], "tags": [],
               "links": ["https://explorer.ooni.org/"], "test_names": ["web_connectivity"]}

    status, doc = call(base, "POST", "/api/v1/incidents/create", finding, user)
    assert status == 200, doc
    iid = doc["id"]
    assert int(iid) % 100 == 3  # OONI_COLLECTOR_ID

    assert call(base, "GET", "/api/v1/incidents/search") == (200, {"v": 1, "incidents": []})
    status, doc = call(base, "POST", "/api/v1/incidents/publish", {"id": iid, "email_address": email}, user)
    assert status == 400 and doc["err_str"] == "err_request_params"

    status, doc = call(base, "POST", "/api/v1/incidents/publish", {"id": iid}, admin)
    assert (status, doc) == (200, {"r": 1, "id": iid})
    status, doc = call(base, "GET", "/api/v1/incidents/search")
    assert status == 200 and [i["id"] for i in doc["incidents"]] == [iid]
    status, doc = call(base, "GET", f"/api/v1/incidents/show/{iid}")
    assert status == 200 and doc["incident"]["text"] == "# Details"
    assert doc["incident"]["email_address"] is None and doc["incident"]["mine"] == 0
    status, doc = call(base, "GET", f"/api/v1/incidents/show/{iid}", headers=user)
    assert doc["incident"]["mine"] == 1

    status, doc = call(base, "POST", "/api/v1/incidents/delete", {"id": iid, "email_address": email}, user)
    assert (status, doc) == (200, {})
    assert call(base, "GET", "/api/v1/incidents/search", headers=admin) == (200, {"v": 1, "incidents": []})
