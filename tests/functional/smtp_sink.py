"""A minimal SMTP server on a loopback port that keeps what it receives, for
the login-mail tests (no internet, no aiosmtpd). Speaks just enough ESMTP for
smtplib: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""
from __future__ import annotations

import base64
import email
import email.policy
import socketserver
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage


@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    message: EmailMessage
    auth: tuple[str, str] | None


@dataclass
class SinkState:
    messages: list[Received] = field(default_factory=list)
    # Answer to RCPT TO, e.g. "550 mailbox unavailable" to refuse.
    rcpt_reply: str = "250 OK"
    # When set, AUTH fails unless the credentials match.
    credentials: tuple[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(socketserver.StreamRequestHandler):
    timeout = 10

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        state: SinkState = self.server.state  # type: ignore[attr-defined]
        mail_from, rcpts, auth = "", [], None
        self.reply("220 sink ESMTP")
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb):].strip()
            if verb == "EHLO":
                self.reply("250-sink")
                self.reply("250-AUTH PLAIN")
                self.reply("250 8BITMIME")
            elif verb == "HELO":
                self.reply("250 sink")
            elif verb == "AUTH":
                mech, _, initial = arg.partition(" ")
                if mech.upper() != "PLAIN":
                    self.reply("504 unsupported")
                    continue
                if not initial:
                    self.reply("334 ")
                    initial = self.rfile.readline().decode().strip()
                _, user, pwd = base64.b64decode(initial).decode().split("\0")
                if state.credentials is not None and (user, pwd) != state.credentials:
                    self.reply("535 authentication failed")
                    continue
                auth = (user, pwd)
                self.reply("235 OK")
            elif verb == "MAIL":
                mail_from, rcpts = arg.partition(":")[2].strip().strip("<>"), []
                self.reply("250 OK")
            elif verb == "RCPT":
                if state.rcpt_reply.startswith("250"):
                    rcpts.append(arg.partition(":")[2].strip().strip("<>"))
                self.reply(state.rcpt_reply)
            elif verb == "DATA":
                self.reply("354 end with .")
                lines = []
                while True:
                    d = self.rfile.readline()
                    if not d or d in (b".\r\n", b".\n"):
                        break
                    lines.append(d[1:] if d.startswith(b"..") else d)
                msg = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                with state.lock:
                    state.messages.append(Received(mail_from, rcpts, msg, auth))
                self.reply("250 queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 unknown command")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SmtpSink:
    """``with SmtpSink() as sink:`` listens on ``sink.port`` until the end."""

    def __init__(self) -> None:
        self.state = SinkState()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        # A short poll interval keeps shutdown (each test's teardown) quick.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def messages(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.messages)

    def __enter__(self) -> "SmtpSink":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
