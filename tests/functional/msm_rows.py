"""Rows of the ``fastpath`` table for the measurements API tests: from the
real samples in ../shared/data/measurements and from a small seeded
generator. Columns follow fastpath.md §6.2; the scores are simple but
realistic (the API serves them, it does not compute them)."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from pathlib import Path
from urllib.parse import urlparse

from fastpath.rows import FASTPATH_COLUMNS

TS = "%Y-%m-%d %H:%M:%S"


def make_uid(received: dt.datetime, cc: str, test_name: str, salt: str) -> str:
    h = hashlib.sha512(salt.encode()).hexdigest()[:16]
    return f"{received:%Y%m%d%H%M%S.%f}_{cc}_{test_name.replace('_', '')}_{h}"


def scores_for(anomaly: bool, confirmed: bool, failure: bool, blocking_type: str = "") -> str:
    s = {"blocking_general": 1.0 if anomaly else 0.0, "blocking_global": 0.0,
         "blocking_country": 0.0, "blocking_isp": 0.0, "blocking_local": 0.0}
    if blocking_type:
        s["analysis"] = {"blocking_type": blocking_type}
    if confirmed:
        s["confirmed"] = True
    if failure:
        s["accuracy"] = 0.0
    return json.dumps(s)


def domain_of(inp: str) -> str:
    return urlparse(inp).netloc if "//" in inp else ""


def row(**kw) -> dict:
    """A full fastpath row; keyword arguments override the defaults."""
    mst = kw.get("measurement_start_time", dt.datetime(2021, 7, 9, 0, 55, 13))
    cc = kw.get("probe_cc", "IT")
    tn = kw.get("test_name", "web_connectivity")
    inp = kw.get("input", "https://example.org/")
    anomaly, confirmed, failure = (kw.get("anomaly", "f"), kw.get("confirmed", "f"),
                                   kw.get("msm_failure", "f"))
    r = {
        "measurement_uid": make_uid(mst + dt.timedelta(minutes=1), cc, tn,
                                    repr(sorted(kw.items(), key=str))),
        "report_id": f"{mst:%Y%m%dT%H%M%SZ}_{tn.replace('_', '')}_{cc}_{kw.get('probe_asn', 30722)}_n1_AbCdEfGhIjKlMnOp",
        "input": inp, "probe_cc": cc, "probe_asn": 30722, "test_name": tn,
        "test_start_time": mst - dt.timedelta(minutes=2), "measurement_start_time": mst,
        "scores": scores_for(anomaly == "t", confirmed == "t", failure == "t"),
        "platform": "linux", "anomaly": anomaly, "confirmed": confirmed,
        "msm_failure": failure, "blocking_type": "", "domain": domain_of(inp),
        "software_name": "ooniprobe-cli", "software_version": "3.10.0",
        "test_version": "0.4.0", "test_runtime": 1.5, "architecture": "amd64",
        "engine_name": "ooniprobe-engine", "engine_version": "3.10.0",
        "test_helper_address": "", "test_helper_type": "", "ooni_run_link_id": None,
        "is_verified": "",
    }
    r.update(kw)
    return r


def insert(db, rows: list[dict]) -> None:
    db.insert("fastpath", FASTPATH_COLUMNS,
              [[_cell(r[c]) for c in FASTPATH_COLUMNS] for r in rows])


def _cell(v):
    return v.strftime(TS) if isinstance(v, dt.datetime) else v


def _nn(v) -> str:
    return "" if v is None else str(v)


def row_from_sample(msm: dict, received: dt.datetime, salt: str) -> dict:
    """fastpath.md §6.2 applied to a real measurement."""
    ann = msm.get("annotations") if isinstance(msm.get("annotations"), dict) else {}
    inp = msm.get("input") or ""
    if isinstance(inp, list):
        inp = "{" + ",".join(inp) + "}"
    asn_text = _nn(msm.get("probe_asn")).upper()
    asn = int(asn_text[2:]) if asn_text.startswith("AS") and asn_text[2:].isdigit() else 0
    cc = _nn(msm.get("probe_cc"))
    tn = _nn(msm.get("test_name"))
    tk = msm.get("test_keys") if isinstance(msm.get("test_keys"), dict) else {}
    failure = "t" if tk.get("failure") else "f"
    blocking = tk.get("blocking")
    anomaly = "t" if blocking not in (None, False) and failure == "f" else "f"
    run_id = ann.get("ooni_run_link_id")
    return {
        "measurement_uid": make_uid(received, cc, tn, salt),
        "report_id": _nn(msm.get("report_id")), "input": inp, "probe_cc": cc,
        "probe_asn": asn, "test_name": tn,
        "test_start_time": dt.datetime.strptime(msm["test_start_time"], TS),
        "measurement_start_time": dt.datetime.strptime(msm["measurement_start_time"], TS),
        "scores": scores_for(anomaly == "t", False, failure == "t",
                             blocking if isinstance(blocking, str) else ""),
        "platform": _nn(ann.get("platform")) or "unset", "anomaly": anomaly,
        "confirmed": "f", "msm_failure": failure,
        "blocking_type": blocking if isinstance(blocking, str) else "",
        "domain": domain_of(inp) if not isinstance(msm.get("input"), list) else msm["input"][0],
        "software_name": _nn(msm.get("software_name")),
        "software_version": _nn(msm.get("software_version")),
        "test_version": _nn(msm.get("test_version")),
        "test_runtime": float(msm.get("test_runtime") or 0.0),
        "architecture": _nn(ann.get("architecture")), "engine_name": _nn(ann.get("engine_name")),
        "engine_version": _nn(ann.get("engine_version")),
        "test_helper_address": "", "test_helper_type": "",
        "ooni_run_link_id": int(run_id) if str(run_id or "").isdigit() else None,
        "is_verified": "",
    }


def sample_rows(data_dir: Path) -> list[tuple[dict, dict]]:
    """(row, measurement) for every JSON sample with the fields a row needs."""
    out = []
    for i, p in enumerate(sorted((data_dir / "measurements").glob("*.json"))):
        msm = json.loads(p.read_bytes())
        if not msm.get("measurement_start_time") or not msm.get("test_start_time"):
            continue
        received = dt.datetime.strptime(msm["measurement_start_time"], TS) + dt.timedelta(seconds=30 + i)
        out.append((row_from_sample(msm, received, p.name), msm))
    return out


CCS = ["IT", "DE", "RU", "IR", "CN", "US", "BR", "MY"]
ASNS = [30722, 3320, 12389, 197207, 4134, 7922, 28573, 4818, 4200000001]
TESTS = ["web_connectivity", "web_connectivity", "web_connectivity", "telegram",
         "signal", "torsf", "ndt", "dnscheck"]
URLS = ["https://www.example.org/", "http://news.example.com/a", "https://twitter.com/",
        "https://www.bbc.com/news", "http://example.net:8080/x", "https://ooni.org/"]


def generate(n: int, seed: int, start: dt.datetime, span: dt.timedelta) -> list[dict]:
    """``n`` rows spread over [start, start+span), seeded for repeatability;
    several rows share a start time so that the uid tie-break matters."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        tn = rnd.choice(TESTS)
        inp = rnd.choice(URLS) if tn == "web_connectivity" else ""
        secs = rnd.randrange(int(span.total_seconds()))
        mst = start + dt.timedelta(seconds=secs - secs % 60)
        flags = rnd.random()
        anomaly = "t" if flags < 0.3 else "f"
        confirmed = "t" if flags < 0.05 else "f"
        failure = "t" if 0.9 < flags else "f"
        cc = rnd.choice(CCS)
        asn = rnd.choice(ASNS)
        rows.append(row(
            measurement_uid=make_uid(mst + dt.timedelta(seconds=rnd.randrange(3600)), cc, tn, f"{seed}-{i}"),
            report_id=f"{mst:%Y%m%dT%H%M%SZ}_{tn.replace('_', '')}_{cc}_{asn}_n1_gen{seed:04d}{i:08d}",
            measurement_start_time=mst, test_start_time=mst, probe_cc=cc, probe_asn=asn,
            test_name=tn, input=inp, domain=domain_of(inp), anomaly=anomaly,
            confirmed=confirmed, msm_failure=failure,
            scores=scores_for(anomaly == "t", confirmed == "t", failure == "t"),
            software_version=rnd.choice(["3.10.0", "3.14.1", "3.19.0"]),
            test_version=rnd.choice(["0.4.0", "0.5.0"]),
            engine_version=rnd.choice(["3.10.0", "3.14.1"]),
            ooni_run_link_id=rnd.choice([None, None, 1000001, 2000002])))
    return rows
