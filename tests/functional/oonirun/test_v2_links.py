"""OONI Run v2 (docs/oonirun.md): create, edit and revisions, expiration,
listing, the probe's view, v1 <-> v2 round trips and bad input, through
the Flask test client on the embedded database."""
from __future__ import annotations

import datetime as dt

import pytest

from ooni_common.timeutil import utcnow
from tests.functional.oonirun.support import (ADMIN, ALICE, BOB, PROBE5_KEYS, link,
                                              parse_time, rows, v1_headers, v2_headers)

ORIGIN = "https://run.ooni.org"


def create(client, headers, body=None):
    return client.post("/api/v2/oonirun/links", headers=headers,
                       json=link() if body is None else body)


def edit(client, headers, link_id, body):
    return client.put(f"/api/v2/oonirun/links/{link_id}", headers=headers, json=body)


def get(client, link_id, headers=None, **q):
    return client.get(f"/api/v2/oonirun/links/{link_id}", headers=headers or {},
                      query_string=q)


def listing(client, headers=None, **q):
    r = client.get("/api/v2/oonirun/links", headers=headers or {}, query_string=q)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["oonirun_links"]


def new_link(client, cfg, **over) -> dict:
    r = create(client, v2_headers(cfg), link(**over))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_create_answer(client, cfg, db):
    before = utcnow()
    r = create(client, {**v2_headers(cfg), "Origin": ORIGIN})
    assert r.status_code == 200, r.get_json()
    assert r.headers["Cache-Control"] == "no-cache, max-age=0"
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    j = r.get_json()
    assert PROBE5_KEYS <= set(j)
    assert j["oonirun_link_id"].isdigit() and int(j["oonirun_link_id"]) % 100 == 1
    assert (j["revision"], j["is_mine"], j["is_expired"], j["is_archived"]) == ("1", True, False, False)
    assert (j["name"], j["author"], j["icon"], j["color"]) == \
        ("Social media", ALICE, "FaTwitter", "#3498db")
    assert j["name_intl"] == {"it": "Social network"}
    assert j["short_description_intl"] is None
    assert j["description_intl"] == {"es": "Una descripción", "pt_BR": "Uma descrição"}
    # six months ahead by default, to the second
    exp = parse_time(j["expiration_date"])
    assert before + dt.timedelta(days=179) < exp < utcnow() + dt.timedelta(days=181)
    assert parse_time(j["date_created"]) == parse_time(j["date_updated"])
    wc, dns = j["nettests"]
    assert wc["inputs"] == ["https://twitter.com/", "https://www.facebook.com/"]
    assert wc["inputs_extra"] == [{"category_code": "GRP"}, {"category_code": "GRP"}]
    assert wc["options"] == {"HTTP3Enabled": True}
    assert wc["is_background_run_enabled_default"] is True
    assert dns == {**dns, "test_name": "dnscheck", "inputs": [], "inputs_extra": [],
                   "targets_name": "", "options": {},
                   "is_background_run_enabled_default": False,
                   "is_manual_run_enabled_default": False}
    assert rows(db) == 1
    # anonymous readers get the same link, not theirs
    g = get(client, j["oonirun_link_id"]).get_json()
    assert g == {**j, "is_mine": False}


def test_intl_keys_null_when_unset_and_explicit_expiration(client, cfg, db):
    body = link(name_intl=None, description_intl=None, icon=None, color=None,
                expiration_date="2099-01-02T03:04:05Z")
    for key in ("short_description_intl",):
        body.pop(key)
    j = new_link(client, cfg, **body)
    g = get(client, j["oonirun_link_id"]).get_json()
    for key in ("name_intl", "short_description_intl", "description_intl", "icon", "color"):
        assert key in g and g[key] is None, key
    assert g["expiration_date"] == "2099-01-02T03:04:05.000000Z"
    # offsets are converted to UTC
    j = new_link(client, cfg, expiration_date="2099-01-02T05:04:05+02:00")
    assert j["expiration_date"] == "2099-01-02T03:04:05.000000Z"


