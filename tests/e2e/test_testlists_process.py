"""The test-list editor over HTTP against the real ``ooni-backend run``, as
test-lists.ooni.org drives it: e-mail login, the list with CORS for the UI's
origin, an edit, a submit to the fake GitHub, the PR merged upstream and the
list back to CLEAN with the change in it."""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.standalone_process import standalone
from tests.functional.smtp_sink import SmtpSink
from tests.functional.testlists.fake_github import FakeGitHub, git
from tests.functional.testlists.support import build_remotes, rows_of, upstream_file

pytestmark = pytest.mark.e2e

UI = "https://test-lists.ooni.org"


def call(base, method, path, body=None, headers=None):
    h = {"Origin": UI, **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            raw, status, hdrs = r.read(), r.status, r.headers
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, e.headers
    return status, (json.loads(raw) if raw else None), hdrs


@pytest.fixture
def setup(tmp_path, subprocess_env, port):
    upstream, fork, _ = build_remotes(tmp_path / "remotes")
    fake = FakeGitHub(upstream, fork)
    with SmtpSink() as sink:
        env = {**subprocess_env, "OONI_MAIL_SERVER": "127.0.0.1",
               "OONI_MAIL_PORT": str(sink.port), "OONI_MAIL_USE_SSL": "false",
               "OONI_MAIL_SOURCE_ADDRESS": "noreply@example.org",
               "OONI_JOB_START_DELAY": "3600",
               "OONI_GITHUB_ORIGIN_URL": str(upstream), "OONI_GITHUB_PUSH_URL": str(fork),
               "OONI_GITHUB_API_URL": fake.url, "OONI_GITHUB_TOKEN": fake.token,
               "OONI_TESTLISTS_FETCH_INTERVAL": "0"}
        try:
            with standalone(tmp_path, port, env) as base:
                yield base, sink, fake, upstream
        finally:
            fake.stop()


def login(base, sink, email):
    status, doc, _ = call(base, "POST", "/api/v1/user_register",
                          {"email_address": email, "redirect_to": UI + "/"})
    assert status == 200, doc
    text = sink.messages[-1].message.get_body(("plain",)).get_content()
    token = parse_qs(urlsplit(re.search(r"https://\S+", text).group(0)).query)["token"][0]
    status, doc, _ = call(base, "GET", "/api/v1/user_login?k=" + token)
    assert status == 200, doc
    return {"Authorization": "Bearer " + doc["bearer"]}


def test_editor_over_http(setup, tmp_path):
    base, sink, fake, upstream = setup
    status, doc, _ = call(base, "GET", "/api/_/url-submission/test-list/it")
    assert status == 401 and doc["error"]
    user = login(base, sink, "editor@example.org")

    status, doc, hdrs = call(base, "GET", "/api/_/url-submission/test-list/it", headers=user)
    assert status == 200, doc
    assert hdrs["Access-Control-Allow-Origin"] == UI
    assert hdrs["Access-Control-Allow-Credentials"] == "true"
    assert "no-cache" in hdrs["Cache-Control"]
    assert doc["state"] == "CLEAN"
    assert doc["test_list"] == rows_of(upstream_file(upstream, "lists/it.csv"))

    # The browser's preflight for the JSON POST.
    status, _, hdrs = call(base, "OPTIONS", "/api/v1/url-submission/update-url",
                           headers={"Access-Control-Request-Method": "POST",
                                    "Access-Control-Request-Headers": "authorization,content-type"})
    assert status == 200 and hdrs["Access-Control-Allow-Origin"] == UI

    new = {"url": "https://e2e-example.org/", "category_code": "HUMR",
           "date_added": "2024-03-01", "source": "", "notes": "from the e2e test"}
    status, doc, _ = call(base, "POST", "/api/v1/url-submission/update-url",
                          {"country_code": "IT", "comment": "Add e2e-example",
                           "old_entry": {}, "new_entry": new}, user)
    assert (status, doc) == (200, {"updated_entry": new})
    status, doc, _ = call(base, "POST", "/api/v1/url-submission/update-url",
                          {"country_code": "IT", "old_entry": {}, "new_entry": new}, user)
    assert status == 400 and doc["err_str"] == "err_duplicate_url"

    status, doc, _ = call(base, "POST", "/api/v1/url-submission/submit", None, user)
    assert status == 200, doc
    (pr,) = fake.open_pulls()
    assert doc == {"pr_id": f"{fake.url}/repos/citizenlab/test-lists/pulls/{pr.number}"}
    status, doc, _ = call(base, "POST", "/api/v1/url-submission/submit", None, user)
    assert status == 409 and doc["err_str"] == "err_pr_already_open"
    status, doc, _ = call(base, "GET", "/api/_/url-submission/test-list/it", headers=user)
    assert doc["state"] == "PR_OPEN" and doc["pr_url"].endswith(f"/pull/{pr.number}")

    fake.merge(pr.number)
    status, doc, _ = call(base, "GET", "/api/_/url-submission/test-list/it", headers=user)
    assert status == 200 and doc["state"] == "CLEAN" and doc["changes"] == {}
    assert new in doc["test_list"]
    assert "https://e2e-example.org/" in git("--git-dir", str(upstream), "show",
                                             "master:lists/it.csv")

    status, doc, _ = call(base, "GET", "/api/_/network_stats?probe_cc=IT")
    assert status == 200 and doc["metadata"]["total_count"] == 0
