"""Per-test scoring rules of fastpath.md §4 on fixtures written here, one
group per test family, plus the generic checks of §1-§2."""
from __future__ import annotations

import pytest

from fastpath.core import process_measurement
from fastpath.fingerprints import Fingerprints
from fastpath.scoring import SCORERS, score_measurement
from fastpath.scoring.common import init_scores

FPS = Fingerprints.empty()


def msm(test_name, tk=None, **top):
    m = {"report_id": "20220101T000000Z_x_IT_1_n1_abcdefghijklmnop", "probe_cc": "IT",
         "probe_asn": "AS1", "test_name": test_name, "input": None,
         "measurement_start_time": "2022-01-01 00:00:00", "test_start_time": "2022-01-01 00:00:00",
         "test_keys": tk if tk is not None else {}}
    m.update(top)
    return m


def sc(m):
    return score_measurement(m, FPS)


def flags(m, uid="bogus_uid"):
    out = process_measurement(None, m, uid, FPS)
    assert out.status == "scored", out.reason
    r = out.row
    return r.anomaly + r.confirmed + r.msm_failure


def test_21_scorers():
    assert len(SCORERS) == 21


def test_unsupported_test_name():
    assert sc(msm("dns_n_http")) == {**init_scores(), "accuracy": 0.0}
    assert flags(msm("foo")) == "fft"


# --- web_connectivity -------------------------------------------------------

@pytest.mark.parametrize("tk, expected", [
    ({"blocking": "dns", "accessible": False}, {"blocking_general": 1.0,
                                                "analysis": {"blocking_type": "dns"}}),
    ({"blocking": False, "accessible": True}, {}),
    ({"blocking": 0, "accessible": True}, {}),
    ({"blocking": None, "accessible": True}, {"accuracy": 0.0}),
    ({"blocking": True}, {"analysis": {"msg": "Unsupported blocking type"}, "accuracy": 0.0}),
    ({"blocking": "weird"}, {"analysis": {"msg": "Unsupported blocking type"}, "accuracy": 0.0}),
    ({"blocking": "dns", "title_match": "yes"}, {"accuracy": 0.0}),
    ({"blocking": False, "dns_experiment_failure": "unknown_failure: x"}, {"accuracy": 0.0}),
    ({"blocking": False, "accessible": None}, {"accuracy": 0.0}),
])
def test_web_connectivity(tk, expected):
    assert sc(msm("web_connectivity", tk)) == {**init_scores(), **expected}


def test_web_connectivity_non_string_failure_is_error():
    out = process_measurement(None, msm("web_connectivity", {"blocking": False,
                                                             "http_experiment_failure": 3}),
                              "bogus_uid", FPS)
    assert (out.status, out.reason) == ("error", "scorer_error")


def test_web_connectivity_missing_probe_cc_is_error():
    m = msm("web_connectivity", {"blocking": False})
    del m["probe_cc"]
    assert process_measurement(None, m, "bogus_uid", FPS).reason == "scorer_error"


# --- legacy web tests -----------------------------------------------------------

def test_http_requests():
    assert sc(msm("http_requests", {"body_length_match": True, "headers_match": True})) == \
        init_scores()
    assert sc(msm("http_requests", {"body_length_match": False, "headers_match": True})
              )["blocking_general"] == 1.0
    assert sc(msm("http_requests", {"body_length_match": True}))["accuracy"] == 0.0
    # control_failure is read from the root ([quirk])
    assert sc(msm("http_requests", {"body_length_match": True, "headers_match": True},
                  control_failure="x"))["accuracy"] == 0.0
    assert "accuracy" not in sc(msm("http_requests", {"body_length_match": True,
                                                      "headers_match": True,
                                                      "control_failure": "x"}))


def test_http_requests_skips_tor_requests():
    fps = Fingerprints.from_rows([], [{"name": "n", "scope": "nat", "location_found": "body",
                                       "pattern_type": "contains", "pattern": "BLOCKED",
                                       "confidence_no_fp": 5, "expected_countries": "IT"}])
    tk = {"body_length_match": True, "headers_match": True, "requests": [
        {"request": {"tor": {"is_tor": True}}, "response": {"body": "BLOCKED"}},
        {"request": {"tor": {"is_tor": False}}, "response": {"body": "BLOCKED"}},
        {"request": {}, "response": None}]}
    s = score_measurement(msm("http_requests", tk), fps)
    assert [f["name"] for f in s["fingerprints"]] == ["n"]
    assert s["blocking_country"] == 1.0 and s["blocking_general"] == 0.0 and s["confirmed"]


