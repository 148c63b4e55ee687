"""The ordered test list of one network (api.md §8.1 steps 5-6), built once
per cache period so that each check-in only draws its first ``limit`` URLs.

A ``Ranking`` keeps the entries of positive priority in groups of equal
weight, highest weight first. ``select`` walks the groups: a group that fits
comes out whole in random order, the group where the limit falls is sampled.
That is the distribution of ``prioritization.prioritize`` (shuffle every
entry, then a stable sort by weight) at the cost of about ``limit`` steps
instead of a sort of every candidate on every request.
"""
from __future__ import annotations

import random
from array import array
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Iterable, Mapping, Sequence

from ooniapi.prioritization.rules import Scored, weight


@dataclass(frozen=True)
class Entry:
    """A candidate URL of a country with its priority (> 0), shared by the
    rankings of every network of that country."""
    category_code: str
    url: str
    country_code: str
    priority: int


@dataclass(frozen=True)
class Ranking:
    """Entries by weight, highest first, in flat arrays: a cached ranking
    costs about 16 bytes per entry and 20 per group of equal weight."""
    entries: tuple[Entry, ...]
    # Measurement counts of the entries, same order; only debug output
    # reads them.
    counts: array
    # Group i is entries[bounds[i]:bounds[i + 1]], of weight weights[i].
    bounds: array
    weights: array
    # The categories found in each group (shared frozensets).
    categories: tuple[frozenset[str], ...]
    # 1 where some URL of the group also appears in another entry (here or
    # in another group): drawing from it must skip URLs already emitted.
    has_dup_urls: bytes

    @property
    def size(self) -> int:
        return len(self.entries)


def entries_of(scored: Iterable[Scored]) -> list[Entry]:
    """The entries that can ever be served: priority <= 0 never is."""
    return [Entry(s.candidate.category_code, s.candidate.url, s.candidate.country_code,
                  s.priority) for s in scored if s.priority > 0]


def build_ranking(entries: Sequence[Entry], counts: Mapping[str, int]) -> Ranking:
    rows = []
    seen: set[str] = set()
    dups: set[str] = set()
    for e in entries:
        cnt = counts.get(e.url, 0)
        rows.append((weight(e.priority, cnt), cnt, e))
        if e.url in seen:
            dups.add(e.url)
        seen.add(e.url)
    rows.sort(key=itemgetter(0), reverse=True)
    bounds = array("I", [0])
    weights = array("d")
    cats: list[frozenset[str]] = []
    shared: dict[frozenset[str], frozenset[str]] = {}
    dup_flags = bytearray()
    for w, it in groupby(rows, key=itemgetter(0)):
        members = [r[2] for r in it]
        bounds.append(bounds[-1] + len(members))
        weights.append(w)
        cs = frozenset(e.category_code for e in members)
        cats.append(shared.setdefault(cs, cs))
        dup_flags.append(bool(dups) and any(e.url in dups for e in members))
    return Ranking(entries=tuple(r[2] for r in rows), counts=array("q", [r[1] for r in rows]),
                   bounds=bounds, weights=weights, categories=tuple(cats),
                   has_dup_urls=bytes(dup_flags))


def select(ranking: Ranking, category_codes: Iterable[str] | None, limit: int,
           debug: bool = False, rng: random.Random | None = None) -> list[dict]:
    """At most ``limit`` items, highest weight first, wanted categories only
    (all when none are given), each URL once; equal weights in random order
    so that the probes of a network spread over equally urgent URLs."""
    sample = (rng or random).sample
    wanted = frozenset(category_codes or ())
    out: list[dict] = []
    seen: set[str] = set()
    ents, bounds = ranking.entries, ranking.bounds
    for gi, cats in enumerate(ranking.categories):
        need = limit - len(out)
        if need <= 0:
            break
        lo, hi = bounds[gi], bounds[gi + 1]
        if not wanted or cats <= wanted:
            pool: Sequence[int] = range(lo, hi)
        elif wanted.isdisjoint(cats):
            continue
        else:
            pool = [i for i in range(lo, hi) if ents[i].category_code in wanted]
        if ranking.has_dup_urls[gi]:
            order = sample(pool, len(pool))
            picked = []
            for i in order:
                u = ents[i].url
                if u in seen:
                    continue
                seen.add(u)
                picked.append(i)
                if len(picked) == need:
                    break
        else:
            picked = sample(pool, min(need, len(pool)))
        for i in picked:
            e = ents[i]
            item = {"category_code": e.category_code, "url": e.url,
                    "country_code": e.country_code}
            if debug:
                item.update(msmt_cnt=ranking.counts[i], priority=e.priority,
                            weight=ranking.weights[gi])
            out.append(item)
    return out
