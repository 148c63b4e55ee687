"""The e-mail login flow over HTTP against the real ``ooni-backend run``
process, configured only through OONI_* environment variables, with its
JWT and account-hashing keys generated in the data directory (standalone)."""
from __future__ import annotations

import datetime as dt
import json
import re
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from ooni_common.config import Config
from ooni_common.timeutil import utcnow
from tests.e2e.standalone_process import standalone
from tests.functional.smtp_sink import SmtpSink

from ooniapi.core import auth

pytestmark = pytest.mark.e2e



def call(base, method, path, body=None, headers=None):
    h = dict(headers or {})
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
def sink():
    with SmtpSink() as s:
        yield s


@pytest.fixture
def backend(tmp_path, subprocess_env, port, sink):
    data_dir = tmp_path / "data"
    env = {**subprocess_env, "OONI_MAIL_SERVER": "127.0.0.1", "OONI_MAIL_PORT": str(sink.port),
           "OONI_MAIL_USE_SSL": "false", "OONI_MAIL_SOURCE_ADDRESS": "noreply@example.org",
           "OONI_JOB_START_DELAY": "3600"}
    with standalone(tmp_path, port, env, data_dir) as base:
        yield base, data_dir


def login(base, sink, email):
    status, doc = call(base, "POST", "/api/v1/user_register",
                       {"email_address": email, "redirect_to": "https://run.ooni.org/"})
    assert (status, doc) == (200, {"msg": "ok"})
    got = sink.messages[-1]
    assert got.mail_from == "noreply@example.org" and got.rcpt_to == [email]
    url = re.search(r"https://\S+", got.message.get_body(("plain",)).get_content()).group(0)
    assert url.startswith("https://run.ooni.org/login?token=")
    status, doc = call(base, "GET", "/api/v1/user_login?k=" + parse_qs(urlsplit(url).query)["token"][0])
    assert status == 200, doc
    assert doc["email_address"] == email
    return {"Authorization": "Bearer " + doc["bearer"]}


def test_login_roles_and_expunge_over_http(backend, sink):
    base, data_dir = backend
    user = login(base, sink, "nick@example.org")
    assert call(base, "GET", "/api/_/account_metadata", headers=user) == \
        (200, {"logged_in": True, "role": "user"})
    assert call(base, "GET", "/api/_/account_metadata") == (401, {"logged_in": False})

    # The operator's first admin: a token signed with the generated key.
    cfg = Config({"DATA_DIR": str(data_dir)})
    admin = {"Authorization": "Bearer " + auth.session_token(
        cfg, auth.account_id(cfg, "admin@example.org"), "admin",
        now=utcnow() - dt.timedelta(minutes=1))}
    status, _ = call(base, "POST", "/api/v1/set_account_role",
                     {"email_address": "nick@example.org", "role": "admin"}, admin)
    assert status == 200
    assert call(base, "GET", "/api/v1/get_account_role/nick@example.org", headers=admin) == \
        (200, {"role": "admin"})
    promoted = login(base, sink, "nick@example.org")
    assert call(base, "GET", "/api/_/account_metadata", headers=promoted)[1]["role"] == "admin"

    # The new admin ends the old admin's sessions.
    assert call(base, "POST", "/api/v1/set_session_expunge",
                {"email_address": "admin@example.org"}, promoted) == (200, {})
    assert call(base, "GET", "/api/v1/user_refresh_token", headers=admin) == \
        (401, {"error": "Authentication token expired"})
    status, doc = call(base, "GET", "/api/v1/user_refresh_token", headers=promoted)
    assert status == 200 and doc["bearer"]
