"""Rows the fastpath writes: ``fastpath`` (fastpath.md §6) and
``obs_openvpn`` (§7). Typed so that the writer, the CLI and the tests agree
on column names and order."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from operator import attrgetter

# The INSERT column list of §6.1, in its order.
FASTPATH_COLUMNS: tuple[str, ...] = (
    "measurement_uid", "report_id", "input", "probe_cc", "probe_asn",
    "test_name", "test_start_time", "measurement_start_time", "scores",
    "platform", "anomaly", "confirmed", "msm_failure", "blocking_type",
    "domain", "software_name", "software_version", "test_version",
    "test_runtime", "architecture", "engine_name", "engine_version",
    "test_helper_address", "test_helper_type", "ooni_run_link_id",
    "is_verified",
)

# The obs_openvpn columns the fastpath writes (§7): `error` and
# `tcp_connect_status_success` are never written and keep their defaults.
OBS_OPENVPN_COLUMNS: tuple[str, ...] = (
    "anomaly", "bootstrap_time", "confirmed", "failure", "input",
    "last_handshake_transaction_id", "measurement_start_time",
    "measurement_uid", "minivpn_version", "obfs4_version", "obfuscation",
    "platform", "probe_asn", "probe_cc", "probe_network_name", "provider",
    "remote", "report_id", "resolver_asn", "resolver_ip",
    "resolver_network_name", "software_name", "software_version", "success",
    "success_handshake", "success_icmp", "success_urlgrab", "test_runtime",
    "test_start_time", "transport",
)

_TS_FORMAT = "%Y-%m-%d %H:%M:%S"
_fastpath_values = attrgetter(*FASTPATH_COLUMNS)
_openvpn_values = attrgetter(*OBS_OPENVPN_COLUMNS)


def _jsonable(v):
    if isinstance(v, dt.datetime):
        return v.strftime(_TS_FORMAT)
    return v


@dataclass(frozen=True, slots=True)
class FastpathRow:
    measurement_uid: str
    report_id: str
    input: str
    probe_cc: str
    probe_asn: int
    test_name: str
    test_start_time: dt.datetime
    measurement_start_time: dt.datetime
    scores: str
    platform: str
    anomaly: str
    confirmed: str
    msm_failure: str
    blocking_type: str
    domain: str
    software_name: str
    software_version: str
    test_version: str
    test_runtime: float
    architecture: str
    engine_name: str
    engine_version: str
    test_helper_address: str
    test_helper_type: str
    ooni_run_link_id: int | None
    is_verified: str

    def as_tuple(self) -> tuple:
        return _fastpath_values(self)

    def as_dict(self) -> dict:
        return dict(zip(FASTPATH_COLUMNS, map(_jsonable, _fastpath_values(self))))


@dataclass(frozen=True, slots=True)
class ObsOpenvpnRow:
    anomaly: bool
    bootstrap_time: float
    confirmed: bool
    failure: str
    input: str
    last_handshake_transaction_id: int
    measurement_start_time: dt.datetime
    measurement_uid: str
    minivpn_version: str
    obfs4_version: str
    obfuscation: str
    platform: str
    probe_asn: int
    probe_cc: str
    probe_network_name: str
    provider: str
    remote: str
    report_id: str
    resolver_asn: int
    resolver_ip: str
    resolver_network_name: str
    software_name: str
    software_version: str
    success: bool
    success_handshake: bool
    success_icmp: bool
    success_urlgrab: bool
    test_runtime: float
    test_start_time: dt.datetime
    transport: str

    def as_tuple(self) -> tuple:
        return _openvpn_values(self)

    def as_dict(self) -> dict:
        return dict(zip(OBS_OPENVPN_COLUMNS, map(_jsonable, _openvpn_values(self))))
