"""OONI Run (api.md §11) and the probe-facing link (probe-protocol.md §3.15),
through the Flask test client against the real embedded database."""
from __future__ import annotations

import datetime as dt

import pytest

from ooniapi.core.auth import session_token

ALICE, BOB, ADMIN = "a" * 32, "b" * 32, "c" * 32
ORIGIN = "https://run.ooni.org"

DESCRIPTOR = {
    "name": "Social media",
    "name_intl": {"it": "Social network"},
    "short_description": "Checks social media",
    "short_description_intl": {"it": "Controlla i social"},
    "description": "A longer description",
    "description_intl": {"it": "Una descrizione"},
    "icon": "FaTwitter",
    "author": "alice@example.org",
    "color": "#112233",
    "nettests": [
        {"test_name": "web_connectivity",
         "inputs": ["https://twitter.com/", "https://www.facebook.com/"],
         "options": {"HTTP3Enabled": True},
         "is_background_run_enabled_default": True},
        {"test_name": "signal"},
    ],
}

LIST_KEYS = {"ooni_run_link_id", "archived", "author", "icon", "mine", "name",
             "short_description", "descriptor_creation_time", "translation_creation_time"}


class Clock:
    def __init__(self):
        self.now = dt.datetime(2023, 7, 21, 16, 36, 12, 456789)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr("ooniapi.oonirun.routes.utcnow", c)
    return c


def auth(cfg, account, role="user", origin=None):
    h = {"Authorization": f"Bearer {session_token(cfg, account, role)}"}
    if origin:
        h["Origin"] = origin
    return h


def create(client, headers, body=None, link_id=None):
    url = "/api/_/ooni_run/create"
    if link_id is not None:
        url += f"?ooni_run_link_id={link_id}"
    return client.post(url, headers=headers, json=DESCRIPTOR if body is None else body)


def fetch(client, link_id, headers=None, creation_time=None):
    q = {} if creation_time is None else {"creation_time": creation_time}
    return client.get(f"/api/_/ooni_run/fetch/{link_id}", headers=headers or {}, query_string=q)


def listing(client, headers=None, **q):
    r = client.get("/api/_/ooni_run/list", headers=headers or {}, query_string=q)
    assert r.status_code == 200, r.get_json()
    assert r.headers["Cache-Control"] == "no-cache, max-age=0"
    doc = r.get_json()
    assert doc["v"] == 1
    for item in doc["descriptors"]:
        assert set(item) == LIST_KEYS
    return doc["descriptors"]


def rows(db) -> int:
    return db.execute("SELECT count() FROM oonirun")[0][0]


def test_create_fetch_list(client, cfg, db, clock):
    r = create(client, auth(cfg, ALICE, origin=ORIGIN))
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-cache, max-age=0"
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    doc = r.get_json()
    assert set(doc) == {"v", "ooni_run_link_id"} and doc["v"] == 1
    link_id = doc["ooni_run_link_id"]
    assert isinstance(link_id, int) and link_id % 100 == 1  # COLLECTOR_ID 1 (§1.8)

    r = fetch(client, link_id)
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "max-age=3600"
    got = r.get_json()
    assert set(got) == {"v", "archived", "mine", "descriptor",
                        "descriptor_creation_time", "translation_creation_time"}
    assert got["descriptor"] == DESCRIPTOR
    assert (got["v"], got["archived"], got["mine"]) == (1, False, False)
    # stored with millisecond precision, printed in the §1.2 form
    assert got["descriptor_creation_time"] == "2023-07-21T16:36:13.456000Z"
    assert got["translation_creation_time"] == got["descriptor_creation_time"]
    assert fetch(client, link_id, auth(cfg, ALICE)).get_json()["mine"] is True
    assert fetch(client, link_id, auth(cfg, BOB)).get_json()["mine"] is False

    items = listing(client, auth(cfg, ALICE))
    assert items == [{
        "ooni_run_link_id": link_id, "archived": False, "author": "alice@example.org",
        "icon": "FaTwitter", "mine": True, "name": "Social media",
        "short_description": "Checks social media",
        "descriptor_creation_time": "2023-07-21T16:36:13.456000Z",
        "translation_creation_time": "2023-07-21T16:36:13.456000Z"}]
    assert listing(client)[0]["mine"] is False


