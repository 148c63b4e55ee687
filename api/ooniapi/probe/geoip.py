"""Geolocation of probe addresses over MaxMind-format (MMDB) files.

Two databases, a country one (``GEOIP_CC_DB``) and an ASN one
(``GEOIP_ASN_DB``); standalone defaults ``<data dir>/geoip/cc.mmdb`` and
``<data dir>/geoip/asn.mmdb``, the names the GeoIP downloader writes.
A missing, unreadable or wrong-type file means an unknown location (``ZZ``,
``AS0``), never an error to the probe (DESIGN.md, api.md §7.1).

Readers are long-lived (one ``GeoIP`` per app, in ``services().extras``)
and reopened when the file on disk changes: the downloader replaces the
files by rename, so an open reader keeps serving the old inode until the
next lookup notices the new one.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import geoip2.database
import geoip2.errors

from ooni_common.config import Config

log = logging.getLogger("ooni-api.geoip")

@dataclass(frozen=True)
class Location:
    """``cc`` is ``None`` and ``asn`` ``None`` when unknown."""
    cc: str | None
    asn: int | None
    as_name: str | None

    @property
    def probe_cc(self) -> str:
        return self.cc or "ZZ"

    @property
    def probe_asn(self) -> str:
        return f"AS{self.asn or 0}"


UNKNOWN = Location(None, None, None)


class _ReloadingReader:
    """One MMDB file; reopened when its (inode, mtime, size) changes."""

    def __init__(self, path: Path, method: str):
        self.path = path
        self.method = method  # "country" or "asn": the geoip2 Reader method
        self._lock = threading.Lock()
        self._reader: geoip2.database.Reader | None = None
        self._sig: tuple | None = None
        self._failed_sig: tuple | None = None

    def _signature(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def reader(self) -> geoip2.database.Reader | None:
        sig = self._signature()
        if sig == self._sig:
            return self._reader
        with self._lock:
            if sig == self._sig:
                return self._reader
            if sig is not None and sig == self._failed_sig:
                return None
            old = self._reader
            self._reader, self._sig = None, sig
            if sig is not None:
                try:
                    r = geoip2.database.Reader(str(self.path))
                    dbtype = r.metadata().database_type
                    ok = ("Country" in dbtype or "City" in dbtype) if self.method == "country" \
                        else "GeoLite2-ASN" in dbtype
                    if not ok:
                        r.close()
                        raise ValueError(f"database type {dbtype!r} cannot answer "
                                         f"{self.method} lookups")
                    self._reader = r
                    self._failed_sig = None
                    log.info("opened GeoIP database %s (%s)", self.path, dbtype)
                except Exception as e:  # corrupt file, wrong type...
                    self._failed_sig = sig
                    log.error("cannot use GeoIP database %s: %s", self.path, e)
            else:
                log.warning("GeoIP database %s is missing", self.path)
            # The old reader is not closed: a concurrent lookup may still be
            # using it; it is released with its last reference.
            del old
            return self._reader

    def lookup(self, ip: str) -> Any | None:
        r = self.reader()
        if r is None:
            return None
        try:
            if self.method == "asn":
                return r.asn(ip)
            if "City" in r.metadata().database_type:
                return r.city(ip)
            return r.country(ip)
        except (geoip2.errors.AddressNotFoundError, ValueError, TypeError):
            return None


class GeoIP:
    def __init__(self, cc_path: str | os.PathLike, asn_path: str | os.PathLike):
        self.cc_db = _ReloadingReader(Path(cc_path), "country")
        self.asn_db = _ReloadingReader(Path(asn_path), "asn")

    @classmethod
    def from_config(cls, cfg: Config) -> "GeoIP":
        base = cfg.data_dir / "geoip"
        return cls(cfg.get_str("GEOIP_CC_DB", str(base / "cc.mmdb")),
                   cfg.get_str("GEOIP_ASN_DB", str(base / "asn.mmdb")))

    def lookup(self, ip: str | None) -> Location:
        if not ip or not is_ip(ip):
            return UNKNOWN
        c = self.cc_db.lookup(ip)
        cc = c.country.iso_code if c is not None else None
        a = self.asn_db.lookup(ip)
        asn = a.autonomous_system_number if a is not None else None
        as_name = a.autonomous_system_organization if a is not None else None
        return Location(cc.upper() if cc else None, asn, as_name)


def is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def get_geoip(extras: dict, factory: Callable[[], GeoIP]) -> GeoIP:
    g = extras.get("geoip")
    if g is None:
        g = extras.setdefault("geoip", factory())
    return g
