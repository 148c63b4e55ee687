"""A week of fastpath rows for the detector tests: one (country, network,
domain) blocked from day 3 to day 5, steady traffic elsewhere, and rows the
detector must not trip on (unknown places, odd values, one measurement an
hour, days of silence)."""
from __future__ import annotations

import datetime as dt
import random

from .msm_rows import domain_of, insert, make_uid, row, scores_for

T0 = dt.datetime(2024, 5, 6)
BLOCK_START = T0 + dt.timedelta(days=3)
BLOCK_END = T0 + dt.timedelta(days=5)
WEEK = T0 + dt.timedelta(days=7)

BLOCKED_CC, BLOCKED_ASN, BLOCKED_DOMAIN = "IR", 197207, "www.facebook.com"
BLOCKED_URL = "https://www.facebook.com/"


def _msm(rnd: random.Random, mst: dt.datetime, cc: str, asn: int, tn: str, inp: str,
         anomaly: str, failure: str = "f", i: int = 0, **kw) -> dict:
    confirmed = "f"
    return row(
        measurement_uid=make_uid(mst + dt.timedelta(seconds=90), cc, tn, f"{cc}{asn}{inp}{mst}{i}"),
        report_id=f"{mst:%Y%m%dT%H%M%SZ}_{tn.replace('_', '')}_{cc}_{asn}_n1_det{i:010d}",
        measurement_start_time=mst, test_start_time=mst, probe_cc=cc, probe_asn=asn,
        test_name=tn, input=inp, domain=domain_of(inp), anomaly=anomaly,
        confirmed=confirmed, msm_failure=failure,
        scores=scores_for(anomaly == "t", False, failure == "t"), **kw)


def week(seed: int = 1, per_hour: int = 10) -> list[dict]:
    rnd = random.Random(seed)
    rows: list[dict] = []
    i = 0
    for h in range(7 * 24):
        hour = T0 + dt.timedelta(hours=h)
        for j in range(per_hour):
            mst = hour + dt.timedelta(minutes=rnd.randrange(60))
            i += 1
            blocked = BLOCK_START <= hour < BLOCK_END
            p = 0.9 if blocked else 0.05
            rows.append(_msm(rnd, mst, BLOCKED_CC, BLOCKED_ASN, "web_connectivity", BLOCKED_URL,
                             "t" if rnd.random() < p else "f", i=i))
            # The same domain elsewhere in the country, never blocked.
            i += 1
            rows.append(_msm(rnd, mst, BLOCKED_CC, 44244, "web_connectivity", BLOCKED_URL,
                             "t" if rnd.random() < 0.05 else "f", i=i))
            # A messaging test with a steady 10% of anomalies and failures.
            i += 1
            r = rnd.random()
            rows.append(_msm(rnd, mst, "DE", 3320, "telegram", "",
                             "t" if r < 0.1 else "f", "t" if r > 0.95 else "f", i=i))
            # A domain the detector does not follow, always blocked.
            i += 1
            rows.append(_msm(rnd, mst, BLOCKED_CC, BLOCKED_ASN, "web_connectivity",
                             "https://www.example.org/", "t", i=i))
        # One measurement an hour, blocked every third hour.
        i += 1
        rows.append(_msm(rnd, hour + dt.timedelta(minutes=5), "BR", 28573, "web_connectivity",
                         "https://twitter.com/", "t" if h % 3 == 0 else "f", i=i))
        # Unknown places and odd values: never a series.
        for cc, asn in (("ZZ", 197207), ("", 197207), ("IR", 0)):
            i += 1
            rows.append(_msm(rnd, hour + dt.timedelta(minutes=7), cc, asn, "web_connectivity",
                             BLOCKED_URL, "t" if blocked else "f", i=i))
        i += 1
        rows.append(_msm(rnd, hour + dt.timedelta(minutes=9), "IT", 30722, "web_connectivity",
                         "https://www.instagram.com/", "?", failure="", i=i))
        # Busy for one day, silent for four, busy again: no event from the gap.
        if h < 24 or h >= 5 * 24:
            for j in range(8):
                i += 1
                rows.append(_msm(rnd, hour + dt.timedelta(minutes=j), "RU", 12389, "signal", "",
                                 "t" if rnd.random() < 0.3 else "f", i=i))
    return rows


def seed(db, **kw) -> int:
    rows = week(**kw)
    insert(db, rows)
    return len(rows)
