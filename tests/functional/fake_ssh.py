"""A local SSH server (paramiko) standing in for a test-helper VM: it takes
the rotation's public key only and runs the few commands rotation sends,
against one in-memory file system per listening address (one address per
fake VM): ``cat FILE``, ``install -m MODE
/dev/stdin FILE`` and ``systemctl restart UNIT``. Anything else exits 127."""
from __future__ import annotations

import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path

import paramiko


def make_client_key(directory: Path) -> Path:
    key = directory / "th_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


class _Iface(paramiko.ServerInterface):
    def __init__(self, allowed: str):
        self.allowed = allowed
        self.command: bytes | None = None
        self.ready = threading.Event()

    def check_auth_publickey(self, username, key):
        ok = username == "root" and key.get_base64() == self.allowed
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username):
        return "publickey"

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else \
            paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        self.command = command
        self.ready.set()
        return True


def bind_same_port(addresses: list[str]) -> list[socket.socket]:
    """Listening sockets on every address, all on one port."""
    for _ in range(20):
        socks = []
        try:
            for a in addresses:
                s = socket.socket()
                socks.append(s)
                s.bind((a, socks[0].getsockname()[1] if len(socks) > 1 else 0))
                s.listen(20)
            return socks
        except OSError:
            for s in socks:
                s.close()
    raise OSError("no common free port")


class FakeSSH:
    def __init__(self, client_key: Path, addresses: list[str]):
        self.allowed = client_key.with_suffix(".pub").read_text().split()[1]
        self.host_key = paramiko.RSAKey.generate(2048)
        self.files: dict[str, dict[str, bytes]] = {a: {} for a in addresses}
        self.modes: dict[str, dict[str, str]] = {a: {} for a in addresses}
        self.restarts: dict[str, list[str]] = {a: [] for a in addresses}
        self.commands: list[tuple[str, str]] = []
        self.socks = bind_same_port(addresses)
        self.port = self.socks[0].getsockname()[1]
        self._stop = threading.Event()

    def start(self) -> "FakeSSH":
        for s in self.socks:
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for s in self.socks:
            s.close()

    def _serve(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        t = paramiko.Transport(conn)
        t.add_server_key(self.host_key)
        iface = _Iface(self.allowed)
        try:
            t.start_server(server=iface)
            chan = t.accept(10)
            if chan is None or not iface.ready.wait(10):
                return
            data = b""
            while True:
                chunk = chan.recv(65536)
                if not chunk:
                    break
                data += chunk
            out, rc = self._run(conn.getsockname()[0], iface.command.decode(), data)
            if out:
                chan.sendall(out)
            chan.send_exit_status(rc)
            chan.shutdown_write()
            chan.close()
            # Let the client hang up first: closing under it reads as a reset.
            deadline = time.monotonic() + 5
            while t.is_active() and time.monotonic() < deadline:
                time.sleep(0.005)
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            t.close()

    def _run(self, host: str, command: str, stdin: bytes) -> tuple[bytes, int]:
        self.commands.append((host, command))
        argv = shlex.split(command)
        files = self.files[host]
        if len(argv) == 2 and argv[0] == "cat":
            if argv[1] in files:
                return files[argv[1]], 0
            return b"", 1
        if len(argv) == 5 and argv[:2] == ["install", "-m"] and argv[3] == "/dev/stdin":
            files[argv[4]] = stdin
            self.modes[host][argv[4]] = argv[2]
            return b"", 0
        if len(argv) == 3 and argv[:2] == ["systemctl", "restart"]:
            self.restarts[host].append(argv[2])
            return b"", 0
        return b"", 127
