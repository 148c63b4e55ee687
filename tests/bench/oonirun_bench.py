"""OONI Run benchmark, in process on the embedded database.

  ./manage bench oonirun_bench [--links L] [--requests N]

Creates L links (default 200) with three versions each through
``POST /api/_/ooni_run/create`` (every write ends with OPTIMIZE ... FINAL, so
this shows how writes cost as the table grows), then fetches random links
as the probe does (``GET /api/v2/oonirun/links/<id>``) N times (default
2,000) and lists them as the UI does. Bounded by counts and by 60 s per
phase. Prints rates, p50 and p99; figures depend on the machine's load.
"""
from __future__ import annotations

import argparse
import random
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
    db.shutdown()


if __name__ == "__main__":
    main()
