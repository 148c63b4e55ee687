"""Test-list editor benchmark, in process, over local bare repositories
(built from ../shared/data/test-lists when present, else small generated
lists) and the fake GitHub server on 127.0.0.1.

  ./manage bench testlists_bench [--updates N] [--submits M] [--fetch-interval S]

Times ``POST /api/v1/url-submission/update-url`` (an addition to it.csv,
validated against the it and global lists, written and committed in the
account's worktree) N times (default 100), then M submit cycles (default
20): an edit that closes the open PR, untimed, then the timed submit
(force-push to the fork and PR creation). ``--fetch-interval`` is
TESTLISTS_FETCH_INTERVAL (default 60, production's; 0 fetches upstream on
every request). Prints p50 and p90; figures depend on the machine's load.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))] * 1000


def report(name: str, samples: list[float]) -> None:
    print(f"{name}: n={len(samples)} p50 {pct(samples, 0.5):.1f} ms, "
          f"p90 {pct(samples, 0.9):.1f} ms, max {max(samples) * 1000:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--submits", type=int, default=20)
    ap.add_argument("--fetch-interval", default="60")
    args = ap.parse_args()

    from ooni_common.config import Config
    from ooni_common.db import connect
    from ooni_common.schema import ensure_all
    from ooniapi.core.app import create_app
    from ooniapi.core.auth import session_token
    from tests.functional.testlists.fake_github import FakeGitHub
    from tests.functional.testlists.support import build_remotes

    tmp = Path(tempfile.mkdtemp(prefix="testlists-bench-"))
    upstream, fork, source = build_remotes(tmp / "remotes")
    print(f"lists: {source}")
    fake = FakeGitHub(upstream, fork)
    db = connect(f"chdb://{tmp}/db")
    ensure_all(db)
    cfg = Config({"DATA_DIR": str(tmp / "data"), "CLICKHOUSE_URL": db.url, "COLLECTOR_ID": "1",
                  "STATSD_ENABLED": "false", "RATE_LIMIT_ENABLED": "false",
                  "GITHUB_ORIGIN_URL": str(upstream), "GITHUB_PUSH_URL": str(fork),
                  "GITHUB_API_URL": fake.url, "GITHUB_TOKEN": fake.token,
                  "TESTLISTS_FETCH_INTERVAL": args.fetch_interval})
    app = create_app(cfg, db=db, notify_fastpath=lambda uid, body: None)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {session_token(cfg, 'e' * 32, 'user')}"}

    def entry(i: int) -> dict:
        return {"url": f"https://bench-{i}.example.org/", "category_code": "NEWS",
                "date_added": "2024-01-31", "source": "", "notes": f"bench {i}"}

    def update(i: int) -> None:
        r = client.post("/api/v1/url-submission/update-url", headers=auth, json={
            "country_code": "it", "comment": f"bench {i}", "old_entry": {},
            "new_entry": entry(i)})
        assert r.status_code == 200, r.get_json()

    # The first request clones upstream and creates the worktree: shown apart.
    t0 = time.perf_counter()
    update(-1)
    print(f"first update-url (fetch upstream, create worktree): "
          f"{(time.perf_counter() - t0) * 1000:.1f} ms")
    samples = []
    for i in range(args.updates):
        t0 = time.perf_counter()
        update(i)
        samples.append(time.perf_counter() - t0)
    report("update-url (incl. commit)", samples)

    samples = []
    for i in range(args.submits):
        if i:
            update(args.updates + i)  # closes the open PR, back to IN_PROGRESS
        t0 = time.perf_counter()
        r = client.post("/api/v1/url-submission/submit", headers=auth)
        samples.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.get_json()
    report("submit (push to fork + open PR on the fake GitHub)", samples)

    samples = []
    for _ in range(50):
        t0 = time.perf_counter()
        r = client.get("/api/_/url-submission/test-list/it", headers=auth)
        samples.append(time.perf_counter() - t0)
        assert r.status_code == 200
    report("GET test-list/it in PR_OPEN (polls the PR)", samples)
    fake.stop()
    db.shutdown()


if __name__ == "__main__":
    main()