def test_creation_time_round_trips(client, cfg, db, clock):
    clock.now = dt.datetime(2024, 1, 2, 3, 4, 4)  # next tick lands on a whole second
    link_id = create(client, auth(cfg, ALICE)).get_json()["ooni_run_link_id"]
    emitted = fetch(client, link_id).get_json()["descriptor_creation_time"]
    assert emitted == "2024-01-02T03:04:05Z"
    for ts in (emitted, "2024-01-02T03:04:05.000Z", "2024-01-02T03:04:05.0Z",
               "2024-01-02T03:04:05.000000Z", "2024-01-02T03:04:05", "2024-01-02 03:04:05"):
        r = fetch(client, link_id, creation_time=ts)
        assert r.status_code == 200, ts
        assert r.get_json()["descriptor_creation_time"] == emitted
    r = fetch(client, link_id, creation_time="2024-01-02T03:04:06Z")
    assert (r.status_code, r.get_json()) == (400, {"error": "oonirun descriptor not found"})


def test_update_translation_then_structure(client, cfg, db, clock):
    alice = auth(cfg, ALICE)
    link_id = create(client, alice).get_json()["ooni_run_link_id"]
    first = fetch(client, link_id).get_json()

    # texts only: same descriptor version, newer translation
    texts = {**DESCRIPTOR, "name": "Social media v2", "name_intl": {"it": "Social v2", "fr": "Réseaux"}}
    r = create(client, alice, texts, link_id)
    assert r.get_json() == {"v": 1, "ooni_run_link_id": link_id}
    got = fetch(client, link_id).get_json()
    assert got["descriptor"] == texts
    assert got["descriptor_creation_time"] == first["descriptor_creation_time"]
    assert got["translation_creation_time"] > first["translation_creation_time"]
    versions = listing(client)
    assert len(versions) == 1 and versions[0]["name"] == "Social media v2"

    # nettests changed: a new descriptor version, the old one kept
    nettests = {**texts, "nettests": [{"test_name": "telegram", "inputs": [], "options": {}}]}
    create(client, alice, nettests, link_id)
    latest = fetch(client, link_id).get_json()
    assert latest["descriptor"] == nettests
    assert latest["descriptor_creation_time"] > got["descriptor_creation_time"]
    old = fetch(client, link_id, creation_time=got["descriptor_creation_time"]).get_json()
    assert old["descriptor"] == texts
    assert [v["descriptor_creation_time"] for v in listing(client)] == [
        got["descriptor_creation_time"], latest["descriptor_creation_time"]]
    only = listing(client, only_latest="true")
    assert [v["descriptor_creation_time"] for v in only] == [latest["descriptor_creation_time"]]

    # author and icon are structural too
    create(client, alice, {**nettests, "icon": "FaSignal"}, link_id)
    assert len(listing(client)) == 3


def test_update_needs_own_link(client, cfg, db, clock):
    link_id = create(client, auth(cfg, ALICE)).get_json()["ooni_run_link_id"]
    before = rows(db)
    for headers in (auth(cfg, BOB), auth(cfg, ADMIN, "admin")):
        r = create(client, headers, {**DESCRIPTOR, "name": "taken"}, link_id)
        assert (r.status_code, r.get_json()) == (400, {"error": "OONIRun descriptor not found"})
    r = create(client, auth(cfg, ALICE), link_id=12345601)
    assert (r.status_code, r.get_json()) == (400, {"error": "OONIRun descriptor not found"})
    assert rows(db) == before
    assert fetch(client, link_id).get_json()["descriptor"]["name"] == "Social media"


