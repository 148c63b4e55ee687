"""Rate limiter and quotas (api.md §13).

Quotas are seconds of wall-clock request processing time, in three buckets
(month, week, day) per client key. A client key is the client's /24 (IPv4)
or /64 (IPv6) network; a request with a valid user session token is also
charged to its account (the "token accounts" of the operator docs, with
their own, configurable, limits). A plain user pays from both the network's
and the account's buckets, so an account never has more than its network;
an admin pays from the account's buckets alone (``client_keys``).

The buckets live in one LMDB environment shared by every API worker process
on the host: each charge is one write transaction, and LMDB serialises
writers across processes, so concurrent workers never lose an update. The
hourly refill is done once per host: the time of the last refill is kept in
the environment and checked and advanced inside the refill's own write
transaction.

Values are remaining milliseconds as unsigned 32-bit integers; a key absent
from a bucket has its full limit, and keys refilled back to their limit are
deleted, so the store holds only clients that used the API recently.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import struct
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import lmdb
from flask import Flask, Response, current_app, g, request

from ooni_common.config import Config

from ooniapi.core.client_ip import DEFAULT_TRUSTED_PROXIES, client_ip
from ooniapi.core.errors import RateLimited
from ooniapi.core.http import json_response

log = logging.getLogger("ooni-api.ratelimit")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HOUR = 3600
DAY = 24 * HOUR

# (bucket name, config key, default limit in seconds, period in seconds);
# month, week, day as in api.md §13.
IPADDR_BUCKETS = (
    ("ipaddr_per_month", "RATE_LIMIT_IPADDR_PER_MONTH", 60000, 30 * DAY),
    ("ipaddr_per_week", "RATE_LIMIT_IPADDR_PER_WEEK", 20000, 7 * DAY),
    ("ipaddr_per_day", "RATE_LIMIT_IPADDR_PER_DAY", 4000, DAY),
)
TOKEN_BUCKETS = (
    ("token_per_month", "RATE_LIMIT_TOKEN_PER_MONTH", 6000, 30 * DAY),
    ("token_per_week", "RATE_LIMIT_TOKEN_PER_WEEK", 2000, 7 * DAY),
    ("token_per_day", "RATE_LIMIT_TOKEN_PER_DAY", 500, DAY),
)

DEFAULT_WHITELIST = ["37.218.245.43", "37.218.242.149"]

# Exact paths and prefixes (ending in "*") never metered: the landing page,
# the health check and every route a probe calls. A 429 there aborts a
# probe's run, and with /24 keys many probes behind carrier-grade NAT share
# one budget (DESIGN.md, "Storage other than ClickHouse").
DEFAULT_UNMETERED = [
    "/",
    "/health",
    "/report*",
    "/api/v1/submit_measurement",
    "/api/v1/check-in",
    "/api/_/check-in",
    "/api/v1/test-helpers",
    "/api/v1/register",
    "/api/v1/login",
    "/api/v1/test-list/tor-targets",
    "/api/v1/test-list/psiphon-config",
    "/api/v1/collectors",
    "/api/v1/geolookup",
    "/api/v1/manifest",
    "/api/v1/sign_credential",
    "/api/v2/oonirun/links/*",
    "/api/v2/ooniprobe/vpn-config/*",
    "/bouncer/net-tests",
]

META_DB = b"meta"
LAST_REFILL_KEY = b"last_refill"
_U32_MAX = 2**32 - 1


@dataclass(frozen=True)
class Bucket:
    name: str
    limit_s: float
    period_s: float


@dataclass(frozen=True)
class ClientKey:
    """Who is charged: ``kind`` is ``ipaddr`` or ``token``; ``key`` the
    bytes stored in LMDB (packed network address, or the account id)."""
    kind: str
    key: bytes
    label: str


def _ms_to_bytes(ms: float) -> bytes:
    return struct.pack("<I", max(0, min(_U32_MAX, int(ms))))


def _bytes_to_ms(raw: bytes) -> int:
    return struct.unpack("<I", raw)[0]


class _Environments:
    """LMDB forbids opening one environment twice in a process (closing the
    second copy drops the first one's locks), so app instances in the same
    process (tests, standalone) share it. Weak references let an environment
    close once no limiter uses it; the pid check keeps a forked worker from
    using its parent's handle."""

    _lock = threading.Lock()
    _envs: "weakref.WeakValueDictionary[tuple[int, str], lmdb.Environment]" = \
        weakref.WeakValueDictionary()

    @classmethod
    def open(cls, path: Path, map_size: int) -> lmdb.Environment:
        path.mkdir(parents=True, exist_ok=True)
        k = (os.getpid(), str(path.resolve()))
        with cls._lock:
            env = cls._envs.get(k)
            if env is None:
                # No fsync per request: a quota is not worth a disk flush,
                # and LMDB keeps the file consistent without it; budgets
                # survive process restarts (only an OS crash may lose the
                # last few charges).
                env = lmdb.open(str(path), map_size=map_size, max_dbs=16,
                                sync=False, metasync=False)
                cls._envs[k] = env
            return env


class QuotaStore:
    """The three buckets of each client kind in one LMDB environment."""

    def __init__(self, path: Path, buckets: dict[str, tuple[Bucket, ...]],
                 map_size: int = 64 * 1024 * 1024):
        self.path = path
        self._map_size = map_size
        self.buckets = buckets
        self._pid = -1
        self._env: lmdb.Environment | None = None
        self._dbs: dict[str, object] = {}
        self._open_lock = threading.Lock()

    def _open(self) -> lmdb.Environment:
        # Opened lazily and re-opened after a fork (gunicorn --preload).
        if self._env is None or self._pid != os.getpid():
            with self._open_lock:
                if self._env is None or self._pid != os.getpid():
                    env = _Environments.open(self.path, self._map_size)
                    dbs = {META_DB.decode(): env.open_db(META_DB)}
                    for bs in self.buckets.values():
                        for b in bs:
                            dbs[b.name] = env.open_db(b.name.encode())
                    self._dbs, self._env, self._pid = dbs, env, os.getpid()
        return self._env

    def remaining(self, ck: ClientKey) -> list[float]:
        """Remaining seconds in each bucket of ``ck`` (month, week, day)."""
        env = self._open()
        out = []
        with env.begin() as txn:
            for b in self.buckets[ck.kind]:
                raw = txn.get(ck.key, db=self._dbs[b.name])
                out.append(b.limit_s if raw is None else _bytes_to_ms(raw) / 1000.0)
        return out

    def is_available(self, ck: ClientKey) -> bool:
        return all(v > 0 for v in self.remaining(ck))

    def charge(self, ck: ClientKey, seconds: float) -> float:
        """Subtract ``seconds`` from every bucket of ``ck`` in one
        transaction; returns the lowest remaining value, in seconds."""
        env = self._open()
        used_ms = max(0.0, seconds) * 1000.0
        lowest = float("inf")
        with env.begin(write=True) as txn:
            for b in self.buckets[ck.kind]:
                db = self._dbs[b.name]
                raw = txn.get(ck.key, db=db)
                cur = b.limit_s * 1000.0 if raw is None else float(_bytes_to_ms(raw))
                new = max(0.0, cur - used_ms)
                txn.put(ck.key, _ms_to_bytes(new), db=db)
                lowest = min(lowest, new / 1000.0)
        return lowest

    def _last_refill(self, txn) -> float | None:
        raw = txn.get(LAST_REFILL_KEY, db=self._dbs[META_DB.decode()])
        return None if raw is None else struct.unpack("<d", raw)[0]

    def refill_if_due(self, now: float, interval_s: float = HOUR) -> bool:
        """Give every stored key ``elapsed * limit / period`` seconds back
        when more than ``interval_s`` passed since the last refill on this
        host. Returns True when this call did the refill."""
        env = self._open()
        with env.begin() as txn:
            last = self._last_refill(txn)
        if last is not None and now - last <= interval_s:
            return False
        with env.begin(write=True) as txn:
            # Re-read under the write lock: another worker may have refilled
            # between our read and our write transaction.
            last = self._last_refill(txn)
            meta = self._dbs[META_DB.decode()]
            if last is None:
                txn.put(LAST_REFILL_KEY, struct.pack("<d", now), db=meta)
                return False
            elapsed = now - last
            if elapsed <= interval_s:
                return False
            self._refill(txn, elapsed)
            txn.put(LAST_REFILL_KEY, struct.pack("<d", now), db=meta)
        return True

    def _refill(self, txn, elapsed_s: float) -> None:
        for bs in self.buckets.values():
            for b in bs:
                db = self._dbs[b.name]
                gain_ms = elapsed_s * b.limit_s / b.period_s * 1000.0
                limit_ms = b.limit_s * 1000.0
                cur = txn.cursor(db=db)
                updates: list[tuple[bytes, float | None]] = []
                for k, raw in cur.iternext():
                    v = _bytes_to_ms(raw) + gain_ms
                    updates.append((bytes(k), None if v >= limit_ms else v))
                for k, v in updates:
                    if v is None:
                        txn.delete(k, db=db)
                    else:
                        txn.put(k, _ms_to_bytes(v), db=db)

    def lowest(self, bucket_name: str, n: int = 20) -> list[tuple[bytes, float]]:
        """The ``n`` keys with the lowest remaining seconds in a bucket."""
        env = self._open()
        with env.begin() as txn:
            rows = [(_bytes_to_ms(raw) / 1000.0, bytes(k))
                    for k, raw in txn.cursor(db=self._dbs[bucket_name]).iternext()]
        rows.sort()
        return [(k, v) for v, k in rows[:n]]


def network_key(addr: IpAddress, v4_prefix: int = 24, v6_prefix: int = 64) -> bytes:
    """Packed network address of the client's /24 (IPv4) or /64 (IPv6)."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefix = v4_prefix if addr.version == 4 else v6_prefix
    return ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address.packed


def key_label(kind: str, key: bytes, v4_prefix: int = 24, v6_prefix: int = 64) -> str:
    if kind == "token":
        return f"account:{key.decode('ascii', 'replace')}"
    if len(key) == 4:
        return f"{ipaddress.IPv4Address(key)}/{v4_prefix}"
    return f"{ipaddress.IPv6Address(key)}/{v6_prefix}"


def _parse_ip(s: str | None) -> IpAddress | None:
    if not s:
        return None
    try:
        return ipaddress.ip_address(s.strip())
    except ValueError:
        return None


def _networks(items: Iterable[str]) -> list[IpNetwork]:
    out = []
    for it in items:
        try:
            out.append(ipaddress.ip_network(it.strip(), strict=False))
        except ValueError:
            log.error("ignoring invalid address in the rate limiter config: %r", it)
    return out


class RateLimiter:
    """The policy: who is metered, how much they have, what they are charged.
    Framework-independent apart from ``init_app``'s hooks below."""

    def __init__(self, cfg: Config):
        self.enabled = cfg.get_bool("RATE_LIMIT_ENABLED", True)
        lmdb_dir = cfg.get("RATE_LIMIT_DIR", None) or cfg.get("LMDB_DIR", None) \
            or cfg.data_dir / "lmdb"
        buckets = {
            "ipaddr": tuple(Bucket(n, cfg.get_float(k, d), p) for n, k, d, p in IPADDR_BUCKETS),
            "token": tuple(Bucket(n, cfg.get_float(k, d), p) for n, k, d, p in TOKEN_BUCKETS),
        }
        self.store = QuotaStore(Path(lmdb_dir), buckets,
                                cfg.get_int("RATE_LIMIT_MAP_SIZE", 64 * 1024 * 1024))
        self.refill_interval = cfg.get_float("RATE_LIMIT_REFILL_INTERVAL", HOUR)
        self.v4_prefix = cfg.get_int("RATE_LIMIT_IPV4_PREFIX", 24)
        self.v6_prefix = cfg.get_int("RATE_LIMIT_IPV6_PREFIX", 64)
        self.whitelist = _networks(cfg.get_list("RATE_LIMIT_WHITELIST", DEFAULT_WHITELIST))
        self.trusted_proxies = _networks(
            cfg.get_list("TRUSTED_PROXIES", DEFAULT_TRUSTED_PROXIES))
        unmetered = DEFAULT_UNMETERED + cfg.get_list("RATE_LIMIT_UNMETERED", [])
        self.unmetered_exact = {p for p in unmetered if not p.endswith("*")}
        self.unmetered_prefixes = tuple(p[:-1] for p in unmetered if p.endswith("*"))

    def is_unmetered_path(self, path: str) -> bool:
        return path in self.unmetered_exact or path.startswith(self.unmetered_prefixes)

    def client_address(self, remote_addr: str | None, headers: Any) -> IpAddress | None:
        # The same rule as geolocation: forwarded headers count only when
        # the peer is a trusted proxy; an unparseable header falls back to it.
        addr = _parse_ip(client_ip(remote_addr, headers, self.trusted_proxies))
        return addr if addr is not None else _parse_ip(remote_addr)

    def is_whitelisted(self, addr: IpAddress) -> bool:
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in n for n in self.whitelist if n.version == addr.version)

    def ip_client(self, addr: IpAddress) -> ClientKey:
        k = network_key(addr, self.v4_prefix, self.v6_prefix)
        return ClientKey("ipaddr", k, key_label("ipaddr", k, self.v4_prefix, self.v6_prefix))

    @staticmethod
    def token_client(account_id: str) -> ClientKey:
        k = account_id.encode("utf-8")[:256]
        return ClientKey("token", k, key_label("token", k))

    def lowest_daily(self, n: int = 20) -> list[tuple[str, float]]:
        out = []
        for kind, name in (("ipaddr", "ipaddr_per_day"), ("token", "token_per_day")):
            out += [(key_label(kind, k, self.v4_prefix, self.v6_prefix), round(v, 3))
                    for k, v in self.store.lowest(name, n)]
        out.sort(key=lambda kv: kv[1])
        return out[:n]


