"""OONI Run benchmark, in process on the embedded database.

  ./manage bench oonirun_bench [--links L] [--requests N]

Creates L links (default 200) with three versions each through
``POST /api/_/ooni_run/create`` (every write ends with OPTIMIZE ... FINAL, so
this shows how writes cost as the table grows), then fetches random links
as the probe does (``GET /api/v2/oonirun/links/<id>``) N times (default
2,000) and lists them as the UI does. Then the engine descriptor of a link
with a dynamic list (``websites_list_prioritized``), as probe-cli fetches it,
N times for probes of 20 Italian networks: on the CitizenLab lists of
../shared/data/test-lists (global + it, about 2,000 URLs; a synthetic
list of the same size when absent), with measurement counters, through the
check-in's prioritization cache, with the engine-descriptor's link cache
(OONIRUN_ENGINE_CACHE_SECONDS, 2 s) and without it. Target: at least 200/s. Bounded by counts
and by 60 s per phase. Prints rates, p50 and p99; figures depend on the
machine's load.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PHASE_LIMIT_S = 60.0


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))] * 1000


def report(name: str, samples: list[float], elapsed: float) -> None:
    print(f"{name}: {len(samples)} in {elapsed:.1f} s = {len(samples) / elapsed:.0f}/s, "
          f"p50 {pct(samples, 0.5):.1f} ms, p99 {pct(samples, 0.99):.1f} ms")


def timed(fn, count: int) -> tuple[list[float], float]:
    samples: list[float] = []
    t_start = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t0)
        if time.perf_counter() - t_start > PHASE_LIMIT_S:
            break
    return samples, time.perf_counter() - t_start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--links", type=int, default=200)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()

    from ooni_common.config import Config
    from ooni_common.db import connect
    from ooni_common.schema import ensure_all

    from ooniapi.core.app import create_app
    from ooniapi.core.auth import session_token

    tmp = tempfile.mkdtemp(prefix="oonirun-bench-")
    db = connect(f"chdb://{tmp}/db")
    ensure_all(db)
    cfg = Config({"DATA_DIR": tmp, "CLICKHOUSE_URL": db.url, "COLLECTOR_ID": "1",
                  "STATSD_ENABLED": "false", "RATE_LIMIT_ENABLED": "false"})
    app = create_app(cfg, db=db, notify_fastpath=lambda uid, body: None)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {session_token(cfg, 'e' * 32, 'user')}"}
    rnd = random.Random(1)
    urls = [f"https://site{i}.example.org/" for i in range(500)]

    def descriptor(i: int, version: int) -> dict:
        return {"name": f"Link {i}", "author": "bench@example.org",
                "name_intl": {"it": f"Collegamento {i} v{version}"},
                "short_description": "bench", "description": "x" * 200,
                "nettests": [{"test_name": "web_connectivity",
                              "inputs": rnd.sample(urls, 50 + version), "options": {}},
                             {"test_name": "signal"}]}

    ids: list[int] = []

    def create(i: int) -> None:
        link, version = divmod(i, 3)
        q = f"?ooni_run_link_id={ids[link]}" if version else ""
        r = client.post("/api/_/ooni_run/create" + q, headers=auth, json=descriptor(link, version))
        assert r.status_code == 200, r.get_json()
        if not version:
            ids.append(r.get_json()["ooni_run_link_id"])

    samples, elapsed = timed(create, args.links * 3)
    report(f"create/update ({len(ids)} links x 3 versions)", samples, elapsed)

    def probe_get(_: int) -> None:
        r = client.get(f"/api/v2/oonirun/links/{rnd.choice(ids)}")
        assert r.status_code == 200

    samples, elapsed = timed(probe_get, args.requests)
    report("GET /api/v2/oonirun/links/<id>", samples, elapsed)

    def listing(_: int) -> None:
        r = client.get("/api/_/ooni_run/list?only_latest=true")
        assert r.status_code == 200 and len(r.get_json()["descriptors"]) == len(ids)

    samples, elapsed = timed(listing, 100)
    report("GET /api/_/ooni_run/list?only_latest=true", samples, elapsed)

    samples, elapsed = timed(lambda _: client.get("/api/v2/oonirun/links?is_expired=true"), 100)
    report(f"GET /api/v2/oonirun/links ({len(ids)} links)", samples, elapsed)

    engine_descriptor_phase(cfg, db, client, rnd, args.requests)
    db.shutdown()


def seed_lists(db, rnd: random.Random) -> str:
    from tests.prio_support import insert_measurements, load_citizenlab

    lists = REPO.parent / "shared" / "data" / "test-lists" / "lists"
    if lists.is_dir():
        n = load_citizenlab(db, lists)
        what = f"{n} CitizenLab rows of {lists}"
    else:
        cats = ["NEWS", "POLR", "HUMR", "LGBT", "GMB", "FILE", "SRCH", "COMT"]
        rows = [[f"site{i}.example.org", f"https://site{i}.example.org/",
                 "ZZ" if i % 8 else "it", cats[i % len(cats)]] for i in range(2000)]
        n = db.insert("citizenlab", ["domain", "url", "cc", "category_code"], rows)
        what = f"{n} synthetic rows (no {lists})"
    urls = [r["url"] for r in db.query("SELECT url FROM citizenlab LIMIT 300")]
    for asn in range(1, 21):
        for url in rnd.sample(urls, 30):
            insert_measurements(db, url, "IT", asn, rnd.randint(1, 20))
    return what


def engine_descriptor_phase(cfg, db, client, rnd: random.Random, count: int) -> None:
    from ooniapi.core import auth as core_auth

    what = seed_lists(db, rnd)
    email = "bench@example.org"
    tok = core_auth.session_token(cfg, core_auth.account_id(cfg, email), "user",
                                  email_address=email)
    body = {"name": "Dynamic list", "short_description": "bench", "description": "bench",
            "author": email,
            "nettests": [{"test_name": "web_connectivity",
                          "targets_name": "websites_list_prioritized"}]}
    r = client.post("/api/v2/oonirun/links", json=body,
                    headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.get_json()
    lid = r.get_json()["oonirun_link_id"]
    ua = {"User-Agent": "miniooni/3.22.0 (linux) ooniprobe-engine/3.22.0"}
    print(f"engine-descriptor: {what}, 20 networks with counters")
    cache = client.application.extensions["ooni"].extras["oonirun_engine_cache"]
    default_ttl = cache.ttl
    for label, run_type, charging, ttl in (
            ("timed, charging: 100 URLs", "timed", True, default_ttl),
            ("manual: every URL", "manual", True, default_ttl),
            ("timed, charging; link cache off: a database read each", "timed", True, 0)):
        cache.ttl = ttl
        sizes = []

        def fetch(_: int) -> None:
            meta = {"run_type": run_type, "is_charging": charging, "probe_cc": "IT",
                    "probe_asn": f"AS{rnd.randint(1, 20)}", "network_type": "wifi"}
            r = client.post(f"/api/v2/oonirun/links/{lid}/engine-descriptor/latest",
                            json=meta, headers=ua)
            assert r.status_code == 200, r.get_json()
            sizes.append(len(r.get_json()["nettests"][0]["inputs"]))

        samples, elapsed = timed(fetch, count)
        report(f"POST engine-descriptor, dynamic list ({label}; "
               f"{statistics.median(sizes):.0f} inputs)", samples, elapsed)


if __name__ == "__main__":
    main()
