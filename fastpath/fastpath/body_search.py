"""Multi-pattern substring search over response bodies (fastpath.md §5.4).

``build_body_search(keys)`` returns an object whose ``find(body)`` gives the
set of fingerprint indexes whose pattern occurs anywhere in ``body``, in one
pass whatever the number of patterns. Engines, fastest first:

- Hyperscan (literal mode, SIMD): ~35 us for a 100 KB body against the full
  fingerprint set, where the aho-corasick DFA below takes ~150 us; that scan
  was most of the cost of scoring a web_connectivity measurement with a
  large body (issue 6 benchmark b). x86-64 only.
- ahocorasick-rs as a DFA (Rust).
- ``None``: the caller falls back to pyahocorasick over str.

All engines search bytes: str bodies as their UTF-8 encoding, which finds
exactly the str substrings (UTF-8 is self-synchronizing), and bytes bodies
as they are (the legacy ``body.find(pattern.encode())``).
"""
from __future__ import annotations

import threading

try:
    import hyperscan
except ImportError:  # pragma: no cover - other machines use the DFA
    hyperscan = None

try:
    import ahocorasick_rs
except ImportError:  # pragma: no cover - pyahocorasick remains a correct fallback
    ahocorasick_rs = None


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


class BytesDFA:
    """One ahocorasick-rs DFA over the UTF-8 patterns."""

    def __init__(self, keys: dict[str, list[int]]):
        self.patterns = [_utf8(k) for k in keys]
        self.values = [tuple(v) for v in keys.values()]
        self.dfa = ahocorasick_rs.BytesAhoCorasick(
            self.patterns, implementation=ahocorasick_rs.Implementation.DFA)

    def find(self, body: str | bytes) -> set[int]:
        if isinstance(body, str):
            body = _utf8(body)
        values = self.values
        found: set[int] = set()
        for i in {m[0] for m in self.dfa.find_matches_as_indexes(body, overlapping=True)}:
            found.update(values[i])
        return found


class HyperscanSearch:
    """One Hyperscan literal database, each pattern reported once per scan.

    The Python binding cuts literal patterns at a NUL byte, so patterns
    holding one are checked one by one with ``in`` (real fingerprints have
    none). Hyperscan scratch space cannot serve two scans at once: each
    thread gets its own.
    """

    def __init__(self, keys: dict[str, list[int]]):
        patterns = [_utf8(k) for k in keys]
        self.values = [tuple(v) for v in keys.values()]
        ids = [i for i, p in enumerate(patterns) if b"\x00" not in p]
        self.with_nul = [(patterns[i], self.values[i])
                         for i, p in enumerate(patterns) if b"\x00" in p]
        self.db = None
        if ids:
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            db.compile(expressions=[patterns[i] for i in ids], ids=ids, elements=len(ids),
                       flags=hyperscan.HS_FLAG_SINGLEMATCH, literal=True)
            self.db = db
        self._new_scratch = hyperscan.Scratch
        self._local = threading.local()

    def _scratch(self):
        s = getattr(self._local, "scratch", None)
        if s is None:
            s = self._local.scratch = self._new_scratch(self.db)
        return s

    def find(self, body: str | bytes) -> set[int]:
        if isinstance(body, str):
            body = _utf8(body)
        hits: list[int] = []
        if self.db is not None and body:
            append = hits.append

            def on_match(pid, _start, _end, _flags, _ctx):
                append(pid)

            self.db.scan(body, match_event_handler=on_match, scratch=self._scratch())
        found: set[int] = set()
        values = self.values
        for i in hits:
            found.update(values[i])
        for pattern, idxs in self.with_nul:
            if pattern in body:
                found.update(idxs)
        return found


def build_body_search(keys: dict[str, list[int]]):
    """The fastest engine available for these patterns (pattern -> fingerprint
    indexes, patterns non-empty), or None when only pyahocorasick is there."""
    if not keys:
        return None
    if hyperscan is not None:
        try:
            return HyperscanSearch(keys)
        except hyperscan.error:  # pragma: no cover - e.g. a CPU without SSSE3
            pass
    if ahocorasick_rs is not None:
        return BytesDFA(keys)
    return None
