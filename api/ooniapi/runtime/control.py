"""The standalone process's control socket: a unix socket in the data
directory through which ``ooni-backend job NAME`` asks the process that holds
the embedded database to run a job now and waits for its result.

Protocol: one JSON object per line each way; the request is
``{"cmd": "job", "name": ...}`` and the answer a ``JobResult`` as an object.
The socket is only accessible to the owner of the process."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
from pathlib import Path

from ooniapi.runtime.scheduler import JobResult, JobRunner

log = logging.getLogger("ooni-backend")

# sun_path holds 108 bytes on Linux.
MAX_SOCKET_PATH = 100


def socket_path(data_dir: str | os.PathLike) -> Path:
    p = Path(data_dir).resolve() / "control.sock"
    if len(os.fsencode(p)) <= MAX_SOCKET_PATH:
        return p
    h = hashlib.sha1(os.fsencode(p)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"ooni-backend-{h}.sock"


class ControlServer:
    def __init__(self, path: Path, runner: JobRunner):
        self.path = path
        self.runner = runner
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def start(self) -> None:
        # The caller holds the database lock, so a socket left here belongs
        # to a process that died: no one else can be serving it.
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            s.bind(str(self.path))
        finally:
            os.umask(old)
        s.listen(8)
        self._sock = s
        self._thread = threading.Thread(target=self._accept_loop, name="control", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="control-conn",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                with conn.makefile("rb") as f:
                    line = f.readline(65536)
                req = json.loads(line)
                if not isinstance(req, dict) or req.get("cmd") != "job" or not isinstance(req.get("name"), str):
                    raise ValueError("expected {\"cmd\": \"job\", \"name\": ...}")
                res = self.runner.run(req["name"])
                answer = {"ok": res.ok, "name": res.name, "seconds": res.seconds, "error": res.error}
            except ValueError as e:
                answer = {"ok": False, "name": "", "seconds": 0.0, "error": f"bad request: {e}"}
            try:
                conn.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:
                log.info("control client left before the answer")

    def stop(self) -> None:
        self._closed.set()
        if self._sock is not None:
            # close() alone does not wake a thread blocked in accept().
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(5)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


class NoServer(Exception):
    """No standalone process listens on the control socket."""


def request_job(path: Path, name: str) -> JobResult:
    """Ask the running standalone process to run a job; waits for the end
    of the job (jobs have no time bound). Raises NoServer when nobody
    listens."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            s.connect(str(path))
        except OSError as e:
            # Absent, stale or not ours: the database lock decides next.
            raise NoServer(str(e)) from None
        s.sendall(json.dumps({"cmd": "job", "name": name}).encode() + b"\n")
        with s.makefile("rb") as f:
            line = f.readline()
    finally:
        s.close()
    if not line:
        return JobResult(name, False, 0.0, "the standalone process closed the connection")
    d = json.loads(line)
    return JobResult(d.get("name") or name, bool(d.get("ok")), float(d.get("seconds", 0.0)),
                     str(d.get("error", "")))