def test_edit_makes_revisions_only_for_nettests(client, cfg, db):
    alice = v2_headers(cfg)
    j = new_link(client, cfg)
    lid = j["oonirun_link_id"]

    # texts only: same revision, newer date_updated
    body = dict(j, name="Renamed link", description_intl={"fr": "Une description"})
    r = edit(client, alice, lid, body)
    assert r.status_code == 200, r.get_json()
    e1 = r.get_json()
    assert (e1["revision"], e1["name"], e1["description_intl"]) == \
        ("1", "Renamed link", {"fr": "Une description"})
    assert e1["date_created"] == j["date_created"]
    assert parse_time(e1["date_updated"]) > parse_time(j["date_updated"])
    assert e1["expiration_date"] == j["expiration_date"]  # unchanged when sent back

    # new nettests: revision 2
    body = dict(e1)
    body["nettests"] = [{"test_name": "web_connectivity", "inputs": ["https://ooni.org/"]}]
    body.pop("expiration_date")  # not sent: kept
    e2 = edit(client, alice, lid, body).get_json()
    assert e2["revision"] == "2" and e2["nettests"][0]["inputs"] == ["https://ooni.org/"]
    assert e2["expiration_date"] == j["expiration_date"]
    assert parse_time(e2["date_created"]) > parse_time(j["date_created"])

    # a flag alone is a change of nettests too
    body["nettests"][0]["is_manual_run_enabled_default"] = True
    assert edit(client, alice, lid, body).get_json()["revision"] == "3"
    assert edit(client, alice, lid, body).get_json()["revision"] == "3"

    r = client.get(f"/api/v2/oonirun/links/{lid}/revisions")
    assert r.get_json() == {"revisions": ["3", "2", "1"]}
    # each revision keeps its nettests; texts are the newest
    r1 = get(client, lid, revision="1").get_json()
    assert r1["revision"] == "1" and len(r1["nettests"]) == 2 and r1["name"] == "Renamed link"
    assert r1["date_created"] == j["date_created"]
    for rev, want in (("1", "1"), ("2", "2"), ("latest", "3")):
        r = client.get(f"/api/v2/oonirun/links/{lid}/full-descriptor/{rev}")
        assert r.status_code == 200 and r.get_json()["revision"] == want
    assert get(client, lid).get_json()["revision"] == "3"
    for bad in ("abc", "0", "-1", "1.5", "9" * 12):
        r = client.get(f"/api/v2/oonirun/links/{lid}/full-descriptor/{bad}")
        assert r.status_code == 400 and "revision" in r.get_json()["error"], bad
        assert get(client, lid, revision=bad).status_code == 400
    assert client.get(f"/api/v2/oonirun/links/{lid}/full-descriptor/4").status_code == 404
    assert get(client, lid, revision="4").status_code == 404
    assert get(client, "1234567890123").status_code == 404
    assert client.get("/api/v2/oonirun/links/12345/revisions").status_code == 404


def test_edit_permissions(client, cfg, db):
    j = new_link(client, cfg)
    lid = j["oonirun_link_id"]
    n = rows(db)
    # another user: as if the link did not exist
    r = edit(client, v2_headers(cfg, BOB), lid, link(author=BOB, name="Taken over"))
    assert (r.status_code, r.get_json()) == (404, {"error": "OONI Run link not found"})
    # a user cannot put another address as author
    r = edit(client, v2_headers(cfg), lid, link(author=BOB))
    assert r.status_code == 403 and "author" in r.get_json()["error"]
    # unknown link
    assert edit(client, v2_headers(cfg), "123456789", link()).status_code == 404
    assert edit(client, v2_headers(cfg), "not-a-number", link()).status_code == 404
    assert rows(db) == n
    # admins edit any link, any author; the link stays Alice's
    r = edit(client, v2_headers(cfg, ADMIN, "admin"), lid, link(name="Edited by admin"))
    assert r.status_code == 200 and r.get_json()["is_mine"] is False
    g = get(client, lid, v2_headers(cfg)).get_json()
    assert (g["name"], g["is_mine"]) == ("Edited by admin", True)


def test_create_author_must_be_the_caller(client, cfg, db):
    r = create(client, v2_headers(cfg), link(author=BOB))
    assert r.status_code == 400 and "author" in r.get_json()["error"]
    assert rows(db) == 0
    # case does not matter
    assert create(client, v2_headers(cfg), link(author="Alice@Example.ORG")).status_code == 200