def _session(cfg: Config):
    """The valid user session token of the request, if any. Only the
    signature and expiry are checked here (no database lookup for plain
    users): an expunged but unexpired token still gets its account metered,
    which is the cautious side."""
    h = request.headers.get("Authorization", "")
    if not h.startswith("Bearer "):
        return None
    from ooniapi.core.auth import decode_session
    from ooniapi.core.errors import Unauthorized
    try:
        return decode_session(cfg, h[len("Bearer "):].strip())
    except Unauthorized:
        return None


def _is_admin_session(sess) -> bool:
    """Whether an admin token still belongs to an admin (stored role, not
    expunged): a demoted admin must not keep the admin budget."""
    if sess is None or sess.role != "admin":
        return False
    from ooniapi.core.auth import check_session
    from ooniapi.core.errors import Unauthorized
    try:
        return check_session(sess).role == "admin"
    except Unauthorized:
        return False
    except Exception:  # the database is down: the cautious side, a user
        log.exception("cannot check the role of an admin token; metered as a user")
        return False


def client_keys(rl: "RateLimiter", addr: IpAddress, sess) -> list[ClientKey]:
    """Who pays for a request (issue 16, defect 6). Anonymous: the client's
    network. A plain user: the network and the account, both of which must
    have budget left and both of which are charged, so an account never
    adds budget to its network and free accounts do not multiply quotas.
    An admin: the account alone, with the token budgets (per-role budgets,
    docs/operations.md)."""
    if sess is None:
        return [rl.ip_client(addr)]
    if _is_admin_session(sess):
        return [rl.token_client(sess.account_id)]
    return [rl.ip_client(addr), rl.token_client(sess.account_id)]


