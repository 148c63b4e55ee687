"""URL prioritization for web_connectivity test lists (api.md §8.1).

Pure functions (rule matching, priorities, weights and ordering) plus the
SQL that feeds them, next to the functions that run it. The check-in reads
them through the cache of ``ooniapi.prioritization.cache``; debug_prioritization
and show_countries_prioritization call them directly so that they always
show the current database state.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable, Sequence

from ooni_common.db import Database

WILDCARDS = ("", "*")

DEFAULT_RULES: dict[str, int] = {
    "NEWS": 100, "POLR": 100, "HUMR": 100, "LGBT": 100, "ANON": 100, "MMED": 80,
    "SRCH": 80, "PUBH": 80, "REL": 60, "XED": 60, "HOST": 60, "ENV": 60,
    "FILE": 40, "CULTR": 40, "IGO": 40, "GOVT": 40, "DATE": 30, "HATE": 30,
    "MILX": 30, "PROV": 30, "PORN": 30, "GMB": 30, "ALDR": 30, "GAME": 20,
    "MISC": 20, "HACK": 20, "ECON": 20, "COMM": 20, "CTRL": 20, "COMT": 100,
    "GRP": 100,
}


@dataclass(frozen=True)
class Rule:
    category_code: str
    cc: str
    domain: str
    url: str
    priority: int

    def as_dict(self) -> dict:
        return {"category_code": self.category_code, "cc": self.cc,
                "domain": self.domain, "url": self.url, "priority": self.priority}

    @property
    def match_key(self) -> tuple[str, str, str, str]:
        return (self.category_code, self.cc, self.domain, self.url)


@dataclass(frozen=True)
class Candidate:
    """A citizenlab row; ``cc`` as stored: ``ZZ`` (global) or a country
    code in either case."""
    category_code: str
    domain: str
    url: str
    cc: str

    @property
    def is_global(self) -> bool:
        return self.cc == "ZZ"

    @property
    def country_code(self) -> str:
        """As served to probes: ``XX`` for the global list."""
        return "XX" if self.is_global else self.cc.upper()


@dataclass(frozen=True)
class Scored:
    candidate: Candidate
    priority: int


# --- pure logic -------------------------------------------------------------

def _field_matches(rule_value: str, value: str) -> bool:
    return rule_value in WILDCARDS or rule_value == value


def rule_matches(rule: Rule, c: Candidate) -> bool:
    if not (_field_matches(rule.category_code, c.category_code)
            and _field_matches(rule.domain, c.domain)
            and _field_matches(rule.url, c.url)):
        return False
    if c.is_global:
        return True
    return rule.cc.upper() in WILDCARDS or rule.cc.upper() == c.cc.upper()


def compute_priority(c: Candidate, rules: Iterable[Rule]) -> int:
    return sum(r.priority for r in rules if rule_matches(r, c))


def score_candidates(candidates: Iterable[Candidate], rules: Sequence[Rule]) -> list[Scored]:
    """Priorities of all candidates. Rules are indexed by category so that
    each URL is compared only with the rules that can match it."""
    by_cat: dict[str, list[Rule]] = {}
    wild: list[Rule] = []
    for r in rules:
        if r.category_code in WILDCARDS:
            wild.append(r)
        else:
            by_cat.setdefault(r.category_code, []).append(r)
    out = []
    for c in candidates:
        p = compute_priority(c, wild) + compute_priority(c, by_cat.get(c.category_code, ()))
        out.append(Scored(c, p))
    return out


def weight(priority: int, msmt_cnt: int) -> float:
    return priority / max(msmt_cnt, 0.1)


def prioritize(scored: Sequence[Scored], counts: dict[str, int],
               category_codes: Iterable[str] | None, limit: int,
               debug: bool = False, rng: random.Random | None = None) -> list[dict]:
    """Steps 5-6 of §8.1: highest weight first, wanted categories only,
    positive priorities only, at most ``limit`` entries, each URL once.
    Equal weights come in random order, so that the probes of one network
    spread over equally urgent URLs instead of all testing the same ones."""
    wanted = set(category_codes or ())
    rows = []
    for s in scored:
        c = s.candidate
        if s.priority <= 0 or (wanted and c.category_code not in wanted):
            continue
        cnt = counts.get(c.url, 0)
        rows.append((weight(s.priority, cnt), cnt, s))
    (rng or random).shuffle(rows)
    rows.sort(key=lambda r: r[0], reverse=True)
    out: list[dict] = []
    seen: set[str] = set()
    for w, cnt, s in rows:
        if len(out) >= limit:
            break
        c = s.candidate
        if c.url in seen:
            continue
        seen.add(c.url)
        item = {"category_code": c.category_code, "url": c.url,
                "country_code": c.country_code}
        if debug:
            item.update(msmt_cnt=cnt, priority=s.priority, weight=w)
        out.append(item)
    return out


def url_limit(run_type: str, charging: bool) -> int:
    """§7.1 step 4."""
    if run_type == "manual":
        return 9999
    return 100 if charging else 20


# --- SQL --------------------------------------------------------------------

def fetch_candidates(db: Database, cc: str) -> list[Candidate]:
    """citizenlab rows of the country (stored lower case by the updater,
    upper case by older loaders) and of the global list. ``cc`` is a
    NUL-padded FixedString(32): compared and returned cut at the first NUL."""
    rows = db.execute(
        """SELECT DISTINCT category_code, domain, url, toStringCutToZero(cc) AS c
        FROM citizenlab
        WHERE toStringCutToZero(cc) IN ({lc:String}, {uc:String}, 'ZZ')""",
        {"lc": cc.lower(), "uc": cc.upper()})
    return [Candidate(r[0], r[1], r[2], r[3]) for r in rows]


def fetch_all_candidates(db: Database) -> list[Candidate]:
    rows = db.execute(
        "SELECT DISTINCT category_code, domain, url, toStringCutToZero(cc) FROM citizenlab")
    return [Candidate(r[0], r[1], r[2], r[3]) for r in rows]


_RULES_SQL = """
    SELECT category_code, cc, domain, url, priority
    FROM url_priorities
    {where}
    GROUP BY category_code, cc, domain, url, priority
    HAVING sum(sign) > 0
    ORDER BY category_code, cc, domain, url, priority"""


def fetch_rules(db: Database, cc: str | None = None) -> list[Rule]:
    """The collapsed state of url_priorities (a rule counts while its
    inserted rows outnumber its deletions, whatever the merge state), for
    one country plus the wildcard rules, or all rules when ``cc`` is None.
    An empty table is initialised with the default rules (§8.1)."""
    if cc is None:
        rows = db.execute(_RULES_SQL.format(where=""))
    else:
        rows = db.execute(
            _RULES_SQL.format(where="WHERE cc IN ({uc:String}, {lc:String}, '*', '')"),
            {"uc": cc.upper(), "lc": cc.lower()})
    if not rows and seed_default_rules(db):
        return fetch_rules(db, cc)
    return [Rule(*r) for r in rows]


def seed_default_rules(db: Database) -> bool:
    """Inserts the default rules if url_priorities holds no row at all;
    True if it did. Two workers racing here insert identical rows, which
    the GROUP BY of fetch_rules folds into one rule."""
    if db.execute("SELECT count() FROM url_priorities")[0][0]:
        return False
    db.insert("url_priorities", ["sign", "category_code", "cc", "domain", "url", "priority"],
              [[1, cat, "*", "*", "*", p] for cat, p in DEFAULT_RULES.items()])
    return True


def fetch_counts(db: Database, cc: str, asn: int) -> dict[str, int]:
    """Measurements per URL in this and last week for the probe's country
    (and network, unless asn is 0), from counters_asn_test_list."""
    asn_filter = "AND probe_asn = {asn:UInt64}" if asn else ""
    rows = db.execute(
        f"""SELECT input, toInt64(sum(msmt_cnt))
        FROM counters_asn_test_list
        WHERE probe_cc = {{cc:String}} {asn_filter}
          AND week IN (toStartOfWeek(now()), toStartOfWeek(now() - toIntervalDay(7)))
        GROUP BY input""",
        {"cc": cc, "asn": asn})
    return {r[0]: r[1] for r in rows}


def insert_rule(db: Database, rule: Rule, sign: int) -> None:
    db.insert("url_priorities", ["sign", "category_code", "cc", "domain", "url", "priority"],
              [[sign, rule.category_code, rule.cc, rule.domain, rule.url, rule.priority]])


def fetch_country_stats(db: Database) -> dict[tuple[str, str], tuple[int, int | None]]:
    """Last week's web_connectivity measurements per (CC, input) from
    fastpath: (count, integer anomaly percentage)."""
    rows = db.execute(
        """SELECT probe_cc, input, toInt64(count()) AS cnt,
                  toInt64(floor(100 * countIf(anomaly = 't') / count())) AS anomaly_perc
        FROM fastpath
        WHERE measurement_start_time > now() - toIntervalDay(7)
          AND measurement_start_time < now()
          AND test_name = 'web_connectivity'
        GROUP BY probe_cc, input""")
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}
