"""Rows of the ``fastpath`` table for the measurements API tests: the real
samples in ../shared/data/measurements scored by the real fastpath, and a
small seeded generator whose columns follow fastpath.md §6.2 (its scores
are simple but realistic: the API serves them, it does not compute them)."""
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


def sample_rows(data_dir: Path) -> list[tuple[dict, dict]]:
    """(row, measurement) for every JSON sample the real fastpath scores,
    with the fingerprints shipped beside the samples."""
    from fastpath.core import SCORED, process_measurement
    from fastpath.fingerprints import load_from_files

    fps = load_from_files(data_dir / "fingerprints" / "fingerprints_dns.json",
                          data_dir / "fingerprints" / "fingerprints_http.json")
    out = []
    for i, p in enumerate(sorted((data_dir / "measurements").glob("*.json"))):
        msm = json.loads(p.read_bytes())
        try:
            mst = dt.datetime.strptime(msm["measurement_start_time"], TS)
        except (KeyError, TypeError, ValueError):
            continue
        uid = make_uid(mst + dt.timedelta(seconds=30 + i), _cc(msm), str(msm.get("test_name")), p.name)
        o = process_measurement(None, msm, uid, fps)
        if o.status == SCORED and o.row is not None:
            out.append((dict(zip(FASTPATH_COLUMNS, o.row.as_tuple())), msm))
    return out


def _cc(msm: dict) -> str:
    cc = str(msm.get("probe_cc") or "ZZ")
    return cc if len(cc) == 2 else "ZZ"


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
