"""Fill ``fastpath`` in an embedded ClickHouse data directory with realistic
synthetic measurements, generated inside ClickHouse (INSERT ... SELECT from
numbers()), for the query benchmark (tests/bench/query_bench.py).

    ./manage bench gen_fastpath --data-dir /tmp/bench --rows 10000000

Shape of the data (deterministic for a given --seed):
* 200 countries (the CitizenLab country legend, OONI's busiest first) with a
  Zipf-like skew, 200 ASNs per country (40,000 in all), Zipf-like too;
* 30 test names, web_connectivity about half of all measurements;
* web_connectivity inputs from the real CitizenLab test lists (skewed:
  popular URLs are measured far more often), which also fill ``citizenlab``;
* 20 measurements per report, spread over ``--days`` (default 730) with
  volume growing over time;
* anomaly / confirmed / failure rates close to production (about 12% / 1.5%
  / 3% for web_connectivity), blocking types in the scores.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_LISTS = REPO.parent / "shared" / "data" / "test-lists" / "lists"

# OONI's busiest countries first: they get the head of the Zipf skew.
HEAD_CCS = ["US", "RU", "IR", "IN", "CN", "DE", "IT", "BR", "TR", "GB", "ID", "MX", "UA",
            "FR", "VE", "MM", "PK", "EG", "KZ", "BY", "NL", "ES", "CA", "JP", "KR", "TH",
            "VN", "PH", "NG", "KE"]

# 30 test names with weights in per mille (sum 1000).
TESTS = [
    ("web_connectivity", 520), ("dnscheck", 60), ("telegram", 45), ("whatsapp", 45),
    ("facebook_messenger", 45), ("signal", 40), ("stunreachability", 30), ("ndt", 25),
    ("dash", 15), ("tor", 20), ("torsf", 15), ("psiphon", 20), ("riseupvpn", 10),
    ("http_invalid_request_line", 20), ("http_header_field_manipulation", 20),
    ("urlgetter", 10), ("vanilla_tor", 8), ("openvpn", 6), ("echcheck", 6),
    ("tlsmiddlebox", 4), ("http_requests", 5), ("dns_consistency", 5), ("http_host", 4),
    ("meek_fronted_requests_test", 3), ("bridge_reachability", 3),
    ("multi_protocol_traceroute", 2), ("tcp_connect", 4), ("dnsping", 3), ("quicping", 2),
    ("simplequicping", 5),
]
assert len(TESTS) == 30 and sum(w for _, w in TESTS) == 1000

BATCH = 1_000_000


def countries() -> list[str]:
    legend = TEST_LISTS / "00-LEGEND-country_codes.csv"
    with legend.open(newline="") as f:
        codes = [r["CountryCode"].strip().upper() for r in csv.DictReader(f)]
    rest = sorted(c for c in codes if len(c) == 2 and c not in HEAD_CCS and c not in ("ZZ", "XK"))
    return (HEAD_CCS + rest)[:200]


def test_list_rows() -> list[tuple[str, str, str, str]]:
    """(domain, url, cc, category_code) from every CitizenLab list."""
    out = []
    for p in sorted(TEST_LISTS.glob("*.csv")):
        if p.name.startswith("00-"):
            continue
        cc = "ZZ" if p.stem == "global" else p.stem.upper()
        with p.open(newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                url = (r.get("url") or "").strip()
                if not url.startswith("http"):
                    continue
                domain = url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
                out.append((domain, url, cc, r.get("category_code") or "MISC"))
    return out


def _u(n: str, salt: int) -> str:
    """A deterministic uniform value in [0, 1) for expression ``n``."""
    return f"((cityHash64({n}, {{seed:UInt64}}, {salt}) % 1000000) / 1000000.0)"


def _zipf(n: str, salt: int, size: str) -> str:
    """A 1-based rank in [1, size] with P(rank) ~ 1/rank (log-uniform)."""
    return f"least(toUInt32(floor(pow({size}, {_u(n, salt)}))), {size})"


INSERT_SQL = f"""
INSERT INTO fastpath (measurement_uid, report_id, input, probe_cc, probe_asn, test_name,
    test_start_time, measurement_start_time, filename, scores, platform, anomaly, confirmed,
    msm_failure, domain, software_name, software_version, control_failure, blocking_general,
    is_ssl_expected, page_len, page_len_ratio, server_cc, server_asn, server_as_name,
    test_version, architecture, engine_name, engine_version, test_runtime, blocking_type,
    test_helper_address, test_helper_type, ooni_run_link_id, is_verified)
