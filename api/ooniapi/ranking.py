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

from .prioritization import Scored, weight


@dataclass(frozen=True)
class Entry:
    """A candidate URL of a country with its priority (> 0), shared by the
    rankings of every network of that country."""
    category_code: str
    url: str
    country_code: str
    priority: int


@dataclass(frozen=True)
class Group:
    weight: float
    entries: tuple[Entry, ...]
    # Measurement counts of the entries, same order; only debug output reads
    # them, and an array keeps a cached ranking small.
    counts: array
    categories: frozenset[str]
    # Some URL of this group also appears in another entry (here or in
    # another group): drawing from it must skip URLs already emitted.
    has_dup_urls: bool


@dataclass(frozen=True)
class Ranking:
    groups: tuple[Group, ...]
    size: int


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
    groups = []
    for w, it in groupby(rows, key=itemgetter(0)):
        members = list(it)
        ents = tuple(r[2] for r in members)
        groups.append(Group(
            weight=w, entries=ents, counts=array("q", (r[1] for r in members)),
            categories=frozenset(e.category_code for e in ents),
            has_dup_urls=bool(dups) and any(e.url in dups for e in ents)))
    return Ranking(tuple(groups), len(rows))


def select(ranking: Ranking, category_codes: Iterable[str] | None, limit: int,
           debug: bool = False, rng: random.Random | None = None) -> list[dict]:
    """At most ``limit`` items, highest weight first, wanted categories only
    (all when none are given), each URL once; equal weights in random order
    so that the probes of a network spread over equally urgent URLs."""
    sample = (rng or random).sample
    wanted = frozenset(category_codes or ())
    out: list[dict] = []
    seen: set[str] = set()
    for g in ranking.groups:
        need = limit - len(out)
        if need <= 0:
            break
        ents = g.entries
        if not wanted or g.categories <= wanted:
            pool: Sequence[int] = range(len(ents))
        elif wanted.isdisjoint(g.categories):
            continue
        else:
            pool = [i for i, e in enumerate(ents) if e.category_code in wanted]
        if g.has_dup_urls:
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
                item.update(msmt_cnt=g.counts[i], priority=e.priority, weight=g.weight)
            out.append(item)
    return out
