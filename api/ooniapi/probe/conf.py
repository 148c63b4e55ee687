"""What the API tells probes about the service: check-in feature flags,
test helpers (with their load-balancing rule, api.md §7.5), collectors, the
v2 check-in's dnscheck and stunreachability targets and the legacy bouncer's
answer. Everything comes from the configuration, read once when the app
starts; the defaults are what OONI's production serves (docs/operations.md,
"Probe configuration")."""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from urllib.parse import urlparse

from ooni_common.config import Config, ConfigError

# OONI production at the reference commit: torsf off (broken rendezvous),
# vanilla_tor off, the 0.5 web_connectivity engine on.
DEFAULT_FEATURES = {"torsf_enabled": False, "vanilla_tor_enabled": False,
                    "webconnectivity_0.5": True, "openvpn_enabled": False}

# https entries are shuffled per call; cloudfront ones stay last.
DEFAULT_WEB_CONNECTIVITY = [
    "https://6.th.ooni.org",
    "https://5.th.ooni.org",
    "cloudfront=https://d33d1gs9kpq1c5.cloudfront.net",
]

# The legacy (MK era) helpers, each listed twice as OONI's server does;
# one config key per name: TEST_HELPERS_TCP_ECHO for tcp-echo, and so on.
DEFAULT_LEGACY_HELPERS = {
    "dns": ["37.218.241.93:57004"] * 2,
    "http-return-json-headers": ["http://37.218.241.94:80"] * 2,
    "ssl": ["https://37.218.241.93"] * 2,
    "tcp-echo": ["37.218.241.93"] * 2,
    "traceroute": ["37.218.241.93"] * 2,
}
WEB_CONNECTIVITY = "web-connectivity"
HELPER_TYPES = ("legacy", "https", "cloudfront")
_HELPER_NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9-]{0,62}\Z")

# The v2 check-in's targets (api.md §20.4).
DEFAULT_DNSCHECK_INPUTS = [
    "https://dns.google/dns-query", "https://8.8.8.8/dns-query", "dot://8.8.8.8:853/",
    "dot://8.8.4.4:853/", "https://8.8.4.4/dns-query", "https://cloudflare-dns.com/dns-query",
    "https://1.1.1.1/dns-query", "https://1.0.0.1/dns-query", "dot://1.1.1.1:853/",
    "dot://1.0.0.1:853/", "https://dns.quad9.net/dns-query", "https://9.9.9.9/dns-query",
    "dot://9.9.9.9:853/", "dot://dns.quad9.net/", "https://family.cloudflare-dns.com/dns-query",
    "dot://family.cloudflare-dns.com/dns-query", "https://dns11.quad9.net/dns-query",
    "dot://dns11.quad9.net/dns-query", "https://dns9.quad9.net/dns-query",
    "dot://dns9.quad9.net/dns-query", "https://dns12.quad9.net/dns-query",
    "dot://dns12.quad9.net/dns-query", "https://1dot1dot1dot1.cloudflare-dns.com/dns-query",
    "dot://1dot1dot1dot1.cloudflare-dns.com/dns-query", "https://dns.adguard.com/dns-query",
    "dot://dns.adguard.com/dns-query", "https://dns-family.adguard.com/dns-query",
    "dot://dns-family.adguard.com/dns-query", "https://dns.cloudflare.com/dns-query",
    "https://adblock.doh.mullvad.net/dns-query", "dot://adblock.doh.mullvad.net/dns-query",
    "https://dns.alidns.com/dns-query", "dot://dns.alidns.com/dns-query",
    "https://doh.opendns.com/dns-query", "https://dns.nextdns.io/dns-query",
    "dot://dns.nextdns.io/dns-query", "https://dns10.quad9.net/dns-query",
    "dot://dns10.quad9.net/dns-query", "https://security.cloudflare-dns.com/dns-query",
    "dot://security.cloudflare-dns.com/dns-query", "https://dns.switch.ch/dns-query",
    "dot://dns.switch.ch/dns-query",
]
DEFAULT_STUNREACHABILITY_INPUTS = [
    "stun://stun.voip.blackberry.com:3478", "stun://stun.antisip.com:3478",
    "stun://stun.bluesip.net:3478", "stun://stun.dus.net:3478", "stun://stun.epygi.com:3478",
    "stun://stun.sonetel.com:3478", "stun://stun.sonetel.net:3478",
    "stun://stun.uls.co.za:3478", "stun://stun.voipgate.com:3478", "stun://stun.voys.nl:3478",
]

# The legacy bouncer's (MK probes) web-connectivity helpers.
DEFAULT_BOUNCER_WEB_CONNECTIVITY = "httpo://y3zq5fwelrzkkv3s.onion"
DEFAULT_BOUNCER_WEB_CONNECTIVITY_ALTERNATE = [
    "https://wcth.ooni.io", "cloudfront=https://d33d1gs9kpq1c5.cloudfront.net"]

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


def parse_helper(item: str, default_kind: str = "https", name: str = WEB_CONNECTIVITY
                 ) -> dict[str, str]:
    """``https://5.th.ooni.org``, ``cloudfront=https://x.cloudfront.net``
    (the front is the address's host name) or ``legacy=37.218.241.93``; a
    bare address has the helper's default type."""
    kind, sep, address = item.partition("=")
    if not sep or kind not in HELPER_TYPES:
        kind, address = default_kind, item
    if not address or any(c.isspace() for c in address):
        raise ConfigError(f"bad {name} test helper {item!r}")
    if kind == "legacy":
        return {"address": address, "type": "legacy"}
    host = urlparse(address).hostname
    if not host:
        raise ConfigError(f"bad {name} test helper {item!r}: expected a URL")
    if kind == "cloudfront":
        return {"address": address, "front": host, "type": "cloudfront"}
    return {"address": address, "type": "https"}


