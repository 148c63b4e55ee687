"""Pure logic of OONI Run descriptors (api.md §11, probe-protocol.md §3.15)."""
from __future__ import annotations

import datetime as dt

import pytest

from ooniapi.core.errors import BadRequest, OoniError
from ooniapi.core.ids import generate_int_id
from ooniapi.oonirun import descriptor as desc

BASE = {"name": "n", "author": "a"}


def test_validate_accepts_minimal_and_full():
    assert desc.validate(dict(BASE)) == BASE
    full = {**BASE, "name_intl": {"it": "x"}, "short_description_intl": None,
            "icon": "", "description": "d", "custom": [1, {"x": None}],
            "nettests": [{"test_name": "web_connectivity", "inputs": None, "options": None,
                          "is_background_run_enabled": None, "is_manual_run_enabled_default": True,
                          "targets_name": None}]}
    assert desc.validate(full) is full


@pytest.mark.parametrize("field", desc.INTL_FIELDS)
def test_empty_translation_has_err_str(field):
    with pytest.raises(OoniError) as e:
        desc.validate({**BASE, field: {"en": "ok", "it": ""}})
    assert e.value.status == 400
    assert e.value.body() == {"error": "Empty translation field",
                              "err_str": "err_empty_translation_field"}


@pytest.mark.parametrize("bad", [
    None, [], "x", {"author": "a"}, {"name": "", "author": "a"}, {"name": "n"},
    {"name": "n", "author": ""}, {"name": " ", "author": "a"},
    {**BASE, "nettests": {}}, {**BASE, "nettests": [{"test_name": ""}]},
    {**BASE, "nettests": [{"test_name": "a", "inputs": [None]}]},
    {**BASE, "nettests": [{"test_name": "a", "inputs_extra": [{}]}]},
    {**BASE, "nettests": [{"test_name": "a", "is_background_run_enabled_default": 1}]},
])
def test_validate_rejects(bad):
    with pytest.raises(BadRequest):
        desc.validate(bad)


def test_name_message_is_the_legacy_one():
    with pytest.raises(BadRequest) as e:
        desc.validate({"author": "a"})
    assert e.value.body() == {"error": "'name' field must not be empty"}


def test_structural_change():
    prev = {**BASE, "icon": "i", "nettests": [{"test_name": "a"}], "name_intl": {"it": "x"}}
    assert not desc.is_structural_change(prev, {**prev, "name": "other", "name_intl": {}})
    assert not desc.is_structural_change(prev, {**prev, "description": "new"})
    assert desc.is_structural_change(prev, {**prev, "icon": "j"})
    assert desc.is_structural_change(prev, {**prev, "author": "b"})
    assert desc.is_structural_change(prev, {**prev, "nettests": []})
    assert desc.is_structural_change({**BASE}, {**BASE, "nettests": []})


@pytest.mark.parametrize("s,expected", [
    ("2023-07-21T16:36:12.456000Z", dt.datetime(2023, 7, 21, 16, 36, 12, 456000)),
    ("2023-07-21T16:36:12.456Z", dt.datetime(2023, 7, 21, 16, 36, 12, 456000)),
    ("2023-07-21T16:36:12.4Z", dt.datetime(2023, 7, 21, 16, 36, 12, 400000)),
    ("2023-07-21T16:36:12Z", dt.datetime(2023, 7, 21, 16, 36, 12)),
    ("2023-07-21 16:36:12.456", dt.datetime(2023, 7, 21, 16, 36, 12, 456000)),
    ("2023-07-21T16:36:12.456+00:00", dt.datetime(2023, 7, 21, 16, 36, 12, 456000)),
])
def test_parse_creation_time(s, expected):
    assert desc.parse_creation_time(s) == expected


@pytest.mark.parametrize("s", ["", "2023-07-21", "2023-02-30T00:00:00Z", "now",
                               "2023-07-21T16:36:12.1234567Z", "2023-07-21T16:36:12-05:00"])
def test_parse_creation_time_rejects(s):
    with pytest.raises(BadRequest):
        desc.parse_creation_time(s)


def test_db_time_round_trip():
    t = desc.to_db_time(dt.datetime(2023, 7, 21, 16, 36, 12, 456789))
    assert t == dt.datetime(2023, 7, 21, 16, 36, 12, 456000)
    from ooni_common.timeutil import iso_z
    assert desc.parse_creation_time(iso_z(t)) == t


def test_probe_nettest_types_and_flags():
    nt = desc.probe_nettest({"test_name": "x", "is_manual_run_enabled_default": True,
                             "is_background_run_enabled": False, "custom": 1})
    assert nt == {"test_name": "x", "inputs": [], "inputs_extra": [], "targets_name": "",
                  "options": {}, "custom": 1,
                  "is_background_run_enabled": False, "is_background_run_enabled_default": False,
                  "is_manual_run_enabled": True, "is_manual_run_enabled_default": True}


def test_probe_link_fields():
    from ooniapi.oonirun.link import LinkState, answer
    t = dt.datetime(2024, 1, 2, 3, 4, 5)
    state = LinkState(link_id=12301, descriptor={"name": "n", "author": "a", "revision": 9,
                                                 "x": 1},
                      nettests=[{"test_name": "t"}, "junk"], revision=3, date_created=t,
                      date_updated=t, first_created=t, archived=False,
                      creator_account_id="c" * 32)
    link = answer(state, mine=True, now=t)
    assert link["revision"] == "3" and link["oonirun_link_id"] == "12301"
    assert link["date_created"] == "2024-01-02T03:04:05.000000Z"
    assert link["description"] == "" and link["x"] == 1
    assert [n["test_name"] for n in link["nettests"]] == ["t"]
    assert link["is_mine"] is True and link["is_expired"] is False
    assert link["expiration_date"] == "2024-06-30T03:04:05.000000Z"
    assert answer(state, mine=False, now=t + dt.timedelta(days=180))["is_expired"] is True


def test_generate_int_id():
    ids = {generate_int_id("7") for _ in range(50)}
    assert len(ids) > 45
    assert all(i % 100 == 7 and 0 <= i < 2**32 * 100 for i in ids)
    assert all(generate_int_id("not-a-number") % 100 == 0 for _ in range(5))