@pytest.mark.parametrize("headers_of", [
    lambda cfg: {},
    lambda cfg: {"Authorization": "Bearer garbage"},
    lambda cfg: {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    lambda cfg: v2_headers(cfg, now=utcnow() - dt.timedelta(days=30)),   # expired
    lambda cfg: v2_headers(cfg, role="probe"),                           # wrong role
])
def test_write_routes_refuse_bad_tokens(client, cfg, db, headers_of):
    lid = new_link(client, cfg)["oonirun_link_id"]
    n = rows(db)
    h = headers_of(cfg)
    r = create(client, h)
    assert r.status_code in (401, 403) and "error" in r.get_json()
    r = edit(client, h, lid, link(name="Changed"))
    assert r.status_code in (401, 403) and "error" in r.get_json()
    r = client.post(f"/api/_/ooni_run/archive/{lid}", headers=h)
    assert r.status_code in (401, 403)
    assert rows(db) == n
    assert get(client, lid).get_json()["name"] == "Social media"


def _nt(**kw):
    return {"test_name": "web_connectivity", **kw}


BAD_BODIES = [
    (link(name=5), "name"),
    (link(name="x"), "name"),
    (link(name="n" * 51), "name"),
    (link(short_description=None), "short_description"),
    (link(description=["a"]), "description"),
    (link(author=""), "author"),
    (link(icon=7), "icon"),
    (link(color="blue"), "color"),
    (link(color="#12345"), "color"),
    (link(name_intl="Nome"), "name_intl"),
    (link(name_intl={"it": 3}), "name_intl"),
    (link(name_intl={"it": "x"}), "name_intl"),
    (link(name_intl={"Italian!": "Nome italiano"}), "name_intl"),
    (link(name_intl={"": "Nome italiano"}), "name_intl"),
    (link(description_intl={f"l{i:03d}"[:3] + f"-x{i}": "testo" for i in range(101)}),
     "description_intl"),
    (link(expiration_date="2020-01-01T00:00:00Z"), "expiration_date"),
    (link(expiration_date="tomorrow"), "expiration_date"),
    (link(expiration_date=1893456000), "expiration_date"),
    (link(nettests={"test_name": "dnscheck"}), "nettests"),
    (link(nettests=["dnscheck"]), "nettests[0]"),
    (link(nettests=[_nt(test_name=None)]), "nettests[0].test_name"),
    (link(nettests=[_nt(inputs="https://ooni.org/")]), "nettests[0].inputs"),
    (link(nettests=[_nt(inputs=[1, 2])]), "nettests[0].inputs"),
    (link(nettests=[_nt(targets_name="my_favourite_sites")]), "nettests[0].targets_name"),
    (link(nettests=[_nt(targets_name=["websites_list_prioritized"])]), "nettests[0].targets_name"),
    (link(nettests=[_nt(targets_name="websites_list_prioritized",
                        inputs=["https://ooni.org/"])]), "targets_name"),
    (link(nettests=[_nt(inputs=["https://ooni.org/"],
                        inputs_extra=[{}, {}])]), "nettests[0].inputs_extra"),
    (link(nettests=[_nt(inputs=["https://ooni.org/"], inputs_extra=["x"])]),
     "nettests[0].inputs_extra"),
    (link(nettests=[_nt(options=[])]), "nettests[0].options"),
    (link(nettests=[_nt(is_manual_run_enabled_default="yes")]),
     "nettests[0].is_manual_run_enabled_default"),
]


@pytest.mark.parametrize("body,field", BAD_BODIES)
def test_bad_bodies(client, cfg, db, body, field):
    lid = new_link(client, cfg)["oonirun_link_id"]
    n = rows(db)
    for r in (create(client, v2_headers(cfg), body),
              edit(client, v2_headers(cfg), lid, body)):
        assert r.status_code == 400, (field, r.get_json())
        assert field in r.get_json()["error"], r.get_json()
    assert rows(db) == n


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"name": NaN}',
                                 b"[" * 100000, b'"\\ud800"',
                                 b'{"name": "\\ud800\\ud800", "short_description": "ab",'
                                 b' "description": "ab", "author": "alice@example.org",'
                                 b' "nettests": []}'])
def test_bad_json(client, cfg, db, raw):
    r = client.post("/api/v2/oonirun/links", headers=v2_headers(cfg), data=raw,
                    content_type="application/json")
    assert r.status_code == 400 and "error" in r.get_json()
    assert rows(db) == 0