def test_dns_consistency():
    assert sc(msm("dns_consistency", {"anything": 1})) == init_scores()


@pytest.mark.parametrize("conn, bg", [("success", 0.0), ("generic_timeout_error", 0.8),
                                      ("connect_error", 0.8), ("tcp_timed_out_error", 0.8),
                                      ("connection_refused_error", 0.8), ("other", 1.0),
                                      (None, 1.0)])
def test_tcp_connect(conn, bg):
    assert sc(msm("tcp_connect", {"connection": conn}, input="1.2.3.4:80"))["blocking_general"] == bg


def test_tcp_connect_without_input_is_error():
    assert process_measurement(None, msm("tcp_connect", {}), "bogus_uid", FPS).reason == \
        "scorer_error"


# --- middleboxes ----------------------------------------------------------------

def test_http_invalid_request_line():
    assert sc(msm("http_invalid_request_line", {"sent": ["a", "b"], "received": ["a", "b"],
                                                "tampering": True})) == init_scores()
    assert sc(msm("http_invalid_request_line", {"sent": ["a"], "received": ["b", "c"]})
              )["blocking_general"] == 1.0
    assert sc(msm("http_invalid_request_line", {}))["accuracy"] == 0.0


def hhfm(body, req_headers):
    return msm("http_header_field_manipulation", {"requests": [
        {"request": {"headers": req_headers}, "response": {"body": body}}]})


def test_hhfm():
    body = '{"headers_dict": {"Host": ["x"], "Connection": ["close"]}}'
    assert sc(hhfm(body, {"Host": "x"})) == init_scores()
    s = sc(hhfm(body, {"Host": "y", "Accept": "z"}))
    assert (s["blocking_general"], s["msg"]) == (1.1, "3 unexpected header change")
    s = sc(hhfm(None, {}))
    assert (s["total_tampering"], s["msg"]) == (True, "Empty body")
    assert sc(hhfm("not json", {}))["msg"] == "Malformed ctrl_headers"
    assert sc(msm("http_header_field_manipulation", {"requests": [{"response": None}]})
              )["accuracy"] == 0.0


# --- tor family -----------------------------------------------------------------

def test_vanilla_tor():
    assert sc(msm("vanilla_tor", {"tor_log": "x Bootstrapped 100% (done): Done"})) == init_scores()
    # a list matches only whole elements ([quirk])
    s = sc(msm("vanilla_tor", {"tor_logs": ["t Bootstrapped 100%: Done"], "tor_progress": 50}))
    assert s["blocking_general"] == pytest.approx(0.8)
    assert sc(msm("vanilla_tor", {"tor_logs": ["a"], "tor_progress": 100})) == init_scores()
    assert sc(msm("vanilla_tor", {"tor_logs": ["a"], "tor_progress": 250})) == init_scores()
    assert sc(msm("vanilla_tor", {"tor_logs": []}))["accuracy"] == 0.0


def test_tor():
    tk = {"targets": {"a": {"failure": None, "network_events": []},
                      "b": {"failure": "timeout", "network_events": []},
                      "c": {"failure": False, "network_events": []}}}
    s = sc(msm("tor", tk, test_runtime=3.5))
    assert s["blocking_general"] == 0.5 and s["extra"] == {"test_runtime": 3.5}
    assert sc(msm("tor", {"targets": []}))["accuracy"] == 0.0
    assert sc(msm("tor", {"targets": {"a": {"failure": None}}}))["accuracy"] == 0.0
    s = sc(msm("tor", {"targets": {"a": {"failure": False, "network_events": []}}}))
    assert s["accuracy"] == 0.0 and s["extra"] == {"test_runtime": None}


def test_torsf():
    s = sc(msm("torsf", {"bootstrap_time": 2.0}, test_runtime=3.0))
    assert s["extra"] == {"bootstrap_time": 2.0, "test_runtime": 3.0}
    assert sc(msm("torsf", {"failure": "x"})) == {**init_scores(), "blocking_general": 1.0}
    assert sc(msm("torsf", {}, software_name="ooniprobe-android-x",
                  software_version="3.8.3"))["accuracy"] == 0.0


