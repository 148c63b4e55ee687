"""What rotation does on a test-helper VM: over SSH (the ``ssh`` client, key
authentication, as the legacy script) it checks the first-boot setup flag,
installs the TLS certificate and restarts the services; over HTTP(S) it runs
the end-to-end test-helper check."""
from __future__ import annotations

import json
import shlex
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from .config import RotationConf


class RemoteError(Exception):
    pass


class Remote:
    def __init__(self, conf: RotationConf):
        self.conf = conf

    def _ssh(self, host: str, command: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        c = self.conf
        cmd = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", f"ConnectTimeout={int(max(1, c.ssh_timeout))}", "-o", "BatchMode=yes",
               "-o", "LogLevel=ERROR", "-i", c.ssh_key, "-p", str(c.ssh_port),
               f"{c.ssh_user}@{host}", command]
        try:
            return subprocess.run(cmd, input=stdin or b"", capture_output=True,
                                  timeout=c.ssh_timeout * 3)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"ssh {host}: {command!r} timed out") from None
        except OSError as e:
            raise RemoteError(f"cannot run ssh: {e}") from None

    def _ssh_ok(self, host: str, command: str, stdin: bytes | None = None) -> None:
        r = self._ssh(host, command, stdin)
        if r.returncode != 0:
            err = r.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RemoteError(f"ssh {host}: {command!r} exited {r.returncode}: "
                              f"{err[-1] if err else ''}")

    def setup_completed(self, host: str) -> bool:
        """The first-boot setup script writes the flag file when done."""
        return self._ssh(host, f"cat {shlex.quote(self.conf.ready_flag)}").returncode == 0

    def obtain_certificate(self) -> tuple[bytes, bytes]:
        """Run the certificate command (certbot with the Digital Ocean DNS
        plugin by default: it renews only when due) and read the result."""
        c = self.conf
        if c.cert_command:
            try:
                r = subprocess.run(c.cert_command, shell=True, capture_output=True, timeout=600)
            except subprocess.TimeoutExpired:
                raise RemoteError("certificate command timed out") from None
            if r.returncode != 0:
                err = r.stderr.decode("utf-8", "replace").strip().splitlines()
                raise RemoteError(f"certificate command exited {r.returncode}: "
                                  f"{err[-1] if err else ''}")
        try:
            cert, key = Path(c.tls_cert).read_bytes(), Path(c.tls_key).read_bytes()
        except OSError as e:
            raise RemoteError(f"cannot read the TLS certificate: {e}") from None
        if b"BEGIN CERTIFICATE" not in cert or b"PRIVATE KEY" not in key:
            raise RemoteError(f"{c.tls_cert} / {c.tls_key} are not a PEM certificate and key")
        return cert, key

    def install_certificate(self, host: str, cert: bytes, key: bytes) -> None:
        c = self.conf
        self._ssh_ok(host, f"install -m 644 /dev/stdin {shlex.quote(c.remote_cert)}", cert)
        self._ssh_ok(host, f"install -m 600 /dev/stdin {shlex.quote(c.remote_key)}", key)
        for svc in c.restart_services:
            self._ssh_ok(host, f"systemctl restart {shlex.quote(svc)}")

    def end_to_end(self, ipaddr: str, fqdn: str) -> None:
        """A real test-helper request: the answer must carry dns,
        http_request and tcp_connect."""
        c = self.conf
        url = c.th_check_url.format(ipaddr=ipaddr, fqdn=fqdn)
        body = {"http_request": "https://google.com/", "http_request_headers": {},
                "tcp_connect": ["8.8.8.8:443"]}
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Host": fqdn, "Pragma": "no-cache",
                                              "Content-Type": "application/json"})
        ctx = None
        if url.startswith("https:") and not c.th_check_verify_tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(req, timeout=c.http_timeout, context=ctx) as r:
                doc = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RemoteError(f"end-to-end test of {fqdn} ({url}): HTTP {e.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise RemoteError(f"end-to-end test of {fqdn} ({url}): {e}") from None
        missing = {"dns", "http_request", "tcp_connect"} - set(doc if isinstance(doc, dict) else ())
        if missing:
            raise RemoteError(f"end-to-end test of {fqdn}: answer lacks {sorted(missing)}")