WITH
    {{ccs:Array(String)}} AS ccs,
    {{tests:Array(String)}} AS tests_pm,
    (SELECT groupArray(url) FROM (SELECT url FROM bench_urls ORDER BY pos)) AS urls,
    (SELECT groupArray(domain) FROM (SELECT domain FROM bench_urls ORDER BY pos)) AS domains,
    length(urls) AS n_urls
SELECT
    concat(formatDateTime(mst, '%Y%m%d%H%i%S'), '.', leftPad(toString(n % 1000000), 6, '0'),
           '_', cc, '_', replaceAll(test, '_', ''), '_', lower(hex(cityHash64(n, 77)))) AS uid,
    concat(formatDateTime(tst, '%Y%m%dT%H%i%SZ'), '_', replaceAll(test, '_', ''), '_', cc, '_',
           toString(asn), '_n1_', substring(base64Encode(reinterpretAsString(cityHash64(r, 78))), 1, 11),
           '0') AS report_id,
    inp, cc, asn, test, tst, mst, '', scores,
    arrayElement(['android', 'ios', 'linux', 'macos', 'windows'], 1 + (cityHash64(r, 20) % 5)),
    if(anomaly, 't', 'f'), if(confirmed, 't', 'f'), if(failure, 't', 'f'),
    dom,
    arrayElement(['ooniprobe-android', 'ooniprobe-ios', 'ooniprobe-desktop', 'ooniprobe-cli',
                  'miniooni'], 1 + (cityHash64(r, 21) % 5)),
    arrayElement(['3.8.0', '3.9.1', '3.10.0', '4.0.0'], 1 + (cityHash64(r, 22) % 4)),
    '', if(anomaly, 1.0, 0.0), 0, 0, 0.0, '', 0, '',
    '0.4.3',
    arrayElement(['arm64', 'amd64', 'arm'], 1 + (cityHash64(r, 23) % 3)),
    'ooniprobe-engine',
    arrayElement(['3.20.0', '3.21.0', '3.22.0'], 1 + (cityHash64(r, 24) % 3)),
    round(1 + 30 * {_u('n', 25)}, 3), bt, '', '',
    if(cityHash64(r, 26) % 100 = 0, toNullable(toUInt64(1000000 + cityHash64(r, 27) % 50)), NULL),
    if(cityHash64(r, 28) % 10 = 0, 'true', '')
