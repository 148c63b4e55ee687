"""Pure logic of findings: slugs, and search filter parsing."""
from __future__ import annotations

import datetime as dt

import pytest
from werkzeug.datastructures import MultiDict

from ooniapi.findings import slug, validate
from ooniapi.findings.validate import InvalidParams

T = dt.datetime(2024, 6, 1)


@pytest.mark.parametrize("title,want", [
    ("Instagram blocked in Iran", "2024-instagram-blocked-in-iran"),
    ("  Ça  bloque!! -- x  ", "2024-ca-bloque-x"),
    ("Блокировка", "2024-finding"),
    ("", "2024-finding"),
    ("a/b_c.d", "2024-a-b-c-d"),
])
def test_from_title(title, want):
    assert slug.from_title(T, title) == want
    assert slug.problem(want) is None


def test_long_titles_and_numbering_stay_within_bounds():
    s = slug.from_title(T, "word " * 50)
    assert len(s) <= slug.MAX_SLUG and not s.endswith("-")
    n = slug.numbered(s, 12)
    assert len(n) <= slug.MAX_SLUG and n.endswith("-12") and slug.problem(n) is None


@pytest.mark.parametrize("bad", ["A", "a b", "-a", "a-", "a--b", "123", "é", "x" * 65])
def test_bad_client_slugs(bad):
    assert slug.problem(bad) is not None


def test_ids_and_slugs_are_told_apart():
    assert slug.looks_like_id("12345") and not slug.looks_like_id("2024-12345")
    assert not slug.looks_like_id("١٢٣")  # non-ASCII digits are not ids


def test_search_filters():
    f = validate.search_filters(MultiDict([
        ("theme", "im"), ("theme", "social_media"), ("country_code", "ir"),
        ("asn", "AS12389"), ("asn", "6697"), ("domain", "www.bbc.com"), ("only_mine", "YES"),
    ]), validate.DEFAULT_THEMES)
    assert f == validate.SearchFilters(only_mine=True, themes=("im", "social_media"),
                                       country_codes=("IR",), asns=(12389, 6697),
                                       domains=("www.bbc.com",))
    assert validate.search_filters(MultiDict(), validate.DEFAULT_THEMES) == \
        validate.SearchFilters()
    with pytest.raises(InvalidParams, match="theme: unknown theme 'x'"):
        validate.search_filters(MultiDict([("theme", "x")]), validate.DEFAULT_THEMES)
