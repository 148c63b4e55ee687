"""Check-in and /api/v1/test-helpers serve the helpers rotation has live
when TEST_HELPERS_FROM_ROTATION is on, the configured ones otherwise."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from analysis.rotation import store
from ooni_common.timeutil import utcnow

ZONE = "th.example.org"
CHECKIN = {"charging": True, "on_wifi": True, "platform": "linux", "probe_asn": "AS30722",
           "probe_cc": "IT", "run_type": "timed", "software_name": "ooniprobe-cli",
           "software_version": "3.31.0-alpha", "web_connectivity": {"category_codes": []}}


def _app(cfg, db, notifier, **kw):
    from ooniapi.core.app import create_app
    c = cfg.with_overrides(RATE_LIMIT_ENABLED="false", TEST_HELPERS_ROTATION_ZONE=ZONE,
                           TEST_HELPERS_ROTATION_CACHE_SECONDS="0", TEST_HELPERS_CANARY="",
                           **kw)
    a = create_app(c, db=db, notify_fastpath=notifier)
    a.testing = True
    return a.test_client()


def _seed(db):
    now = utcnow()
    mk = lambda name, rdn, **kw: store.ThInstance(name, rdn, ZONE, "Digital Ocean", "ams3",  # noqa: E731
                                                  "192.0.2.1", "2001:db8::1", **kw)
    store.record(db, [(None, mk("a", "0", state=store.LIVE)),
                      (None, mk("b", "1", state=store.DRAINING, draining_at=now)),
                      (None, mk("c", "2", state=store.DESTROYED, destroyed_at=now)),
                      (None, mk("d", "3", state=store.CERT)),
                      (None, store.ThInstance("e", "9", "other.zone", "Digital Ocean", "ams3",
                                              state=store.LIVE))], now)
    # a row of the legacy script: no state, not draining -> live
    db.insert("test_helper_instances", ["rdn", "dns_zone", "name", "provider", "region",
                                        "ipaddr", "ipv6addr", "sign"],
              [["5", ZONE, "legacy", "Digital Ocean", "fra1", "192.0.2.5", "::", 1]])
    # a VM that moved from live to draining: only its last version counts
    old = mk("f", "4", state=store.LIVE)
    store.record(db, [(None, old)], now)
    store.record(db, [(old, old.but(state=store.DRAINING, draining_at=now))],
                 now + dt.timedelta(seconds=1))


def _wc(client):
    a = client.get("/api/v1/test-helpers").get_json()["web-connectivity"]
    r = client.post("/api/v1/check-in", data=json.dumps(CHECKIN), content_type="application/json")
    b = r.get_json()["conf"]["test_helpers"]["web-connectivity"]
    return sorted(h["address"] for h in a), sorted(h["address"] for h in b), a


def test_live_helpers_from_rotation(cfg, db, notifier):
    _seed(db)
    client = _app(cfg, db, notifier, TEST_HELPERS_FROM_ROTATION="true")
    direct, checkin, raw = _wc(client)
    want = sorted([f"https://0.{ZONE}", f"https://5.{ZONE}",
                   "https://d33d1gs9kpq1c5.cloudfront.net"])
    assert direct == checkin == want
    assert raw[-1]["type"] == "cloudfront"


def test_configured_helpers_when_off_or_empty(cfg, db, notifier):
    _seed(db)
    off = _app(cfg, db, notifier)
    default = sorted(["https://6.th.ooni.org", "https://5.th.ooni.org",
                      "https://d33d1gs9kpq1c5.cloudfront.net"])
    assert _wc(off)[0] == default
    db.command("TRUNCATE TABLE test_helper_instances")
    on = _app(cfg, db, notifier, TEST_HELPERS_FROM_ROTATION="true")
    assert _wc(on)[0] == default
