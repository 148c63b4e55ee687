"""Entries, list files and the change log of the test-list editor."""
from __future__ import annotations

import pytest

from ooni_common.testlists import extract_domain, proposable_url
from ooniapi.core.errors import OoniError
from ooniapi.testlists.csv_rows import (Entry, apply_change, changes_view, country_code,
                                        parse_entry, parse_list)

HEADER = "url,category_code,category_description,date_added,source,notes\n"
TEXT = (HEADER
        + "https://a.org/,NEWS,News Media,2017-04-12,,plain\n"
        + 'https://b.org/,NEWS,News Media,2017-04-12,,"quoted, with comma"\n'
        + 'https://c.org/,GRP,Social Networking,2017-04-12,,"two\nlines ""q"""\n'
        + "https://d.org/,NEWS, News Media ,2017-04-12,src,\n")


def e(url, code="NEWS", notes="", date="2024-01-31", source=""):
    return Entry(url, code, date, source, notes)


def test_parse_list_keeps_records_and_reads_entries():
    lf = parse_list(TEXT)
    assert lf.render() == TEXT
    assert [x["url"] for x in lf.entries()] == ["https://a.org/", "https://b.org/",
                                               "https://c.org/", "https://d.org/"]
    assert lf.entries()[2]["notes"] == 'two\nlines "q"'
    assert lf.entries()[3] == {"url": "https://d.org/", "category_code": "NEWS",
                               "date_added": "2017-04-12", "source": "src", "notes": ""}


def test_changes_touch_only_their_record():
    lf = parse_list(TEXT)
    added = apply_change(lf, None, e("https://new.org/", notes="x, y"), lf.urls())
    assert added.render() == TEXT + 'https://new.org/,NEWS,News Media,2024-01-31,,"x, y"\n'
    old = Entry(**parse_list(TEXT).entries()[2])
    edited = apply_change(lf, old, e("https://c.org/", "HUMR"), lf.urls())
    assert edited.render() == TEXT.replace(
        'https://c.org/,GRP,Social Networking,2017-04-12,,"two\nlines ""q"""\n',
        "https://c.org/,HUMR,Human Rights Issues,2024-01-31,,\n")
    deleted = apply_change(lf, Entry(**lf.entries()[1]), None, lf.urls())
    assert deleted.render() == TEXT.replace(
        'https://b.org/,NEWS,News Media,2017-04-12,,"quoted, with comma"\n', "")


def test_crlf_and_missing_final_newline_are_respected():
    text = HEADER.replace("\n", "\r\n") + "https://a.org/,NEWS,News Media,2017-04-12,,"
    lf = parse_list(text)
    out = apply_change(lf, None, e("https://b.org/"), lf.urls()).render()
    assert out == text + "\r\nhttps://b.org/,NEWS,News Media,2024-01-31,,\r\n"


def test_duplicates_and_stale_rows():
    lf = parse_list(TEXT)
    with pytest.raises(OoniError) as ex:
        apply_change(lf, None, e("https://a.org/"), lf.urls())
    assert ex.value.extra["err_str"] == "err_duplicate_url"
    with pytest.raises(OoniError) as ex:
        apply_change(lf, None, e("https://g.org/"), lf.urls() | {"https://g.org/"})
    assert ex.value.extra["err_str"] == "err_duplicate_url"
    a = Entry(**lf.entries()[0])
    # Same URL kept by an edit is no duplicate; changing to another listed one is.
    apply_change(lf, a, Entry(a.url, "HUMR", a.date_added, a.source, a.notes), lf.urls())
    with pytest.raises(OoniError) as ex:
        apply_change(lf, a, e("https://b.org/"), lf.urls())
    assert ex.value.extra["err_str"] == "err_duplicate_url"
    with pytest.raises(OoniError) as ex:
        apply_change(lf, Entry(a.url, a.category_code, a.date_added, a.source, "other"), None,
                     lf.urls())
    assert ex.value.extra["err_str"] == "err_cannot_update_list"


@pytest.mark.parametrize("url,ok", [
    ("https://example.org/", True), ("HTTP://Example.org/a?b=c", True),
    ("http://1.2.3.4:8080/x", True), ("https://example.org", False),
    ("ftp://example.org/", False), ("example.org/", False), ("https://example.org/ ", False),
    ("https://exa mple.org/", False), ("https://example.org/\\", False),
    ("https://xn--bcher-kva.example/", True), ("https://bücher.example/", False),
])
def test_proposable_url(url, ok):
    assert proposable_url(url) is ok
    if ok:
        assert extract_domain(url) is not None


def test_parse_entry_and_country_code():
    good = {"url": "https://a.org/", "category_code": "NEWS", "date_added": "2024-02-29",
            "source": "", "notes": ""}
    assert parse_entry(good, "new_entry", proposed=True) == Entry(**good)
    assert parse_entry({}, "new_entry", proposed=True) is None
    assert parse_entry(None, "old_entry", proposed=False) is None
    for bad, err in ((dict(good, date_added="2023-02-29"), "err_bad_date"),
                     (dict(good, category_code="news"), "err_bad_category_code"),
                     (dict(good, url="https://a.org"), "err_bad_url"),
                     (dict(good, extra=""), "err_request_params")):
        with pytest.raises(OoniError) as ex:
            parse_entry(bad, "new_entry", proposed=True)
        assert ex.value.extra["err_str"] == err
    assert parse_entry(dict(good, url="a.org"), "old_entry", proposed=False).url == "a.org"
    assert country_code(" IT ") == "it" and country_code("GLOBAL") == "global"
    for bad in ("ita", "i", "", None, 3, "i1"):
        with pytest.raises(OoniError):
            country_code(bad)


def test_changes_view_folds_the_journal():
    a, b = e("https://a.org/"), e("https://b.org/")
    op = lambda old, new: {"cc": "it", "old": old and old.as_dict(),  # noqa: E731
                           "new": new and new.as_dict()}
    row = lambda x, action: dict(x.as_row(), action=action)  # noqa: E731
    assert changes_view([op(None, a)]) == {"it": [row(a, "add")]}
    assert changes_view([op(None, a), op(a, None)]) == {}
    assert changes_view([op(b, None)]) == {"it": [row(b, "delete")]}
    assert changes_view([op(b, None), op(None, b)]) == {}
    edited = e("https://a.org/", "HUMR")
    assert changes_view([op(None, a), op(a, edited)]) == {"it": [row(edited, "add")]}
