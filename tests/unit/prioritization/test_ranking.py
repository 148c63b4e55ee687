"""The precomputed per-network ranking (ooniapi.prioritization.ranking) serves what the
reference algorithm of api.md §8.1 (prioritization.prioritize) serves."""
import random
from collections import Counter

import pytest

from ooniapi.prioritization.ranking import build_ranking, entries_of, select
from ooniapi.prioritization.rules import Candidate, Scored, prioritize

CATS = ["NEWS", "GMB", "POLR", "HUMR", "LGBT"]


def random_case(rng, n=300):
    # fewer URLs than entries: some URLs are in several lists or categories
    urls = [f"https://u{i}.example.org/" for i in range(n * 3 // 4)]
    scored = [Scored(Candidate(rng.choice(CATS), "d", rng.choice(urls), rng.choice(["ZZ", "it"])),
                     rng.choice([-10, 0, 10, 20, 30, 55, 100])) for _ in range(n)]
    counts = {u: rng.choice([0, 1, 2, 3, 5, 7, 40]) for u in urls if rng.random() < 0.6}
    return scored, counts


def by_weight(items):
    groups: dict[float, set] = {}
    for it in items:
        groups.setdefault(it["weight"], set()).add(it["url"])
    return groups


@pytest.mark.parametrize("seed", range(12))
def test_same_lists_as_the_reference_algorithm(seed):
    rng = random.Random(seed)
    scored, counts = random_case(rng)
    ranking = build_ranking(entries_of(scored), counts)
    for wanted in (None, [], ["NEWS"], ["GMB", "POLR"], ["HUMR", "NEWS", "LGBT", "GMB", "POLR"],
                   ["XED"]):
        for limit in (1, 7, 20, 100, 9999):
            ref = prioritize(scored, counts, wanted, limit, debug=True, rng=random.Random(1))
            got = select(ranking, wanted, limit, debug=True, rng=random.Random(2))
            assert [x["weight"] for x in got] == [x["weight"] for x in ref]
            urls = [x["url"] for x in got]
            assert len(urls) == len(set(urls))
            ref_groups, got_groups = by_weight(ref), by_weight(got)
            eligible: dict[float, set] = {}
            for sc in scored:
                if sc.priority > 0 and (not wanted or sc.candidate.category_code in wanted):
                    w = sc.priority / max(counts.get(sc.candidate.url, 0), 0.1)
                    eligible.setdefault(w, set()).add(sc.candidate.url)
            last = got[-1]["weight"] if got else None
            for w, us in got_groups.items():
                if w == last and len(got) == limit:
                    assert us <= eligible[w]  # the group the limit cut
                else:
                    assert us == ref_groups[w]
            for x in got:
                assert set(x) == {"category_code", "url", "country_code", "msmt_cnt",
                                  "priority", "weight"}
                assert not wanted or x["category_code"] in wanted
                assert x["priority"] > 0
                assert x["msmt_cnt"] == counts.get(x["url"], 0)
                assert x["weight"] == x["priority"] / max(x["msmt_cnt"], 0.1)


def test_exact_order_without_ties():
    cands = [Candidate(CATS[i % 5], f"d{i}", f"https://d{i}/", "ZZ" if i % 2 else "de")
             for i in range(50)]
    scored = [Scored(c, i + 1) for i, c in enumerate(cands)]
    counts = {c.url: 0 for c in cands}
    ranking = build_ranking(entries_of(scored), counts)
    for wanted, limit in ((None, 100), (["NEWS", "GMB"], 7), (["POLR"], 3)):
        assert select(ranking, wanted, limit) == prioritize(scored, counts, wanted, limit)
    out = select(ranking, None, 2)
    assert out == [{"category_code": "LGBT", "url": "https://d49/", "country_code": "XX"},
                   {"category_code": "HUMR", "url": "https://d48/", "country_code": "DE"}]


def test_a_url_comes_once_with_its_best_entry():
    x_news = Candidate("NEWS", "x.org", "https://x.org/", "ZZ")
    x_gmb = Candidate("GMB", "x.org", "https://x.org/", "it")
    other = Candidate("GMB", "y.org", "https://y.org/", "it")
    scored = [Scored(x_gmb, 10), Scored(x_news, 100), Scored(other, 50)]
    ranking = build_ranking(entries_of(scored), {})
    assert [(o["url"], o["category_code"]) for o in select(ranking, None, 10)] == [
        ("https://x.org/", "NEWS"), ("https://y.org/", "GMB")]
    # without NEWS wanted, the GMB entry of the same URL is the one served
    assert [(o["url"], o["category_code"]) for o in select(ranking, ["GMB"], 10)] == [
        ("https://y.org/", "GMB"), ("https://x.org/", "GMB")]
    # the same URL twice in one group of equal weight still comes once
    twice = [Scored(x_news, 10), Scored(Candidate("NEWS", "x.org", "https://x.org/", "de"), 10)]
    for seed in range(10):
        out = select(build_ranking(entries_of(twice), {}), None, 5, rng=random.Random(seed))
        assert [o["url"] for o in out] == ["https://x.org/"]


def test_equal_weights_come_in_random_order():
    cands = [Candidate("NEWS", f"d{i}", f"https://d{i}/", "ZZ") for i in range(30)]
    top = Candidate("POLR", "t", "https://t/", "ZZ")
    ranking = build_ranking(entries_of([Scored(c, 10) for c in cands] + [Scored(top, 1000)]), {})
    rng = random.Random(7)
    draws = [[o["url"] for o in select(ranking, None, 11, rng=rng)] for _ in range(200)]
    assert all(d[0] == "https://t/" and len(set(d)) == 11 for d in draws)
    # every URL of the tied group is drawn, in varying positions
    seen = Counter(u for d in draws for u in d[1:])
    assert len(seen) == 30
    assert len({d[1] for d in draws}) > 10
    full = [[o["url"] for o in select(ranking, None, 100, rng=rng)] for _ in range(5)]
    assert all(sorted(f) == sorted(full[0]) and len(f) == 31 for f in full)
    assert len({tuple(f) for f in full}) > 1


def test_non_positive_priorities_are_never_served():
    cands = [Candidate("NEWS", "a", "https://a/", "ZZ"), Candidate("GMB", "b", "https://b/", "ZZ")]
    ranking = build_ranking(entries_of([Scored(cands[0], 0), Scored(cands[1], -5)]), {})
    assert ranking.size == 0 and select(ranking, None, 10) == []
