"""Findings as Explorer uses them (issue 10): themes, slugs, show by slug,
the search filters over several findings, countries and themes, bad filter
values, and the columns added to an existing table."""
from __future__ import annotations

import datetime as dt

import pytest

from ooniapi.core.auth import account_id, session_token
from ooniapi.core.schema import ensure_schema

ADMIN_EMAIL = "admin@ooni.org"
ALICE_EMAIL = "alice@example.org"


@pytest.fixture
def hdr(cfg):
    def make(email: str, role: str) -> dict:
        return {"Authorization": "Bearer " + session_token(cfg, account_id(cfg, email), role)}
    return make


@pytest.fixture
def admin(hdr):
    return hdr(ADMIN_EMAIL, "admin")


def finding(title, email=ADMIN_EMAIL, **over) -> dict:
    d = {"title": title, "text": "text of " + title, "email_address": email,
         "start_time": "2024-01-01T00:00:00Z", "short_description": "s",
         "reported_by": "OONI", "event_type": "incident"}
    d.update(over)
    return d


def create(client, headers, body) -> str:
    r = client.post("/api/v1/incidents/create", json=body, headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["id"]


def titles(client, headers=None, **q) -> list[str]:
    r = client.get("/api/v1/incidents/search", query_string=q, headers=headers or {})
    assert r.status_code == 200, r.get_json()
    return [i["title"] for i in r.get_json()["incidents"]]


@pytest.fixture
def corpus(client, admin):
    """Five published findings and one draft over several countries,
    networks, domains and themes."""
    rows = [
        finding("Instagram blocked in Iran", CCs=["IR"], ASNs=[197207, 44244],
                domains=["www.instagram.com"], themes=["social_media"], published=True),
        finding("Tor blocked in Iran", CCs=["IR"], ASNs=[58224],
                domains=["www.torproject.org"], themes=["circumvention"], published=True),
        finding("News sites blocked in Russia", CCs=["RU"], ASNs=[12389],
                domains=["meduza.io", "www.bbc.com"], themes=["news_media"], published=True),
        finding("WhatsApp and Signal in Russia and Belarus", CCs=["RU", "BY"], ASNs=[12389, 6697],
                domains=["web.whatsapp.com"], themes=["im", "social_media"], published=True),
        finding("Elections shutdown", CCs=["TZ"], ASNs=[], domains=[],
                themes=["human_rights"], published=True),
        finding("Draft about Iran", CCs=["IR"], themes=["social_media"], published=False),
    ]
    return {b["title"]: create(client, admin, b) for b in rows}


def test_filters_one_by_one(client, corpus):
    assert titles(client, country_code="IR") == ["Instagram blocked in Iran",
                                                 "Tor blocked in Iran"]
    assert titles(client, country_code="ru") == ["News sites blocked in Russia",
                                                 "WhatsApp and Signal in Russia and Belarus"]
    assert titles(client, country_code="IT") == []
    assert titles(client, theme="social_media") == ["Instagram blocked in Iran",
                                                   "WhatsApp and Signal in Russia and Belarus"]
    assert titles(client, theme="human_rights") == ["Elections shutdown"]
    assert titles(client, asn="AS12389") == ["News sites blocked in Russia",
                                            "WhatsApp and Signal in Russia and Belarus"]
    assert titles(client, asn="58224") == ["Tor blocked in Iran"]
    assert titles(client, domain="www.bbc.com") == ["News sites blocked in Russia"]
    assert titles(client, domain="example.com") == []


def test_filters_combine_any_within_all_across(client, corpus, admin):
    # Repeated values: any of them.
    assert titles(client, country_code=["IR", "TZ"]) == [
        "Elections shutdown", "Instagram blocked in Iran", "Tor blocked in Iran"]
    assert titles(client, theme=["circumvention", "news_media"]) == [
        "News sites blocked in Russia", "Tor blocked in Iran"]
    # Different filters: all of them (a country page for one theme).
    assert titles(client, country_code="IR", theme="social_media") == [
        "Instagram blocked in Iran"]
    assert titles(client, country_code="RU", theme="im", asn="6697",
                  domain="web.whatsapp.com") == ["WhatsApp and Signal in Russia and Belarus"]
    assert titles(client, country_code="RU", theme="circumvention") == []
    # The draft: only for logged-in callers.
    assert titles(client, admin, country_code="IR", theme="social_media") == [
        "Draft about Iran", "Instagram blocked in Iran"]


def test_only_mine_with_filters(client, corpus, hdr):
    alice = hdr(ALICE_EMAIL, "user")
    create(client, alice, finding("Alice on Iran", email=ALICE_EMAIL, CCs=["IR"],
                                  themes=["circumvention"]))
    assert titles(client, alice, only_mine="true", country_code="IR") == ["Alice on Iran"]
    assert titles(client, alice, only_mine="true", country_code="RU") == []
    r = client.get("/api/v1/incidents/search", query_string={"only_mine": "true"},
                   headers=alice)
    [item] = r.get_json()["incidents"]
    assert item["mine"] is True and item["creator_account_id"] == account_id(
        client.application.extensions["ooni"].cfg, ALICE_EMAIL)
    assert item["email_address"] == ""


@pytest.mark.parametrize("param,value", [
    ("theme", "sport"), ("theme", "theme-im"), ("theme", ""),
    ("country_code", "IRN"), ("country_code", "1R"), ("country_code", ""),
    ("asn", "ASX"), ("asn", "-1"), ("asn", str(2**32)), ("asn", ""),
    ("domain", "a b"), ("domain", "x" * 256), ("domain", ""),
    ("only_mine", "perhaps"),
])
def test_bad_filter_values(client, param, value):
    r = client.get("/api/v1/incidents/search", query_string={param: value})
    assert r.status_code == 400, r.get_json()
    doc = r.get_json()
    assert doc["err_str"] == "err_request_params"
    assert doc["error"].startswith(f"Invalid parameters in the request: {param}:")


def test_too_many_filter_values(client):
    r = client.get("/api/v1/incidents/search", query_string={"country_code": ["IT"] * 101})
    assert r.status_code == 400 and "country_code" in r.get_json()["error"]


def test_themes_are_kept_in_order_without_repeats(client, admin):
    iid = create(client, admin, finding("t", themes=["im", "social_media", "im"]))
    r = client.get(f"/api/v1/incidents/show/{iid}", headers=admin)
    assert r.get_json()["incident"]["themes"] == ["im", "social_media"]


def test_configured_themes_replace_the_default(app, client, admin):
    app.extensions["ooni"].cfg = app.extensions["ooni"].cfg.with_overrides(
        FINDINGS_THEMES="elections,protests")
    create(client, admin, finding("e", themes=["elections"], published=True))
    r = client.post("/api/v1/incidents/create", json=finding("s", themes=["social_media"]),
                    headers=admin)
    assert r.status_code == 400 and "themes:" in r.get_json()["error"]
    assert titles(client, theme="elections") == ["e"]


def test_slug_generated_unique_and_stable(client, admin):
    year = dt.datetime.utcnow().year
    a = create(client, admin, finding("Ça bloque: Instagram & TikTok!"))
    b = create(client, admin, finding("ça bloque -- instagram & tiktok"))
    c = create(client, admin, finding("Блокировка"))  # nothing ASCII left
    long_ = create(client, admin, finding("word " * 40))

    def show(key, headers=admin):
        return client.get(f"/api/v1/incidents/show/{key}", headers=headers)

    slug_a = show(a).get_json()["incident"]["slug"]
    assert slug_a == f"{year}-ca-bloque-instagram-tiktok"
    assert show(b).get_json()["incident"]["slug"] == f"{year}-ca-bloque-instagram-tiktok-2"
    assert show(c).get_json()["incident"]["slug"] == f"{year}-finding"
    slug_long = show(long_).get_json()["incident"]["slug"]
    assert len(slug_long) <= 64 and not slug_long.endswith("-")

    # Show by slug; edits (a new title included) keep it.
    inc = show(slug_a).get_json()["incident"]
    assert inc["id"] == a
    inc["title"] = "Another title"
    r = client.post("/api/v1/incidents/update", json=inc, headers=admin)
    assert r.status_code == 200, r.get_json()
    inc = show(slug_a).get_json()["incident"]
    assert (inc["id"], inc["title"], inc["slug"]) == (a, "Another title", slug_a)
    # Changing it is refused, and leaves the finding alone.
    r = client.post("/api/v1/incidents/update", json=dict(inc, slug="new-slug"),
                    headers=admin)
    assert r.status_code == 400 and r.get_json()["error"].startswith(
        "Invalid parameters in the request: slug:")
    assert show(slug_a).get_json()["incident"] == inc
    # Unpublished: anonymous callers get 404 by slug as by id.
    assert show(slug_a, {}).status_code == 404


def test_client_slug_on_create(client, admin):
    iid = create(client, admin, finding("x", slug="this-is-my-slug", published=True))
    r = client.get("/api/v1/incidents/show/this-is-my-slug")
    assert r.status_code == 200 and r.get_json()["incident"]["id"] == iid
    r = client.post("/api/v1/incidents/create", json=finding("y", slug="this-is-my-slug"),
                    headers=admin)
    assert r.status_code == 409 and r.get_json()["error"].startswith("slug:")
    assert titles(client, admin) == ["x"]


def test_legacy_table_gets_the_columns_and_rows_a_slug(client, admin, db):
    """A table made by the seed schema (no themes, no slug) with a row in
    it: the migration adds the columns, the row answers <year>-<id> and
    can be found and edited by it."""
    db.command("DROP TABLE incidents")
    db.command("""CREATE TABLE incidents (
        `update_time` DateTime DEFAULT now(), `start_time` DateTime DEFAULT now(),
        `end_time` Nullable(DateTime), `creator_account_id` FixedString(32),
        `reported_by` String, `id` String, `title` String, `text` String,
        `event_type` LowCardinality(String), `published` UInt8, `deleted` UInt8 DEFAULT 0,
        `CCs` Array(FixedString(2)), `ASNs` Array(UInt32), `domains` Array(String),
        `tags` Array(String), `links` Array(String), `test_names` Array(String),
        `short_description` String, `email_address` String, `create_time` DateTime DEFAULT now()
        ) ENGINE = ReplacingMergeTree(update_time) ORDER BY id SETTINGS index_granularity = 1""")
    db.insert("incidents", ["id", "update_time", "start_time", "creator_account_id", "title",
                            "text", "event_type", "published", "CCs", "email_address",
                            "create_time", "reported_by", "short_description"],
              [["777", dt.datetime(2023, 5, 1), dt.datetime(2023, 4, 1), "a" * 32, "Old one",
                "legacy text", "incident", 1, ["IT"], ADMIN_EMAIL, dt.datetime(2023, 5, 1),
                "r", "s"]])
    try:
        ensure_schema(db)
        ensure_schema(db)  # idempotent
        r = client.get("/api/v1/incidents/show/2023-777", headers=admin)
        assert r.status_code == 200, r.get_json()
        inc = r.get_json()["incident"]
        assert (inc["id"], inc["slug"], inc["themes"]) == ("777", "2023-777", [])
        assert titles(client, country_code="IT") == ["Old one"]
        inc["themes"] = ["human_rights"]
        r = client.post("/api/v1/incidents/update", json=inc, headers=admin)
        assert r.status_code == 200, r.get_json()
        assert db.query("SELECT slug, themes FROM incidents FINAL") == [
            {"slug": "2023-777", "themes": ["human_rights"]}]
        assert titles(client, theme="human_rights") == ["Old one"]
    finally:
        db.command("DROP TABLE incidents")
        ensure_schema(db)
