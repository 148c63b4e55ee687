"""Pure parts of OONI Run v2: dates and expiration, translations, the probe
metadata and its headers."""
from __future__ import annotations

import datetime as dt

import pytest

from ooniapi.core.errors import BadRequest
from ooniapi.oonirun import dynamic_lists as dl
from ooniapi.oonirun import link

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, 123456)


@pytest.mark.parametrize("text,want", [
    ("2030-01-02T03:04:05Z", dt.datetime(2030, 1, 2, 3, 4, 5)),
    ("2030-01-02T03:04:05.123456789Z", dt.datetime(2030, 1, 2, 3, 4, 5)),
    ("2030-01-02 03:04:05", dt.datetime(2030, 1, 2, 3, 4, 5)),
    ("2030-01-02T03:04", dt.datetime(2030, 1, 2, 3, 4)),
    ("2030-01-02T05:04:05+02:00", dt.datetime(2030, 1, 2, 3, 4, 5)),
    ("2030-01-01T23:00:00-0130", dt.datetime(2030, 1, 2, 0, 30)),
])
def test_parse_date(text, want):
    assert link.parse_date("expiration_date", text) == want


@pytest.mark.parametrize("text", ["", "2030-13-01T00:00:00Z", "2030-02-30T00:00:00Z",
                                  "tomorrow", "2030-01-01T25:00:00Z", 5, ["2030-01-01"]])
def test_parse_date_refuses(text):
    with pytest.raises(BadRequest, match="expiration_date"):
        link.parse_date("expiration_date", text)


def test_expiration_rules():
    assert link.expiration_for_create(None, NOW) == dt.datetime(2025, 8, 28, 12, 0, 0)
    with pytest.raises(BadRequest):
        link.expiration_for_create(NOW - dt.timedelta(seconds=1), NOW)
    current = dt.datetime(2026, 1, 1)
    assert link.expiration_for_edit(None, current, NOW) == current
    assert link.expiration_for_edit(NOW - dt.timedelta(minutes=59), current, NOW) == \
        NOW.replace(microsecond=0)
    with pytest.raises(BadRequest):
        link.expiration_for_edit(NOW - dt.timedelta(minutes=61), current, NOW)
    later = dt.datetime(2027, 1, 1)
    assert link.expiration_for_edit(later, current, NOW) == later


@pytest.mark.parametrize("value,ok", [
    ({"it": "Nome", "pt_BR": "Nome", "zh-Hant": "名字", "sr-Latn-RS": "Ime"}, True),
    ({"IT": "Nome"}, False), ({"i": "Nome"}, False), ({"it-": "Nome"}, False),
    ({"it": " x "}, False), ({"it": "n" * 51}, False),
    ({f"a{chr(97 + i // 26)}{chr(97 + i % 26)}"[-3:]: "testo" for i in range(101)}, False),
])
def test_intl(value, ok):
    if ok:
        assert link.check_intl("name_intl", value, 50) == value
    else:
        with pytest.raises(BadRequest, match="name_intl"):
            link.check_intl("name_intl", value, 50)


def test_comparable_nettests_v1_equals_v2():
    v1 = [{"test_name": "web_connectivity", "inputs": ["https://a/"],
           "is_manual_run_enabled": True}]
    v2 = [{"test_name": "web_connectivity", "inputs": ["https://a/"], "options": {},
           "is_background_run_enabled_default": False, "is_manual_run_enabled_default": True}]
    assert link.comparable_nettests(v1) == link.comparable_nettests(v2)
    v2[0]["options"] = {"x": 1}
    assert link.comparable_nettests(v1) != link.comparable_nettests(v2)


def test_networkinfo_and_meta():
    assert dl.parse_networkinfo("AS30722,IT (wifi)") == (30722, "IT", "wifi")
    assert dl.parse_networkinfo(" AS1,de (mobile) ") == (1, "DE", "mobile")
    for bad in ("AS1,IT", "30722,IT (wifi)", "AS1,IT (WiFi)", "AS1,XY (wifi)",
                "AS99999999999,IT (wifi)", "AS1, IT (wifi)"):
        with pytest.raises(BadRequest, match="x-ooni-networkinfo"):
            dl.parse_networkinfo(bad)
    m = dl.parse_meta({}, None)
    assert (m.run_type, m.is_charging, m.probe_cc, m.probe_asn, m.network_type) == \
        ("timed", True, "ZZ", 0, "unknown")
    m = dl.parse_meta({"probe_cc": "it", "website_category_codes": "news,GMB",
                       "software_name": "ignored"}, "AS3,DE (vpn)")
    assert (m.probe_cc, m.probe_asn, m.network_type, m.website_category_codes) == \
        ("IT", 3, "vpn", ("NEWS", "GMB"))


def test_user_agent():
    ua = dl.parse_user_agent("ooniprobe-android/3.8.0 (Android 13) ooniprobe-engine/3.20.1")
    assert (ua.software_name, ua.software_version, ua.platform, ua.engine_name,
            ua.engine_version) == ("ooniprobe-android", "3.8.0", "Android 13",
                                   "ooniprobe-engine", "3.20.1")
    assert dl.parse_user_agent("miniooni/3.22.0").software_name == "miniooni"
    assert dl.parse_user_agent("") is None and dl.parse_user_agent(None) is None
    assert dl.parse_user_agent("(garbage") is None
