"""The web-connectivity test helpers given to probes: the configured list,
or, with ``TEST_HELPERS_FROM_ROTATION = true``, the helpers rotation has
live in ``test_helper_instances`` (``https://<rdn>.<TEST_HELPERS_ROTATION_ZONE>``,
followed by the configured non-https entries such as cloudfront). The
database is read at most every ``TEST_HELPERS_ROTATION_CACHE_SECONDS``; when
it has no live helper or cannot be read, probes get the configured list:
a check-in must never be left without a helper."""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field

from ooni_common.db import DatabaseError
from ooni_common.test_helpers import live_hosts

from ooniapi.core.context import Services
from ooniapi.probe.conf import ProbeConf

log = logging.getLogger("ooni-api.probe_services")


@dataclass
class _Cached:
    lock: threading.Lock = field(default_factory=threading.Lock)
    conf: ProbeConf | None = None
    expires: float = 0.0


def probe_conf(svc: Services) -> ProbeConf:
    base: ProbeConf = svc.extras["probe_conf"]
    cfg = svc.cfg
    if not cfg.get_bool("TEST_HELPERS_FROM_ROTATION", False):
        return base
    cache: _Cached = svc.extras.setdefault("live_test_helpers", _Cached())
    now = time.monotonic()
    if cache.conf is not None and now < cache.expires:
        return cache.conf
    with cache.lock:
        if cache.conf is not None and now < cache.expires:
            return cache.conf
        zone = cfg.get_str("TEST_HELPERS_ROTATION_ZONE", "th.ooni.org").strip(".")
        try:
            hosts = live_hosts(svc.db, zone)
        except DatabaseError as e:
            log.warning("cannot read live test helpers, serving the configured ones: %s", e)
            hosts = []
        if hosts:
            helpers = [{"address": f"https://{h}", "type": "https"} for h in hosts] + \
                [h for h in base.web_connectivity if h["type"] != "https"]
            conf = dataclasses.replace(base, web_connectivity=helpers)
        else:
            conf = base
        cache.conf = conf
        cache.expires = now + cfg.get_float("TEST_HELPERS_ROTATION_CACHE_SECONDS", 60)
        return conf
