"""The detector's API: changepoints and Atom feeds, after the job ran over
the seeded week (tests/functional/detector_rows.py)."""
from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlparse

import feedparser
import pytest

from analysis.detector import job

from tests.functional.detector_rows import (BLOCK_END, BLOCK_START, BLOCKED_ASN, BLOCKED_CC, BLOCKED_DOMAIN,
                            T0, WEEK, seed)

SINCE = "since=2024-05-01&until=2024-05-20"


@pytest.fixture
def detected(db, cfg):
    seed(db)
    job.run(cfg, db, since=T0, until=WEEK)
    return db


def _close(s: str, expected: dt.datetime) -> bool:
    t = dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
    return abs(t - expected) <= dt.timedelta(hours=2)


def test_changepoints(detected, client):
    r = client.get(f"/api/v1/detector/changepoints?{SINCE}")
    assert r.status_code == 200
    assert "max-age" in r.headers["Cache-Control"]
    res = r.get_json()["results"]
    assert [(x["probe_cc"], x["probe_asn"], x["domain"], x["change_dir"], x["current_state"])
            for x in res] == [(BLOCKED_CC, BLOCKED_ASN, BLOCKED_DOMAIN, "up", "blocked"),
                              (BLOCKED_CC, BLOCKED_ASN, BLOCKED_DOMAIN, "down", "ok")]
    assert _close(res[0]["start_time"], BLOCK_START) and _close(res[1]["start_time"], BLOCK_END)
    up = res[0]
    assert up["current_mean"] > 0.5 > up["previous_mean"]
    assert up["h"] == 2.0 and up["s_pos"] > up["h"] and up["count"] >= 5
    assert up["end_time"] >= up["start_time"]
    assert up["dns_isp_blocked"] is None and up["tcp_blocked_s_pos"] is None

    for q in (f"probe_cc=IR&{SINCE}", f"probe_asn=AS{BLOCKED_ASN}&{SINCE}",
              f"probe_asn={BLOCKED_ASN}&domain={BLOCKED_DOMAIN}&{SINCE}"):
        assert len(client.get(f"/api/v1/detector/changepoints?{q}").get_json()["results"]) == 2, q
    for q in (f"probe_cc=DE&{SINCE}", f"probe_asn=AS1&{SINCE}", f"domain=twitter.com&{SINCE}",
              "since=2024-05-10T12:00:00&until=2024-05-10T13:00:00"):
        assert client.get(f"/api/v1/detector/changepoints?{q}").get_json()["results"] == [], q
    # default window: the last 30 days, long after the seeded week
    assert client.get("/api/v1/detector/changepoints").get_json() == {"results": []}


@pytest.mark.parametrize("q", ["probe_cc=IRN", "probe_cc=1", "probe_asn=ASX", "probe_asn=-1",
                               "domain=not a domain", "domain=%00", "since=yesterday-ish",
                               "since=2024-05-10&until=2024-05-01"])
def test_changepoints_bad_input(detected, client, q):
    r = client.get(f"/api/v1/detector/changepoints?{q}")
    assert r.status_code == 400
    assert "error" in r.get_json()


def _feed(client, path: str, **headers):
    r = client.get(path, headers=headers)
    return r, feedparser.parse(r.data)


def _check_entries(f, expected_n: int):
    assert not f.bozo, f.bozo_exception
    assert f.version == "atom10"
    assert len(f.entries) == expected_n
    for e in f.entries:
        assert e.id.startswith("tag:ooni.org,")
        assert e.updated_parsed and e.published_parsed
        link = urlparse(e.link)
        assert (link.netloc, link.path) == ("explorer.ooni.org", "/chart/mat")
        q = parse_qs(link.query)
        assert q["probe_cc"] == [BLOCKED_CC] and q["probe_asn"] == [f"AS{BLOCKED_ASN}"]
        assert q["domain"] == [BLOCKED_DOMAIN] and q["test_name"] == ["web_connectivity"]


def test_country_and_domain_feeds(detected, client):
    for path in (f"/api/v1/detector/feeds/by-country/{BLOCKED_CC}.atom",
                 "/api/v1/detector/feeds/by-country/ir.atom",
                 f"/api/v1/detector/feeds/by-domain/{BLOCKED_DOMAIN}.atom",
                 f"/api/v1/detector/feeds/by-asn/AS{BLOCKED_ASN}.atom",
                 f"/api/v1/detector/feeds/by-asn/{BLOCKED_ASN}.atom",
                 "/api/v1/detector/feeds/global.atom"):
        r, f = _feed(client, path)
        assert r.status_code == 200, path
        assert r.mimetype == "application/atom+xml"
        _check_entries(f, 2)
        titles = sorted(e.title for e in f.entries)
        assert titles == [f"{BLOCKED_DOMAIN} blocked in IR (AS{BLOCKED_ASN})",
                          f"{BLOCKED_DOMAIN} reachable again in IR (AS{BLOCKED_ASN})"]
        published = sorted(dt.datetime(*e.published_parsed[:6]) for e in f.entries)
        assert abs(published[0] - BLOCK_START) <= dt.timedelta(hours=2)
        assert abs(published[1] - BLOCK_END) <= dt.timedelta(hours=2)
        assert f.feed.links[0].href.endswith(path)

    for path in ("/api/v1/detector/feeds/by-country/DE.atom",
                 "/api/v1/detector/feeds/by-domain/twitter.com.atom",
                 "/api/v1/detector/feeds/by-asn/AS3320.atom"):
        r, f = _feed(client, path)
        assert r.status_code == 200 and not f.bozo and f.entries == []


def test_feed_ids_are_stable_across_reruns(detected, client, cfg):
    _, before = _feed(client, "/api/v1/detector/feeds/global.atom")
    job.run(cfg, detected, since=T0, until=WEEK)
    _, after = _feed(client, "/api/v1/detector/feeds/global.atom")
    assert [(e.id, e.updated) for e in before.entries] == [(e.id, e.updated) for e in after.entries]


def test_feed_conditional_get(detected, client):
    path = f"/api/v1/detector/feeds/by-country/{BLOCKED_CC}.atom"
    r = client.get(path)
    etag, last_mod = r.headers["ETag"], r.headers["Last-Modified"]
    assert etag and last_mod
    r2 = client.get(path, headers={"If-None-Match": etag})
    assert r2.status_code == 304 and r2.data == b""
    r3 = client.get(path, headers={"If-Modified-Since": last_mod})
    assert r3.status_code == 304
    r4 = client.get(path, headers={"If-None-Match": '"something-else"'})
    assert r4.status_code == 200 and r4.data == r.data
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(path, headers={"If-Modified-Since": old}).status_code == 200
    # Another feed has another tag.
    other = client.get("/api/v1/detector/feeds/global.atom")
    assert other.headers["ETag"] != etag


@pytest.mark.parametrize("path", [
    "by-country/IRN.atom", "by-country/I1.atom", "by-country/%C3%A9%C3%A9.atom",
    "by-asn/ASX.atom", "by-asn/99999999999.atom", "by-asn/-5.atom",
    "by-domain/not_a%20domain.atom", "by-domain/localhost.atom",
    "by-domain/example.com:443.atom", "by-domain/" + "a" * 300 + ".com.atom",
])
def test_feed_bad_path_is_400(db, client, path):
    r = client.get(f"/api/v1/detector/feeds/{path}")
    assert r.status_code == 400, path
    assert "error" in r.get_json()


def test_unknown_feed_is_json_404(db, client):
    r = client.get("/api/v1/detector/feeds/by-planet/mars.atom")
    assert r.status_code == 404 and "error" in r.get_json()
