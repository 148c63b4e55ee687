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


def test_fresh_user_token_gets_no_new_budget_on_an_exhausted_network(app, client, cfg):
    """Issue 16, defect 6: once a /24 has used its quota, neither a fresh
    user account nor any number of them gets a new budget."""
    exhaust(app, "192.0.2.10")
    for n in range(3):
        tok = session_token(cfg, str(n) * 32, "user")
        r = from_ip(client, METERED, "192.0.2.77", headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 429, n
        assert r.get_json() == {"error": "Too Many Requests"}
    # A token that does not verify is the network, exhausted too.
    r = from_ip(client, METERED, "192.0.2.10", headers={"Authorization": "Bearer x.y.z"})
    assert r.status_code == 429


def test_user_pays_from_network_and_account(app, client, cfg):
    rl = limiter(app)
    tok = session_token(cfg, "0" * 32, "user")
    hdr = {"Authorization": f"Bearer {tok}"}
    r = from_ip(client, METERED, "192.0.2.10", headers=hdr)
    assert r.status_code == 200
    assert int(r.headers["X-RateLimit-Remaining"]) <= 500  # token_per_day, the lower
    net = rl.store.remaining(rl.ip_client(ipaddress.ip_address("192.0.2.10")))
    acc = rl.store.remaining(rl.token_client("0" * 32))
    assert net[2] < 4000 and acc[2] < 500  # both charged
    # An exhausted account is refused from a fresh network too.
    rl.store.charge(rl.token_client("0" * 32), 10**9)
    assert from_ip(client, METERED, "198.51.100.9", headers=hdr).status_code == 429
    assert from_ip(client, METERED, "198.51.100.9").status_code == 200


def test_admin_has_the_token_budget_only_while_admin(app, client, cfg, db):
    from ooniapi.accounts import store as accounts_store
    exhaust(app, "192.0.2.10")
    admin = {"Authorization": "Bearer " + session_token(cfg, "a" * 32, "admin")}
    r = from_ip(client, METERED, "192.0.2.10", headers=admin)
    assert r.status_code == 200
    # Demoted: the admin token is metered as a user's, with the network.
    accounts_store.set_role(db, "a" * 32, "user")
    assert from_ip(client, METERED, "192.0.2.10", headers=admin).status_code == 429


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