def limiter(app: Flask) -> RateLimiter:
    return app.extensions["ooni"].extras["rate_limiter"]


class StreamCharge:
    """Charges a streamed response for the time it really takes: the
    after-request hook runs when the first byte is ready, so a stream takes
    its client's charges over (``stream_charge``) and charges as it goes:
    every budget the request draws on (a user's network and account)."""

    def __init__(self, rl: RateLimiter, keys: list[ClientKey], start: float):
        self.rl = rl
        self.keys = keys
        self.last = start

    def charge_elapsed(self) -> None:
        """The wall-clock time since the request started or the last call."""
        now = time.monotonic()
        self.charge_seconds(now - self.last)
        self.last = now

    def charge_seconds(self, seconds: float) -> None:
        try:
            for ck in self.keys:
                self.rl.store.charge(ck, seconds)
        except lmdb.Error:
            log.exception("cannot charge quota for %s", ", ".join(k.label for k in self.keys))

    def available(self) -> bool:
        try:
            return all(self.rl.store.is_available(ck) for ck in self.keys)
        except lmdb.Error:
            return True


def stream_charge() -> StreamCharge | None:
    """Takes the current request's charges over from the after-request hook;
    None when the request is not metered."""
    keys = g.get("rl_clients")
    if not keys:
        return None
    g.rl_clients = []
    return StreamCharge(limiter(current_app), keys, g.get("rl_start") or time.monotonic())


