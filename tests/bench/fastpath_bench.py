"""Fastpath benchmarks, single process unless a part says otherwise.

  ./manage bench fastpath_bench [a] [b] ...   (default: every available part)

(a) measurements/s for parse + score + row over the sample mix
    (target >= 10,000/s);
(b) measurements/s for one web_connectivity measurement with a 100 KB HTML
    body against the full fingerprint set (target >= 1,500/s), next to the
    cost of parsing that JSON alone (target: within 2x);
(c) end-to-end reprocessing measurements/s of a 200k-measurement JSONL day
    into the embedded ClickHouse, worker pool on all cores (target >= 5,000/s;
    see fastpath_reprocess_bench.py).

Bounded in count and time; figures depend on the machine's load.
"""
from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

import ujson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
MAX_SECONDS = 10.0


def _fingerprints():
    from fastpath.fingerprints import load_from_files
    d = SHARED / "fingerprints"
    return load_from_files(d / "fingerprints_dns.json", d / "fingerprints_http.json")


def _rate(fn, items, max_seconds=MAX_SECONDS, max_rounds=50):
    """Items per second of fn over items, repeated until max_seconds/rounds."""
    n, t0 = 0, time.perf_counter()
    for _ in range(max_rounds):
        for it in items:
            fn(it)
        n += len(items)
        if time.perf_counter() - t0 > max_seconds:
            break
    return n / (time.perf_counter() - t0), n


def part_a() -> dict:
    from fastpath.core import process_measurement
    fps = _fingerprints()
    raws = [p.read_bytes() for p in sorted((SHARED / "measurements").glob("*.json"))]
    raws = raws * 20
    random.Random(1).shuffle(raws)

    def one(raw):
        out = process_measurement(raw, None, "bogus_uid", fps)
        if out.status != "scored":
            raise SystemExit(f"sample failed: {out.reason}")

    rate, n = _rate(one, raws)
    print(f"(a) parse+score+row, sample mix ({len(raws) // 20} samples): "
          f"{rate:,.0f} msmt/s over {n} measurements (target >= 10,000/s)")
    return {"a_msmt_per_s": rate}


def _html_body(size: int) -> str:
    rng = random.Random(7)
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "news", "world", "<p>", "</p>",
             "<div class=\"c\">", "</div>", "<a href=\"/x\">", "</a>", "censorship", "2024"]
    parts, n = ["<!DOCTYPE html><html><head><title>Bench</title></head><body>"], 0
    while n < size:
        w = rng.choice(words)
        parts.append(w + " ")
        n += len(w) + 1
    parts.append("</body></html>")
    return "".join(parts)


def part_b() -> dict:
    from fastpath.core import process_measurement
    fps = _fingerprints()
    msm = json.loads((SHARED / "measurements" / "report1.json").read_bytes())
    msm["test_keys"]["requests"][0]["response"]["body"] = _html_body(100_000)
    raw = json.dumps(msm).encode()
    items = [raw] * 200

    def one(r):
        out = process_measurement(r, None, "bogus_uid", fps)
        if out.status != "scored":
            raise SystemExit(f"failed: {out.reason}")

    # Same bytes, same parser (process_measurement parses with ujson.loads),
    # both warmed; rounds alternate so that a change in the machine's load
    # hits both sides, and the median round of each is compared.
    one(raw), ujson.loads(raw)
    parse_s, full_s = [], []
    t_end = time.perf_counter() + 8.0
    while len(parse_s) < 40 and (len(parse_s) < 5 or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        for r in items:
            ujson.loads(r)
        t1 = time.perf_counter()
        for r in items:
            one(r)
        t2 = time.perf_counter()
        parse_s.append((t1 - t0) / len(items))
        full_s.append((t2 - t1) / len(items))
    parse_rate = 1 / statistics.median(parse_s)
    rate = 1 / statistics.median(full_s)
    n = len(full_s) * len(items)
    print(f"(b) web_connectivity, {len(raw) // 1024} KB JSON with a 100 KB HTML body, "
          f"{len(fps.dns)} DNS + {len(fps.http)} HTTP fingerprints: {rate:,.0f} msmt/s "
          f"(median of {len(full_s)} rounds, {n} measurements; target >= 1,500/s)")
    print(f"    parsing that JSON alone: {parse_rate:,.0f}/s; full processing costs "
          f"{parse_rate / rate:.2f}x the parse (target <= 2x)")
    return {"b_msmt_per_s": rate, "b_parse_per_s": parse_rate}


def part_c() -> dict:
    # (c) lives in its own script: it builds a day of archive and a database.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fastpath_reprocess_bench import run
    return run()


PARTS = {"a": part_a, "b": part_b, "c": part_c}


def main(argv: list[str]) -> int:
    if not SHARED.is_dir():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        return 2
    wanted = argv or list(PARTS)
    unknown = [p for p in wanted if p not in PARTS]
    if unknown:
        print(f"unknown part(s) {unknown}; available: {', '.join(PARTS)}", file=sys.stderr)
        return 2
    print("figures taken on a shared, loaded machine")
    for p in wanted:
        PARTS[p]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
