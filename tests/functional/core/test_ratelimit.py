"""The rate limiter wired into the Flask app (api.md §13)."""
from __future__ import annotations

import gc
import ipaddress

import pytest

from ooniapi.core.app import create_app
from ooniapi.core.auth import session_token
from ooniapi.core.ratelimit import limiter

METERED = "/apispec_1.json"  # metered and needs no database


def make_app(cfg, db, notifier, **overrides):
    a = create_app(cfg.with_overrides(**overrides), db=db, notify_fastpath=notifier)
    a.testing = True
    return a


def from_ip(client, path, addr, **kw):
    return client.get(path, headers={"X-Real-IP": addr, **kw.pop("headers", {})}, **kw)


def exhaust(app, addr):
    rl = limiter(app)
    rl.store.charge(rl.ip_client(ipaddress.ip_address(addr)), 10**9)


def test_metered_route_reports_remaining_quota(client):
    r = from_ip(client, METERED, "192.0.2.10")
    assert r.status_code == 200
    remaining = int(r.headers["X-RateLimit-Remaining"])
    assert 3900 < remaining <= 4000
    r2 = from_ip(client, METERED, "192.0.2.11")  # same /24: same budget, charged again
    assert int(r2.headers["X-RateLimit-Remaining"]) <= remaining


def test_exhausted_network_gets_429_json_other_network_does_not(app, client):
    exhaust(app, "192.0.2.10")
    for addr in ("192.0.2.10", "192.0.2.200"):
        r = from_ip(client, METERED, addr)
        assert r.status_code == 429
        assert r.get_json() == {"error": "Too Many Requests"}
        assert r.headers["X-RateLimit-Remaining"] == "0"
    r = from_ip(client, "/api/v1/aggregation", "192.0.2.1")
    assert r.status_code == 429
    assert from_ip(client, METERED, "192.0.3.10").status_code == 200
    assert from_ip(client, METERED, "198.51.100.7").status_code == 200


def test_ipv6_clients_share_their_64(app, client):
    exhaust(app, "2001:db8:0:1::1")
    assert from_ip(client, METERED, "2001:db8:0:1:ffff::2").status_code == 429
    assert from_ip(client, METERED, "2001:db8:0:2::1").status_code == 200


def test_unmetered_paths_are_never_limited_nor_charged(app, client):
    exhaust(app, "192.0.2.10")
    for path in ("/health", "/report/20210709T004340Z_webconnectivity_MY_4818_n1_x/close",
                 "/api/v1/submit_measurement", "/api/v1/check-in", "/api/v1/test-helpers"):
        r = from_ip(client, path, "192.0.2.10")
        assert r.status_code != 429, path
        assert "X-RateLimit-Remaining" not in r.headers, path


def test_whitelisted_clients_are_not_metered(app, client):
    exhaust(app, "37.218.245.43")
    r = from_ip(client, METERED, "37.218.245.43")
    assert r.status_code == 200
    assert "X-RateLimit-Remaining" not in r.headers


def test_forged_x_real_ip_from_untrusted_peer_is_ignored(app, client):
    exhaust(app, "203.0.113.5")
    r = client.get(METERED, headers={"X-Real-IP": "198.51.100.1"},
                   environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert r.status_code == 429


def test_token_accounts_have_their_own_budget(app, client, cfg):
    exhaust(app, "192.0.2.10")
    tok = session_token(cfg, "0" * 32, "user")
    r = from_ip(client, METERED, "192.0.2.10", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200
    assert int(r.headers["X-RateLimit-Remaining"]) <= 500  # token_per_day
    # A token that does not verify falls back to the network's budget.
    r = from_ip(client, METERED, "192.0.2.10", headers={"Authorization": "Bearer x.y.z"})
    assert r.status_code == 429


def test_quotas_summary_lists_lowest_daily_budgets_for_admins(app, client, cfg):
    from_ip(client, METERED, "192.0.2.10")
    exhaust(app, "198.51.100.3")
    admin = session_token(cfg, "a" * 32, "admin")
    # The admin's own account is charged after the first answer.
    for _ in range(2):
        r = from_ip(client, "/api/_/quotas_summary", "203.0.113.1",
                    headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200
    assert "no-cache" in r.headers["Cache-Control"]
    doc = r.get_json()
    assert doc[0] == ["198.51.100.0/24", 0.0]
    keys = [k for k, _ in doc]
    assert "192.0.2.0/24" in keys and "account:" + "a" * 32 in keys
    assert [v for _, v in doc] == sorted(v for _, v in doc)

    user = session_token(cfg, "b" * 32, "user")
    r = client.get("/api/_/quotas_summary", headers={"Authorization": f"Bearer {user}"})
    assert r.status_code == 401
    assert client.get("/api/_/quotas_summary").status_code == 401


def test_switch_disables_the_limiter(cfg, db, notifier, data_dir):
    a = make_app(cfg, db, notifier, RATE_LIMIT_ENABLED="false")
    exhaust(a, "192.0.2.10")
    r = from_ip(a.test_client(), METERED, "192.0.2.10")
    assert r.status_code == 200
    assert "X-RateLimit-Remaining" not in r.headers


def test_tiny_budget_is_spent_by_one_request(cfg, db, notifier):
    # Charging is by wall-clock time: with a 1 ms daily budget the first
    # request spends it all, the next one is refused.
    a = make_app(cfg, db, notifier, RATE_LIMIT_IPADDR_PER_DAY="0.001")
    c = a.test_client()
    r = from_ip(c, METERED, "192.0.2.10")
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "0"
    assert from_ip(c, METERED, "192.0.2.10").status_code == 429


def test_budgets_survive_an_app_restart(cfg, db, notifier):
    a = make_app(cfg, db, notifier)
    exhaust(a, "192.0.2.10")
    assert from_ip(a.test_client(), METERED, "192.0.2.10").status_code == 429
    del a
    gc.collect()
    b = make_app(cfg, db, notifier)
    assert from_ip(b.test_client(), METERED, "192.0.2.10").status_code == 429
    assert from_ip(b.test_client(), METERED, "192.0.3.10").status_code == 200


@pytest.mark.parametrize("n_apps", [2])
def test_apps_sharing_one_lmdb_dir_share_budgets(cfg, db, notifier, tmp_path, n_apps):
    apps = [make_app(cfg, db, notifier, RATE_LIMIT_DIR=str(tmp_path / "shared"))
            for _ in range(n_apps)]
    exhaust(apps[0], "192.0.2.10")
    for a in apps:
        assert from_ip(a.test_client(), METERED, "192.0.2.10").status_code == 429
