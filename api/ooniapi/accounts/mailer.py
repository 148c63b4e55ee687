"""Login e-mails (api.md §9.1): one message per ``user_register`` call, sent
synchronously over SMTP, or SMTP over TLS when MAIL_USE_SSL is set.

Config keys (api.md §17): MAIL_SERVER, MAIL_PORT (465), MAIL_USERNAME,
MAIL_PASSWORD (login only when a username is set), MAIL_USE_SSL (true),
MAIL_SOURCE_ADDRESS (``contact@ooni.org``) and [NEW] MAIL_TIMEOUT (seconds,
10): a stuck mail server must not hold an API worker for long.
"""
from __future__ import annotations

import html
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ooni_common.config import Config

SUBJECT = "OONI Account activation"


class MailError(Exception):
    """The message could not be handed to the mail server."""


@dataclass(frozen=True)
class MailConfig:
    server: str
    port: int
    username: str
    password: str
    use_ssl: bool
    source_address: str
    timeout: float

    @classmethod
    def from_config(cls, cfg: Config) -> "MailConfig":
        return cls(
            server=cfg.get_str("MAIL_SERVER", "localhost"),
            port=cfg.get_int("MAIL_PORT", 465),
            username=cfg.get_str("MAIL_USERNAME", ""),
            password=cfg.get_str("MAIL_PASSWORD", ""),
            use_ssl=cfg.get_bool("MAIL_USE_SSL", True),
            source_address=cfg.get_str("MAIL_SOURCE_ADDRESS", "contact@ooni.org"),
            timeout=cfg.get_float("MAIL_TIMEOUT", 10.0),
        )


def login_message(source: str, to: str, login_url: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = SUBJECT
    msg["From"] = source
    msg["To"] = to
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=source.rpartition("@")[2] or None)
    msg.set_content(
        "Welcome to OONI.\n\n"
        f"Please login by following {login_url}\n\n"
        "The link can be used on multiple devices and will expire in 24 hours.\n"
    )
    url = html.escape(login_url, quote=True)
    msg.add_alternative(
        "<html><head></head><body>\n"
        "<p>Welcome to OONI.</p>\n"
        f'<p><a href="{url}">Please login here</a></p>\n'
        "<p>The link can be used on multiple devices and will expire in 24 hours.</p>\n"
        "</body></html>\n",
        subtype="html",
    )
    return msg


def send(conf: MailConfig, msg: EmailMessage) -> None:
    """Raises MailError for every failure: refused connection, timeout,
    TLS error, rejected login, sender or recipient."""
    try:
        if conf.use_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                conf.server, conf.port, timeout=conf.timeout,
                context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(conf.server, conf.port, timeout=conf.timeout)
        with smtp:
            smtp.ehlo()
            if conf.username:
                smtp.login(conf.username, conf.password)
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError, UnicodeError) as e:
        raise MailError(f"{type(e).__name__}: {e}") from e


def send_login_link(conf: MailConfig, to: str, login_url: str) -> None:
    send(conf, login_message(conf.source_address, to, login_url))