def test_archive(client, cfg, db, clock):
    alice, bob = auth(cfg, ALICE), auth(cfg, BOB)
    a1 = create(client, alice).get_json()["ooni_run_link_id"]
    create(client, alice, {**DESCRIPTOR, "nettests": []}, a1)  # second version
    b1 = create(client, bob, {**DESCRIPTOR, "name": "Bob's"}).get_json()["ooni_run_link_id"]

    # someone else's link: silently nothing
    r = client.post(f"/api/_/ooni_run/archive/{a1}", headers=bob)
    assert (r.status_code, r.get_json()) == (200, {"v": 1})
    assert r.headers["Cache-Control"] == "no-cache, max-age=0"
    assert fetch(client, a1).get_json()["archived"] is False

    r = client.post(f"/api/_/ooni_run/archive/{a1}", headers=alice)
    assert (r.status_code, r.get_json()) == (200, {"v": 1})
    assert fetch(client, a1).get_json()["archived"] is True
    assert {v["ooni_run_link_id"] for v in listing(client)} == {b1}
    archived = [v for v in listing(client, include_archived="1") if v["ooni_run_link_id"] == a1]
    assert len(archived) == 2 and all(v["archived"] for v in archived)
    assert {v["ooni_run_link_id"] for v in listing(client, include_archived="false")} == {b1}

    # an edit keeps the link archived
    create(client, alice, {**DESCRIPTOR, "name": "edited"}, a1)
    assert fetch(client, a1).get_json()["archived"] is True

    # admins archive any link
    r = client.post(f"/api/_/ooni_run/archive/{b1}", headers=auth(cfg, ADMIN, "admin"))
    assert r.status_code == 200
    assert listing(client) == []


def test_list_filters(client, cfg, db, clock):
    alice, bob = auth(cfg, ALICE), auth(cfg, BOB)
    a1 = create(client, alice).get_json()["ooni_run_link_id"]
    a2 = create(client, alice).get_json()["ooni_run_link_id"]
    b1 = create(client, bob).get_json()["ooni_run_link_id"]

    def ids(headers=None, **q):
        return [v["ooni_run_link_id"] for v in listing(client, headers, **q)]

    assert ids() == [a1, a2, b1]  # by descriptor_creation_time
    assert ids(alice, only_mine="1") == [a1, a2]
    assert ids(bob, only_mine="yes") == [b1]
    assert ids(only_mine="true") == []  # anonymous callers own nothing
    assert ids(alice, only_mine="false") == [a1, a2, b1]
    assert ids(alice, only_mine="0") == [a1, a2, b1]
    assert ids(ooni_run_link_id=f"{b1},{a1}") == [a1, b1]
    assert ids(ids=str(a2)) == [a2]  # legacy tests' name
    assert ids(ooni_run_link_id=f"{a1},,") == [a1]
    assert [v["mine"] for v in listing(client, bob)] == [False, False, True]
    r = client.get("/api/_/ooni_run/list?ooni_run_link_id=1,x")
    assert r.status_code == 400 and "ooni_run_link_id" in r.get_json()["error"]
    r = client.get("/api/_/ooni_run/list?ids=-5")
    assert r.status_code == 400
    r = client.get(f"/api/_/ooni_run/list?ids={2**64}")
    assert r.status_code == 400


