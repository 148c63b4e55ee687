"""score_files.run and ``fastpath --input-file``: every kind of input file,
one JSON line per measurement with all fastpath columns, no database."""
from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile

import pytest

from fastpath.fingerprints import load_from_files
from fastpath.rows import FASTPATH_COLUMNS
from fastpath.score_files import run

UID = "20221121172249.123456_RO_openvpn_0123456789abcdef"


@pytest.fixture(scope="module")
def fps(shared_data):
    d = shared_data / "fingerprints"
    return load_from_files(d / "fingerprints_dns.json", d / "fingerprints_http.json")


def score(paths, fps):
    out = io.StringIO()
    n = run([str(p) for p in paths], fps, out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(lines) == n
    return lines


def sample(shared_data, name):
    return (shared_data / "measurements" / name).read_bytes()


def test_single_json_all_columns(shared_data, fps):
    [row] = score([shared_data / "measurements" / "bug_352.json"], fps)
    assert tuple(row) == FASTPATH_COLUMNS
    assert (row["anomaly"], row["confirmed"], row["blocking_type"]) == ("t", "t", "dns")
    assert json.loads(row["scores"])["blocking_country"] == 1.0
    # no measurement_uid key, no uid file name: a trivial id
    assert row["measurement_uid"].startswith("01")


def test_uid_from_key_and_file_name(tmp_path, shared_data, fps):
    msm = json.loads(sample(shared_data, "openvpn.json"))
    p = tmp_path / f"{UID}.json"
    p.write_text(json.dumps(msm))
    assert score([p], fps)[0]["measurement_uid"] == UID
    msm["measurement_uid"] = "20221121172249.999999_RO_openvpn_ffffffffffffffff"
    p.write_text(json.dumps(msm))
    assert score([p], fps)[0]["measurement_uid"] == msm["measurement_uid"]


def test_jsonl_and_gzip(tmp_path, shared_data, fps):
    names = ["report1.json", "bug_352.json", "torsf_1.json"]
    lines = b"".join(json.dumps(json.loads(sample(shared_data, n))).encode() + b"\n"
                     for n in names)
    (tmp_path / "day.jsonl").write_bytes(lines + b"{broken\n")
    (tmp_path / "day.jsonl.gz").write_bytes(gzip.compress(lines))
    rows = score([tmp_path / "day.jsonl"], fps)
    assert [r.get("anomaly") for r in rows] == ["f", "t", "t", None]
    assert rows[3]["status"] == "error" and rows[3]["reason"] == "json_parse"
    assert len({r["measurement_uid"] for r in rows}) == 4
    assert [r["anomaly"] for r in score([tmp_path / "day.jsonl.gz"], fps)] == ["f", "t", "t"]


def test_postcan(tmp_path, shared_data, fps):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, name in enumerate(["bug_352.json", "openvpn.json"]):
            post = json.dumps({"format": "json",
                               "content": json.loads(sample(shared_data, name))}).encode()
            uid = f"2022112117224{i}.123456_XX_test_0123456789abcde{i}"
            info = tarfile.TarInfo(f"2022112117_XX_test/{uid}.post")
            info.size = len(post)
            tar.addfile(info, io.BytesIO(post))
    p = tmp_path / "2022112117_XX_test.n1.0.tar.gz"
    p.write_bytes(buf.getvalue())
    rows = score([p], fps)
    assert [r["measurement_uid"][:15] for r in rows] == ["20221121172240.", "20221121172241."]
    assert rows[0]["confirmed"] == "t"
    assert rows[1]["test_name"] == "openvpn"


def test_yaml_report(shared_data, fps):
    [row] = score([shared_data / "measurements" / "dns_n_http_bin_body.yaml"], fps)
    assert row["msm_failure"] == "t" and row["test_name"] == "dns_n_http"
    assert row["measurement_uid"].startswith("0120150903")


def test_unreadable_file_is_skipped(tmp_path, shared_data, fps):
    rows = score([tmp_path / "missing.json", shared_data / "measurements" / "report1.json"], fps)
    assert len(rows) == 1


def test_wrong_date_checked_with_real_uid(tmp_path, shared_data, fps):
    msm = json.loads(sample(shared_data, "report1.json"))
    msm["measurement_start_time"] = "2100-01-01 00:00:00"
    p = tmp_path / "20211109115946.469008_IR_webconnectivity_9ba8a0d4f9b116fe.json"
    p.write_text(json.dumps(msm))
    [row] = score([p], fps)
    assert json.loads(row["scores"])["msg"] == "Measurement start time from the future"
    assert row["msm_failure"] == "t"


def test_cli_input_file(shared_data, subprocess_env, tmp_path):
    d = shared_data / "fingerprints"
    cmd = [sys.executable, "-m", "fastpath.cli", "--input-file",
           str(shared_data / "measurements" / "bug_352.json"),
           str(shared_data / "measurements" / "binary_city.yaml"),
           "--stdout", "--no-write-to-db",
           "--fingerprints-dns", str(d / "fingerprints_dns.json"),
           "--fingerprints-http", str(d / "fingerprints_http.json")]
    p = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env,
                       cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert [(r["test_name"], r["confirmed"]) for r in rows] == \
        [("web_connectivity", "t"), ("http_requests", "f")]
