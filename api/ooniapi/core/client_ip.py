"""The client's address behind the front proxy: one rule shared by
geolocation and the rate limiter."""
from __future__ import annotations

import ipaddress
from typing import Any

# Forwarded headers are forgeable by anyone but the front proxy (nginx on the
# same host by default): they decide geolocation and the rate-limit key.
DEFAULT_TRUSTED_PROXIES = ["127.0.0.0/8", "::1/128"]


def parse_networks(items: list[str]) -> list[ipaddress._BaseNetwork]:
    return [ipaddress.ip_network(x.strip(), strict=False) for x in items if x.strip()]


def client_ip(remote_addr: str | None, headers: Any,
              trusted: list[ipaddress._BaseNetwork]) -> str | None:
    """The probe's address: the socket peer, unless the peer is a trusted
    proxy (nginx in front of the API), in which case the first of
    ``X-Forwarded-For`` / ``X-Real-IP`` it sets. Of a header the last token
    is used (api.md §7): the proxy appends the address it saw, anything
    before it is whatever the client chose to send."""
    peer = remote_addr
    try:
        peer_ip = ipaddress.ip_address(peer) if peer else None
    except ValueError:
        peer_ip = None
    if peer_ip is None or not any(peer_ip in n for n in trusted):
        return peer
    for h in ("X-Forwarded-For", "X-Real-IP"):
        v = headers.get(h)
        if v:
            tokens = v.replace(",", " ").split()
            if tokens:
                return tokens[-1]
    return peer