def test_expiration(client, cfg, db):
    alice = v2_headers(cfg)
    j = new_link(client, cfg)
    lid = j["oonirun_link_id"]
    other = new_link(client, cfg, name="Still running")
    # an old past date is refused, not taken as "expire"
    r = edit(client, alice, lid, dict(j, expiration_date="2001-01-01T00:00:00Z"))
    assert r.status_code == 400 and "expiration_date" in r.get_json()["error"]
    assert get(client, lid).get_json()["is_expired"] is False
    # "now" (as the UI sends it, a little late) expires it
    now = (utcnow() - dt.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    r = edit(client, alice, lid, dict(j, expiration_date=now))
    assert r.status_code == 200 and r.get_json()["is_expired"] is True
    assert parse_time(r.get_json()["expiration_date"]) <= utcnow()
    # an expired link cannot be edited
    n = rows(db)
    r = edit(client, alice, lid, dict(j, name="Too late"))
    assert r.status_code == 403 and "expired" in r.get_json()["error"]
    assert rows(db) == n
    # listed only with is_expired
    ids = [x["oonirun_link_id"] for x in listing(client)]
    assert ids == [other["oonirun_link_id"]]
    ids = [x["oonirun_link_id"] for x in listing(client, is_expired="true")]
    assert set(ids) == {lid, other["oonirun_link_id"]}
    # still served to probes, marked expired
    assert get(client, lid).get_json()["is_expired"] is True


def test_list_filters_and_paging(client, cfg, db):
    a = [new_link(client, cfg, name=f"Alice {i}") for i in range(3)]
    r = create(client, v2_headers(cfg, BOB), link(author=BOB, name="Bob's"))
    b = r.get_json()
    everything = listing(client, v2_headers(cfg))
    # newest first
    assert [x["name"] for x in everything] == ["Bob's", "Alice 2", "Alice 1", "Alice 0"]
    for item in everything:
        assert PROBE5_KEYS <= set(item)
    assert [x["is_mine"] for x in everything] == [False, True, True, True]
    mine = listing(client, v2_headers(cfg), is_mine="true")
    assert [x["oonirun_link_id"] for x in mine] == [x["oonirun_link_id"] for x in a[::-1]]
    assert listing(client, v2_headers(cfg, BOB), is_mine="True")[0]["name"] == "Bob's"
    assert listing(client, is_mine="true") == []  # anonymous owns nothing
    assert len(listing(client, is_mine="false")) == 4
    # paging
    page = listing(client, limit="2", offset="1")
    assert [x["name"] for x in page] == ["Alice 2", "Alice 1"]
    assert listing(client, offset="10") == []
    # one item per revision
    lid = a[0]["oonirun_link_id"]
    body = dict(a[0], nettests=[{"test_name": "dnscheck"}])
    assert edit(client, v2_headers(cfg), lid, body).get_json()["revision"] == "2"
    revs = [(x["oonirun_link_id"], x["revision"])
            for x in listing(client, only_latest="false") if x["oonirun_link_id"] == lid]
    assert revs == [(lid, "2"), (lid, "1")]
    assert [x["revision"] for x in listing(client) if x["oonirun_link_id"] == lid] == ["2"]


@pytest.mark.parametrize("q,field", [
    ({"is_mine": "maybe"}, "is_mine"), ({"is_expired": "2"}, "is_expired"),
    ({"only_latest": "nope"}, "only_latest"), ({"limit": "0"}, "limit"),
    ({"limit": "abc"}, "limit"), ({"limit": "1001"}, "limit"), ({"offset": "-1"}, "offset"),
])
def test_list_bad_params(client, db, q, field):
    r = client.get("/api/v2/oonirun/links", query_string=q)
    assert r.status_code == 400 and field in r.get_json()["error"]


def test_v1_link_served_by_v2_and_edited_there(client, cfg, db):
    """A link of the v1 UI routes, read and edited through v2, then read back
    through v1: both route families work on the same rows."""
    v1 = v1_headers(cfg)
    desc = {"name": "Legacy link", "author": "someone", "description": "made by the v1 UI",
            "nettests": [{"test_name": "web_connectivity", "inputs": ["https://ooni.org/"]}]}
    r = client.post("/api/_/ooni_run/create", headers=v1, json=desc)
    assert r.status_code == 200
    lid = r.get_json()["ooni_run_link_id"]
    g = get(client, lid, v1).get_json()
    assert PROBE5_KEYS <= set(g)
    assert (g["oonirun_link_id"], g["revision"], g["is_mine"], g["is_expired"]) == \
        (str(lid), "1", True, False)
    for key in ("name_intl", "short_description_intl", "description_intl", "color", "icon"):
        assert g[key] is None
    # no expiration stored: six months after creation
    assert parse_time(g["expiration_date"]) == \
        parse_time(g["date_created"]).replace(microsecond=0) + dt.timedelta(days=180)
    # v2 edit with a token from before ooniauth v2 (no e-mail claim)
    body = link(name="Legacy link v2", author="someone")
    r = edit(client, v1, lid, body)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["revision"] == "2"  # the nettests changed
    # v1 fetch serves the v2 descriptor
    f = client.get(f"/api/_/ooni_run/fetch/{lid}").get_json()
    assert f["descriptor"]["name"] == "Legacy link v2"
    assert f["descriptor"]["expiration_date"] == g["expiration_date"]
    # v1 update of the link keeps the expiration a v2 edit stored
    r = client.post(f"/api/_/ooni_run/create?ooni_run_link_id={lid}", headers=v1,
                    json=dict(desc, name="Legacy again"))
    assert r.status_code == 200
    g2 = get(client, lid).get_json()
    assert (g2["name"], g2["expiration_date"], g2["revision"]) == \
        ("Legacy again", g["expiration_date"], "3")


def test_v2_link_served_by_v1_and_archived_there(client, cfg, db):
    j = new_link(client, cfg)
    lid = int(j["oonirun_link_id"])
    f = client.get(f"/api/_/ooni_run/fetch/{lid}", headers=v2_headers(cfg)).get_json()
    assert (f["mine"], f["archived"], f["descriptor"]["name"]) == (True, False, "Social media")
    assert f["descriptor"]["nettests"][0]["inputs"] == LINK_INPUTS
    items = client.get("/api/_/ooni_run/list").get_json()["descriptors"]
    assert [i["ooni_run_link_id"] for i in items] == [lid]
    # archived through v1: expired for v2, no longer editable there
    r = client.post(f"/api/_/ooni_run/archive/{lid}", headers=v2_headers(cfg))
    assert r.status_code == 200
    g = get(client, lid).get_json()
    assert (g["is_archived"], g["is_expired"]) == (True, True)
    assert edit(client, v2_headers(cfg), lid, j).status_code == 403
    assert listing(client) == []
    assert listing(client, is_expired="1")[0]["oonirun_link_id"] == str(lid)


LINK_INPUTS = ["https://twitter.com/", "https://www.facebook.com/"]


def test_v2_tokens_work_on_v1_routes_and_v1_tokens_on_v2(client, cfg, db):
    r = client.post("/api/_/ooni_run/create", headers=v2_headers(cfg),
                    json={"name": "x", "author": "y"})
    assert r.status_code == 200
    r = create(client, v1_headers(cfg), link(author="anyone at all"))
    assert r.status_code == 200


def test_a_link_sent_back_as_read_is_accepted_unchanged(client, cfg, db):
    """run.ooni.org edits by sending the link it read: the answer's own
    shapes (inputs_extra [] beside inputs, targets_name "", extra keys)
    must validate and must not make a new revision."""
    j = new_link(client, cfg, nettests=[
        {"test_name": "dnscheck", "inputs": ["https://dns.google/dns-query"]},
        {"test_name": "web_connectivity", "targets_name": "websites_list_prioritized"}])
    g = get(client, j["oonirun_link_id"]).get_json()
    assert g["nettests"][0]["inputs_extra"] == [] and g["nettests"][0]["targets_name"] == ""
    r = edit(client, v2_headers(cfg), j["oonirun_link_id"], g)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["revision"] == "1"
    assert r.get_json()["nettests"] == g["nettests"]


@pytest.mark.parametrize("extra,field", [
    ({"color": "red"}, "color"),
    ({"expiration_date": "soon"}, "expiration_date"),
    ({"nettests": [{"test_name": "web_connectivity", "targets_name": "all_of_them"}]},
     "targets_name"),
    ({"nettests": [{"test_name": "web_connectivity", "targets_name": "websites_list_prioritized",
                    "inputs": ["https://ooni.org/"]}]}, "targets_name"),
])
def test_v1_create_checks_the_v2_fields(client, cfg, db, extra, field):
    r = client.post("/api/_/ooni_run/create", headers=v1_headers(cfg),
                    json={"name": "Legacy", "author": "x", **extra})
    assert r.status_code == 400 and field in r.get_json()["error"]
    assert rows(db) == 0


@pytest.mark.parametrize("path,method", [
    ("/api/v2/oonirun/links", "POST"), ("/api/v2/oonirun/links/123401", "PUT"),
    ("/api/v2/oonirun/links/123401/engine-descriptor/latest", "POST"),
    ("/api/v2/ooniauth/user-session", "POST"), ("/api/v2/ooniauth/user-login", "POST"),
])
def test_preflight_of_v2_routes(client, db, path, method):
    pre = {"Access-Control-Request-Method": method,
           "Access-Control-Request-Headers": "authorization,content-type"}
    r = client.options(path, headers={**pre, "Origin": ORIGIN})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert method in r.headers["Access-Control-Allow-Methods"]
    r = client.options(path, headers={**pre, "Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in r.headers