FROM (
    SELECT
        number + {{offset:UInt64}} AS n,
        intDiv(n, 20) AS r,
        {_zipf('r', 1, '200')} AS cc_idx,
        {_zipf('r', 2, '200')} AS asn_local,
        -- a small share of unknown locations, as in production
        if(cityHash64(r, 3) % 400 = 0, 'ZZ', ccs[cc_idx]) AS cc,
        if(cc = 'ZZ' AND cityHash64(r, 4) % 2 = 0, 0,
           toUInt32(1 + ((cc_idx * 200 + asn_local) * 7919) % 400000)) AS asn,
        tests_pm[1 + cityHash64(r, 5) % 1000] AS test,
        -- volume grows over time: density rises linearly towards the end
        toDateTime({{end_ts:UInt32}} - toUInt32({{span:UInt32}} * (1 - sqrt({_u('r', 6)})))) AS tst,
        tst + toIntervalSecond((n % 20) * 9 + cityHash64(n, 7) % 9) AS mst,
        {_zipf('n', 8, 'n_urls')} AS url_idx,
        if(test = 'web_connectivity', urls[url_idx], '') AS inp,
        if(test = 'web_connectivity', domains[url_idx], '') AS dom,
        {_u('n', 9)} AS u_anom,
        {_u('n', 10)} AS u_conf,
        {_u('n', 11)} AS u_fail,
        test = 'web_connectivity' AND u_conf < 0.015 AS confirmed,
        confirmed OR u_anom < if(test = 'web_connectivity', 0.12, 0.05) AS anomaly,
        u_fail < 0.03 AS failure,
        if(anomaly, arrayElement(['dns', 'http-failure', 'http-diff', 'tcp_ip'],
                                 1 + cityHash64(n, 12) % 4), '') AS bt,
        concat('{{"blocking_general":', if(anomaly, '1.0', '0.0'),
               ',"blocking_global":0.0,"blocking_country":0.0,"blocking_isp":0.0,"blocking_local":0.0',
               if(anomaly, concat(',"analysis":{{"blocking_type":"', bt, '"}}'), ''), '}}') AS scores
    FROM numbers({{batch:UInt64}})
)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True, help="standalone data directory (DB in <dir>/db)")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-optimize", action="store_true",
                    help="skip the final merge (OPTIMIZE ... FINAL) of the generated parts")
    args = ap.parse_args(argv)
    if not TEST_LISTS.is_dir():
        print(f"gen_fastpath: needs the CitizenLab test lists at {TEST_LISTS}", file=sys.stderr)
        return 2

    sys.path[:0] = [str(REPO / "common"), str(REPO / "api"), str(REPO / "fastpath"),
                    str(REPO / "analysis")]
    from ooni_common.db import connect
    from ooni_common.schema import ensure_all

    data_dir = Path(args.data_dir).resolve()
    db = connect(f"chdb://{data_dir / 'db'}")
    ensure_all(db)

    tl = test_list_rows()
    db.command("TRUNCATE TABLE citizenlab")
    db.insert("citizenlab", ["domain", "url", "cc", "category_code"], tl)
    db.command("DROP TABLE IF EXISTS bench_urls")
    db.command("CREATE TABLE bench_urls (pos UInt32, url String, domain String) "
               "ENGINE = MergeTree ORDER BY pos")
    # Popularity independent of alphabetical order.
    urls = sorted({(u, d) for d, u, _, _ in tl},
                  key=lambda ud: hashlib.blake2b(ud[0].encode(), digest_size=8).digest())
    db.insert("bench_urls", ["pos", "url", "domain"],
              [(i, u, d) for i, (u, d) in enumerate(urls)])

    ccs = countries()
    tests_pm = [name for name, w in TESTS for _ in range(w)]
    end_ts = int(time.time())
    print(f"gen_fastpath: {args.rows:,} rows, {len(ccs)} countries, {len(TESTS)} tests, "
          f"{len(urls):,} URLs, {args.days} days into {data_dir / 'db'}", flush=True)
    t0 = time.perf_counter()
    done = 0
    while done < args.rows:
        batch = min(BATCH, args.rows - done)
        db.execute(INSERT_SQL, {"ccs": ccs, "tests": tests_pm, "offset": done, "batch": batch,
                                "end_ts": end_ts, "span": args.days * 86400, "seed": args.seed})
        done += batch
        el = time.perf_counter() - t0
        print(f"  {done:>12,} rows  {el:7.1f} s  {done / el:>10,.0f} rows/s", flush=True)
    gen_s = time.perf_counter() - t0
    db.command("DROP TABLE bench_urls")
    print(f"generated {done:,} rows in {gen_s:.1f} s: {done / gen_s:,.0f} rows/s", flush=True)
    if not args.no_optimize:
        t1 = time.perf_counter()
        db.command("OPTIMIZE TABLE fastpath FINAL")
        print(f"merged parts (OPTIMIZE FINAL) in {time.perf_counter() - t1:.1f} s", flush=True)
    n = db.execute("SELECT count(), uniqExact(probe_cc), uniqExact(probe_asn), "
                   "uniqExact(test_name), min(measurement_start_time), "
                   "max(measurement_start_time) FROM fastpath")[0]
    print(f"fastpath now: {n[0]:,} rows, {n[1]} countries, {n[2]:,} ASNs, {n[3]} test names, "
          f"{n[4]} .. {n[5]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
