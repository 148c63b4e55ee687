"""Pure parts of the credential service: policy, age window, key files,
upload consistency."""
from __future__ import annotations

import json

import pytest

from ooni_common.config import Config, ConfigError
from ooniapi.probe import anoncred
from ooniapi.probe.upload import ReportTarget, check_consistent


def test_policy_parsing_and_first_match():
    rules = anoncred.parse_policy(Config({"ANONCRED_POLICY": "IT/*:7:10 */AS3269:0:5"}))
    assert [(r.probe_cc, r.probe_asn, r.min_age_days, r.min_measurement_count)
            for r in rules] == [("IT", "*", 7, 10), ("*", "AS3269", 0, 5), ("*", "*", 0, 0)]
    ac = anoncred.AnonCred.__new__(anoncred.AnonCred)
    ac.policy = rules
    assert ac.rule_for("IT", "AS3269").min_age_days == 7
    assert ac.rule_for("DE", "AS3269").min_measurement_count == 5
    assert ac.rule_for("DE", "AS1").min_measurement_count == 0
    closing = anoncred.parse_policy(Config({"ANONCRED_MIN_AGE_DAYS": "3"}))
    assert closing[-1].min_age_days == 3


@pytest.mark.parametrize("bad", ["IT", "it/*:0:0", "IT/3269:0:0", "IT/*:x:0", "IT/AS01:0:0"])
def test_policy_refuses(bad):
    with pytest.raises(ConfigError):
        anoncred.parse_policy(Config({"ANONCRED_POLICY": bad}))


def test_age_window():
    key = anoncred.KeyVersion("1-x", "pp", "sk", "2026-12-02T00:00:00Z", 1000)
    rule = anoncred.PolicyRule("*", "*", 0, 0)
    assert anoncred.age_range(key, rule, 1000) == (999, 1001)
    assert anoncred.age_range(key, rule, 1030) == (999, 1031)
    old = anoncred.PolicyRule("*", "*", 7, 0)
    lo, hi = anoncred.age_range(key, old, 1003)
    assert hi < lo       # nobody can be 7 days old on a 3-day-old key
    assert anoncred.age_range(key, old, 1010) == (999, 1004)


def test_key_file_round_trip_and_errors(tmp_path):
    k = anoncred.new_key_version(1)
    doc = json.loads(anoncred.dump_keys([k, anoncred.new_key_version(2)]))
    got = anoncred.parse_keys(doc, "x")
    assert [v.version for v in got][0] == k.version and got[1].version.startswith("2-")
    for bad in ({}, {"format": 2, "versions": [k.as_json()]}, {"format": 1, "versions": []},
                {"format": 1, "versions": [{**k.as_json(), "secret_key": "AAAA"}]},
                {"format": 1, "versions": [k.as_json(), k.as_json()]},
                {"format": 1, "versions": [{"version": "1"}]}):
        with pytest.raises(ConfigError):
            anoncred.parse_keys(bad, "x")


def test_keys_cli(tmp_path, capsys):
    f = tmp_path / "k.json"
    assert anoncred.main(["new", str(f)]) == 0
    assert anoncred.main(["new", str(f)]) == 1
    assert anoncred.main(["rotate", str(f)]) == 0
    capsys.readouterr()
    assert anoncred.main(["list", str(f)]) == 0
    out = capsys.readouterr().out
    keys = json.loads(f.read_text())["versions"]
    assert out.count("created") == 2 and out.strip().endswith("(restart the API to serve it)")
    assert all(k["secret_key"] not in out for k in keys)
    f.write_text("{}")
    assert anoncred.main(["rotate", str(f)]) == 1


def test_base64_check():
    assert anoncred.is_base64("QUJD") and anoncred.is_base64("")
    assert not anoncred.is_base64("QUJ") and not anoncred.is_base64("QU=D")
    assert not anoncred.is_base64("QUJD\n")


T = ReportTarget("r", "IT", "webconnectivity", 30722)


@pytest.mark.parametrize("content,bad", [
    ({}, None), ("yaml text", None),
    ({"probe_cc": "it", "probe_asn": "AS30722", "test_name": "web_connectivity"}, None),
    ({"probe_cc": "DE"}, "probe_cc"), ({"probe_cc": None}, None), ({"probe_cc": 1}, "probe_cc"),
    ({"probe_asn": "AS1"}, "probe_asn"), ({"probe_asn": 30722}, "probe_asn"),
    ({"test_name": "ndt"}, "test_name"), ({"test_name": "Web_Connectivity"}, None),
])
def test_check_consistent(content, bad):
    assert check_consistent(T, content) == bad