def test_meek():
    ok = {"code": 200, "headers": [["Server", ["ECAcc (abc)"]]]}
    assert sc(msm("meek_fronted_requests_test", {"requests": [{"response": ok}]})) == init_scores()
    s = sc(msm("meek_fronted_requests_test", {"requests": []}))
    assert s["accuracy"] == 0 and type(s["accuracy"]) is int
    s = sc(msm("meek_fronted_requests_test",
               {"requests": [{"response": {"code": 200, "headers": {"Server": "x"}}}] * 2}))
    assert s["blocking_general"] == 1.0
    assert sc(msm("meek_fronted_requests_test", {"requests": [{"response": None}]})
              )["blocking_general"] == 1.0


# --- circumvention --------------------------------------------------------------

def test_psiphon():
    s = sc(msm("psiphon", {"failure": None, "bootstrap_time": 3}, resolver_ip="1.1.1.1"))
    assert s["accuracy"] == 1.0 and s["blocking_general"] == 0.0
    assert flags(msm("psiphon", {"failure": "x"}, resolver_ip="1.1.1.1")) == "tff"
    assert sc(msm("psiphon", {"failure": None, "bootstrap_time": 3}))["accuracy"] == 0.0
    assert sc(msm("psiphon", {}, resolver_ip="x"))["extra"] == {"test_runtime": None,
                                                               "bootstrap_time": 0}


def test_riseupvpn_and_ndt_are_empty():
    assert sc(msm("riseupvpn", {"api_status": "blocked"})) == {}
    assert sc(msm("ndt", {"failure": "x"})) == {}
    assert flags(msm("ndt", {})) == "fff"


def test_openvpn():
    assert sc(msm("openvpn", {"success": False}))["blocking_general"] == 1.0
    assert sc(msm("openvpn", {}))["accuracy"] == 0.0
    assert sc(msm("openvpn", {"success": True}, test_runtime=1.5)) == \
        {**init_scores(), "extra": {"test_runtime": 1.5}}


# --- instant messaging ------------------------------------------------------------

def test_telegram():
    tk = {"tcp_connect": [{"status": {"success": True}}, {"status": {"success": False}}],
          "requests": [{"request": {"url": "http://a/"}, "failure": None},
                       {"request": {"url": "https://web.telegram.org/"}, "failure": "eof"}],
          "telegram_web_status": "blocked"}
    s = sc(msm("telegram", tk))
    assert s["blocking_general"] == 1.5
    assert (s["web_failure"], s["accessible_endpoints"], s["unreachable_endpoints"],
            s["http_success_cnt"], s["http_failure_cnt"], s["msg"]) == ("eof", 1, 1, 1, 0,
                                                                        "failure: eof")
    assert sc(msm("telegram", {}))["blocking_general"] == 1.0


def wa(**tk):
    base = {"requests": [{"request": {"url": "https://web.whatsapp.com/"}, "failure": None},
                         {"request": {"url": "https://v.whatsapp.net/v2/register"},
                          "failure": None}],
            "tcp_connect": [{"status": {"success": True}}]}
    base.update(tk)
    return msm("whatsapp", base)


def test_whatsapp():
    assert sc(wa())["analysis"]["whatsapp_endpoints_accessible"] is True
    s = sc(wa(tcp_connect=[{"status": {"success": False}}]))
    assert s["blocking_general"] == 1.0 and s["analysis"]["whatsapp_endpoints_accessible"] is False
    assert sc(wa(tcp_connect=[]))["accuracy"] == 0.0
    assert sc(wa(requests=[]))["accuracy"] == 0.0
    assert sc(wa(requests=[{"request": {"url": "https://web.whatsapp.com/"}}]))["accuracy"] == 0.0
    assert sc(wa(whatsapp_web_failure="unknown_failure 'ascii' codec"))["accuracy"] == 0.0
    s = sc(wa(requests=[{"request": {"url": "https://web.whatsapp.com/"}, "failure": "x"},
                        {"request": {"url": "https://v.whatsapp.net/v2/register"}}]))
    assert s == {**init_scores(), "blocking_general": 1.0}


