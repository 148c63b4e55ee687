"""What the API tells probes about the service: check-in feature flags,
test helpers (with their load-balancing rule, api.md §7.5) and collectors.
Read once from the configuration when the app starts."""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from urllib.parse import urlparse

from ooni_common.config import Config, ConfigError

DEFAULT_FEATURES = {"torsf_enabled": False, "vanilla_tor_enabled": True,
                    "openvpn_enabled": False}

# https entries are shuffled per call; cloudfront ones stay last.
DEFAULT_WEB_CONNECTIVITY = [
    "https://6.th.ooni.org",
    "https://5.th.ooni.org",
    "cloudfront=https://d33d1gs9kpq1c5.cloudfront.net",
]

# The legacy (MK era) helpers, each listed twice as legacy does.
LEGACY_HELPERS = {
    "dns": "37.218.241.93:57004",
    "http-return-json-headers": "http://37.218.241.94:80",
    "ssl": "https://37.218.241.93",
    "tcp-echo": "37.218.241.93",
    "traceroute": "37.218.241.93",
}

DEFAULT_COLLECTORS = [
    {"address": "httpo://guegdifjy7bjpequ.onion", "type": "onion"},
    {"address": "https://ams-pg.ooni.org:443", "type": "https"},
    {"address": "https://dkyhjv0wpi2dk.cloudfront.net",
     "front": "dkyhjv0wpi2dk.cloudfront.net", "type": "cloudfront"},
]


def _parse_bool(key: str, s: str) -> bool:
    v = s.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{key}: feature value must be true or false, got {s!r}")


def parse_features(cfg: Config) -> dict[str, bool]:
    """``CHECKIN_FEATURES = "vanilla_tor_enabled=false,webconnectivity_0.5=true"``
    overrides or adds flags; values are strictly booleans because the probe
    fails the whole check-in on anything else (probe-protocol.md §3.2)."""
    feats = dict(DEFAULT_FEATURES)
    for item in cfg.get_list("CHECKIN_FEATURES", []):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"CHECKIN_FEATURES: expected name=true|false, got {item!r}")
        feats[name.strip()] = _parse_bool("CHECKIN_FEATURES", value)
    return feats


def parse_helper(item: str) -> dict[str, str]:
    """``https://5.th.ooni.org`` or ``cloudfront=https://x.cloudfront.net``
    (the front is the address's host name)."""
    kind, sep, address = item.partition("=")
    if not sep:
        kind, address = "https", item
    host = urlparse(address).hostname
    if kind not in ("https", "cloudfront") or not host:
        raise ConfigError(f"bad web-connectivity test helper {item!r}")
    if kind == "cloudfront":
        return {"address": address, "front": host, "type": "cloudfront"}
    return {"address": address, "type": "https"}


@dataclass
class ProbeConf:
    features: dict[str, bool]
    web_connectivity: list[dict[str, str]]
    # The helper that gets a small share of the probes (by address), so a
    # new oohelperd release meets real traffic with limited impact.
    canary: dict[str, str] | None
    canary_percent: int
    collectors: list[dict[str, str]] = field(default_factory=lambda: list(DEFAULT_COLLECTORS))

    @classmethod
    def from_config(cls, cfg: Config) -> "ProbeConf":
        helpers = [parse_helper(x) for x in
                   cfg.get_list("TEST_HELPERS_WEB_CONNECTIVITY", DEFAULT_WEB_CONNECTIVITY)]
        if not helpers:
            raise ConfigError("TEST_HELPERS_WEB_CONNECTIVITY is empty: web_connectivity "
                              "measurements would all fail")
        canary = cfg.get_str("TEST_HELPERS_CANARY", "")
        percent = cfg.get_int("TEST_HELPERS_CANARY_PERCENT", 10)
        if not 0 <= percent <= 100:
            raise ConfigError("TEST_HELPERS_CANARY_PERCENT must be between 0 and 100")
        collectors = list(DEFAULT_COLLECTORS)
        if "COLLECTORS_PROBE" in cfg:
            collectors = []
            for x in cfg.get_list("COLLECTORS_PROBE", []):
                h = parse_helper(x)
                collectors.append(h)
        return cls(parse_features(cfg), helpers, parse_helper(canary) if canary else None,
                   percent, collectors)

    def test_helpers(self, client_ip: str | None, rng: random.Random | None = None) -> dict:
        """The helper map of api.md §7.5: https helpers shuffled on every
        call, cloudfront ones last; the canary first for its share of the
        client addresses (stable per address, so one probe keeps its
        helper)."""
        https = [h for h in self.web_connectivity if h["type"] == "https"]
        other = [h for h in self.web_connectivity if h["type"] != "https"]
        (rng or random).shuffle(https)
        wc = https + other
        if self.canary is not None and in_canary(client_ip, self.canary_percent):
            wc = [self.canary] + [h for h in wc if h != self.canary]
        out = {k: [{"address": v, "type": "legacy"}, {"address": v, "type": "legacy"}]
               for k, v in LEGACY_HELPERS.items()}
        out["web-connectivity"] = wc
        return out


def in_canary(client_ip: str | None, percent: int) -> bool:
    if not client_ip or percent <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(client_ip.encode()).digest()[:4], "big")
    return h % 100 < percent
