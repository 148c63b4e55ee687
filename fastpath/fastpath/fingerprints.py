"""Blocking fingerprints (fastpath.md §5): loading, preparation and matching.

Matching cost does not grow with the number of fingerprints: DNS answers are
looked up in a dict, every body fingerprint is searched in one pass over the
body with one multi-pattern automaton (``body_search``: Hyperscan, else an
Aho-Corasick DFA), and header fingerprints are looked up
in dicts keyed by header name (prefix patterns through one dict lookup per
distinct prefix length). Matches come out in fingerprint list order, as the
legacy linear scan produced them.
"""
from __future__ import annotations

import base64
import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import ahocorasick

from .body_search import build_body_search

FP_COLUMNS = ("name", "scope", "other_names", "location_found", "pattern_type",
              "pattern", "confidence_no_fp", "expected_countries")

# Members of a fingerprint copied into the scores (§4.1 step 2).
MINI_KEYS = ("name", "scope", "location_found", "confidence_no_fp", "expected_countries")


def prepare_expected_countries(ec: Any) -> list[str]:
    """§5.2: "AU,DE,DK,FR " -> ["AU", "DE", "DK", "FR"]; ZZ and empties dropped;
    elements are not trimmed one by one (the legacy behaviour)."""
    if ec is None:
        return []
    if isinstance(ec, (list, tuple)):
        items = [str(x) for x in ec]
    else:
        items = str(ec).strip().split(",")
    ccs = {cc.upper() for cc in items}
    ccs.discard("")
    ccs.discard("ZZ")
    return sorted(ccs)


@dataclass(frozen=True)
class Fingerprint:
    name: str
    scope: str
    location_found: str
    pattern_type: str
    pattern: str
    confidence_no_fp: int
    expected_countries: tuple[str, ...]

    def mini(self) -> dict:
        """The five members listed in the scores."""
        return {"name": self.name, "scope": self.scope,
                "location_found": self.location_found,
                "confidence_no_fp": self.confidence_no_fp,
                "expected_countries": list(self.expected_countries)}


def _fingerprint(row: dict) -> Fingerprint:
    conf = row.get("confidence_no_fp")
    try:
        conf = int(conf) if conf not in (None, "") else 0
    except (TypeError, ValueError):
        conf = 0
    return Fingerprint(
        name=str(row.get("name") or ""),
        scope=str(row.get("scope") or ""),
        location_found=str(row.get("location_found") or ""),
        pattern_type=str(row.get("pattern_type") or ""),
        pattern=str(row.get("pattern") if row.get("pattern") is not None else ""),
        confidence_no_fp=conf,
        expected_countries=tuple(prepare_expected_countries(row.get("expected_countries"))),
    )


def _build_automaton(keys: dict[str, list[int]]) -> ahocorasick.Automaton | None:
    if not keys:
        return None
    a = ahocorasick.Automaton()
    for k, idxs in keys.items():
        a.add_word(k, tuple(idxs))
    a.make_automaton()
    return a


