"""The check-in's test-list cache (ooniapi.prioritization.cache): what is cached, for
how long, and what drops it. The database functions are replaced by a fake
that counts its calls."""
import threading

import pytest

from ooniapi.prioritization import cache as pz
from ooniapi.prioritization.rules import Candidate, Rule

BBC = Candidate("NEWS", "www.bbc.com", "https://www.bbc.com/", "ZZ")
REP = Candidate("NEWS", "www.repubblica.it", "https://www.repubblica.it/", "it")
GMB = Candidate("GMB", "casino.it", "https://casino.it/", "it")


class FakeClock:
    t = 1000.0

    def __call__(self):
        return self.t


class FakeDB:
    """What the three queries of the prioritizer would read."""

    def __init__(self):
        self.rules = [Rule("NEWS", "*", "*", "*", 100), Rule("GMB", "*", "*", "*", 30)]
        self.candidates = [BBC, REP, GMB]
        self.counts: dict[tuple[str, int], dict[str, int]] = {}
        self.calls: list[tuple] = []
        self.on_counts = None  # hook run inside the counts query


@pytest.fixture
def fake(monkeypatch):
    db = FakeDB()

    def rules(d, cc):
        d.calls.append(("rules", cc))
        return list(d.rules)

    def candidates(d, cc):
        d.calls.append(("candidates", cc))
        return list(d.candidates)

    def counts(d, cc, asn):
        d.calls.append(("counts", cc, asn))
        if d.on_counts:
            d.on_counts()
        return dict(d.counts.get((cc, asn), {}))

    monkeypatch.setattr(pz, "fetch_rules", rules)
    monkeypatch.setattr(pz, "fetch_candidates", candidates)
    monkeypatch.setattr(pz, "fetch_counts", counts)
    return db


def urls(p, db, cc="IT", asn=1, limit=10, codes=None):
    return [u["url"] for u in p.test_list(db, cc, asn, codes, limit)]


def test_served_from_cache_within_ttl(fake):
    clock = FakeClock()
    p = pz.Prioritizer(ttl=30, clock=clock)
    first = urls(p, fake)
    assert first[-1] == GMB.url and set(first) == {BBC.url, REP.url, GMB.url}
    assert fake.calls == [("rules", "IT"), ("candidates", "IT"), ("counts", "IT", 1)]
    fake.calls.clear()
    clock.t += 29
    for _ in range(5):
        urls(p, fake)
    assert fake.calls == []
    # a second network of the country shares the country list
    urls(p, fake, asn=2)
    assert fake.calls == [("counts", "IT", 2)]


def test_new_counts_are_used_after_the_ttl(fake):
    clock = FakeClock()
    p = pz.Prioritizer(ttl=30, clock=clock)
    assert urls(p, fake, limit=1)[0] in (BBC.url, REP.url)
    fake.counts[("IT", 1)] = {BBC.url: 50, REP.url: 50}
    clock.t += 29.9
    assert urls(p, fake, limit=1)[0] in (BBC.url, REP.url)  # stale within the bound
    clock.t += 0.2
    assert urls(p, fake, limit=1) == [GMB.url]  # 30/0.1 > 100/50
    # other networks of the country are unaffected by AS1's measurements
    assert urls(p, fake, asn=2, limit=1)[0] in (BBC.url, REP.url)


def test_rule_and_citizenlab_changes_are_used_after_the_ttl(fake):
    clock = FakeClock()
    p = pz.Prioritizer(ttl=30, clock=clock)
    urls(p, fake)
    fake.rules.append(Rule("*", "IT", "*", GMB.url, 1000))
    fake.candidates.append(Candidate("NEWS", "new.it", "https://new.it/", "it"))
    assert urls(p, fake, limit=1)[0] != GMB.url
    clock.t += 31
    out = urls(p, fake)
    assert out[0] == GMB.url and "https://new.it/" in out


def test_invalidate_applies_a_rule_change_at_once(fake):
    clock = FakeClock()
    p = pz.Prioritizer(ttl=30, clock=clock)
    urls(p, fake, asn=1)
    urls(p, fake, asn=2)
    fake.rules = [Rule("NEWS", "*", "*", "*", 100), Rule("GMB", "*", "*", "*", -1)]
    assert GMB.url in urls(p, fake)
    fake.calls.clear()
    p.invalidate()
    assert GMB.url not in urls(p, fake, asn=1)
    assert GMB.url not in urls(p, fake, asn=2)
    assert fake.calls == [("rules", "IT"), ("candidates", "IT"), ("counts", "IT", 1),
                          ("counts", "IT", 2)]


