"""Incidents / findings (api.md §12, and OONI's findings service as Explorer
uses it) through the Flask test client against the real embedded database:
every action, the permission rules, the visibility rules and bad input."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from ooniapi.core.auth import account_id, session_token
from ooniapi.findings.routes import ACTIONS

ALICE_EMAIL = "alice@example.org"
BOB_EMAIL = "bob@example.org"
ADMIN_EMAIL = "admin@ooni.org"
ORIGIN = "https://explorer.ooni.org"

OWNERSHIP = {"error": "Attempted to create, update or delete an item beloging to another user",
             "err_str": "err_ownership"}
NOT_FOUND = {"error": "Incident not found"}

# The public key set of OONI's findings service (its tests'
# EXPECTED_OONIFINDING_PUBLIC_KEYS, without text).
LIST_KEYS = {"id", "title", "short_description", "start_time", "end_time", "create_time",
             "update_time", "creator_account_id", "reported_by", "email_address", "mine",
             "published", "event_type", "ASNs", "CCs", "tags", "test_names", "domains",
             "links", "slug", "themes"}


def bad_params(r, field: str) -> None:
    """A 400 err_request_params whose message names ``field``."""
    assert r.status_code == 400, (field, r.status_code, r.get_json())
    doc = r.get_json()
    assert doc["err_str"] == "err_request_params", doc
    assert doc["error"].startswith(f"Invalid parameters in the request: {field}:"), (field, doc)

LINK = ("https://explorer.ooni.org/chart/mat?test_name=web_connectivity"
        "&axis_x=measurement_start_day&since=2023-04-16&until=2023-05-16&time_grain=day")


def new_incident(email: str, **over) -> dict:
    d = dict(
        title="integ-test-1",
        short_description="Twitter blocked",
        text="foo bar\nbaz\n",
        reported_by="ooni",
        email_address=email,
        event_type="incident",
        published=False,
        start_time="2020-01-01T00:00:00Z",
        end_time=None,
        CCs=["UK", "fr"],
        ASNs=[1, 2],
        domains=["twitter.com"],
        tags=["integ-test"],
        test_names=["web_connectivity", "signal"],
        links=[LINK],
    )
    d.update(over)
    return d


@pytest.fixture
def hdr(cfg):
    """Authorization headers: hdr("alice"), hdr("bob"), hdr("admin")."""
    emails = {"alice": ALICE_EMAIL, "bob": BOB_EMAIL, "admin": ADMIN_EMAIL}

    def make(who: str) -> dict:
        role = "admin" if who == "admin" else "user"
        tok = session_token(cfg, account_id(cfg, emails[who]), role)
        return {"Authorization": f"Bearer {tok}"}
    return make


def post(client, action, body, headers):
    return client.post(f"/api/v1/incidents/{action}", json=body, headers=headers)


def create(client, headers, body) -> str:
    r = post(client, "create", body, headers)
    assert r.status_code == 200, r.get_json()
    doc = r.get_json()
    assert sorted(doc) == ["id", "r"] and doc["r"] == 1
    assert isinstance(doc["id"], str) and doc["id"].isdigit()
    return doc["id"]


def search(client, headers=None, **q) -> list[dict]:
    r = client.get("/api/v1/incidents/search", headers=headers or {}, query_string=q)
    assert r.status_code == 200, r.get_json()
    assert r.headers["Cache-Control"] == "no-cache, max-age=0"
    doc = r.get_json()
    assert doc["v"] == 1 and set(doc) == {"v", "incidents"}
    for item in doc["incidents"]:
        assert set(item) == LIST_KEYS
    return doc["incidents"]


def show(client, incident_id, headers=None):
    return client.get(f"/api/v1/incidents/show/{incident_id}", headers=headers or {})


def shown(client, incident_id, headers=None) -> dict:
    r = show(client, incident_id, headers)
    assert r.status_code == 200, r.get_json()
    assert r.headers["Cache-Control"] == "no-cache, max-age=0"
    doc = r.get_json()
    assert set(doc) == {"v", "incident"} and doc["v"] == 1
    assert set(doc["incident"]) == LIST_KEYS | {"text"}
    return doc["incident"]


def for_update(inc: dict, **over) -> dict:
    """A show answer turned into an update body (Explorer sends it back whole)."""
    body = dict(inc)
    body.update(over)
    return body


# --- create, show, search ----------------------------------------------------------

def test_admin_create_show_search(client, hdr, cfg):
    iid = create(client, hdr("admin"), new_incident(ADMIN_EMAIL))
    assert int(iid) % 100 == 1  # COLLECTOR_ID of the cfg fixture

    inc = shown(client, iid, hdr("admin"))
    assert inc["update_time"].endswith("Z") and inc["create_time"].endswith("Z")
    year = inc["create_time"][:4]
    inc.pop("update_time")
    inc.pop("create_time")
    assert inc == {
        "id": iid, "title": "integ-test-1", "short_description": "Twitter blocked",
        "text": "foo bar\nbaz\n", "reported_by": "ooni", "email_address": ADMIN_EMAIL,
        "event_type": "incident", "published": False, "start_time": "2020-01-01T00:00:00Z",
        "end_time": None, "CCs": ["UK", "FR"], "ASNs": [1, 2], "domains": ["twitter.com"],
        "tags": ["integ-test"], "test_names": ["web_connectivity", "signal"],
        "links": [LINK], "mine": True, "themes": [], "slug": f"{year}-integ-test-1",
        "creator_account_id": account_id(cfg, ADMIN_EMAIL),
    }

    items = search(client, hdr("admin"))
    assert len(items) == 1 and items[0]["id"] == iid and "text" not in items[0]
    assert items[0]["mine"] is True and items[0]["email_address"] == ADMIN_EMAIL

    # Unpublished: hidden from anonymous callers, visible to users (not theirs).
    assert search(client) == []
    assert show(client, iid).status_code == 404
    assert show(client, iid).get_json() == NOT_FOUND
    bob_view = search(client, hdr("bob"))
    assert [i["id"] for i in bob_view] == [iid]
    assert bob_view[0]["mine"] is False and bob_view[0]["email_address"] == ""
    assert bob_view[0]["creator_account_id"] == ""
    assert shown(client, iid, hdr("bob"))["email_address"] == ""
    assert search(client, hdr("bob"), only_mine="True") == []


def test_user_create_needs_own_email_and_cannot_publish(client, hdr):
    r = post(client, "create", new_incident(BOB_EMAIL), hdr("alice"))
    assert r.status_code == 403 and r.get_json()["error"].startswith("email_address:")
    r = post(client, "create", new_incident(ALICE_EMAIL, published=True), hdr("alice"))
    assert r.status_code == 403 and r.get_json()["error"].startswith("published:")
    assert search(client, hdr("admin")) == []

    # the address is normalised before hashing
    iid = create(client, hdr("alice"), new_incident(" Alice@Example.ORG "))
    mine = search(client, hdr("alice"), only_mine="true")
    assert [i["id"] for i in mine] == [iid] and mine[0]["mine"] is True
    assert mine[0]["published"] is False
    assert search(client, hdr("bob"), only_mine="true") == []
    assert search(client, hdr("admin"))[0]["email_address"] == "Alice@Example.ORG"


def test_create_ignores_client_id_create_time_and_creator(client, hdr, cfg):
    body = new_incident(ALICE_EMAIL, id="123", create_time="1999-01-01T00:00:00Z",
                        creator_account_id="f" * 32)
    iid = create(client, hdr("alice"), body)
    assert iid != "123"
    inc = shown(client, iid, hdr("alice"))
    assert inc["mine"] is True and not inc["create_time"].startswith("1999")


def test_anonymous_only_mine_is_empty(client, hdr):
    iid = create(client, hdr("admin"), new_incident(ADMIN_EMAIL, published=True))
    assert [i["id"] for i in search(client)] == [iid]
    r = client.get("/api/v1/incidents/search?only_mine=true")
    assert r.status_code == 200 and r.get_json() == {"v": 1, "incidents": []}
    assert len(search(client, only_mine="false")) == 1
    assert search(client, only_mine="1") == []
    bad_params(client.get("/api/v1/incidents/search?only_mine=maybe"), "only_mine")


def test_search_is_ordered_by_title(client, hdr):
    for title in ("b title", "c title", "a title"):
        create(client, hdr("admin"), new_incident(ADMIN_EMAIL, title=title))
    assert [i["title"] for i in search(client, hdr("alice"))] == ["a title", "b title", "c title"]


def test_unknown_incident_is_not_found(client, hdr):
    for h in ({}, hdr("alice"), hdr("admin")):
        for key in ("12345", "2024-no-such-finding"):
            r = show(client, key, h)
            assert r.status_code == 404 and r.get_json() == NOT_FOUND
    assert show(client, "9" * 500).status_code == 404


# --- update ------------------------------------------------------------------------

def test_user_updates_own_incident(client, hdr):
    iid = create(client, hdr("alice"), new_incident(ALICE_EMAIL))
    inc = shown(client, iid, hdr("alice"))
    body = for_update(inc, email_address=ALICE_EMAIL, title="renamed",
                      end_time="2020-02-01T00:00:00Z", create_time="2001-01-01T00:00:00Z")
    r = post(client, "update", body, hdr("alice"))
    assert r.status_code == 200 and r.get_json() == {"r": 1, "id": iid}
    after = shown(client, iid, hdr("alice"))
    assert after["title"] == "renamed" and after["end_time"] == "2020-02-01T00:00:00Z"
    # create_time stays the server's
    assert after["create_time"] == inc["create_time"]
    assert len(search(client, hdr("admin"))) == 1

    body = for_update(after, email_address=ALICE_EMAIL)
    r = post(client, "update", dict(body, published=True), hdr("alice"))
    assert r.status_code == 403
    r = post(client, "update", dict(body, email_address=BOB_EMAIL), hdr("alice"))
    assert r.status_code == 403
    assert shown(client, iid, hdr("alice")) == after


def test_update_requires_id_and_the_required_fields(client, hdr):
    iid = create(client, hdr("alice"), new_incident(ALICE_EMAIL))
    inc = for_update(shown(client, iid, hdr("alice")), email_address=ALICE_EMAIL)
    for key in ("id", "title", "text", "start_time", "email_address"):
        body = dict(inc)
        body.pop(key)
        r = post(client, "update", body, hdr("admin"))
        bad_params(r, key)


def test_update_of_unknown_incident(client, hdr):
    body = new_incident(ALICE_EMAIL, id="4242", create_time="2020-01-01T00:00:00Z")
    r = post(client, "update", body, hdr("alice"))
    assert r.status_code == 404 and r.get_json() == NOT_FOUND
    assert search(client, hdr("admin")) == []


def test_ownership_is_enforced(client, hdr):
    iid = create(client, hdr("alice"), new_incident(ALICE_EMAIL))
    inc = for_update(shown(client, iid, hdr("alice")), email_address=BOB_EMAIL)
    for action in ("update", "delete"):
        r = post(client, action, inc, hdr("bob"))
        assert r.status_code == 403, action
        assert r.get_json() == OWNERSHIP, action
    for action in ("publish", "unpublish"):
        assert post(client, action, inc, hdr("bob")).status_code == 403, action
    assert shown(client, iid, hdr("alice"))["title"] == "integ-test-1"


def test_admin_update_publishes_and_takes_ownership(client, hdr):
    iid = create(client, hdr("alice"), new_incident(ALICE_EMAIL))
    inc = shown(client, iid, hdr("alice"))
    body = for_update(inc, email_address=ALICE_EMAIL, published=True,
                      start_time="2020-01-02T00:00:00Z")
    r = post(client, "update", body, hdr("admin"))
    assert r.status_code == 200 and r.get_json() == {"r": 1, "id": iid}

    anon = search(client)
    assert len(anon) == 1 and anon[0]["published"] is True and anon[0]["mine"] is False
    assert anon[0]["start_time"] == "2020-01-02T00:00:00Z"
    assert anon[0]["email_address"] == ""
    assert shown(client, iid)["text"] == "foo bar\nbaz\n"
    # legacy quirk (api.md §19.19): the admin now owns it
    assert shown(client, iid, hdr("admin"))["mine"] is True
    now = shown(client, iid, hdr("alice"))
    assert now["mine"] is False
    r = post(client, "update", for_update(now, email_address=ALICE_EMAIL,
                                          published=False), hdr("alice"))
    assert r.get_json() == OWNERSHIP


# --- publish / unpublish -----------------------------------------------------------

def test_publish_and_unpublish(client, hdr):
    iid = create(client, hdr("alice"), new_incident(ALICE_EMAIL))
    r = post(client, "publish", {"id": iid, "email_address": ALICE_EMAIL}, hdr("alice"))
    assert r.status_code == 403

    r = post(client, "publish", {"id": iid}, hdr("admin"))
    assert r.status_code == 200 and r.get_json() == {"r": 1, "id": iid}
    assert [i["id"] for i in search(client)] == [iid]
    inc = shown(client, iid)
    assert inc["published"] is True and inc["title"] == "integ-test-1"
    # publishing keeps the owner
    assert shown(client, iid, hdr("alice"))["mine"] is True

    r = post(client, "unpublish", {"id": int(iid)}, hdr("admin"))
    assert r.status_code == 200 and r.get_json() == {"r": 1, "id": iid}
    assert search(client) == []
    assert shown(client, iid, hdr("admin"))["published"] is False

    # publish then an edit in the same second: the later write wins
    post(client, "publish", {"id": iid}, hdr("admin"))
    body = for_update(shown(client, iid, hdr("admin")), title="edited", published=False)
    assert post(client, "update", body, hdr("admin")).status_code == 200
    inc = shown(client, iid, hdr("admin"))
    assert inc["title"] == "edited" and inc["published"] is False


def test_publish_unknown_incident(client, hdr):
    for action in ("publish", "unpublish"):
        r = post(client, action, {"id": "777"}, hdr("admin"))
        assert r.status_code == 404 and r.get_json() == NOT_FOUND


# --- delete ------------------------------------------------------------------------

def test_delete(client, hdr):
    a = create(client, hdr("alice"), new_incident(ALICE_EMAIL, title="a"))
    b = create(client, hdr("alice"), new_incident(ALICE_EMAIL, title="b"))
    r = post(client, "delete", {"id": a}, hdr("alice"))  # no e-mail address
    assert r.status_code == 403
    r = post(client, "delete", {"id": a, "email_address": ALICE_EMAIL}, hdr("alice"))
    assert r.status_code == 200 and r.get_json() == {}
    assert [i["id"] for i in search(client, hdr("alice"))] == [b]
    assert show(client, a, hdr("alice")).status_code == 404

    r = post(client, "delete", {"id": b}, hdr("admin"))
    assert r.status_code == 200 and r.get_json() == {}
    assert search(client, hdr("admin")) == []
    # what is gone is not found (as OONI's findings service answers)
    r = post(client, "delete", {"id": b}, hdr("admin"))
    assert r.status_code == 404 and r.get_json() == NOT_FOUND


def test_legacy_deleted_rows_stay_hidden(client, hdr, db):
    iid = create(client, hdr("admin"), new_incident(ADMIN_EMAIL, published=True))
    db.command("ALTER TABLE incidents UPDATE deleted = 1 WHERE 1 SETTINGS mutations_sync = 2")
    assert search(client) == [] and search(client, hdr("admin")) == []
    assert show(client, iid, hdr("admin")).status_code == 404
    # a deleted incident is not found, for updates too
    body = {"id": iid, "email_address": ALICE_EMAIL}
    assert post(client, "delete", body, hdr("alice")).status_code == 404


# --- auth, headers and bad input ---------------------------------------------------

def test_post_requires_session(client, hdr, cfg):
    r = post(client, "create", new_incident(ALICE_EMAIL), {})
    assert r.status_code == 401 and r.get_json() == {"error": "Authentication required"}
    assert r.headers["Cache-Control"] == "no-cache, max-age=0"
    r = post(client, "create", new_incident(ALICE_EMAIL), {"Authorization": "Bearer junk"})
    assert r.status_code == 401
    probe = {"Authorization": "Bearer " + session_token(cfg, "a" * 32, "probe")}
    r = post(client, "create", new_incident(ALICE_EMAIL), probe)
    assert r.status_code == 401 and r.get_json() == {"error": "Role not authorized"}
    expired = session_token(cfg, account_id(cfg, ALICE_EMAIL), "user",
                            now=dt.datetime.utcnow() - dt.timedelta(days=10))
    r = post(client, "create", new_incident(ALICE_EMAIL), {"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.get_json() == {"error": "Authentication required"}
    assert search(client, hdr("admin")) == []


def test_write_routes_refuse_bad_tokens_and_write_nothing(client, hdr, cfg, db):
    from ooniapi.accounts.store import expunge_sessions
    iid = create(client, hdr("alice"), new_incident(ALICE_EMAIL))
    before = shown(client, iid, hdr("admin"))
    body = for_update(before, title="changed")
    expunged = hdr("alice")
    expunge_sessions(db, account_id(cfg, ALICE_EMAIL))
    for action in ACTIONS:
        for h in ({}, {"Authorization": "Bearer junk"}, {"Authorization": "Basic eDp5"},
                  expunged):
            r = post(client, action, body, h)
            assert r.status_code == 401, (action, h, r.get_json())
    assert shown(client, iid, hdr("admin")) == before
    assert len(search(client, hdr("admin"))) == 1


def test_unknown_action(client, hdr):
    for action in ("search", "frobnicate", "CREATE"):
        r = post(client, action, {"id": "1"}, hdr("admin"))
        assert r.status_code == 400 and r.get_json() == {"error": "Invalid request"}


def test_credentialed_cors(client, hdr):
    h = dict(hdr("alice"), Origin=ORIGIN)
    r = client.get("/api/v1/incidents/search", headers=h)
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    r = client.post("/api/v1/incidents/create", json=new_incident(ALICE_EMAIL), headers=h)
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    r = client.get("/api/v1/incidents/search", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.parametrize("data,ctype", [
    (b"", "application/json"),
    (b"{not json", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'"x"', "application/json"),
    (b'{"title": NaN}', "application/json"),
    (b"title=x", "application/x-www-form-urlencoded"),
])
def test_bad_bodies(client, hdr, data, ctype):
    for action in ("create", "update", "delete", "publish"):
        r = client.post(f"/api/v1/incidents/{action}", data=data, content_type=ctype,
                        headers=hdr("admin"))
        bad_params(r, "body")


BAD_FIELDS = [
    ("title", ""), ("title", "  "), ("title", None), ("title", 5), ("title", "x" * 301),
    ("text", ""), ("text", ["a"]),
    ("short_description", None), ("reported_by", {"a": 1}),
    ("email_address", "not-an-email"), ("email_address", ""), ("email_address", None),
    ("event_type", 1), ("event_type", None),
    ("start_time", "2020-01-01"), ("start_time", "2020-01-01 00:00:00"),
    ("start_time", "2020-13-01T00:00:00Z"), ("start_time", None), ("start_time", 1577836800),
    ("start_time", "1900-01-01T00:00:00Z"),
    ("end_time", "2019-12-31T23:59:59Z"), ("end_time", "tomorrow"),
    ("CCs", "IT"), ("CCs", ["ITA"]), ("CCs", ["I"]), ("CCs", ["1T"]), ("CCs", [None]),
    ("ASNs", ["x"]), ("ASNs", [True]), ("ASNs", [-1]), ("ASNs", [2**32]), ("ASNs", [1.5]),
    ("ASNs", 1), ("ASNs", None),
    ("domains", "twitter.com"), ("domains", ["a b"]), ("domains", [""]), ("domains", [1]),
    ("tags", [None]), ("tags", ["x" * 2001]), ("tags", ["t"] * 1001),
    ("links", ["javascript:alert(1)"]), ("links", ["ftp://x"]), ("links", "https://x"),
    ("test_names", ["Web Connectivity"]), ("test_names", [{}]),
    ("published", "yes"), ("published", 2), ("published", [1]),
    ("themes", "social_media"), ("themes", ["social media"]), ("themes", ["theme-im"]),
    ("themes", [None]), ("themes", [1]), ("themes", {"im": 1}),
    ("slug", "Has Spaces"), ("slug", "1234"), ("slug", "a--b"), ("slug", "x" * 65),
    ("slug", 5), ("slug", ["a"]),
    ("update_time", "yesterday"), ("update_time", 5),
    ("mood", "happy"),
]


@pytest.mark.parametrize("field,value", BAD_FIELDS)
def test_bad_fields_on_create(client, hdr, field, value):
    body = new_incident(ADMIN_EMAIL, **{field: value})
    r = post(client, "create", body, hdr("admin"))
    bad_params(r, field)
    assert search(client, hdr("admin")) == []


def test_bad_fields_on_update_leave_the_incident_alone(client, hdr):
    iid = create(client, hdr("admin"), new_incident(ADMIN_EMAIL))
    before = shown(client, iid, hdr("admin"))
    good = for_update(before)
    for field, value in BAD_FIELDS:
        r = post(client, "update", dict(good, **{field: value}), hdr("admin"))
        bad_params(r, field)
    assert shown(client, iid, hdr("admin")) == before


def test_optional_fields_have_defaults_and_unknown_keys_are_refused(client, hdr):
    body = {"title": "minimal", "text": "t", "start_time": "2020-01-01T00:00:00.000000Z",
            "email_address": ADMIN_EMAIL}
    iid = create(client, hdr("admin"), body)
    inc = shown(client, iid, hdr("admin"))
    assert inc["start_time"] == "2020-01-01T00:00:00Z"
    assert (inc["short_description"], inc["reported_by"], inc["event_type"]) == ("", "", "")
    assert inc["published"] is False and inc["end_time"] is None
    for k in ("CCs", "ASNs", "themes", "domains", "tags", "links", "test_names"):
        assert inc[k] == [], k
    r = post(client, "create", dict(body, BOGUS_UNEXPECTED=1), hdr("admin"))
    bad_params(r, "BOGUS_UNEXPECTED")


@pytest.mark.parametrize("bad_id", [None, True, [], {}, "", "x" * 65])
def test_bad_ids(client, hdr, bad_id):
    for action in ("update", "delete", "publish", "unpublish"):
        body = {"email_address": ALICE_EMAIL}
        if bad_id is not None:
            body["id"] = bad_id
        r = post(client, action, body, hdr("admin"))
        bad_params(r, "id")


def test_accepted_variants(client, hdr):
    """Values the UIs send that are valid: ASNs as strings, lower-case CCs,
    0/1 for published, an end time equal to the start time, unicode text."""
    body = new_incident(ADMIN_EMAIL, ASNs=["AS3269", "30722"], CCs=["it"], published=1,
                        end_time="2020-01-01T00:00:00Z", text="Блокировка — 封锁 🛑",
                        domains=[], tags=[], links=[], test_names=[])
    iid = create(client, hdr("admin"), body)
    inc = shown(client, iid)
    assert inc["ASNs"] == [3269, 30722] and inc["CCs"] == ["IT"]
    assert inc["published"] is True and inc["text"] == "Блокировка — 封锁 🛑"
    assert inc["end_time"] == inc["start_time"]


def test_lone_surrogate_is_refused(client, hdr):
    body = json.dumps(new_incident(ADMIN_EMAIL, text="@@")).replace("@@", "\\ud800")
    r = client.post("/api/v1/incidents/create", data=body, content_type="application/json",
                    headers=hdr("admin"))
    # Refused as the body is read (ooniapi.core.text), before any field.
    bad_params(r, "body")
    assert "surrogate" in r.get_json()["error"]
    assert search(client, hdr("admin")) == []


def test_later_write_wins_when_the_clock_lags(client, hdr, monkeypatch):
    """Another API host with a slower clock: its edit still replaces the
    incident (update_time never goes backwards)."""
    import datetime as dt
    times = iter([dt.datetime(2024, 5, 1, 12, 0, 0), dt.datetime(2024, 5, 1, 11, 0, 0),
                  dt.datetime(2024, 5, 1, 10, 0, 0)])
    monkeypatch.setattr("ooniapi.findings.routes.utcnow", lambda: next(times))
    iid = create(client, hdr("admin"), new_incident(ADMIN_EMAIL))
    inc = shown(client, iid, hdr("admin"))
    assert inc["create_time"] == "2024-05-01T12:00:00Z"
    body = for_update(inc, title="edited")
    assert post(client, "update", body, hdr("admin")).status_code == 200
    assert post(client, "publish", {"id": iid}, hdr("admin")).status_code == 200
    inc = shown(client, iid, hdr("admin"))
    assert inc["title"] == "edited" and inc["published"] is True
    assert inc["create_time"] == "2024-05-01T12:00:00Z"


def test_head_and_preflight(client, hdr):
    create(client, hdr("admin"), new_incident(ADMIN_EMAIL, published=True))
    r = client.head("/api/v1/incidents/search")
    assert r.status_code == 200 and r.data == b""
    r = client.options("/api/v1/incidents/create", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    assert client.get("/api/v1/incidents/create").status_code == 405
