import datetime as dt
import re

from ooniapi.core import ids


def test_report_id_format():
    now = dt.datetime(2021, 7, 9, 0, 43, 40)
    rid = ids.generate_report_id("web_connectivity", "MY", 4818, "1", now)
    assert re.match(r"^20210709T004340Z_webconnectivity_MY_4818_n1_[A-Za-z0-9]{16}$", rid)
    # api.md says 61 characters, but its own example has 60.
    assert len(rid) == len("20210709T004340Z_webconnectivity_MY_4818_n1_YCM7J9mGcEHds2K3")
    p = ids.parse_report_id(rid)
    assert p and p.cc == "MY" and p.asn == 4818 and p.testname == "webconnectivity"


def test_uid_format_and_hash():
    now = dt.datetime(2021, 7, 9, 0, 55, 29, 664022)
    uid = ids.build_uid(now, "MY", "webconnectivity", b"{}")
    assert uid.startswith("20210709005529.664022_MY_webconnectivity_")
    assert ids.UID_RE.match(uid)
    # sha512("{}") starts with 27c74670adb75075
    assert uid.endswith("_27c74670adb75075")


def test_parse_report_id_rejects_bad_shapes():
    assert ids.parse_report_id("20210709T004340Z_AS27775_abc") is None
    assert ids.parse_report_id("a_b_c_d_e_f") is None  # testname too short, cc len 1
    assert ids.parse_report_id("20210709T004340Z_web_connectivity_MY_4818_n1_X") is None
    assert ids.parse_report_id("20210709T004340Z_webconnectivity_MY_AS48_n1_X") is None


def test_normalizers():
    assert ids.normalize_cc("it") == "IT"
    assert ids.normalize_cc("ITA") == "ZZ"
    assert ids.normalize_cc(None) == "ZZ"
    assert ids.normalize_asn("AS30722") == 30722
    assert ids.normalize_asn("30722") == 0
    assert ids.normalize_asn("ASx") == 0