@dataclass(frozen=True)
class Fingerprints:
    """Prepared DNS and HTTP fingerprints (§5.2) with their matchers."""

    dns: tuple[Fingerprint, ...] = ()
    http: tuple[Fingerprint, ...] = ()
    # exact DNS address -> indexes into ``dns``, in list order
    dns_index: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # body automatons over str bodies and over bytes bodies (read as Latin-1,
    # patterns encoded as UTF-8 then read as Latin-1: a bijection, so a byte
    # substring match is a Latin-1 substring match)
    body_str: Any = None
    body_bytes: Any = None
    # body fingerprints with an empty pattern match every body
    body_always: tuple[int, ...] = ()
    # fastpath.body_search engine (Hyperscan or a DFA over bytes); when None,
    # body_str / body_bytes (pyahocorasick) are used
    body_dfa: Any = None
    # header name -> value -> indexes ("full" patterns)
    header_full: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)
    # header name -> (distinct prefix lengths, prefix -> indexes)
    header_prefix: dict[str, tuple[tuple[int, ...], dict[str, tuple[int, ...]]]] = \
        field(default_factory=dict)
    # precomputed score entries (§4.1 step 2), one per fingerprint
    dns_mini: tuple[dict, ...] = ()
    http_mini: tuple[dict, ...] = ()

    @classmethod
    def empty(cls) -> "Fingerprints":
        return cls()

    @classmethod
    def from_rows(cls, dns_rows: Iterable[dict], http_rows: Iterable[dict]) -> "Fingerprints":
        dns = tuple(_fingerprint(r) for r in dns_rows)
        http = tuple(_fingerprint(r) for r in http_rows)

        dns_index: dict[str, list[int]] = {}
        for i, fp in enumerate(dns):
            # pattern_type is ignored for DNS (§5.4 [quirk]): always exact.
            dns_index.setdefault(fp.pattern, []).append(i)

        body_keys: dict[str, list[int]] = {}
        body_always: list[int] = []
        header_full: dict[str, dict[str, list[int]]] = {}
        header_prefix: dict[str, dict[str, list[int]]] = {}
        for i, fp in enumerate(http):
            loc = fp.location_found
            if loc == "body":
                # every pattern type is searched as a literal substring (§5.4 [quirk])
                if fp.pattern:
                    body_keys.setdefault(fp.pattern, []).append(i)
                else:
                    body_always.append(i)
            elif loc.startswith("header."):
                hname = loc[7:]
                if fp.pattern_type == "full":
                    header_full.setdefault(hname, {}).setdefault(fp.pattern, []).append(i)
                elif fp.pattern_type == "prefix":
                    header_prefix.setdefault(hname, {}).setdefault(fp.pattern, []).append(i)
                # "contains" and "regexp" header fingerprints are ignored (§5.4 [quirk])

        bytes_keys: dict[str, list[int]] = {}
        for pat, idxs in body_keys.items():
            k = pat.encode("utf-8", "surrogatepass").decode("latin-1")
            bytes_keys.setdefault(k, []).extend(idxs)

        body_dfa = build_body_search(body_keys)
        return cls(
            body_dfa=body_dfa,
            dns=dns,
            http=http,
            dns_index={k: tuple(v) for k, v in dns_index.items()},
            body_str=_build_automaton(body_keys),
            body_bytes=_build_automaton(bytes_keys),
            body_always=tuple(body_always),
            header_full={h: {p: tuple(v) for p, v in d.items()} for h, d in header_full.items()},
            header_prefix={
                h: (tuple(sorted({len(p) for p in d})), {p: tuple(v) for p, v in d.items()})
                for h, d in header_prefix.items()},
            dns_mini=tuple(fp.mini() for fp in dns),
            http_mini=tuple(fp.mini() for fp in http),
        )

    # --- matching (§5.4) ------------------------------------------------

    def match_dns(self, answers: Iterable[Any], out: list[Fingerprint]) -> None:
        index = self.dns_index
        if not index:
            return
        for answer in answers:
            if not isinstance(answer, dict):
                continue
            if "ipv4" in answer:
                addr = answer["ipv4"]
            elif "hostname" in answer:
                addr = answer["hostname"]
            elif "ipv6" in answer:
                addr = answer["ipv6"]
            else:
                addr = ""
            if type(addr) is str:
                hit = index.get(addr)
                if hit:
                    out.extend(self.dns[i] for i in hit)

    def match_body(self, body: str | bytes, out: list[Fingerprint]) -> None:
        """All body fingerprints in one pass; each one at most once per body."""
        if self.body_dfa is not None:
            found = self.body_dfa.find(body)
            found.update(self.body_always)
            if found:
                http = self.http
                out.extend(http[i] for i in sorted(found))
            return
        if isinstance(body, bytes):
            automaton = self.body_bytes
            text = body.decode("latin-1")
        else:
            automaton = self.body_str
            text = body
        found = set(self.body_always)
        if automaton is not None and text:
            for _end, idxs in automaton.iter(text):
                found.update(idxs)
        if found:
            http = self.http
            out.extend(http[i] for i in sorted(found))

    def match_headers(self, headers: dict, out: list[Fingerprint]) -> None:
        """``headers``: names already lower-cased. Raises binascii.Error on a
        base64 value with bad padding, as the legacy code did."""
        full, prefix = self.header_full, self.header_prefix
        found: list[int] = []
        for name, value in headers.items():
            by_value = full.get(name)
            if by_value is not None and type(value) is str:
                hit = by_value.get(value)
                if hit:
                    found.extend(hit)
            pre = prefix.get(name)
            if pre is not None:
                if isinstance(value, dict) and value.get("format") == "base64":
                    value = base64.b64decode(value.get("data", "")).decode("latin-1")
                if type(value) is str:
                    lengths, by_prefix = pre
                    n = len(value)
                    for ln in lengths:
                        if ln > n:
                            break
                        hit = by_prefix.get(value[:ln])
                        if hit:
                            found.extend(hit)
        if found:
            http = self.http
            out.extend(http[i] for i in sorted(found))


# --- loading ------------------------------------------------------------

def _read_rows(path: str | Path) -> list[dict]:
    """A JSON list of rows or a CSV with a header line (the updater's format)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        rows = json.loads(text)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError(f"{p}: expected a JSON list of objects")
        return rows
    reader = csv.DictReader(text.splitlines())
    missing = {"name", "location_found", "pattern"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"{p}: CSV lacks columns {sorted(missing)}")
    return list(reader)


def load_from_files(dns_path: str | Path, http_path: str | Path) -> Fingerprints:
    return Fingerprints.from_rows(_read_rows(dns_path), _read_rows(http_path))


_FETCH_SQL = ("SELECT name, scope, other_names, location_found, pattern_type, pattern, "
              "confidence_no_fp, expected_countries FROM {table}")


def load_from_db(db) -> Fingerprints:
    """Reads the tables the fingerprints updater fills (row order = DB order)."""
    dns = db.query(_FETCH_SQL.format(table="fingerprints_dns"))
    http = db.query(_FETCH_SQL.format(table="fingerprints_http"))
    return Fingerprints.from_rows(dns, http)


class TimedMatching:
    """The fingerprints of one measurement's scoring, adding up the time
    spent matching them (the ``match_fingerprints`` timer of §12)."""

    def __init__(self, fps: Fingerprints):
        self.fps = fps
        self.seconds = 0.0
        self.used = False

    def _timed(self, match, *args) -> None:
        t0 = time.perf_counter()
        try:
            match(*args)
        finally:
            self.seconds += time.perf_counter() - t0
            self.used = True

    def match_dns(self, answers: Iterable[Any], out: list[Fingerprint]) -> None:
        self._timed(self.fps.match_dns, answers, out)

    def match_body(self, body: str | bytes, out: list[Fingerprint]) -> None:
        self._timed(self.fps.match_body, body, out)

    def match_headers(self, headers: dict, out: list[Fingerprint]) -> None:
        self._timed(self.fps.match_headers, headers, out)
