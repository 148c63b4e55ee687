"""A local stand-in for the Digital Ocean API v2: the droplet, region, SSH
key and domain-record calls rotation makes, over real HTTP on loopback.
Droplets become active after ``boot_polls`` GETs and get the next address
of ``ipv4_pool`` (loopback addresses, where the tests' fake VMs listen) and a
unique IPv6 address as their public addresses.

Faults: ``fail(method, path_prefix, status, times)`` answers errors;
``hang(...)`` stalls past the client's timeout without acting; a fault
``"lost"`` acts, then stalls (the client never learns it succeeded)."""
from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlparse

TOKEN = "0" * 64

Send = Callable[[int, "dict | None"], None]


class FakeDO:
    def __init__(self, ipv4_pool: list[str], boot_polls: int = 2,
                 regions=("ams3", "fra1", "lon1", "nyc3", "sfo3", "tor1", "sgp1")):
        self.ipv4_pool, self.boot_polls = list(ipv4_pool), boot_polls
        self.regions = list(regions)
        self.droplets: dict[int, dict] = {}
        self.records: dict[str, dict[int, dict]] = {}
        self.calls: list[tuple[str, str]] = []
        self.faults: list[list] = []   # [method, prefix, status|"hang"|"lost", times]
        self.hang_seconds = 3.0
        self._created = 0
        self._next = 1000
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v2"

    def start(self) -> "FakeDO":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method: str, prefix: str, status: int = 500, times: int = 1) -> None:
        self.faults.append([method, prefix, status, times])

    def hang(self, method: str, prefix: str, times: int = 1) -> None:
        self.faults.append([method, prefix, "hang", times])

    def zone(self, name: str) -> None:
        self.records.setdefault(name, {})

    def live_droplets(self) -> list[dict]:
        return list(self.droplets.values())

    def a_records(self, zone: str) -> list[tuple[str, str, str]]:
        return sorted((r["type"], r["name"], r["data"]) for r in self.records[zone].values())

    # --- the API ----------------------------------------------------------------

    def _id(self) -> int:
        self._next += 1
        return self._next

    def _droplet_view(self, d: dict) -> dict:
        if d["status"] == "new":
            d["polls"] += 1
            if d["polls"] >= self.boot_polls:
                d["status"] = "active"
        v = {k: v for k, v in d.items() if k not in ("polls", "ipv4", "ipv6")}
        v["networks"] = {"v4": [], "v6": []}
        if v["status"] == "active":
            v["networks"] = {"v4": [{"ip_address": "10.0.0.5", "type": "private"},
                                    {"ip_address": d["ipv4"], "type": "public"}],
                             "v6": [{"ip_address": d["ipv6"], "type": "public"}]}
        return v

    def _page(self, key: str, items: list) -> dict:
        return {key: items, "links": {}, "meta": {"total": len(items)}}

    def dispatch(self, send: Send, method: str, path: str, q: dict, body) -> None:
        if method == "GET" and path == "/v2/regions":
            return send(200, self._page("regions", [{"slug": r, "available": True}
                                                    for r in self.regions]))
        if method == "GET" and path == "/v2/account/keys":
            return send(200, self._page("ssh_keys", [{"id": 512190, "name": "rotation"}]))
        if method == "GET" and path == "/v2/droplets":
            tag = q.get("tag_name", [None])[0]
            return send(200, self._page("droplets", [
                self._droplet_view(d) for d in self.droplets.values()
                if tag is None or tag in d["tags"]]))
        if method == "POST" and path == "/v2/droplets":
            for k in ("name", "region", "size", "image"):
                if not (body or {}).get(k):
                    return send(422, {"id": "unprocessable_entity", "message": f"{k} is required"})
            i, k = self._id(), self._created
            self._created += 1
            d = {"id": i, "name": body["name"], "status": "new", "polls": 0,
                 "ipv4": self.ipv4_pool[k % len(self.ipv4_pool)], "ipv6": f"fd00::{k + 1:x}",
                 "created_at": dt.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "region": {"slug": body["region"]}, "size_slug": body["size"],
                 "image": {"slug": body["image"]}, "tags": body.get("tags") or [],
                 "user_data": body.get("user_data")}
            self.droplets[i] = d
            return send(202, {"droplet": self._droplet_view(d)})
        m = re.fullmatch(r"/v2/droplets/(\d+)", path)
        if m:
            d = self.droplets.get(int(m.group(1)))
            if d is None:
                return send(404, {"id": "not_found",
                                  "message": "The resource you were accessing could not be found."})
            if method == "GET":
                return send(200, {"droplet": self._droplet_view(d)})
            if method == "DELETE":
                del self.droplets[d["id"]]
                return send(204, None)
        m = re.fullmatch(r"/v2/domains/([^/]+)/records(?:/(\d+))?", path)
        if m:
            recs = self.records.get(m.group(1))
            if recs is None:
                return send(404, {"id": "not_found", "message": "no such domain"})
            rid = m.group(2)
            if method == "GET" and rid is None:
                return send(200, self._page("domain_records", list(recs.values())))
            if method == "POST" and rid is None:
                r = {"id": self._id(), "type": body["type"], "name": body["name"],
                     "data": body["data"], "ttl": body.get("ttl", 1800)}
                recs[r["id"]] = r
                return send(201, {"domain_record": r})
            if method == "DELETE" and rid is not None:
                if recs.pop(int(rid), None) is None:
                    return send(404, {"id": "not_found", "message": "no such record"})
                return send(204, None)
        return send(404, {"id": "not_found", "message": f"{method} {path}"})

    def _handler(self):
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status: int, doc: dict | None = None) -> None:
                body = json.dumps(doc).encode() if doc is not None else b""
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self, method: str) -> None:
                u = urlparse(self.path)
                path, q = u.path, parse_qs(u.query)
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                fault = None
                with fake._lock:
                    fake.calls.append((method, path))
                    for f in fake.faults:
                        if f[3] > 0 and f[0] == method and path.startswith("/v2" + f[1]):
                            f[3] -= 1
                            fault = f[2]
                            break
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"id": "unauthorized", "message": "bad token"})
                if fault in ("hang", "lost"):
                    if fault == "lost":
                        with fake._lock:
                            fake.dispatch(lambda s, d: None, method, path, q, body)
                    time.sleep(fake.hang_seconds)
                    return self._send(504, {"id": "timeout", "message": "too late"})
                if fault is not None:
                    return self._send(fault, {"id": "server_error", "message": "injected"})
                with fake._lock:
                    fake.dispatch(self._send, method, path, q, body)

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_DELETE(self):
                self._route("DELETE")

        return H