def test_facebook_messenger():
    ok = {k: True for k in ("facebook_b_api_dns_consistent", "facebook_b_api_reachable",
                            "facebook_b_graph_dns_consistent", "facebook_b_graph_reachable",
                            "facebook_dns_blocking", "facebook_edge_dns_consistent",
                            "facebook_edge_reachable", "facebook_star_dns_consistent",
                            "facebook_star_reachable", "facebook_stun_dns_consistent")}
    assert sc(msm("facebook_messenger", {**ok, "facebook_tcp_blocking": False})) == init_scores()
    s = sc(msm("facebook_messenger", {**ok, "facebook_tcp_blocking": True,
                                      "facebook_edge_reachable": False}))
    assert s["blocking_general"] == 1.5
    assert s["facebook_tcp_blocking"] is True and s["facebook_edge_reachable"] is False


def sig(tv, start, status="ok", ev="3.18.0", **tk):
    base = {"failed_operation": None, "failure": None, "signal_backend_status": status}
    base.update(tk)
    return msm("signal", base, test_version=tv, measurement_start_time=start,
               annotations={"engine_version": ev})


def test_signal():
    assert sc(sig("0.2.5", "2024-01-01 00:00:00")) == init_scores()
    assert sc(sig("0.2.4", "2021-01-01 00:00:00"))["accuracy"] == 0.0
    assert sc(sig("0.2.3", "2023-11-07 00:00:00"))["accuracy"] == 0.0
    assert sc(sig("0.2.1", "2022-10-19 00:00:00"))["accuracy"] == 0.0
    assert sc(sig("0.2.5", "2023-06-01 00:00:00", ev="3.17.1"))["accuracy"] == 0.0
    assert sc(sig("not a version!", "2024-01-01 00:00:00"))["accuracy"] == 0.0
    s = sc(sig("0.2.5", "2024-01-01 00:00:00", "blocked", signal_backend_failure="eof"))
    assert s["analysis"] == {"signal_backend_failure": "eof"} and s["blocking_general"] == 1.0
    assert sc(sig("0.2.5", "2024-01-01 00:00:00", "??"))["accuracy"] == 0.0
    assert sc(sig("0.2.5", "2024-01-01 00:00:00", failure="x"))["accuracy"] == 0.0


# --- performance and experiments --------------------------------------------------

@pytest.mark.parametrize("tk, expected", [
    ({}, {"accuracy": 0.0}),
    ({"simple": {}}, {}),
    ({"failure": "eof_error"}, {"blocking_general": 0.1, "accuracy": 0.0}),
    ({"failure": "ssl_error: x"}, {"blocking_general": 0.1, "accuracy": 0.0}),
    ({"failure": "boom"}, {"msg": "Probe error", "accuracy": 0.0}),
])
def test_dash(tk, expected):
    assert sc(msm("dash", tk)) == {**init_scores(), **expected}


def test_stunreachability():
    assert sc(msm("stunreachability", {"endpoint": "e"}))["extra"] == {"endpoint": "e"}
    s = sc(msm("stunreachability", {"endpoint": "e", "failure": "f"}))
    assert s["extra"] == {"endpoint": "e", "failure": "f"} and s["blocking_general"] == 1.0


def test_browser_web():
    assert sc(msm("browser_web", {"result": "error"}))["blocking_general"] == 1.0
    s = sc(msm("browser_web", {"browser_name": None}))
    assert s["accuracy"] == 0.0 and s["extra"] == {"browser_name": "", "load_time_ms": 0}


# --- generic pipeline -------------------------------------------------------------

UID = "20211109115946.469008_IR_webconnectivity_9ba8a0d4f9b116fe"


@pytest.mark.parametrize("start, msg", [
    ("2021-11-09 23:59:31", "Measurement start time from the future"),
    ("2020-01-01 00:00:01", "Measurement start time too old"),
    ("2100-01-01 00:00:00", "Measurement start time from the future"),
    ("1970-01-01 00:00:00", "Measurement start time too old"),
])
def test_wrong_date(start, msg):
    out = process_measurement(None, msm("ndt", {}, measurement_start_time=start), UID, FPS)
    assert out.scores == {"accuracy": 0.0, "msg": msg}
    assert out.row.msm_failure == "t"


