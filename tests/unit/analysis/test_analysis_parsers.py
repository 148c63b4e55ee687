"""Pure logic of the analysis jobs: URL validation, CSV/JSON parsing,
measurement unwrapping, can planning, backup cell encoding, the registry."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from analysis import asnmeta, backup, citizenlab, fingerprints, uploader
from analysis.jobs import Job, all_jobs, interval
from analysis.runner import JobError
from ooni_common.config import Config


@pytest.mark.parametrize("url,domain", [
    ("https://example.com/", "example.com"),
    ("example.com", "example.com"),
    ("HTTP://WWW.Example.COM/x", "WWW.Example.COM"),
    ("http://example.com./", "example.com."),
    ("http://1.2.3.4:80/x", "1.2.3.4"),
    ("http://999.999.999.999/", "999.999.999.999"),
    ("http://example.com?q=1", "example.com"),
    ("http://example.com/#frag", "example.com"),
    ("http://example.com:8080", "example.com"),
    ("https://xn--bcher-kva.de/", "xn--bcher-kva.de"),
    ("ftp://example.com/", None), ("http://localhost/", None), ("http://[::1]/", None),
    ("http://foo_bar.com/", None), ("http://bücher.de/", None), ("http://a.b/", None),
    ("http://-bad.com/", None), ("http://example.com:/", None), (" http://x.com/", None),
    ("http://x.com/ ", None), ("http://x.com/a b", None), ("", None),
    ("http://x.com/\n", None), ("http://x.com/a\\b", None), ("http://x.com/\t", None),
])
def test_citizenlab_url_rules(url, domain):
    assert citizenlab.extract_domain(url) == domain


def test_citizenlab_file_to_cc():
    assert citizenlab.cc_for_file(Path("lists/global.csv")) == "ZZ"
    assert citizenlab.cc_for_file(Path("lists/it.csv")) == "it"
    assert citizenlab.cc_for_file(Path("lists/cis.csv")) is None
    assert citizenlab.cc_for_file(Path("lists/00-LEGEND-category_codes.csv")) is None


def test_citizenlab_parse_list(tmp_path):
    p = tmp_path / "it.csv"
    p.write_text("url,category_code,category_description,date_added,source,notes\n"
                 "https://a.it/,NEWS,News,2020-01-01,,\n"
                 "http://bad_host.it/,NEWS,News,2020-01-01,,\n"
                 "https://b.it/,HUMR,Human Rights,2020-01-01,,")
    rows, dropped = citizenlab.parse_list(p, "it", citizenlab.CATEGORY_CODES)
    assert rows == [citizenlab.CitizenlabRow("a.it", "https://a.it/", "it", "NEWS"),
                    citizenlab.CitizenlabRow("b.it", "https://b.it/", "it", "HUMR")]
    assert dropped == 1
    p.write_text("link,category_code\nhttps://a.it/,NEWS\n")
    with pytest.raises(JobError, match="no 'url' column"):
        citizenlab.parse_list(p, "it", citizenlab.CATEGORY_CODES)


HEADER = ",".join(fingerprints.COLUMNS)


def test_fingerprints_keep_crlf_inside_quotes():
    data = (HEADER + "\r\n" + 'a.b,isp,,body,contains,"x\r\ny",5,IT,,,\r\n').encode()
    (fp,) = fingerprints.parse_csv("http", data)
    assert fp.pattern == "x\r\ny" and fp.confidence_no_fp == 5 and fp.expected_countries == "IT"


@pytest.mark.parametrize("row,msg", [
    ("a.b,isp,,body,contains,x,5,IT,,", "malformed row: 10 columns"),
    ("a.b,injb,,dns,full,x,5,,,,", "unknown scope 'injb'"),
    ("a.b,isp,,dns,glob,x,5,,,,", "unknown pattern_type 'glob'"),
    ("a.b,isp,,dns,full,,5,,,,", "empty pattern"),
    ("a.b,isp,,dns,full,x,,,,,", "confidence_no_fp '' is not an integer"),
    ("a.b,isp,,dns,full,x,256,,,,", "confidence_no_fp 256 out of range"),
    (",isp,,dns,full,x,5,,,,", "empty name"),
])
def test_fingerprints_bad_rows(row, msg):
    with pytest.raises(JobError, match=r"fingerprints_dns\.csv:2: " + msg):
        fingerprints.parse_csv("dns", (HEADER + "\r\n" + row + "\r\n").encode())


def test_fingerprints_duplicate_and_header():
    row = "a.b,isp,,dns,full,x,5,,,,\r\n"
    with pytest.raises(JobError, match="duplicate name 'a.b'"):
        fingerprints.parse_csv("dns", (HEADER + "\r\n" + row + row).encode())
    with pytest.raises(JobError, match="unexpected header"):
        fingerprints.parse_csv("dns", b"name,scope\r\n")


def test_asnmeta_parse_flattens_history():
    doc = {"1": [["A", "US", "20040604", "X", "ARIN", "extra"], ["B", "US", "20180220", "X", "ARIN"]],
           "4294967295": [["", "", "20200101", "", ""]]}
    rows = asnmeta.parse(json.dumps(doc).encode())
    assert rows[0] == asnmeta.AsnMeta(1, "A", "US", dt.date(2004, 6, 4), "X", "ARIN")
    assert [r.asn for r in rows] == [1, 1, 4294967295]
    with pytest.raises(JobError, match="out of range"):
        asnmeta.parse(b'{"4294967296": []}')
    with pytest.raises(JobError, match="JSON object"):
        asnmeta.parse(b"[]")


def test_unwrap_posts():
    msm = {"report_id": "r", "input": "https://x/"}
    assert uploader.unwrap(json.dumps({"format": "json", "content": msm}).encode()) == msm
    assert uploader.unwrap(json.dumps({"format": "JSON", "content": json.dumps(msm)}).encode()) == msm
    assert uploader.unwrap(json.dumps({"format": "yaml", "content": "report_id: r\ninput: x\n"}).encode()) \
        == {"report_id": "r", "input": "x"}
    for bad in (b"{", b"[]", b'{"format": "json", "content": 3}', b'{"format": "xml", "content": {}}',
                b'{"format": "json", "content": "{not json"}'):
        assert uploader.unwrap(bad) is None


def test_dump_line_is_compact_utf8_and_survives_lone_surrogates():
    assert uploader.dump_line({"a": "ü/x"}) == '{"a":"ü/x"}'.encode()
    line = uploader.dump_line(uploader.unwrap(b'{"format":"json","content":{"a":"\\ud800"}}'))
    assert json.loads(line) == {"a": "\ud800"}


def test_hour_dir_parsing_and_keys(tmp_path):
    hd = uploader.HourDir.parse(tmp_path / "2021070900_MY_webconnectivity")
    assert hd.hour == dt.datetime(2021, 7, 9) and hd.cc == "MY"
    can = uploader.Can(hd, "7", 2, ("u",))
    assert can.postcan_key == "raw/20210709/00/MY/webconnectivity/2021070900_MY_webconnectivity.n7.2.tar.gz"
    assert can.jsonl_key.endswith(".n7.2.jsonl.gz")
    for bad in ("2021070900_MY", "20210709_MY_x", "2021139900_MY_x", "x_y_z"):
        assert uploader.HourDir.parse(tmp_path / bad) is None


def test_plan_cans_splits_by_size(tmp_path):
    d = tmp_path / "2021070900_MY_webconnectivity"
    d.mkdir()
    for i in range(5):
        (d / f"u{i}.post").write_bytes(b"x" * 100)
    hd = uploader.HourDir.parse(d)
    cans = uploader.plan_cans(hd, "1", [f"u{i}" for i in range(5)] + ["gone"], 3, 250)
    assert [(c.k, c.uids) for c in cans] == [(3, ("u0", "u1")), (4, ("u2", "u3")), (5, ("u4",))]


@pytest.mark.parametrize("ctype,value", [
    ("String", "a,\"b\"\r\nc"), ("UInt32", 4294967295), ("Int8", -1), ("Float32", 0.5),
    ("Date", dt.date(2024, 1, 2)), ("DateTime", dt.datetime(2024, 1, 2, 3, 4, 5)),
    ("DateTime64(3)", dt.datetime(2024, 1, 2, 3, 4, 5, 123000)),
    ("Nullable(DateTime)", None), ("Nullable(String)", "x"), ("Array(String)", ["a", "b,c"]),
    ("Array(UInt32)", [1, 2]), ("LowCardinality(String)", "x"), ("Bool", True),
])
def test_backup_cells_round_trip(ctype, value):
    assert backup.decoder(ctype)(backup.encode_cell(value, ctype)) == value


def test_backup_fixed_string_padding_dropped():
    assert backup.encode_cell("it\x00\x00", "FixedString(32)") == "it"


def test_registry():
    jobs = all_jobs()
    assert set(jobs) == {"uploader", "citizenlab", "fingerprints", "asnmeta", "geoip", "db-backup",
                         "detector", "rotation", "aggregation-summary"}
    for name, job in jobs.items():
        assert isinstance(job, Job) and job.name == name and callable(job.run)
        assert job.interval_key.endswith("_INTERVAL")
    assert interval(jobs["uploader"], Config({})) == 3600
    assert interval(jobs["uploader"], Config({"UPLOADER_INTERVAL": "60"})) == 60
    assert interval(jobs["geoip"], Config({})) == 0
    assert interval(jobs["detector"], Config({})) == 3600
    # rotation spawns VMs: never scheduled unless an operator asks
    assert interval(jobs["rotation"], Config({})) == 0
