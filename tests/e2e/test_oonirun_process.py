"""OONI Run over HTTP against the real ``ooni-backend run`` process: a link
created through the UI route is served to the probe by
``/api/v2/oonirun/links/<id>`` with the types of probe-protocol.md §3.15,
unmetered by the rate limiter."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from ooni_common.config import Config
from tests.e2e.standalone_process import standalone

from ooniapi.core.auth import session_token

pytestmark = pytest.mark.e2e

JWT_KEY = "e2e-oonirun-jwt-key-long-enough-for-hs256"
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
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


@pytest.fixture
def backend(tmp_path, subprocess_env, port):
    data_dir = tmp_path / "data"
    env = {**subprocess_env, "OONI_JWT_ENCRYPTION_KEY": JWT_KEY, "OONI_COLLECTOR_ID": "7",
           "OONI_JOB_START_DELAY": "3600"}
    with standalone(tmp_path, port, env) as base:
        yield base


def test_link_created_by_ui_runs_on_probe(backend):
    base = backend
    token = session_token(Config({"JWT_ENCRYPTION_KEY": JWT_KEY}), "d" * 32, "user")
    auth = {"Authorization": f"Bearer {token}"}
    descriptor = {"name": "IM apps", "author": "ooni@example.org", "description": "d",
                  "nettests": [{"test_name": "whatsapp", "options": {}},
                               {"test_name": "web_connectivity",
                                "inputs": ["https://www.example.org/"],
                                "is_manual_run_enabled_default": True}]}
    status, headers, doc = call(base, "POST", "/api/_/ooni_run/create", descriptor, auth)
    assert status == 200, doc
    link_id = doc["ooni_run_link_id"]
    assert link_id % 100 == 7  # OONI_COLLECTOR_ID

    status, _, doc = call(base, "GET", f"/api/_/ooni_run/fetch/{link_id}")
    assert status == 200 and doc["descriptor"] == descriptor

    for _ in range(3):
        status, headers, doc = call(base, "GET", f"/api/v2/oonirun/links/{link_id}")
        assert status == 200
        assert "X-RateLimit-Remaining" not in headers
    assert headers["Content-Type"].startswith("application/json")
    for key in ("name", "description", "author", "revision", "date_created"):
        assert isinstance(doc[key], str), key
    assert doc["revision"] == "1"
    assert [n["test_name"] for n in doc["nettests"]] == ["whatsapp", "web_connectivity"]
    for nt in doc["nettests"]:
        assert isinstance(nt["inputs"], list) and all(isinstance(x, str) for x in nt["inputs"])
        assert isinstance(nt["options"], dict)
        assert isinstance(nt["inputs_extra"], list) and isinstance(nt["targets_name"], str)
        for flag in ("is_background_run_enabled", "is_manual_run_enabled"):
            assert nt[flag] is None or isinstance(nt[flag], bool)
    assert doc["nettests"][1]["is_manual_run_enabled"] is True

    status, _, doc = call(base, "GET", "/api/v2/oonirun/links/12345607")
    assert status == 404 and isinstance(doc["error"], str)
    status, _, doc = call(base, "POST", "/api/_/ooni_run/create", descriptor)
    assert (status, doc) == (401, {"error": "Authentication required"})
