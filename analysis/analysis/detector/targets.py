"""What the detector watches: social-media and messaging domains (through
web_connectivity) and the instant-messaging tests, from configuration."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ooni_common.config import Config, ConfigError

DEFAULT_DOMAINS = [
    "www.facebook.com", "facebook.com", "m.facebook.com",
    "www.instagram.com", "instagram.com",
    "web.whatsapp.com", "www.whatsapp.com", "whatsapp.com",
    "web.telegram.org", "telegram.org", "t.me",
    "signal.org", "www.signal.org",
    "twitter.com", "www.twitter.com", "x.com",
    "www.youtube.com", "youtube.com", "m.youtube.com",
    "www.tiktok.com", "tiktok.com",
]
# Tests whose whole result is about one platform (the detector's "target"
# is then the test name, and ``domain`` is empty).
DEFAULT_TESTS = ["facebook_messenger", "signal", "telegram", "whatsapp"]

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_TEST = re.compile(r"^[a-z0-9_]{1,64}$")


@dataclass(frozen=True)
class Targets:
    domains: tuple[str, ...]
    tests: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: Config) -> "Targets":
        domains = [d.strip().lower() for d in cfg.get_list("DETECTOR_DOMAINS", DEFAULT_DOMAINS)]
        tests = [t.strip() for t in cfg.get_list("DETECTOR_TESTS", DEFAULT_TESTS)]
        for d in domains:
            if not _DOMAIN.match(d):
                raise ConfigError(f"DETECTOR_DOMAINS: {d!r} is not a domain name")
        for t in tests:
            if not _TEST.match(t) or t == "web_connectivity":
                raise ConfigError(f"DETECTOR_TESTS: {t!r} is not a test name the detector "
                                  "can follow (web_connectivity is followed per domain)")
        if not domains and not tests:
            raise ConfigError("DETECTOR_DOMAINS and DETECTOR_TESTS are both empty")
        return cls(tuple(dict.fromkeys(domains)), tuple(dict.fromkeys(tests)))
