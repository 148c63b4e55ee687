"""Who holds a TCP port: for a start that fails on a busy port to name the
holder in one line (often an orphan of a previous run), read from /proc
(/proc/net/tcp{,6} gives the socket inode, /proc/<pid>/fd the process)."""
from __future__ import annotations

import os
import socket

_LISTEN = "0A"


def _inodes(port: int, listening: bool) -> set[str]:
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) < 10 or (listening and parts[3] != _LISTEN):
                        continue
                    if int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(parts[9])
        except (OSError, ValueError, IndexError):
            continue
    return inodes


def port_holders(port: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process with a socket listening on
    ``port``; processes of other users are invisible without privileges."""
    # A listener, else any socket bound to the port (an outgoing connection's).
    inodes = (_inodes(port, True) or _inodes(port, False)) - {"0"}
    if not inodes:
        return []
    targets = {f"socket:[{i}]" for i in inodes}
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") in targets:
                    break
            except OSError:
                continue
        else:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            cmd = "?"
        found.append((int(pid), cmd))
    return sorted(found)


def describe_holder(port: int) -> str:
    """``held by pid N (cmdline)`` or a plain reason when none is visible."""
    holders = port_holders(port)
    if not holders:
        return "in use (holder not visible to this user)"
    # One line, whatever the command line holds.
    return "held by " + ", ".join(f"pid {pid} ({' '.join(cmd.split())[:200]})"
                                  for pid, cmd in holders)


def check_free(host: str, port: int) -> str | None:
    """None when ``host:port`` can be bound now, else one line naming the holder."""
    if port == 0:
        return None
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == 98:  # EADDRINUSE
                return f"cannot listen on {host}:{port}: {describe_holder(port)}"
            return f"cannot listen on {host}:{port}: {e.strerror or e}"
    return None
