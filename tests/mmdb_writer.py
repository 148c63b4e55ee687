"""A tiny MaxMind DB (MMDB v2) writer, so that tests can build country and
ASN databases with the networks they need (no PyPI writer is available).

Format: https://maxmind.github.io/MaxMind-DB/ -- an IPv6 binary search tree
of 32-bit records (IPv4 networks live under ::/96), 16 zero bytes, the data
section, then the metadata marker and map.
"""
from __future__ import annotations

import ipaddress
import struct
import time
from pathlib import Path
from typing import Any

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"


def _ctrl(type_id: int, size: int) -> bytes:
    if type_id <= 7:
        first, ext = type_id << 5, b""
    else:
        first, ext = 0, bytes([type_id - 7])
    if size < 29:
        return bytes([first | size]) + ext
    if size < 29 + 256:
        return bytes([first | 29]) + ext + bytes([size - 29])
    if size < 285 + 65536:
        return bytes([first | 30]) + ext + struct.pack(">H", size - 285)
    return bytes([first | 31]) + ext + (size - 65821).to_bytes(3, "big")


class Uint:
    """An unsigned integer of an explicit MMDB type (5 = uint16, 6 = uint32,
    9 = uint64): libmaxminddb checks the metadata types strictly."""

    def __init__(self, value: int, type_id: int):
        self.value, self.type_id = value, type_id


def encode(v: Any) -> bytes:
    if isinstance(v, Uint):
        b = v.value.to_bytes((v.value.bit_length() + 7) // 8, "big") if v.value else b""
        return _ctrl(v.type_id, len(b)) + b
    if isinstance(v, bool):
        return _ctrl(14, int(v))
    if isinstance(v, str):
        b = v.encode()
        return _ctrl(2, len(b)) + b
    if isinstance(v, float):
        return _ctrl(3, 8) + struct.pack(">d", v)
    if isinstance(v, int):
        if v < 0:
            return _ctrl(8, 4) + struct.pack(">i", v)
        b = v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b""
        t = 5 if v < 2**16 else 6 if v < 2**32 else 9
        return _ctrl(t, len(b)) + b
    if isinstance(v, dict):
        return _ctrl(7, len(v)) + b"".join(encode(str(k)) + encode(x) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return _ctrl(11, len(v)) + b"".join(encode(x) for x in v)
    raise TypeError(f"cannot encode {type(v)}")


def _bits(net: ipaddress._BaseNetwork) -> list[int]:
    if net.version == 4:
        addr, plen = int(net.network_address), 96 + net.prefixlen
    else:
        addr, plen = int(net.network_address), net.prefixlen
    return [(addr >> (127 - i)) & 1 for i in range(plen)]


def write_mmdb(path: str | Path, networks: dict[str, dict], database_type: str) -> Path:
    """``networks`` maps CIDR strings to record dicts. Nested networks must
    be listed from the widest to the narrowest."""
    # Trie of nodes: each node is [left, right]; a child is None (empty),
    # ("n", index) or ("d", record index).
    nodes: list[list] = [[None, None]]
    records: list[bytes] = []
    for cidr, rec in networks.items():
        records.append(encode(rec))
        data_ref = ("d", len(records) - 1)
        bits = _bits(ipaddress.ip_network(cidr, strict=False))
        cur = 0
        for depth, bit in enumerate(bits):
            if depth == len(bits) - 1:
                nodes[cur][bit] = data_ref
                break
            child = nodes[cur][bit]
            if child is None or child[0] == "d":
                nodes.append([child, child])
                nodes[cur][bit] = ("n", len(nodes) - 1)
            cur = nodes[cur][bit][1]
    data = b""
    offsets = []
    for r in records:
        offsets.append(len(data))
        data += r
    n = len(nodes)

    def rec_value(child) -> int:
        if child is None:
            return n
        if child[0] == "n":
            return child[1]
        return n + 16 + offsets[child[1]]

    tree = b"".join(struct.pack(">II", rec_value(a), rec_value(b)) for a, b in nodes)
    meta = {
        "node_count": Uint(n, 6), "record_size": Uint(32, 5), "ip_version": Uint(6, 5),
        "database_type": database_type, "languages": ["en"],
        "binary_format_major_version": Uint(2, 5), "binary_format_minor_version": Uint(0, 5),
        "build_epoch": Uint(int(time.time()), 9), "description": {"en": "test database"},
    }
    blob = tree + b"\x00" * 16 + data + METADATA_MARKER + encode(meta)
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return path


def write_country_db(path, ccs: dict[str, str]) -> Path:
    return write_mmdb(path, {net: {"country": {"iso_code": cc, "names": {"en": cc}}}
                             for net, cc in ccs.items()}, "GeoLite2-Country")


def write_asn_db(path, asns: dict[str, tuple[int, str]]) -> Path:
    return write_mmdb(path, {net: {"autonomous_system_number": asn,
                                   "autonomous_system_organization": org}
                             for net, (asn, org) in asns.items()}, "GeoLite2-ASN")