def test_auth_required(client, cfg, db):
    for headers in ({}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic abc"},
                    {"Authorization": f"Bearer {session_token(cfg.with_overrides(JWT_ENCRYPTION_KEY='another-key-that-is-long-enough-for-hs256'), ALICE, 'user')}"}):
        r = create(client, headers)
        assert (r.status_code, r.get_json()) == (401, {"error": "Authentication required"})
        assert r.headers["Cache-Control"] == "no-cache, max-age=0"
        r = client.post("/api/_/ooni_run/archive/123401", headers=headers)
        assert (r.status_code, r.get_json()) == (401, {"error": "Authentication required"})
    r = create(client, auth(cfg, ALICE, role="guest"))
    assert (r.status_code, r.get_json()) == (401, {"error": "Role not authorized"})
    r = create(client, {"Origin": ORIGIN})
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    r = create(client, {"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in r.headers
    assert rows(db) == 0


DEEP = "[" * 100000 + "]" * 100000


@pytest.mark.parametrize("body,status,error", [
    (b"not json", 400, None),
    (b"", 400, None),
    (b"[1, 2]", 400, None),
    (b'"name"', 400, None),
    (DEEP.encode(), 400, None),
    (b'{"name": "x", "author": "y", "nettests": [{"test_name": "a", "options": {"t": NaN}}]}', 400, None),
    (b'{"name": "x", "author": "y", "description": "\\ud800"}', 400, None),
    ({"author": "y"}, 400, "'name' field must not be empty"),
    ({"name": "", "author": "y"}, 400, "'name' field must not be empty"),
    ({"name": 5, "author": "y"}, 400, None),
    ({"name": "x"}, 400, None),
    ({"name": "x", "author": ["y"]}, 400, None),
    ({"name": "x", "author": "y", "icon": 3}, 400, None),
    ({"name": "x", "author": "y", "short_description": {"a": 1}}, 400, None),
    ({"name": "x", "author": "y", "name_intl": "it"}, 400, None),
    ({"name": "x", "author": "y", "name_intl": {"it": 3}}, 400, None),
    ({"name": "x", "author": "y", "nettests": "web_connectivity"}, 400, None),
    ({"name": "x", "author": "y", "nettests": ["web_connectivity"]}, 400, None),
    ({"name": "x", "author": "y", "nettests": [{"inputs": []}]}, 400, None),
    ({"name": "x", "author": "y", "nettests": [{"test_name": "a", "inputs": [1]}]}, 400, None),
    ({"name": "x", "author": "y", "nettests": [{"test_name": "a", "inputs": "x"}]}, 400, None),
    ({"name": "x", "author": "y", "nettests": [{"test_name": "a", "options": []}]}, 400, None),
    ({"name": "x", "author": "y", "nettests": [{"test_name": "a", "inputs": ["x"], "inputs_extra": []}]}, 400, None),
    ({"name": "x", "author": "y", "nettests": [{"test_name": "a", "is_manual_run_enabled": "yes"}]}, 400, None),
    ({"name": "x", "author": "y", "nettests": [{"test_name": "a", "targets_name": 1}]}, 400, None),
])
def test_bad_descriptor(client, cfg, db, body, status, error):
    h = auth(cfg, ALICE)
    if isinstance(body, bytes):
        r = client.post("/api/_/ooni_run/create", headers={**h, "Content-Type": "application/json"},
                        data=body)
    else:
        r = create(client, h, body)
    assert r.status_code == status
    doc = r.get_json()
    assert isinstance(doc["error"], str) and doc["error"]
    if error:
        assert doc["error"] == error
    assert rows(db) == 0


@pytest.mark.parametrize("field", ["name_intl", "short_description_intl", "description_intl"])
@pytest.mark.parametrize("value", ["", "   "])
def test_empty_translation(client, cfg, db, field, value):
    r = create(client, auth(cfg, ALICE), {**DESCRIPTOR, field: {"it": "ok", "fr": value}})
    assert r.status_code == 400
    assert r.get_json() == {"error": "Empty translation field",
                            "err_str": "err_empty_translation_field"}
    assert rows(db) == 0


def test_bad_link_ids(client, cfg, db, clock):
    alice = auth(cfg, ALICE)
    for q in ("abc", "-1", "1.5", str(2**64)):
        r = client.post(f"/api/_/ooni_run/create?ooni_run_link_id={q}", headers=alice, json=DESCRIPTOR)
        assert r.status_code == 400 and "ooni_run_link_id" in r.get_json()["error"], q
    r = fetch(client, 987654301)
    assert (r.status_code, r.get_json()) == (400, {"error": "oonirun descriptor not found"})
    r = fetch(client, 2**70)
    assert (r.status_code, r.get_json()) == (400, {"error": "oonirun descriptor not found"})
    r = client.get("/api/_/ooni_run/fetch/abc")
    assert r.status_code == 404 and r.get_json() == {"error": "Not Found"}
    r = client.post("/api/_/ooni_run/archive/abc", headers=alice)
    assert r.status_code == 404 and r.get_json() == {"error": "Not Found"}
    r = client.post(f"/api/_/ooni_run/archive/{2**70}", headers=alice)
    assert (r.status_code, r.get_json()) == (200, {"v": 1})
    link_id = create(client, alice).get_json()["ooni_run_link_id"]
    for ts in ("yesterday", "2023-13-45T00:00:00Z", "2023-07-21T16:36:12.1234567Z",
               "1' OR '1'='1", "2023-07-21T16:36:12+02:00"):
        r = fetch(client, link_id, creation_time=ts)
        assert r.status_code == 400 and "creation_time" in r.get_json()["error"], ts
    r = fetch(client, link_id, creation_time="9999-01-01T00:00:00Z")
    assert (r.status_code, r.get_json()) == (400, {"error": "oonirun descriptor not found"})
    # an empty parameter is absent (§1.7)
    assert fetch(client, link_id, creation_time="").status_code == 200


# --- the probe-facing link (probe-protocol.md §3.15) ----------------------------

def assert_probe_types(doc):
    """The types the Go probe decodes into, and the mobile apps' flags."""
    assert isinstance(doc, dict)
    for key in ("name", "description", "author", "revision", "date_created"):
        assert isinstance(doc[key], str), key
    assert isinstance(doc["nettests"], list)
    for nt in doc["nettests"]:
        assert isinstance(nt["test_name"], str)
        assert isinstance(nt["inputs"], list) and all(isinstance(x, str) for x in nt["inputs"])
        assert isinstance(nt["inputs_extra"], list)
        assert isinstance(nt["targets_name"], str)
        assert isinstance(nt["options"], dict)
        for flag in ("is_background_run_enabled", "is_manual_run_enabled"):
            assert nt[flag] is None or isinstance(nt[flag], bool)
            assert isinstance(nt[f"{flag}_default"], bool)
    dt.datetime.fromisoformat(doc["date_created"].replace("Z", "+00:00"))


def test_probe_link(client, cfg, db, clock):
    alice = auth(cfg, ALICE)
    link_id = create(client, alice).get_json()["ooni_run_link_id"]
    r = client.get(f"/api/v2/oonirun/links/{link_id}")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.headers["Cache-Control"] == "no-cache, max-age=0"
    doc = r.get_json()
    assert_probe_types(doc)
    assert doc["revision"] == "1"
    assert doc["oonirun_link_id"] == str(link_id)
    assert (doc["name"], doc["description"], doc["author"]) == (
        "Social media", "A longer description", "alice@example.org")
    assert doc["name_intl"] == {"it": "Social network"}
    assert doc["date_created"] == "2023-07-21T16:36:13.456000Z"
    assert (doc["is_expired"], doc["is_mine"]) == (False, False)
    wc, signal = doc["nettests"]
    assert wc["test_name"] == "web_connectivity"
    assert wc["inputs"] == ["https://twitter.com/", "https://www.facebook.com/"]
    assert wc["options"] == {"HTTP3Enabled": True}
    assert (wc["is_background_run_enabled"], wc["is_background_run_enabled_default"]) == (True, True)
    assert (wc["is_manual_run_enabled"], wc["is_manual_run_enabled_default"]) == (None, False)
    assert signal == {"test_name": "signal", "inputs": [], "inputs_extra": [], "targets_name": "",
                      "options": {}, "is_background_run_enabled": None,
                      "is_background_run_enabled_default": False,
                      "is_manual_run_enabled": None, "is_manual_run_enabled_default": False}
    assert client.get(f"/api/v2/oonirun/links/{link_id}", headers=alice).get_json()["is_mine"] is True

    # a new nettests version is revision 2; revision 1 stays reachable
    create(client, alice, {**DESCRIPTOR, "name": "Renamed",
                           "nettests": [{"test_name": "telegram", "is_manual_run_enabled": False}]},
           link_id)
    doc = client.get(f"/api/v2/oonirun/links/{link_id}").get_json()
    assert_probe_types(doc)
    assert doc["revision"] == "2" and doc["name"] == "Renamed"
    assert [n["test_name"] for n in doc["nettests"]] == ["telegram"]
    assert doc["nettests"][0]["is_manual_run_enabled"] is False
    old = client.get(f"/api/v2/oonirun/links/{link_id}?revision=1").get_json()
    assert_probe_types(old)
    assert old["revision"] == "1" and old["name"] == "Renamed"
    assert [n["test_name"] for n in old["nettests"]] == ["web_connectivity", "signal"]
    assert client.get(f"/api/v2/oonirun/links/{link_id}?revision=latest").get_json() == doc
    r = client.get(f"/api/v2/oonirun/links/{link_id}/revisions")
    assert r.get_json() == {"revisions": ["2", "1"]}

    # the engine-descriptor form the probe POSTs its run metadata to
    meta = {"is_charging": True, "run_type": "manual", "probe_cc": "IT", "probe_asn": "AS30722",
            "network_type": "wifi", "website_category_codes": []}
    r = client.post(f"/api/v2/oonirun/links/{link_id}/engine-descriptor/latest", json=meta)
    assert r.status_code == 200 and r.get_json() == doc
    r = client.post(f"/api/v2/oonirun/links/{link_id}/engine-descriptor/1", json=meta)
    assert r.get_json() == old
    r = client.post(f"/api/v2/oonirun/links/{link_id}/engine-descriptor/1", data=b"[1]")
    assert r.status_code == 400

    client.post(f"/api/_/ooni_run/archive/{link_id}", headers=alice)
    doc = client.get(f"/api/v2/oonirun/links/{link_id}").get_json()
    assert doc["is_expired"] is True and doc["is_archived"] is True


def test_probe_link_server_fields_win(client, cfg, db, clock):
    body = {"name": "x", "author": "y", "revision": 7, "date_created": 0,
            "oonirun_link_id": 1, "is_mine": "sure", "extra": {"kept": True},
            "nettests": [{"test_name": "dnscheck", "inputs": ["https://1.1.1.1/dns-query"],
                          "inputs_extra": [{"x": 1}], "backend_options": {"a": 1}}]}
    link_id = create(client, auth(cfg, ALICE), body).get_json()["ooni_run_link_id"]
    doc = client.get(f"/api/v2/oonirun/links/{link_id}").get_json()
    assert_probe_types(doc)
    assert (doc["revision"], doc["oonirun_link_id"], doc["is_mine"]) == ("1", str(link_id), False)
    assert doc["description"] == "" and doc["extra"] == {"kept": True}
    nt = doc["nettests"][0]
    assert nt["inputs_extra"] == [{"x": 1}] and nt["backend_options"] == {"a": 1}


@pytest.mark.parametrize("path,status", [
    ("/api/v2/oonirun/links/987654301", 404),
    ("/api/v2/oonirun/links/abc", 404),
    (f"/api/v2/oonirun/links/{2**70}", 404),
    ("/api/v2/oonirun/links/987654301/revisions", 404),
    ("/api/v2/oonirun/links/abc/revisions", 404),
])
def test_probe_link_unknown(client, db, path, status):
    r = client.get(path)
    assert r.status_code == status
    assert r.mimetype == "application/json"
    assert isinstance(r.get_json()["error"], str)


def test_probe_link_bad_revision(client, cfg, db, clock):
    link_id = create(client, auth(cfg, ALICE)).get_json()["ooni_run_link_id"]
    for rev, status in (("0", 400), ("-1", 400), ("x", 400), ("9" * 30, 400), ("2", 404)):
        r = client.get(f"/api/v2/oonirun/links/{link_id}?revision={rev}")
        assert r.status_code == status, rev
        assert isinstance(r.get_json()["error"], str)
    r = client.post(f"/api/v2/oonirun/links/{link_id}/engine-descriptor/5")
    assert r.status_code == 404


def test_probe_link_not_rate_limited(client, cfg, db, clock):
    link_id = create(client, auth(cfg, ALICE)).get_json()["ooni_run_link_id"]
    r = client.get(f"/api/v2/oonirun/links/{link_id}")
    assert "X-RateLimit-Remaining" not in r.headers


@pytest.mark.parametrize("path", ["/api/_/ooni_run/create", "/api/_/ooni_run/list",
                                  "/api/v2/oonirun/links/123401"])
def test_preflight_follows_credentialed_origins(client, db, path):
    """§1.5: preflight of auth-aware routes uses the same origin rules."""
    pre = {"Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization,content-type"}
    r = client.options(path, headers={**pre, "Origin": ORIGIN})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    r = client.options(path, headers={**pre, "Origin": "https://evil.example.com"})
    assert r.status_code == 200
    assert "Access-Control-Allow-Origin" not in r.headers
