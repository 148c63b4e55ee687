"""The body search engines (fastpath.body_search) find exactly the same
fingerprints as a plain substring test, over str and bytes bodies, with
overlapping, nested, repeated, non-ASCII and NUL-holding patterns."""
from __future__ import annotations

import random

import pytest

from fastpath import body_search
from fastpath.fingerprints import Fingerprints, load_from_files

PATTERNS = ["GdF Stop Page", "Stop", "op P", "Page", "ééé", "blocked\x00site", "\x00",
            "<title>Blocked</title>", "title", "aaa", "aa", "Доступ ограничен", "x"]

ENGINES = [
    pytest.param(body_search.HyperscanSearch, id="hyperscan",
                 marks=pytest.mark.skipif(body_search.hyperscan is None,
                                          reason="hyperscan is not installed")),
    pytest.param(body_search.BytesDFA, id="dfa",
                 marks=pytest.mark.skipif(body_search.ahocorasick_rs is None,
                                          reason="ahocorasick-rs is not installed")),
]


def keys_of(patterns):
    keys: dict[str, list[int]] = {}
    for i, p in enumerate(patterns):
        keys.setdefault(p, []).append(i)
    return keys


def expected(patterns, body):
    if isinstance(body, bytes):
        return {i for i, p in enumerate(patterns) if p.encode("utf-8", "surrogatepass") in body}
    return {i for i, p in enumerate(patterns) if p in body}


def bodies(patterns, n, seed):
    rng = random.Random(seed)
    filler = ["lorem ", "a", "<p>", "é", "\x00", "Sto", "Pag", "Доступ", "title", " "]
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 40)):
            parts.append(rng.choice(patterns) if rng.random() < 0.2 else rng.choice(filler))
        text = "".join(parts)
        yield text
        yield text.encode("utf-8")


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_agrees_with_substring_test(engine):
    search = engine(keys_of(PATTERNS))
    for body in bodies(PATTERNS, 300, 1):
        assert search.find(body) == expected(PATTERNS, body), body


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_duplicate_patterns_and_edges(engine):
    patterns = ["abc", "abc", "bc", "\x00abc"]
    search = engine(keys_of(patterns))
    assert search.find("") == set()
    assert search.find(b"") == set()
    assert search.find("xxabcxx") == {0, 1, 2}
    assert search.find(b"\x00abc") == {0, 1, 2, 3}
    assert search.find("ab\x00c") == set()
    # latin-1 bytes are not the UTF-8 of "é": a bytes body is searched as is
    assert engine(keys_of(["é"])).find("é".encode("latin-1")) == set()


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_agrees_on_the_real_fingerprints(engine, shared_data):
    d = shared_data / "fingerprints"
    fps = load_from_files(d / "fingerprints_dns.json", d / "fingerprints_http.json")
    keys: dict[str, list[int]] = {}
    for i, fp in enumerate(fps.http):
        if fp.location_found == "body" and fp.pattern:
            keys.setdefault(fp.pattern, []).append(i)
    patterns = list(keys)
    search = engine(keys)
    rng = random.Random(2)
    for _ in range(50):
        chosen = rng.sample(patterns, rng.randint(0, 12))
        body = " filler ".join(chosen)
        want = set()
        for p in patterns:
            if p in body:
                want.update(keys[p])
        assert search.find(body) == want
        assert search.find(body.encode("utf-8")) == want


def test_fingerprints_without_fast_engines_match_the_same(monkeypatch):
    """The pyahocorasick fallback gives the same matches as the default engine."""
    rows = [{"name": f"fp{i}", "scope": "isp", "location_found": "body",
             "pattern_type": "contains", "pattern": p, "confidence_no_fp": 5,
             "expected_countries": ""} for i, p in enumerate(PATTERNS)]
    default = Fingerprints.from_rows([], rows)
    monkeypatch.setattr(body_search, "hyperscan", None)
    monkeypatch.setattr(body_search, "ahocorasick_rs", None)
    fallback = Fingerprints.from_rows([], rows)
    assert fallback.body_dfa is None
    for body in bodies(PATTERNS, 100, 3):
        a: list = []
        b: list = []
        default.match_body(body, a)
        fallback.match_body(body, b)
        assert a == b
        assert {fp.name for fp in a} == {f"fp{i}" for i in expected(PATTERNS, body)}


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_shared_by_threads(engine):
    """One prepared Fingerprints object may serve several scoring threads."""
    from concurrent.futures import ThreadPoolExecutor
    search = engine(keys_of(PATTERNS))
    work = list(bodies(PATTERNS, 200, 4))
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(search.find, work))
    assert got == [expected(PATTERNS, b) for b in work]
