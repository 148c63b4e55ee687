"""The quota store and the limiter's policy, without Flask."""
from __future__ import annotations

import gc
import ipaddress

import pytest

from ooni_common.config import Config

from ooniapi.core.ratelimit import (
    Bucket,
    ClientKey,
    QuotaStore,
    RateLimiter,
    key_label,
    network_key,
)

BUCKETS = {
    "ipaddr": (Bucket("ipaddr_per_month", 600.0, 30 * 86400.0),
               Bucket("ipaddr_per_week", 200.0, 7 * 86400.0),
               Bucket("ipaddr_per_day", 40.0, 86400.0)),
    "token": (Bucket("token_per_month", 60.0, 30 * 86400.0),
              Bucket("token_per_week", 20.0, 7 * 86400.0),
              Bucket("token_per_day", 5.0, 86400.0)),
}
A = ClientKey("ipaddr", bytes([192, 0, 2, 0]), "192.0.2.0/24")
B = ClientKey("ipaddr", bytes([198, 51, 100, 0]), "198.51.100.0/24")


@pytest.fixture
def store(tmp_path):
    return QuotaStore(tmp_path / "lmdb", BUCKETS)


def ip(s):
    return ipaddress.ip_address(s)


def test_network_keys_group_ipv4_by_24_and_ipv6_by_64():
    assert network_key(ip("192.0.2.1")) == network_key(ip("192.0.2.254")) == bytes([192, 0, 2, 0])
    assert network_key(ip("192.0.3.1")) != network_key(ip("192.0.2.1"))
    assert network_key(ip("2001:db8:1:2:aaaa::1")) == network_key(ip("2001:db8:1:2:ffff::9"))
    assert network_key(ip("2001:db8:1:3::1")) != network_key(ip("2001:db8:1:2::1"))
    assert len(network_key(ip("2001:db8::1"))) == 16
    # An IPv4 client seen through a dual-stack socket is still an IPv4 /24.
    assert network_key(ip("::ffff:192.0.2.7")) == bytes([192, 0, 2, 0])
    assert key_label("ipaddr", bytes([192, 0, 2, 0])) == "192.0.2.0/24"
    assert key_label("ipaddr", network_key(ip("2001:db8::1"))) == "2001:db8::/64"


def test_absent_key_has_full_budget(store):
    assert store.remaining(A) == [600.0, 200.0, 40.0]
    assert store.is_available(A)


def test_charge_subtracts_from_every_bucket_and_floors_at_zero(store):
    assert store.charge(A, 1.5) == pytest.approx(38.5)
    assert store.remaining(A) == pytest.approx([598.5, 198.5, 38.5])
    assert store.remaining(B) == [600.0, 200.0, 40.0]
    assert store.charge(A, 100) == 0
    assert store.remaining(A) == pytest.approx([498.5, 98.5, 0.0])
    assert not store.is_available(A)
    assert store.is_available(B)


def test_token_accounts_have_their_own_limits(store):
    acct = ClientKey("token", b"0123456789abcdef0123456789abcdef", "account:x")
    assert store.charge(acct, 1) == pytest.approx(4.0)
    assert store.remaining(A) == [600.0, 200.0, 40.0]


def test_refill_is_proportional_once_per_interval_and_per_host(tmp_path):
    s1 = QuotaStore(tmp_path / "lmdb", BUCKETS)
    # A second store on the same directory stands for another worker process.
    s2 = QuotaStore(tmp_path / "lmdb", BUCKETS)
    t0 = 1_000_000.0
    assert not s1.refill_if_due(t0)          # first call only records the time
    s1.charge(A, 40)                          # day bucket empty
    s1.charge(B, 1)
    assert not s2.refill_if_due(t0 + 3000)   # not an hour yet
    assert s2.refill_if_due(t0 + 7200)       # two hours: +2/24 of each limit
    assert not s1.refill_if_due(t0 + 7300)   # the other worker sees it was done
    day = s1.remaining(A)[2]
    assert day == pytest.approx(40 * 2 / 24, abs=0.002)
    assert s1.remaining(A)[0] == pytest.approx(600 - 40 + 600 * 7200 / (30 * 86400), abs=0.002)
    # B's day bucket went back over its limit: the key is dropped (default).
    assert s1.lowest("ipaddr_per_day") == [(A.key, pytest.approx(day))]


