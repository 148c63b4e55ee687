import datetime as dt

import pytest

from ooniapi.core import params as p
from ooniapi.core.errors import BadRequest


def bad(fn, *args, msg=None):
    with pytest.raises(BadRequest) as e:
        fn(*args)
    assert e.value.status == 400
    if msg is not None:
        assert e.value.message == msg
    return e.value


@pytest.mark.parametrize("text,expected", [
    ("2021-07-09", dt.datetime(2021, 7, 9)),
    ("2021-7-9", dt.datetime(2021, 7, 9)),
    ("2021-07-09T01:02", dt.datetime(2021, 7, 9, 1, 2)),
    ("2021-07-09T01:02:03", dt.datetime(2021, 7, 9, 1, 2, 3)),
    ("2021-07-09 01:02:03", dt.datetime(2021, 7, 9, 1, 2, 3)),
    # whole seconds: a DateTime query parameter refuses a fraction
    ("2021-07-09T01:02:03.5Z", dt.datetime(2021, 7, 9, 1, 2, 3)),
    ("2021-07-09T03:02:03+02:00", dt.datetime(2021, 7, 9, 1, 2, 3)),
    ("1900-01-01", p.DB_MIN_DATETIME),
    ("2999-01-01", p.DB_MAX_DATETIME),
])
def test_parse_date_accepts(text, expected):
    assert p.parse_date("since", text) == expected


@pytest.mark.parametrize("text", ["foo", "2021-13-01", "2021-02-30", "' OR 1=1 --",
                                  "99999999999999999999", "2021-07-09T25:00"])
def test_parse_date_rejects(text):
    e = bad(p.parse_date, "until", text)
    assert "until" in e.message


def test_parse_date_absent_and_empty():
    assert p.parse_date("since", None) is None
    assert p.parse_date("since", "") is None


def test_bool_flag():
    assert p.parse_bool_flag(None) is None
    assert p.parse_bool_flag("") is None
    assert p.parse_bool_flag("true") is True
    assert p.parse_bool_flag("TRUE") is True
    assert p.parse_bool_flag("false") is False
    assert p.parse_bool_flag("yes") is False


def test_truthy_and_download():
    for v in ("true", "1", "yes", "YES", "True"):
        assert p.parse_truthy(v) is True
    for v in (None, "", "0", "no", "false", "y"):
        assert p.parse_truthy(v) is False
    assert p.parse_download("TRUE") is True
    assert p.parse_download("1") is False
    assert p.parse_download(None) is False


def test_probe_cc_single():
    assert p.parse_probe_cc("it") == "IT"
    assert p.parse_probe_cc("") is None
    for v in ("ITA", "I", "1T", "É1", "' OR 1=1 --"):
        bad(p.parse_probe_cc, v, msg="Invalid CC value in parameter probe_cc")


def test_probe_cc_list():
    assert p.parse_probe_cc_list("IT,,DE,IT") == ["DE", "IT"]
    assert p.parse_probe_cc_list(None) == []
    bad(p.parse_probe_cc_list, "it", msg="Invalid characters")
    bad(p.parse_probe_cc_list, "IT;DROP", msg="Invalid characters")
    bad(p.parse_probe_cc_list, "ITA,DE", msg="Invalid CC value in parameter probe_cc")


def test_probe_asn():
    assert p.parse_probe_asn("AS1234") == 1234
    assert p.parse_probe_asn("as1234") == 1234
    assert p.parse_probe_asn("1234") == 1234
    assert p.parse_probe_asn("0") == 0
    assert p.parse_probe_asn("4294967295") == 4294967295
    assert p.parse_probe_asn(None) is None
    for v in ("ASfoo", "12a", "-1", "4294967296", "AS", "1 OR 1=1"):
        bad(p.parse_probe_asn, v, msg="Invalid ASN value in parameter probe_asn")


def test_probe_asn_list():
    assert p.parse_probe_asn_list("AS3,1,,AS1") == [1, 3]
    bad(p.parse_probe_asn_list, "AS1,x", msg="Invalid ASN value in parameter probe_asn")


