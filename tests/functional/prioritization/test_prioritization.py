"""Prioritization with the real CitizenLab lists of ../shared/data/test-lists,
the default priority rules and measurement counts that reach the counters
views through fastpath rows."""
import json

import pytest

from tests.prio_support import insert_measurements, load_citizenlab

from ooniapi.core import auth

TARGET = "https://www.bbc.com/"  # global list, NEWS (priority 100)
IT_FILE_URL = "http://www.torrentdownload.ws/"  # it.csv, FILE (priority 40)

CHECKIN = {"charging": True, "on_wifi": True, "platform": "android", "probe_cc": "IT",
           "probe_asn": "AS30722", "run_type": "manual", "software_name": "ooniprobe-android",
           "software_version": "5.0.0", "web_connectivity": {"category_codes": []}}


@pytest.fixture
def lists(db, shared_data):
    d = shared_data / "test-lists" / "lists"
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    n = load_citizenlab(db, d)
    assert n == 9710  # reference-data.md §6.1
    return d


def _urls(client, **over):
    body = dict(CHECKIN, **over)
    r = client.post("/api/v1/check-in", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 200, r.data
    return [u["url"] for u in r.get_json()["tests"]["web_connectivity"]["urls"]]


def _admin(cfg):
    return {"Authorization": "Bearer " + auth.session_token(cfg, "a" * 32, "admin")}


class FakeClock:
    t = 1000.0

    def __call__(self):
        return self.t


def test_measured_url_drops_in_its_asn_only(app, client, db, lists):
    clock = FakeClock()
    prioritizer = app.extensions["ooni"].extras["prioritizer"]
    prioritizer.clock = clock
    before = _urls(client)
    assert TARGET in before
    assert len(before) == 1722 + 260  # global + it lists, every default priority > 0
    insert_measurements(db, TARGET, "IT", 30722, 40)
    insert_measurements(db, TARGET, "DE", 3320, 40)
    counts = db.query("SELECT probe_asn, sum(msmt_cnt) AS n FROM counters_asn_test_list "
                      "GROUP BY probe_asn ORDER BY probe_asn")
    assert counts == [{"probe_asn": 3320, "n": 40}, {"probe_asn": 30722, "n": 40}]
    # check-ins use counts at most PRIORITIZATION_CACHE_SECONDS old
    clock.t += prioritizer.ttl - 1
    assert _urls(client)[-1] != TARGET
    clock.t += 2
    measured = _urls(client)
    # 100/40 = 2.5 is below every unmeasured URL (>= 20/0.1)
    assert measured[-1] == TARGET
    # another Italian network has not measured it: still in the top block of
    # priority-100 categories (NEWS POLR HUMR LGBT ANON COMT GRP)
    other = _urls(client, probe_asn="AS3269")
    top = db.execute("""SELECT count(DISTINCT url) FROM citizenlab
        WHERE toStringCutToZero(cc) IN ('it', 'ZZ')
          AND category_code IN ('NEWS','POLR','HUMR','LGBT','ANON','COMT','GRP')""")[0][0]
    assert other.index(TARGET) < top
    # the country-wide list (asn 0) sums the networks of IT only
    r = client.get("/api/v1/test-list/urls?country_code=IT&debug=true")
    items = {i["url"]: i for i in r.get_json()["results"]}
    assert items[TARGET]["msmt_cnt"] == 40 and items[TARGET]["priority"] == 100
    # timed runs on battery get 20 URLs, and the measured one is not among them
    assert TARGET not in _urls(client, run_type="timed", charging=False)


def test_admin_priority_change_reorders_next_checkin(client, cfg, lists):
    def first_timed():
        return _urls(client, run_type="timed")

    assert IT_FILE_URL not in first_timed()  # FILE 40 loses to the 100s
    rule = {"category_code": "*", "cc": "IT", "domain": "*", "url": IT_FILE_URL,
            "priority": 5000}
    r = client.post("/api/_/url-priorities/update", data=json.dumps({"new_entry": rule}),
                    headers=_admin(cfg), content_type="application/json")
    assert (r.status_code, r.get_json()) == (200, 1)
    assert first_timed()[0] == IT_FILE_URL
    rules = client.get("/api/_/url-priorities/list").get_json()["rules"]
    assert dict(rule, category_code="*") in rules
    assert len(rules) == 32
    # lowering it through an edit (old -> new) takes effect at once too
    r = client.post("/api/_/url-priorities/update", headers=_admin(cfg),
                    data=json.dumps({"old_entry": rule, "new_entry": dict(rule, priority=-100)}))
    assert r.status_code == 200
    assert IT_FILE_URL not in _urls(client)
    r = client.post("/api/_/url-priorities/update", headers=_admin(cfg),
                    data=json.dumps({"old_entry": dict(rule, priority=-100)}))
    assert r.status_code == 200
    assert IT_FILE_URL in _urls(client)
    assert len(client.get("/api/_/url-priorities/list").get_json()["rules"]) == 31


def test_url_priorities_update_errors(client, cfg, db):
    h = _admin(cfg)
    rule = {"category_code": "NEWS", "cc": "*", "domain": "*", "url": "*", "priority": 100}

    def upd(body, headers=h):
        r = client.post("/api/_/url-priorities/update", data=json.dumps(body), headers=headers,
                        content_type="application/json")
        return r.status_code, r.get_json()

    client.get("/api/_/url-priorities/list")  # seeds the default rules
    s, j = upd({"new_entry": rule})
    assert (s, j["err_str"]) == (400, "err_duplicate_rule")
    s, j = upd({"new_entry": dict(rule, priority=5)})
    assert (s, j["err_str"]) == (400, "err_duplicate_rule")
    assert upd({})[1]["err_str"] == "err_no_proposed_changes"
    assert upd({"old_entry": rule, "new_entry": rule})[1]["err_str"] == "err_no_proposed_changes"
    assert upd({"new_entry": {"category_code": "NEWS"}})[1]["err_str"] == "err_request_params"
    assert upd({"new_entry": dict(rule, extra=1)})[1]["err_str"] == "err_request_params"
    assert upd({"new_entry": dict(rule, priority="100")})[1]["err_str"] == "err_request_params"
    assert upd({"new_entry": dict(rule, cc="QQ")})[1]["err_str"] == "err_invalid_country_code"
    assert upd({"new_entry": dict(rule, category_code="NE WS")})[1]["err_str"] == "err_bad_category_code"
    assert upd({"new_entry": "x"})[1]["err_str"] == "err_request_params"
    s, j = upd({"old_entry": dict(rule, category_code="GMB", priority=1)})
    assert (s, j["err_str"]) == (404, "err_rule_not_found")
    s, j = upd({"new_entry": dict(rule, category_code="GMB")}, headers={})
    assert (s, j) == (401, {"error": "Authentication required"})
    user = {"Authorization": "Bearer " + auth.session_token(cfg, "b" * 32, "user")}
    assert upd({"new_entry": dict(rule, category_code="GMB")}, headers=user)[0] == 401
    r = client.post("/api/_/url-priorities/update", data=b"nope", headers=h)
    assert r.status_code == 400
    # nothing of the above changed the rules
    rows = db.execute("SELECT count() FROM url_priorities")[0][0]
    assert rows == 31
    # empty match fields are stored as '*'
    s, j = upd({"new_entry": {"category_code": "", "cc": "it", "domain": "x.org", "url": "",
                              "priority": 7}})
    assert s == 200
    rules = client.get("/api/_/url-priorities/list").get_json()["rules"]
    assert {"category_code": "*", "cc": "IT", "domain": "x.org", "url": "*", "priority": 7} in rules


def test_test_list_urls(client, lists):
    r = client.get("/api/v1/test-list/urls?country_code=it&category_codes=news,HUMR&limit=10")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "max-age=1"
    j = r.get_json()
    assert j["metadata"] == {"count": 10, "current_page": -1, "limit": -1, "next_url": "",
                             "pages": 1}
    assert {x["category_code"] for x in j["results"]} <= {"NEWS", "HUMR"}
    assert set(j["results"][0]) == {"category_code", "country_code", "url"}
    j = client.get("/api/v1/test-list/urls?probe_cc=DE&limit=-1").get_json()
    assert j["metadata"]["count"] == 1722 + 195
    j = client.get("/api/v1/test-list/urls").get_json()
    assert {x["country_code"] for x in j["results"]} == {"XX"}
    for bad in ("limit=abc", "limit=0", "limit=-5", "country_code=QQ", "country_code=ITA",
                "category_codes=N1"):
        r = client.get(f"/api/v1/test-list/urls?{bad}")
        assert r.status_code == 400 and "error" in r.get_json(), bad


def test_debug_prioritization(client, db, lists):
    insert_measurements(db, TARGET, "IT", 30722, 3)
    r = client.get("/api/_/debug_prioritization?probe_cc=IT&probe_asn=AS30722&limit=5")
    assert r.status_code == 200
    j = r.get_json()
    assert len(j["test_items"]) == 5
    assert {"msmt_cnt", "priority", "weight"} <= set(j["test_items"][0])
    assert len(j["entries"]) == 1722 + 260
    e = next(x for x in j["entries"] if x["url"] == TARGET)
    assert e["msmt_cnt"] == 3 and e["cc"] == "ZZ"
    assert len(j["prio_rules"]) == 31
    assert client.get("/api/_/debug_prioritization?probe_asn=ASx").status_code == 400


def test_show_countries_prioritization(client, db, lists):
    insert_measurements(db, TARGET, "ZZ", 0, 2)
    insert_measurements(db, IT_FILE_URL, "IT", 30722, 4)
    r = client.get("/api/_/show_countries_prioritization")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "max-age=1"
    rows = r.get_json()
    assert len(rows) == 9710
    it = next(x for x in rows if x["url"] == IT_FILE_URL and x["cc"] == "IT")
    assert it == {"domain": "www.torrentdownload.ws", "url": IT_FILE_URL, "cc": "IT",
                  "category_code": "FILE", "msmt_cnt": 4, "anomaly_perc": 0, "priority": 40}
    ccs = [x["cc"] for x in rows]
    assert ccs == sorted(ccs)
    r = client.get("/api/_/show_countries_prioritization?format=CSV")
    assert r.mimetype == "text/csv"
    lines = r.data.decode().splitlines()
    assert lines[0] == "anomaly_perc,category_code,cc,domain,msmt_cnt,priority,url"
    assert len(lines) == 9711
    assert client.get("/api/_/show_countries_prioritization?format=XML").status_code == 400
