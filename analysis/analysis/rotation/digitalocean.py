"""Digital Ocean API v2 (https://docs.digitalocean.com/reference/api/):
droplets and domain records, bearer-token authenticated JSON over HTTPS."""
from __future__ import annotations

import datetime as dt
import json
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from .provider import DnsRecord, Instance, NotFound, Provider, ProviderError

DEFAULT_API_URL = "https://api.digitalocean.com/v2"
PAGE = 200


class DigitalOcean(Provider):
    name = "Digital Ocean"

    def __init__(self, token: str, api_url: str = DEFAULT_API_URL, timeout: float = 30.0):
        self.token = token
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout

    # --- HTTP ----------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict | None = None,
              query: dict | None = None) -> Any:
        url = self.api_url + path + (("?" + urlencode(query)) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            msg = _error_message(e)
            cls = NotFound if e.code == 404 else ProviderError
            raise cls(f"Digital Ocean {method} {path}: HTTP {e.code}: {msg}", e.code) from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise ProviderError(f"Digital Ocean {method} {path}: {reason}") from None
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise ProviderError(f"Digital Ocean {method} {path}: answer is not JSON") from None

    def _pages(self, path: str, key: str, query: dict | None = None) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            doc = self._call("GET", path, query={**(query or {}), "page": page, "per_page": PAGE})
            items = _field(doc, key, list, path)
            out.extend(items)
            nxt = ((doc.get("links") or {}).get("pages") or {}).get("next")
            if not nxt or not items:
                return out
            page += 1

    # --- droplets ------------------------------------------------------------

    def list_instances(self, tag: str) -> list[Instance]:
        return [_droplet(d) for d in self._pages("/droplets", "droplets", {"tag_name": tag})]

    def available_regions(self) -> list[str]:
        return [r["slug"] for r in self._pages("/regions", "regions")
                if isinstance(r, dict) and r.get("available") and r.get("slug")]

    def ssh_key_ids(self) -> list[str]:
        return [str(k["id"]) for k in self._pages("/account/keys", "ssh_keys")
                if isinstance(k, dict) and "id" in k]

    def create_instance(self, name, region, size, image, user_data, tag, ssh_keys) -> Instance:
        body = {"name": name, "region": region, "size": size, "image": image,
                "ssh_keys": [int(k) if k.isdigit() else k for k in ssh_keys],
                "backups": False, "ipv6": True, "user_data": user_data, "tags": [tag]}
        doc = self._call("POST", "/droplets", body)
        return _droplet(_field(doc, "droplet", dict, "/droplets"))

    def get_instance(self, instance_id: str) -> Instance:
        doc = self._call("GET", f"/droplets/{quote(instance_id)}")
        return _droplet(_field(doc, "droplet", dict, "/droplets/{id}"))

    def delete_instance(self, instance_id: str) -> None:
        self._call("DELETE", f"/droplets/{quote(instance_id)}")

    # --- DNS -----------------------------------------------------------------

    def list_records(self, zone: str) -> list[DnsRecord]:
        return [_record(r) for r in
                self._pages(f"/domains/{quote(zone)}/records", "domain_records")]

    def create_record(self, zone, rtype, name, data, ttl) -> DnsRecord:
        doc = self._call("POST", f"/domains/{quote(zone)}/records",
                         {"type": rtype, "name": name, "data": data, "ttl": ttl})
        return _record(_field(doc, "domain_record", dict, "/domains/{zone}/records"))

    def delete_record(self, zone: str, record_id: str) -> None:
        self._call("DELETE", f"/domains/{quote(zone)}/records/{quote(record_id)}")


def _error_message(e: urllib.error.HTTPError) -> str:
    try:
        doc = json.loads(e.read() or b"{}")
        return str(doc.get("message") or doc.get("id") or e.reason)
    except (ValueError, OSError, AttributeError):
        return str(e.reason)


def _field(doc: Any, key: str, typ: type, where: str) -> Any:
    v = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(v, typ):
        raise ProviderError(f"Digital Ocean {where}: answer has no {key!r}")
    return v


def _public(nets: Any, kind: str) -> str | None:
    for n in (nets or {}).get(kind) or []:
        if isinstance(n, dict) and n.get("type") == "public" and n.get("ip_address"):
            return str(n["ip_address"])
    return None


def _droplet(d: dict) -> Instance:
    try:
        created = d.get("created_at")
        created_at = (dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
                      .astimezone(dt.timezone.utc).replace(tzinfo=None) if created else None)
        region = d.get("region") or {}
        return Instance(
            id=str(d["id"]), name=str(d.get("name", "")), status=str(d.get("status", "")),
            region=str(region.get("slug", "")) if isinstance(region, dict) else str(region),
            ipv4=_public(d.get("networks"), "v4"), ipv6=_public(d.get("networks"), "v6"),
            created_at=created_at, tags=tuple(d.get("tags") or ()))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ProviderError(f"Digital Ocean: malformed droplet {d!r:.200}: {e}") from None


def _record(r: dict) -> DnsRecord:
    try:
        return DnsRecord(id=str(r["id"]), type=str(r["type"]), name=str(r["name"]),
                         data=str(r["data"]), ttl=int(r.get("ttl") or 0))
    except (KeyError, TypeError, ValueError) as e:
        raise ProviderError(f"Digital Ocean: malformed domain record {r!r:.200}: {e}") from None
