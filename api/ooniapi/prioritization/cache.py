"""Cached test lists for the check-in, the hottest route of the API.

Per country, the priority rules joined with the citizenlab candidates
(``CountryList``); per network (cc, asn), the ranking of those candidates by
weight with the network's measurement counts (``ooniapi.prioritization.ranking``). Both are
refreshed together: a network's ranking is valid while the country list it
was built from is the current one and younger than ``ttl`` seconds
(``PRIORITIZATION_CACHE_SECONDS``, default 30). So a check-in sees rules,
citizenlab rows and measurement counts at most ``ttl`` seconds old (plus the
duration of one refresh, see below), and a check-in costs no query at all
in between.

Staleness bounds:

* a rule change through ``/api/_/url-priorities/update`` calls
  ``invalidate()`` and is used by the next check-in of this process; other
  API worker processes use it within ``ttl`` seconds;
* new measurements (counters views) and citizenlab updates are used within
  ``ttl`` seconds.

While one thread refreshes an expired network, the other requests for that
network keep getting its previous ranking instead of queueing on the
database (a refresh takes tens of milliseconds). When a refresh fails (the
database is down), the previous ranking is served until one succeeds; a
network without one gets the error (the check-in then has no URLs). At most ``max_networks``
rankings are kept (``PRIORITIZATION_CACHE_NETWORKS``, default 500; about
50-100 kB each for a country of 3,000 candidate URLs); the oldest built
goes first.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Iterable

from ooni_common.db import Database, DatabaseError

from ooniapi.prioritization.rules import (Candidate, fetch_candidates, fetch_counts, fetch_rules,
                             score_candidates)
from ooniapi.prioritization.ranking import Entry, Ranking, build_ranking, entries_of, select

log = logging.getLogger("ooni-api.prioritizer")

# Builds of different networks (and countries) run in parallel up to this
# many at a time; a fixed set of locks needs no clean-up.
LOCK_STRIPES = 64


@dataclass(frozen=True)
class CountryList:
    """The servable candidates of a country with their priorities."""
    fetched_at: float
    entries: list[Entry]


@dataclass(frozen=True)
class _Cached:
    country: CountryList
    ranking: Ranking


class Prioritizer:
    def __init__(self, ttl: float = 30.0, max_networks: int = 500, clock=time.monotonic,
                 rng: random.Random | None = None):
        self.ttl = ttl
        self.max_networks = max(1, max_networks)
        self.clock = clock
        self.rng = rng
        self._lock = threading.Lock()
        self._gen = 0
        self._countries: dict[str, CountryList] = {}
        self._rankings: dict[tuple[str, int], _Cached] = {}
        self._country_locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._network_locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        # Last known global list, for the failover of §8.1.
        self.global_list: list[Candidate] = []

    @classmethod
    def from_config(cls, cfg) -> "Prioritizer":
        return cls(ttl=cfg.get_float("PRIORITIZATION_CACHE_SECONDS", 30.0),
                   max_networks=cfg.get_int("PRIORITIZATION_CACHE_NETWORKS", 500))

    def invalidate(self) -> None:
        """Drops everything; builds already running do not store their
        result (they may have read the old rules)."""
        with self._lock:
            self._gen += 1
            self._countries.clear()
            self._rankings.clear()

    def _fresh(self, c: CountryList | None) -> bool:
        return c is not None and self.clock() - c.fetched_at < self.ttl

    def country(self, db: Database, cc: str) -> CountryList:
        c = self._countries.get(cc)
        if self._fresh(c):
            return c
        with self._country_locks[hash(cc) % LOCK_STRIPES]:
            c = self._countries.get(cc)
            if self._fresh(c):
                return c
            gen = self._gen
            now = self.clock()
            rules = fetch_rules(db, cc)
            candidates = fetch_candidates(db, cc)
            c = CountryList(now, entries_of(score_candidates(candidates, rules)))
            glob = [x for x in candidates if x.is_global]
            with self._lock:
                if gen == self._gen:
                    self._countries[cc] = c
                if glob:
                    self.global_list = glob
            return c

    def ranking(self, db: Database, cc: str, asn: int) -> Ranking:
        key = (cc, asn)
        hit = self._rankings.get(key)
        if hit is not None and self._current(cc, hit):
            return hit.ranking
        lock = self._network_locks[hash(key) % LOCK_STRIPES]
        if hit is not None:
            if not lock.acquire(blocking=False):
                return hit.ranking  # someone is refreshing it
        else:
            lock.acquire()
        try:
            hit = self._rankings.get(key)
            if hit is not None and self._current(cc, hit):
                return hit.ranking
            gen = self._gen
            try:
                country = self.country(db, cc)
                ranking = build_ranking(country.entries, fetch_counts(db, cc, asn))
            except DatabaseError as e:
                if hit is None:
                    raise
                log.warning("test list of %s AS%d not refreshed, serving the previous one: %s",
                            cc, asn, e)
                return hit.ranking
            with self._lock:
                if gen == self._gen:
                    self._rankings.pop(key, None)
                    self._rankings[key] = _Cached(country, ranking)
                    while len(self._rankings) > self.max_networks:
                        del self._rankings[next(iter(self._rankings))]
            return ranking
        finally:
            lock.release()

    def _current(self, cc: str, hit: _Cached) -> bool:
        c = self._countries.get(cc)
        return c is hit.country and self._fresh(c)

    def test_list(self, db: Database, cc: str, asn: int, category_codes: Iterable[str] | None,
                  limit: int, debug: bool = False) -> list[dict]:
        return select(self.ranking(db, cc, asn), category_codes, limit, debug, self.rng)

    def failover(self, category_codes: Iterable[str] | None, limit: int) -> list[dict]:
        """A random sample of the global list, when the database fails."""
        wanted = set(category_codes or ())
        pool = [c for c in self.global_list if not wanted or c.category_code in wanted]
        sample = (self.rng or random).sample(pool, min(limit, len(pool)))
        return [{"category_code": c.category_code, "url": c.url, "country_code": "XX"}
                for c in sample]


def checkin_test_list(svc, cc: str, asn: int, category_codes: Iterable[str] | None,
                      limit: int) -> list[dict]:
    """The prioritized URLs a probe of network (cc, asn) gets: the one entry
    point shared by the check-in and OONI Run's dynamic lists, so both
    serve the same ranking from the same per-process cache (built by the
    probe area's ``init_app`` in ``svc.extras["prioritizer"]``). Raises
    DatabaseError when no ranking can be built."""
    return svc.extras["prioritizer"].test_list(svc.db, cc, asn, category_codes, limit)
