"""Findings (incidents) over HTTP against the real ``ooni-backend run``
process, played as OONI Explorer calls them: a user's finding stays hidden
until an admin publishes it, then anonymous visitors see it without the
reporter's e-mail address; findings with themes are searched by country
and theme and shown by slug (issue 10)."""
from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.e2e.standalone_process import standalone

from ooni_common.config import Config
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
    assert status == 403, doc

    status, doc = call(base, "POST", "/api/v1/incidents/publish", {"id": iid}, admin)
    assert (status, doc) == (200, {"r": 1, "id": iid})
    status, doc = call(base, "GET", "/api/v1/incidents/search")
    assert status == 200 and [i["id"] for i in doc["incidents"]] == [iid]
    status, doc = call(base, "GET", f"/api/v1/incidents/show/{iid}")
    assert status == 200 and doc["incident"]["text"] == "# Details"
    assert doc["incident"]["email_address"] == "" and doc["incident"]["mine"] is False
    status, doc = call(base, "GET", f"/api/v1/incidents/show/{iid}", headers=user)
    assert doc["incident"]["mine"] is True

    status, doc = call(base, "POST", "/api/v1/incidents/delete", {"id": iid, "email_address": email}, user)
    assert (status, doc) == (200, {})
    assert call(base, "GET", "/api/v1/incidents/search", headers=admin) == (200, {"v": 1, "incidents": []})


def search(base, headers=None, **q):
    status, doc = call(base, "GET", "/api/v1/incidents/search?"
                       + urllib.parse.urlencode(q, doseq=True), headers=headers)
    assert status == 200, doc
    return doc["incidents"]


def test_explorer_findings_flow(backend):
    base = backend
    cfg = Config(dict(SECRETS))
    admin_email, user_email = "editor@ooni.org", "researcher@example.org"
    admin = {"Authorization": "Bearer " + session_token(cfg, account_id(cfg, admin_email),
                                                        "admin")}
    user = {"Authorization": "Bearer " + session_token(cfg, account_id(cfg, user_email),
                                                       "user")}
    year = dt.datetime.utcnow().year

    def explorer_body(title, email, ccs, themes, **over):
        # What Explorer's finding form posts.
        d = {"title": title, "reported_by": "OONI", "email_address": email,
             "short_description": "short " + title, "text": "## " + title,
             "start_time": "2024-03-01T00:00:00Z", "end_time": None, "published": False,
             "tags": ["2024"], "themes": themes, "test_names": ["web_connectivity"],
             "CCs": ccs, "ASNs": [], "domains": [], "links": []}
        d.update(over)
        return d

    # 1. Create, with themes: an admin and a user.
    ids = {}
    for title, email, hdr, ccs, themes in [
            ("Instagram blocked in Iran", admin_email, admin, ["IR"], ["social_media"]),
            ("Tor blocked in Iran", admin_email, admin, ["IR"], ["circumvention"]),
            ("Russia blocks news media", admin_email, admin, ["RU"], ["news_media"]),
            ("WhatsApp in Iran and Russia", user_email, user, ["IR", "RU"],
             ["im", "social_media"])]:
        status, doc = call(base, "POST", "/api/v1/incidents/create",
                           explorer_body(title, email, ccs, themes), hdr)
        assert status == 200, doc
        ids[title] = doc["id"]
    # An unknown theme is a 400 naming the field, and nothing is written.
    status, doc = call(base, "POST", "/api/v1/incidents/create",
                       explorer_body("Bad", admin_email, ["IT"], ["sports"]), admin)
    assert status == 400 and "themes" in doc["error"], doc
    # Garbage and expired tokens are refused.
    for h in ({"Authorization": "Bearer garbage"},
              {"Authorization": "Bearer " + session_token(
                  cfg, "f" * 32, "admin", now=dt.datetime.utcnow() - dt.timedelta(days=30))}):
        status, doc = call(base, "POST", "/api/v1/incidents/create",
                           explorer_body("Bad", admin_email, ["IT"], []), h)
        assert status == 401, doc
    assert len(search(base, admin)) == 4
    assert search(base) == []

    # 2. Publish from the admin dashboard (it posts the listed item back).
    listed = {i["id"]: i for i in search(base, admin)}
    for title in ("Instagram blocked in Iran", "Russia blocks news media",
                  "WhatsApp in Iran and Russia"):
        status, doc = call(base, "POST", "/api/v1/incidents/publish",
                           listed[ids[title]], admin)
        assert (status, doc) == (200, {"r": 1, "id": ids[title]})

    # 3. A country page and its theme filter, anonymously.
    iran = search(base, country_code="IR")
    assert [i["title"] for i in iran] == ["Instagram blocked in Iran",
                                          "WhatsApp in Iran and Russia"]
    for item in iran:
        assert item["published"] is True and item["mine"] is False
        assert item["email_address"] == "" and "text" not in item
    assert [i["title"] for i in search(base, country_code="IR", theme="social_media")] == [
        "Instagram blocked in Iran", "WhatsApp in Iran and Russia"]
    assert [i["title"] for i in search(base, theme="im")] == ["WhatsApp in Iran and Russia"]
    assert search(base, country_code="IR", theme="circumvention") == []  # a draft
    status, doc = call(base, "GET", "/api/v1/incidents/search?theme=sports")
    assert status == 400 and "theme" in doc["error"]

    # 4. The finding page, by slug.
    slug = iran[0]["slug"]
    assert slug == f"{year}-instagram-blocked-in-iran"
    status, doc = call(base, "GET", f"/api/v1/incidents/show/{slug}")
    assert status == 200 and doc["incident"]["id"] == ids["Instagram blocked in Iran"]
    assert doc["incident"]["text"] == "## Instagram blocked in Iran"
    assert doc["incident"]["themes"] == ["social_media"]
    status, doc = call(base, "GET", f"/api/v1/incidents/show/{year}-no-such-finding")
    assert status == 404

    # 5. The edit page: the owner posts the show answer back; the slug stays;
    # a stale copy is refused with 409; another user cannot edit it.
    wid = ids["WhatsApp in Iran and Russia"]
    status, doc = call(base, "GET", f"/api/v1/incidents/show/{wid}", headers=user)
    copy = doc["incident"]
    assert copy["mine"] is True
    edited = dict(copy, email_address=user_email, published=False,
                  themes=["im"], title="WhatsApp and Signal in Iran and Russia")
    status, doc = call(base, "POST", "/api/v1/incidents/update", edited, user)
    assert (status, doc) == (200, {"r": 1, "id": wid})
    status, doc = call(base, "GET", f"/api/v1/incidents/show/{copy['slug']}", headers=user)
    assert doc["incident"]["title"] == "WhatsApp and Signal in Iran and Russia"
    status, doc = call(base, "POST", "/api/v1/incidents/update", dict(edited, text="x"), user)
    assert status == 409 and doc["error"].startswith("update_time"), doc
    other = {"Authorization": "Bearer " + session_token(
        cfg, account_id(cfg, "other@example.org"), "user")}
    status, doc = call(base, "GET", f"/api/v1/incidents/show/{wid}", headers=user)
    fresh = dict(doc["incident"], email_address="other@example.org", published=False)
    status, doc = call(base, "POST", "/api/v1/incidents/update", fresh, other)
    assert status == 403 and doc["err_str"] == "err_ownership"
