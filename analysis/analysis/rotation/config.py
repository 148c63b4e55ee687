"""``/etc/ooni/rotation.conf``: the legacy INI file (``[DEFAULT]`` section)
with the keys of the original documentation plus the ones this
implementation adds (all optional, see docs/operations.md)."""
from __future__ import annotations

import configparser
from dataclasses import dataclass

from ..runner import JobError
from .digitalocean import DEFAULT_API_URL

DEFAULT_PATH = "/etc/ooni/rotation.conf"
DEFAULT_REGIONS = "ams3,fra1,lon1,nyc3,sfo3,tor1"


@dataclass(frozen=True)
class RotationConf:
    token: str
    active_droplets_count: int
    size_slug: str
    image_name: str
    draining_time_minutes: float
    dns_zone: str
    api_url: str = DEFAULT_API_URL
    tag: str = "roaming-th"
    regions: tuple[str, ...] = tuple(DEFAULT_REGIONS.split(","))
    setup_script: str = "/etc/ooni/rotation_setup.sh"
    cert_command: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    remote_cert: str = "/etc/ssl/private/th_fullchain.pem"
    remote_key: str = "/etc/ssl/private/th_privkey.pem"
    restart_services: tuple[str, ...] = ("nginx",)
    ssh_key: str = "/etc/ooni/testhelper_ssh_key"
    ssh_user: str = "root"
    ssh_port: int = 22
    ssh_timeout: float = 10.0
    ready_flag: str = "/var/run/rotation_setup_completed"
    ready_timeout_seconds: float = 1200.0
    poll_seconds: float = 5.0
    th_check_url: str = "https://{ipaddr}/"
    th_check_verify_tls: bool = False
    http_timeout: float = 30.0
    dns_ttl: int = 60
    max_extra_droplets: int = 5


def load(path: str = DEFAULT_PATH) -> RotationConf:
    cp = configparser.ConfigParser(interpolation=None)
    try:
        with open(path) as f:
            cp.read_file(f)
    except OSError as e:
        raise JobError(f"cannot read rotation configuration {path}: {e.strerror or e}") from None
    except configparser.Error as e:
        raise JobError(f"bad rotation configuration {path}: {e}") from None
    return from_mapping(dict(cp["DEFAULT"]))


def from_mapping(c: dict[str, str]) -> RotationConf:
    def req(k: str) -> str:
        v = (c.get(k) or "").strip()
        if not v:
            raise JobError(f"rotation.conf: {k} is required")
        return v

    def num(k: str, default, cast=float):
        v = (c.get(k) or "").strip()
        if not v:
            return default
        try:
            return cast(v)
        except ValueError:
            raise JobError(f"rotation.conf: {k} must be a number, got {v!r}") from None

    def lst(k: str, default: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in (c.get(k) or default).split(",") if x.strip())

    zone = req("dns_zone").strip(".")
    count = num("active_droplets_count", None, int)
    if count is None or not 0 <= count < 20:
        raise JobError("rotation.conf: active_droplets_count must be between 0 and 19")
    drain = num("draining_time_minutes", None)
    if drain is None or drain < 0:
        raise JobError("rotation.conf: draining_time_minutes must be >= 0")
    d = RotationConf
    conf = RotationConf(
        token=req("token"), active_droplets_count=count, size_slug=req("size_slug"),
        image_name=req("image_name"), draining_time_minutes=drain, dns_zone=zone,
        api_url=(c.get("api_url") or DEFAULT_API_URL).strip(),
        tag=(c.get("tag") or d.tag).strip(),
        regions=lst("regions", DEFAULT_REGIONS),
        setup_script=(c.get("setup_script") or d.setup_script).strip(),
        cert_command=(c.get("cert_command") if "cert_command" in c else
                      "certbot certonly --dns-digitalocean --dns-digitalocean-credentials "
                      f"/etc/ooni/certbot-digitalocean -d *.{zone} -n").strip(),
        tls_cert=(c.get("tls_cert") or f"/etc/letsencrypt/live/{zone}/fullchain.pem").strip(),
        tls_key=(c.get("tls_key") or f"/etc/letsencrypt/live/{zone}/privkey.pem").strip(),
        remote_cert=(c.get("remote_cert") or d.remote_cert).strip(),
        remote_key=(c.get("remote_key") or d.remote_key).strip(),
        restart_services=lst("restart_services", "nginx"),
        ssh_key=(c.get("ssh_key") or d.ssh_key).strip(),
        ssh_user=(c.get("ssh_user") or d.ssh_user).strip(),
        ssh_port=num("ssh_port", d.ssh_port, int),
        ssh_timeout=num("ssh_timeout", d.ssh_timeout),
        ready_flag=(c.get("ready_flag") or d.ready_flag).strip(),
        ready_timeout_seconds=num("ready_timeout_seconds", d.ready_timeout_seconds),
        poll_seconds=num("poll_seconds", d.poll_seconds),
        th_check_url=(c.get("th_check_url") or d.th_check_url).strip(),
        th_check_verify_tls=(c.get("th_check_verify_tls") or "false").strip().lower()
        in ("1", "true", "yes"),
        http_timeout=num("http_timeout", d.http_timeout),
        dns_ttl=num("dns_ttl", d.dns_ttl, int),
        max_extra_droplets=num("max_extra_droplets", d.max_extra_droplets, int),
    )
    if not conf.regions:
        raise JobError("rotation.conf: regions is empty")
    for k in ("ssh_timeout", "ready_timeout_seconds", "poll_seconds", "http_timeout"):
        if getattr(conf, k) <= 0:
            raise JobError(f"rotation.conf: {k} must be > 0")
    return conf