def test_test_name_list():
    assert p.parse_test_name_list("web_connectivity,ndt,,ndt") == ["ndt", "web_connectivity"]
    bad(p.parse_test_name_list, "Web", msg="Invalid characters")
    bad(p.parse_test_name_list, "ndt;drop", msg="Invalid characters")


def test_lowercase_and_uppercase():
    assert p.parse_lowercase_underscore("probe_cc") == "probe_cc"
    bad(p.parse_lowercase_underscore, "probe-cc", msg="Invalid characters")
    assert p.parse_uppercase("NEWS") == "NEWS"
    bad(p.parse_uppercase, "news", msg="Invalid characters")


@pytest.mark.parametrize("v", ["example.com", "www.example.co.uk", "1.1.1.1", "1.1.1.1:853",
                               "::1", "[2a00:5a60::ad2:ff]:853", "bücher.de", "a_b.example.org",
                               "example.com:443"])
def test_domain_ok(v):
    assert p.parse_domain_list(v) == [v]


@pytest.mark.parametrize("v", ["localhost", "example.123", "foo.org;", "foo.org='",
                               "example.com:http", "' OR 1=1 --", "a..b", "[::1"])
def test_domain_bad(v):
    bad(p.parse_domain_list, v, msg="Invalid characters in domain field")


@pytest.mark.parametrize("v", [
    "https://8.8.4.4/dns-query", "dot://[2a00:5a60::ad2:0ff]:853",
    "obfs4 154.35.22.9:80 C73AD cert=gEWN/bS", "178.62.197.82:443",
    "https://ru.wikipedia.org/wiki/Вторжение_России_на_Украину_(2022)"])
def test_input_ok(v):
    assert p.parse_input(v) == v


@pytest.mark.parametrize("v", ["~!^{}", "foo.org;", "foo.org='", "' OR 1=1 --"])
def test_input_bad(v):
    bad(p.parse_input, v, msg="Invalid characters in input field")


def test_report_id():
    rid = "20210709T004340Z_webconnectivity_MY_4818_n1_YCM7J9mGcEHds2K3"
    assert p.parse_report_id(rid) == rid
    assert p.parse_report_id(None) is None
    bad(p.parse_report_id, None, True, msg="Invalid report_id")
    bad(p.parse_report_id, "", True, msg="Invalid report_id")
    bad(p.parse_report_id, "short", msg="Invalid report_id field")
    bad(p.parse_report_id, rid + "'; DROP TABLE fastpath", msg="Invalid report_id field")
    bad(p.parse_report_id, "x" * 101, msg="Invalid report_id field")


def test_measurement_uid():
    assert p.is_valid_measurement_uid("x" * 10)
    assert not p.is_valid_measurement_uid("x" * 9)
    assert not p.is_valid_measurement_uid("x" * 101)
    assert not p.is_valid_measurement_uid(None)
    bad(p.parse_measurement_uid, "", msg="Invalid measurement_uid field")


def test_comma_lists():
    assert p.parse_comma_list("3.1,,1.0,3.1") == ["1.0", "3.1"]
    assert p.parse_comma_list("") == []
    assert p.parse_uint_list("ooni_run_link_id", "10,2,10") == [2, 10]
    bad(p.parse_uint_list, "ooni_run_link_id", "-1")
    bad(p.parse_uint_list, "ooni_run_link_id", "abc")
    bad(p.parse_uint_list, "ooni_run_link_id", str(2**64))


def test_parse_int():
    assert p.parse_int("limit", None, 100) == 100
    assert p.parse_int("limit", "", 100) == 100
    assert p.parse_int("limit", "7", 100, 1, 100) == 7
    bad(p.parse_int, "limit", "0", 100, 1, 100)
    bad(p.parse_int, "limit", "abc", 100, 1, 100)
    bad(p.parse_int, "limit", "1.5", 100, 1, 100)
    bad(p.parse_int, "limit", "9" * 40, 100, 1, 100)
    e = bad(p.parse_int, "limit", "101", 100, 1, 100, "too big")
    assert e.message == "too big"