def test_budgets_survive_reopening(tmp_path):
    s = QuotaStore(tmp_path / "lmdb", BUCKETS)
    s.charge(A, 39)
    del s
    gc.collect()
    assert QuotaStore(tmp_path / "lmdb", BUCKETS).remaining(A)[2] == pytest.approx(1.0)


def test_lowest_is_sorted_and_bounded(store):
    for i in range(30):
        store.charge(ClientKey("ipaddr", bytes([10, 0, i, 0]), ""), i * 0.5)
    low = store.lowest("ipaddr_per_day", 20)
    assert len(low) == 20
    assert [v for _, v in low] == sorted(v for _, v in low)
    assert low[0] == (bytes([10, 0, 29, 0]), pytest.approx(40 - 14.5))


def limiter(tmp_path, **kw):
    return RateLimiter(Config({"DATA_DIR": str(tmp_path), **kw}))


def test_client_address_trusts_x_real_ip_only_from_proxies(tmp_path):
    def real(v):
        return {"X-Real-IP": v}
    rl = limiter(tmp_path)
    assert rl.client_address("127.0.0.1", real("203.0.113.9")) == ip("203.0.113.9")
    assert rl.client_address("::1", real("2001:db8::5")) == ip("2001:db8::5")
    assert rl.client_address("198.51.100.4", real("203.0.113.9")) == ip("198.51.100.4")
    assert rl.client_address("127.0.0.1", real("not an address")) == ip("127.0.0.1")
    rl2 = limiter(tmp_path, TRUSTED_PROXIES="10.0.0.0/8")
    assert rl2.client_address("10.1.2.3", real("203.0.113.9")) == ip("203.0.113.9")
    assert rl2.client_address("127.0.0.1", real("203.0.113.9")) == ip("127.0.0.1")


def test_unmetered_paths_and_whitelist(tmp_path):
    rl = limiter(tmp_path, RATE_LIMIT_UNMETERED="/api/_/extra,/static/*")
    for p in ("/", "/health", "/report", "/report/20210709T004340Z_x/close",
              "/api/v1/submit_measurement", "/api/v1/check-in", "/api/v1/test-helpers",
              "/api/v1/register", "/api/v1/login", "/api/v1/test-list/tor-targets",
              "/api/v1/test-list/psiphon-config", "/api/v2/oonirun/links/1234",
              "/api/_/extra", "/static/x.css"):
        assert rl.is_unmetered_path(p), p
    for p in ("/api/v1/aggregation", "/api/v1/measurements", "/healthz", "/api/",
              "/api/_/quotas_summary", "/apispec_1.json"):
        assert not rl.is_unmetered_path(p), p
    assert rl.is_whitelisted(ip("37.218.245.43"))
    assert rl.is_whitelisted(ip("::ffff:37.218.242.149"))
    assert not rl.is_whitelisted(ip("37.218.245.44"))
    rl2 = limiter(tmp_path, RATE_LIMIT_WHITELIST="192.0.2.0/24 2001:db8::/32")
    assert rl2.is_whitelisted(ip("192.0.2.77")) and rl2.is_whitelisted(ip("2001:db8::1"))
    assert not rl2.is_whitelisted(ip("37.218.245.43"))


def test_limits_and_directory_come_from_config(tmp_path):
    rl = limiter(tmp_path, RATE_LIMIT_IPADDR_PER_DAY="10", RATE_LIMIT_DIR=str(tmp_path / "q"))
    assert [b.limit_s for b in rl.store.buckets["ipaddr"]] == [60000, 20000, 10]
    assert [b.limit_s for b in rl.store.buckets["token"]] == [6000, 2000, 500]
    rl.store.charge(rl.ip_client(ip("192.0.2.1")), 1)
    assert (tmp_path / "q" / "data.mdb").exists()
    assert limiter(tmp_path).store.path == tmp_path / "lmdb"