def test_wrong_date_skipped_for_trivial_ids():
    m = msm("ndt", {}, measurement_start_time="2100-01-01 00:00:00")
    assert process_measurement(None, m, "01" + "0" * 38, FPS).scores == {}


@pytest.mark.parametrize("change, reason", [
    ({"report_id": None}, "no_report_id"), ({"probe_cc": "zz"}, "cc_zz"),
    ({"probe_asn": "as0"}, "asn_0"),
])
def test_discards(change, reason):
    out = process_measurement(None, msm("ndt", {}, **change), "bogus_uid", FPS)
    assert (out.status, out.reason, out.row) == ("discarded", reason, None)


def test_empty_report_id_not_discarded():
    assert process_measurement(None, msm("ndt", {}, report_id=""), "u", FPS).status == "scored"


def test_unwrap_and_is_verified():
    import json
    post = {"format": "JSON", "content": msm("ndt", {}), "is_verified": "t"}
    out = process_measurement(json.dumps(post).encode(), None, "bogus_uid", FPS)
    assert out.row.is_verified == "t"
    post["is_verified"] = "maybe"
    assert process_measurement(None, post, "bogus_uid", FPS).row.is_verified == "u"
    post["format"] = "xml"
    assert process_measurement(None, post, "bogus_uid", FPS).reason == "bad_format"


def test_yaml_post():
    content = ("report_id: r1\nprobe_cc: IT\nprobe_asn: AS3\ntest_name: ndt\n"
               "data_format_version: 0.2.0\ntest_keys: {}\n"
               "measurement_start_time: '2022-01-01 00:00:00'\n"
               "test_start_time: '2022-01-01 00:00:00'\n")
    out = process_measurement(None, {"format": "yaml", "content": content}, "bogus_uid", FPS)
    assert out.status == "scored" and out.row.probe_asn == 3


@pytest.mark.parametrize("change, column, value", [
    ({"input": "http://user@Ex.org:8080/p"}, "domain", "user@Ex.org:8080"),
    ({"input": "1.2.3.4:22"}, "domain", ""),
    ({"annotations": {"ooni_run_link_id": "42"}}, "ooni_run_link_id", 42),
    ({"annotations": {"ooni_run_link_id": 42.9}}, "ooni_run_link_id", 42),
    ({"annotations": {"ooni_run_link_id": "x"}}, "ooni_run_link_id", None),
    ({"annotations": {"ooni_run_link_id": ""}}, "ooni_run_link_id", None),
    ({"annotations": "junk"}, "platform", "unset"),
    ({"test_helpers": {"backend": "1.2.3.4"}}, "test_helper_address", ""),
    ({"test_helpers": {"backend": {"address": "a", "type": "https"}}}, "test_helper_type", "https"),
    ({"probe_asn": "as123"}, "probe_asn", 123),
    ({"probe_asn": "AS4294967295"}, "probe_asn", 4294967295),
    ({"software_name": None}, "software_name", ""),
    ({"test_runtime": None}, "test_runtime", 0.0),
])
def test_row_columns(change, column, value):
    out = process_measurement(None, msm("ndt", {}, **change), "bogus_uid", FPS)
    assert getattr(out.row, column) == value


@pytest.mark.parametrize("change", [
    {"probe_asn": "1234"}, {"probe_asn": "AS"}, {"probe_asn": "ASx"},
    {"probe_asn": "AS4294967296"}, {"measurement_start_time": None},
    {"test_start_time": "2022-01-01T00:00:00Z"}, {"input": ["a", "b"]}, {"input": 5},
    {"annotations": {"ooni_run_link_id": [1]}}, {"measurement_start_time": "1969-12-31 23:59:59"},
    {"test_start_time": "2107-01-01 00:00:00"}, {"report_id": 12},
])
def test_row_errors(change):
    out = process_measurement(None, msm("ndt", {}, **change), "bogus_uid", FPS)
    assert (out.status, out.reason, out.row) == ("error", "row_error", None)


def test_missing_probe_asn_is_row_error():
    m = msm("ndt", {})
    del m["probe_asn"]
    assert process_measurement(None, m, "bogus_uid", FPS).reason == "row_error"


def test_build_row_false():
    out = process_measurement(None, msm("ndt", {}, probe_asn="AS"), "bogus_uid", FPS,
                              build_row=False)
    assert (out.status, out.row, out.scores) == ("scored", None, {})