def test_a_build_overtaken_by_invalidate_is_not_kept(fake):
    p = pz.Prioritizer(ttl=30, clock=FakeClock())
    fake.on_counts = p.invalidate  # an admin update while the counts are read
    urls(p, fake)
    fake.on_counts = None
    fake.calls.clear()
    urls(p, fake)
    assert fake.calls == [("rules", "IT"), ("candidates", "IT"), ("counts", "IT", 1)]


def test_expired_network_is_served_stale_while_another_request_refreshes_it(fake):
    clock = FakeClock()
    p = pz.Prioritizer(ttl=30, clock=clock)
    assert urls(p, fake, limit=1)[0] in (BBC.url, REP.url)
    fake.counts[("IT", 1)] = {BBC.url: 50, REP.url: 50}
    clock.t += 31
    inside, release = threading.Event(), threading.Event()

    def slow_counts():
        inside.set()
        release.wait(30)

    fake.on_counts = slow_counts
    refresher = threading.Thread(target=urls, args=(p, fake))
    refresher.start()
    try:
        assert inside.wait(30)
        fake.on_counts = None
        # the refresher holds the network: this request gets the old list
        assert urls(p, fake, limit=1)[0] in (BBC.url, REP.url)
        assert [c for c in fake.calls if c[0] == "counts"] == [("counts", "IT", 1)] * 2
    finally:
        release.set()
        refresher.join(30)
    assert urls(p, fake, limit=1) == [GMB.url]


def test_concurrent_first_requests_build_once(fake):
    p = pz.Prioritizer(ttl=30, clock=FakeClock())
    inside, release = threading.Event(), threading.Event()

    def slow_counts():
        inside.set()
        release.wait(30)

    fake.on_counts = slow_counts
    first = threading.Thread(target=urls, args=(p, fake))
    first.start()
    assert inside.wait(30)
    fake.on_counts = None
    results = []
    second = threading.Thread(target=lambda: results.append(urls(p, fake)))
    second.start()
    release.set()
    first.join(30)
    second.join(30)
    assert len(results[0]) == 3
    assert [c for c in fake.calls if c[0] == "counts"] == [("counts", "IT", 1)]


def test_number_of_cached_networks_is_bounded(fake):
    p = pz.Prioritizer(ttl=30, max_networks=2, clock=FakeClock())
    for asn in (1, 2, 3):
        urls(p, fake, asn=asn)
    fake.calls.clear()
    urls(p, fake, asn=3)
    urls(p, fake, asn=2)
    assert fake.calls == []
    urls(p, fake, asn=1)  # the oldest, evicted
    assert fake.calls == [("counts", "IT", 1)]


def test_config_and_failover(fake):
    from ooni_common.config import Config
    p = pz.Prioritizer.from_config(Config({"PRIORITIZATION_CACHE_SECONDS": "5",
                                           "PRIORITIZATION_CACHE_NETWORKS": "7"}))
    assert (p.ttl, p.max_networks) == (5.0, 7)
    assert p.failover(None, 5) == []
    urls(p, fake)
    assert p.global_list == [BBC]
    assert p.failover(["NEWS"], 5) == [
        {"category_code": "NEWS", "url": BBC.url, "country_code": "XX"}]
    assert p.failover(["GMB"], 5) == []


def test_database_failure_serves_the_previous_list(fake):
    from ooni_common.db import DatabaseError
    clock = FakeClock()
    p = pz.Prioritizer(ttl=30, clock=clock)
    before = set(urls(p, fake))

    def down():
        raise DatabaseError("down")

    fake.on_counts = down
    clock.t += 31
    assert set(urls(p, fake)) == before
    with pytest.raises(DatabaseError):
        urls(p, fake, asn=2)  # nothing to fall back on
    fake.on_counts = None
    fake.counts[("IT", 1)] = {BBC.url: 50, REP.url: 50}
    assert urls(p, fake, limit=1) == [GMB.url]  # back to fresh lists
