"""Every sample of fastpath.md §13 gives the expected anomaly / confirmed /
failure flags and blocking_type, with the JSON fingerprint snapshot."""
from __future__ import annotations

import json

import pytest

from fastpath.core import process_measurement
from fastpath.fingerprints import load_from_files
from fastpath.score_files import iter_file

# file: (A, C, F, bt)
EXPECTED = {
    "report1.json": ("f", "f", "f", ""),
    "report2.json": ("f", "f", "f", ""),
    "report2blocked.json": ("f", "f", "f", ""),
    "bug_352.json": ("t", "t", "f", "dns"),
    "requests_none.json": ("t", "f", "f", "dns"),
    "test_keys_none.json": ("f", "f", "t", ""),
    "web_connectivity_b64_hdr.json": ("t", "f", "f", "http-failure"),
    "web_connectivity_b64_incorrect.json": ("f", "f", "t", ""),
    "web_connectivity_no_body.json": ("f", "f", "f", ""),
    "web_connectivity_null2.json": ("f", "f", "t", ""),
    "http_requests_1.json": ("f", "f", "t", ""),
    "yaml17_0.json": ("f", "f", "f", ""),
    "binary_city.yaml": ("f", "f", "f", ""),
    "dns_n_http_bin_body.yaml": ("f", "f", "t", ""),
    "mbx-2.json": ("t", "f", "f", ""),
    "http_header_field_manipulation_1.json": ("f", "f", "t", ""),
    "http_header_field_manipulation_2.json": ("f", "f", "t", ""),
    "meek.json": ("t", "f", "f", ""),
    "meek2.json": ("f", "f", "f", ""),
    "vanilla_tor.json": ("t", "f", "f", ""),
    "tor.json": ("f", "f", "f", ""),
    "torsf_1.json": ("t", "f", "f", ""),
    "torsf_2.json": ("f", "f", "f", ""),
    "openvpn.json": ("f", "f", "f", ""),
    "riseupvpn.json": ("f", "f", "f", ""),
    "signal_022.json": ("f", "f", "f", ""),
    "signal_2627.json": ("f", "f", "t", ""),
    "telegram_nourl.json": ("f", "f", "t", ""),
    "whatsapp.json": ("f", "f", "f", ""),
    "browser_web.json": ("f", "f", "f", ""),
}


@pytest.fixture(scope="module")
def fps(shared_data):
    d = shared_data / "fingerprints"
    return load_from_files(d / "fingerprints_dns.json", d / "fingerprints_http.json")


def _score_sample(shared_data, fps, name):
    path = shared_data / "measurements" / name
    if not path.exists():
        pytest.skip(f"sample {name} absent")
    if name.endswith(".yaml"):
        items = list(iter_file(path))
        assert len(items) == 1
        _, doc, uid = items[0]
        assert uid.startswith("01")
        return process_measurement(None, doc, uid, fps)
    return process_measurement(path.read_bytes(), None, "bogus_uid", fps)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_flags(shared_data, fps, name):
    out = _score_sample(shared_data, fps, name)
    assert out.status == "scored", out.reason
    r = out.row
    assert (r.anomaly, r.confirmed, r.msm_failure, r.blocking_type) == EXPECTED[name]
    assert json.loads(r.scores) == out.scores


def test_all_samples_listed(shared_data):
    present = {p.name for p in (shared_data / "measurements").iterdir()
               if p.suffix in (".json", ".yaml")}
    assert present <= set(EXPECTED)


def test_bug_352_scores(shared_data, fps):
    s = _score_sample(shared_data, fps, "bug_352.json").scores
    assert s["blocking_general"] == 2.0
    assert s["blocking_country"] == 1.0
    assert s["confirmed"] is True
    assert s["fingerprints"][0]["name"] == "ooni.ir_10dot10_ipv4_1"
    assert set(s["fingerprints"][0]) == {"name", "scope", "location_found",
                                         "confidence_no_fp", "expected_countries"}
    assert s["fingerprints"][0]["expected_countries"] == ["IR"]


def test_null2_row(shared_data, fps):
    r = _score_sample(shared_data, fps, "web_connectivity_null2.json").row
    assert (r.probe_asn, r.domain, r.platform, r.architecture, r.engine_name,
            r.engine_version, r.test_helper_address, r.test_helper_type,
            r.ooni_run_link_id, r.is_verified, r.msm_failure) == (
        197207, "yooz.ir", "android", "arm", "ooniprobe-engine", "3.15.2",
        "https://0.th.ooni.org", "https", None, "u", "t")
    assert r.scores == ('{"blocking_general":0.0,"blocking_global":0.0,"blocking_country":0.0,'
                        '"blocking_isp":0.0,"blocking_local":0.0,"accuracy":0.0}')


def test_browser_web_row(shared_data, fps):
    out = _score_sample(shared_data, fps, "browser_web.json")
    r = out.row
    assert out.scores["extra"] == {"browser_name": "chrome", "load_time_ms": 357.40000000037253}
    assert (r.platform, r.architecture, r.engine_name, r.engine_version,
            r.test_helper_address, r.test_helper_type) == ("unset", "", "", "", "", "")
    assert r.test_runtime == pytest.approx(0.35740000000037253)


def test_openvpn_obs_row(shared_data, fps):
    out = _score_sample(shared_data, fps, "openvpn.json")
    o = out.openvpn_row
    assert o is not None
    assert (o.last_handshake_transaction_id, o.resolver_asn, o.platform, o.anomaly) == \
        (8, 9009, "", False)
    assert out.scores["extra"]["test_runtime"] == out.row.test_runtime
    assert out.row.report_id == ""
    assert out.row.domain == "openvpn.riseup"


def test_meek_list_input(shared_data, fps):
    r = _score_sample(shared_data, fps, "meek.json").row
    assert r.input.startswith("{") and r.input.endswith("}")
    assert r.domain == r.input[1:-1].split(",")[0]


def test_yaml17_domain(shared_data, fps):
    r = _score_sample(shared_data, fps, "yaml17_0.json").row
    assert (r.input, r.domain) == ("google.com", "")


def test_dns_n_http_generated_report_id(shared_data, fps):
    r = _score_sample(shared_data, fps, "dns_n_http_bin_body.yaml").row
    assert r.report_id.startswith("20150903T224143Z_CpaoIyOd")
    assert len(r.report_id) == len("20150903T224143Z_") + 50


def test_binary_city_normalized(shared_data):
    items = list(iter_file(shared_data / "measurements" / "binary_city.yaml"))
    msm = items[0][1]
    assert msm["probe_city"] == "Reykjavk"
    assert msm["test_keys"]["headers_diff"] == []
    assert msm["data_format_version"] == "0.2.0"
    assert msm["measurement_start_time"] == "2015-11-05 12:29:36"


def test_whatsapp_analysis(shared_data, fps):
    s = _score_sample(shared_data, fps, "whatsapp.json").scores
    assert s["analysis"] == {"registration_server_accessible": True,
                             "whatsapp_web_accessible": True,
                             "whatsapp_endpoints_accessible": True}


def test_vanilla_tor_score(shared_data, fps):
    assert _score_sample(shared_data, fps, "vanilla_tor.json").scores["blocking_general"] == \
        pytest.approx(0.98)