def init_app(app: Flask) -> None:
    svc = app.extensions["ooni"]
    rl = RateLimiter(svc.cfg)
    svc.extras["rate_limiter"] = rl
    if not rl.enabled:
        return

    @app.before_request
    def _check_quota():
        g.rl_start = time.monotonic()
        g.rl_clients = []
        if request.method == "OPTIONS" or rl.is_unmetered_path(request.path):
            return None
        addr = rl.client_address(request.remote_addr, request.headers)
        if addr is None or rl.is_whitelisted(addr):
            return None
        keys = client_keys(rl, addr, _session(svc.cfg))
        g.rl_clients = keys
        try:
            rl.store.refill_if_due(time.time(), rl.refill_interval)
            available = all(rl.store.is_available(ck) for ck in keys)
        except lmdb.Error:
            # A broken quota store must not take the read API down with it.
            log.exception("rate limiter store unavailable at %s", rl.store.path)
            g.rl_clients = []
            return None
        if not available:
            svc.metrics.incr("rate_limit.throttled")
            e = RateLimited("Too Many Requests")
            return json_response(e.body(), e.status, nocache=True)
        return None

    @app.after_request
    def _charge(resp: Response) -> Response:
        keys = g.get("rl_clients")
        start = g.get("rl_start")
        if not keys or start is None:
            return resp
        elapsed = time.monotonic() - start
        try:
            remaining = min(rl.store.charge(ck, elapsed) for ck in keys)
        except lmdb.Error:
            log.exception("cannot charge quota for %s", ", ".join(k.label for k in keys))
            return resp
        resp.headers["X-RateLimit-Remaining"] = str(int(remaining))
        return resp
