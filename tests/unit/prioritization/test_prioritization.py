"""Pure prioritization logic (api.md §8.1)."""
import random

from ooniapi.prioritization.rules import (
    Candidate,
    Rule,
    Scored,
    compute_priority,
    prioritize,
    rule_matches,
    score_candidates,
    url_limit,
    weight,
)

BBC = Candidate("NEWS", "www.bbc.com", "https://www.bbc.com/", "ZZ")
REP = Candidate("NEWS", "www.repubblica.it", "https://www.repubblica.it/", "it")
GMB = Candidate("GMB", "casino.it", "https://casino.it/", "IT")


def R(cat="*", cc="*", domain="*", url="*", p=10):
    return Rule(cat, cc, domain, url, p)


def test_rule_matching():
    assert rule_matches(R(), BBC)
    assert rule_matches(R(cat="", cc="", domain="", url=""), REP)
    assert rule_matches(R(cat="NEWS"), REP) and not rule_matches(R(cat="NEWS"), GMB)
    assert rule_matches(R(cc="IT"), REP) and rule_matches(R(cc="it"), GMB)
    assert not rule_matches(R(cc="DE"), REP)
    # global-list URLs match rules of any country
    assert rule_matches(R(cc="DE"), BBC)
    assert rule_matches(R(domain="www.bbc.com"), BBC) and not rule_matches(R(domain="bbc.com"), BBC)
    assert rule_matches(R(url="https://casino.it/"), GMB) and not rule_matches(R(url="https://casino.it"), GMB)


def test_priorities_sum_matching_rules():
    rules = [R(cat="NEWS", p=100), R(cc="IT", p=5), R(domain="www.bbc.com", p=-30), R(cat="GMB", p=-20)]
    assert compute_priority(BBC, rules) == 100 + 5 - 30
    assert compute_priority(REP, rules) == 105
    assert compute_priority(GMB, rules) == -15
    assert [s.priority for s in score_candidates([BBC, REP, GMB], rules)] == [75, 105, -15]


def test_weight():
    assert weight(100, 0) == 1000
    assert weight(100, 4) == 25


def test_prioritize_orders_filters_and_limits():
    scored = [Scored(BBC, 100), Scored(REP, 100), Scored(GMB, 30),
              Scored(Candidate("HATE", "x.org", "https://x.org/", "ZZ"), 0)]
    out = prioritize(scored, {"https://www.bbc.com/": 50}, None, 10)
    assert [o["url"] for o in out] == ["https://www.repubblica.it/", "https://casino.it/",
                                       "https://www.bbc.com/"]
    assert [o["country_code"] for o in out] == ["IT", "IT", "XX"]
    assert set(out[0]) == {"category_code", "url", "country_code"}
    assert [o["url"] for o in prioritize(scored, {}, ["GMB"], 10)] == ["https://casino.it/"]
    assert len(prioritize(scored, {}, None, 2)) == 2
    dbg = prioritize(scored, {"https://www.bbc.com/": 50}, None, 10, debug=True)
    assert dbg[-1] == {"category_code": "NEWS", "url": "https://www.bbc.com/",
                       "country_code": "XX", "msmt_cnt": 50, "priority": 100, "weight": 2.0}


def test_equal_weights_are_shuffled_and_urls_unique():
    cands = [Candidate("NEWS", f"d{i}", f"https://d{i}/", "ZZ") for i in range(30)]
    scored = [Scored(c, 10) for c in cands] + [Scored(cands[0], 10)]
    a = [o["url"] for o in prioritize(scored, {}, None, 100, rng=random.Random(1))]
    b = [o["url"] for o in prioritize(scored, {}, None, 100, rng=random.Random(2))]
    assert len(a) == len(set(a)) == 30
    assert a != b and sorted(a) == sorted(b)


def test_url_limit():
    assert url_limit("manual", False) == 9999
    assert url_limit("timed", True) == 100
    assert url_limit("timed", False) == 20