def helper_config_key(name: str) -> str:
    """``tcp-echo`` -> ``TEST_HELPERS_TCP_ECHO``."""
    return "TEST_HELPERS_" + name.upper().replace("-", "_")


def parse_legacy_helpers(cfg: Config) -> dict[str, list[dict[str, str]]]:
    """``TEST_HELPERS_NAMES`` lists the helper names served besides
    web-connectivity (default: dns, http-return-json-headers, ssl, tcp-echo,
    traceroute); each name's list comes from its own key, entries as in
    ``parse_helper`` with type legacy by default. An empty list drops the
    name from the answer."""
    names = cfg.get_list("TEST_HELPERS_NAMES", list(DEFAULT_LEGACY_HELPERS))
    out: dict[str, list[dict[str, str]]] = {}
    for name in names:
        if not _HELPER_NAME_RE.match(name) or name == WEB_CONNECTIVITY:
            raise ConfigError(f"TEST_HELPERS_NAMES: bad helper name {name!r}")
        items = cfg.get_list(helper_config_key(name), DEFAULT_LEGACY_HELPERS.get(name, []))
        helpers = [parse_helper(x, "legacy", name) for x in items]
        if helpers:
            out[name] = helpers
    return out


def parse_url_list(cfg: Config, key: str, default: list[str]) -> list[str]:
    out = cfg.get_list(key, default)
    for u in out:
        p = urlparse(u)
        if not p.scheme or not (p.hostname or p.path):
            raise ConfigError(f"{key}: not a URL: {u!r}")
    return out


@dataclass
class ProbeConf:
    features: dict[str, bool]
    web_connectivity: list[dict[str, str]]
    # The helper that gets a small share of the probes (by address), so a
    # new oohelperd release meets real traffic with limited impact.
    canary: dict[str, str] | None
    canary_percent: int
    collectors: list[dict[str, str]] = field(default_factory=lambda: list(DEFAULT_COLLECTORS))
    legacy_helpers: dict[str, list[dict[str, str]]] = field(
        default_factory=lambda: {k: [{"address": a, "type": "legacy"} for a in v]
                                 for k, v in DEFAULT_LEGACY_HELPERS.items()})
    dnscheck_inputs: list[str] = field(default_factory=lambda: list(DEFAULT_DNSCHECK_INPUTS))
    stunreachability_inputs: list[str] = field(
        default_factory=lambda: list(DEFAULT_STUNREACHABILITY_INPUTS))
    bouncer_web_connectivity: str = DEFAULT_BOUNCER_WEB_CONNECTIVITY
    bouncer_web_connectivity_alternate: list[dict[str, str]] = field(
        default_factory=lambda: [parse_helper(x)
                                 for x in DEFAULT_BOUNCER_WEB_CONNECTIVITY_ALTERNATE])

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
        return cls(
            parse_features(cfg), helpers, parse_helper(canary) if canary else None,
            percent, collectors, parse_legacy_helpers(cfg),
            parse_url_list(cfg, "CHECKIN_DNSCHECK_INPUTS", DEFAULT_DNSCHECK_INPUTS),
            parse_url_list(cfg, "CHECKIN_STUNREACHABILITY_INPUTS",
                           DEFAULT_STUNREACHABILITY_INPUTS),
            cfg.get_str("BOUNCER_WEB_CONNECTIVITY", DEFAULT_BOUNCER_WEB_CONNECTIVITY),
            [parse_helper(x) for x in cfg.get_list("BOUNCER_WEB_CONNECTIVITY_ALTERNATE",
                                                   DEFAULT_BOUNCER_WEB_CONNECTIVITY_ALTERNATE)])

    def test_helpers(self, client_ip: str | None, rng: random.Random | None = None) -> dict:
        """The helper map of api.md §7.5, served by /api/v1/test-helpers and
        both check-ins: https helpers shuffled on every call, cloudfront
        ones last; the canary first for its share of the client addresses
        (stable per address, so one probe keeps its helper). The one place
        that builds it, so that a source of live helpers can wrap it."""
        https = [h for h in self.web_connectivity if h["type"] == "https"]
        other = [h for h in self.web_connectivity if h["type"] != "https"]
        (rng or random).shuffle(https)
        wc = https + other
        if self.canary is not None and in_canary(client_ip, self.canary_percent):
            wc = [self.canary] + [h for h in wc if h != self.canary]
        out = {k: [dict(h) for h in v] for k, v in self.legacy_helpers.items()}
        out[WEB_CONNECTIVITY] = wc
        return out

    def first_helper(self, name: str) -> str | None:
        """The first address of a legacy helper (the bouncer's single one)."""
        hs = self.legacy_helpers.get(name)
        return hs[0]["address"] if hs else None


def served_test_helpers(conf: ProbeConf, client_ip: str | None) -> dict:
    """The test-helper map every route serves (/api/v1/test-helpers, both
    check-ins): the single place where a source of live helpers (rotated
    instances) can take over from the configured lists."""
    return conf.test_helpers(client_ip)


def in_canary(client_ip: str | None, percent: int) -> bool:
    if not client_ip or percent <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(client_ip.encode()).digest()[:4], "big")
    return h % 100 < percent
