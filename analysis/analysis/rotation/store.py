"""``test_helper_instances``: one row per VM (collapsing on ``name``), its
step in ``state``. A step is recorded by inserting the cancelling row of the
old version and the new version in one INSERT, so a reader never sees a VM
twice or not at all."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from ooni_common.db import Database

# Steps of a new VM, in order; then live -> draining -> destroyed.
SPAWNING, CREATED, READY, CERT, TESTED = "spawning", "created", "ready", "cert", "tested"
LIVE, DRAINING, DESTROYED = "live", "draining", "destroyed"
IN_PROGRESS = (SPAWNING, CREATED, READY, CERT, TESTED)

NO_IPV4, NO_IPV6 = "0.0.0.0", "::"

COLUMNS = ["rdn", "dns_zone", "name", "provider", "region", "ipaddr", "ipv6addr",
           "draining_at", "destroyed_at", "state", "provider_id", "updated_at", "sign"]


@dataclass(frozen=True)
class ThInstance:
    name: str
    rdn: str
    dns_zone: str
    provider: str
    region: str
    ipaddr: str = NO_IPV4
    ipv6addr: str = NO_IPV6
    draining_at: dt.datetime | None = None
    destroyed_at: dt.datetime | None = None
    state: str = SPAWNING
    provider_id: str = ""
    updated_at: dt.datetime | None = None

    def but(self, **kw) -> "ThInstance":
        return replace(self, **kw)

    @property
    def fqdn(self) -> str:
        return f"{self.rdn}.{self.dns_zone}"

    @property
    def ipv4(self) -> str | None:
        return None if self.ipaddr in ("", NO_IPV4) else self.ipaddr

    @property
    def ipv6(self) -> str | None:
        return None if self.ipv6addr in ("", NO_IPV6, "::ffff:0.0.0.0") else self.ipv6addr


LOAD_SQL = """
SELECT name, rdn, dns_zone, provider, region, toString(ipaddr), toString(ipv6addr),
    draining_at, destroyed_at, state, provider_id, updated_at
FROM test_helper_instances FINAL
WHERE sign = 1 AND dns_zone = {zone:String} AND provider = {provider:String}
ORDER BY name
"""


def _legacy_state(state: str, draining_at, destroyed_at) -> str:
    # Rows written by the legacy script have no state.
    if state:
        return state
    if destroyed_at is not None:
        return DESTROYED
    return DRAINING if draining_at is not None else LIVE


def load(db: Database, zone: str, provider: str) -> list[ThInstance]:
    out = []
    for (name, rdn, z, prov, region, ip4, ip6, drain, destroyed, state, pid,
         upd) in db.execute(LOAD_SQL, {"zone": zone, "provider": provider}):
        out.append(ThInstance(name, rdn, z, prov, region, ip4, ip6, drain, destroyed,
                              _legacy_state(state, drain, destroyed), pid, upd))
    return out


def _row(i: ThInstance, sign: int) -> list:
    def ts(v):
        return None if v is None else v.strftime("%Y-%m-%d %H:%M:%S")
    upd = i.updated_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if i.updated_at else None
    return [i.rdn, i.dns_zone, i.name, i.provider, i.region, i.ipaddr or NO_IPV4,
            i.ipv6addr or NO_IPV6, ts(i.draining_at), ts(i.destroyed_at), i.state,
            i.provider_id, upd, sign]


def record(db: Database, changes: list[tuple[ThInstance | None, ThInstance]],
           now: dt.datetime) -> list[ThInstance]:
    """Write new versions (old may be None for a new VM) in one INSERT."""
    rows, out = [], []
    for old, new in changes:
        new = new.but(updated_at=now)
        if old is not None:
            rows.append(_row(old, -1))
        rows.append(_row(new, 1))
        out.append(new)
    db.insert("test_helper_instances", COLUMNS, rows)
    return out

