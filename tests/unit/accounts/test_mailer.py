"""Login mail composition and SMTP delivery against a loopback sink."""
from __future__ import annotations

import socket
import threading

import pytest

from ooni_common.config import Config
from tests.conftest import free_port
from tests.functional.smtp_sink import SmtpSink

from ooniapi.accounts import mailer

URL = "https://explorer.ooni.org/login?token=aaa.bbb.ccc"


def conf(port: int, **kw) -> mailer.MailConfig:
    base = dict(server="127.0.0.1", port=port, username="", password="", use_ssl=False,
                source_address="contact@ooni.org", timeout=5.0)
    base.update(kw)
    return mailer.MailConfig(**base)


def test_defaults_follow_the_spec():
    c = mailer.MailConfig.from_config(Config({}))
    assert (c.port, c.use_ssl, c.source_address) == (465, True, "contact@ooni.org")
    c = mailer.MailConfig.from_config(Config({"MAIL_PORT": "2525", "MAIL_USE_SSL": "false",
                                              "MAIL_SERVER": "mx", "MAIL_TIMEOUT": "3"}))
    assert (c.server, c.port, c.use_ssl, c.timeout) == ("mx", 2525, False, 3.0)


def test_login_message_has_text_and_html_with_the_link():
    msg = mailer.login_message("contact@ooni.org", "nick@example.org", URL + "&x=<y>")
    assert msg["Subject"] == "OONI Account activation"
    assert msg["From"] == "contact@ooni.org" and msg["To"] == "nick@example.org"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert URL + "&x=<y>" in text
    assert "multiple devices" in text and "24 hours" in text
    assert 'href="' + URL + '&amp;x=&lt;y&gt;"' in html
    assert "<y>" not in html


def test_send_with_login():
    with SmtpSink() as sink:
        sink.state.credentials = ("api", "s3cret")
        mailer.send_login_link(conf(sink.port, username="api", password="s3cret"),
                               "nick@example.org", URL)
        [got] = sink.messages
    assert got.auth == ("api", "s3cret")
    assert (got.mail_from, got.rcpt_to) == ("contact@ooni.org", ["nick@example.org"])
    assert URL in got.message.get_body(("plain",)).get_content()


def test_send_without_username_does_not_log_in():
    with SmtpSink() as sink:
        mailer.send_login_link(conf(sink.port), "nick@example.org", URL)
        [got] = sink.messages
    assert got.auth is None


@pytest.mark.parametrize("setup", ["refused", "bad_login", "rcpt_refused", "tls_to_plain"])
def test_failures_raise_mail_error(setup):
    with SmtpSink() as sink:
        c = conf(sink.port)
        if setup == "refused":
            c = conf(free_port())
        elif setup == "bad_login":
            sink.state.credentials = ("api", "right")
            c = conf(sink.port, username="api", password="wrong")
        elif setup == "rcpt_refused":
            sink.state.rcpt_reply = "550 mailbox unavailable"
        elif setup == "tls_to_plain":
            c = conf(sink.port, use_ssl=True)
        with pytest.raises(mailer.MailError):
            mailer.send_login_link(c, "nick@example.org", URL)
        assert sink.messages == []


def test_silent_server_times_out():
    # Accepts the connection but never greets: the API worker must get free.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    conns = []
    t = threading.Thread(target=lambda: conns.append(srv.accept()), daemon=True)
    t.start()
    try:
        with pytest.raises(mailer.MailError):
            mailer.send_login_link(conf(srv.getsockname()[1], timeout=0.3),
                                   "nick@example.org", URL)
    finally:
        t.join(5)
        for c, _ in conns:
            c.close()
        srv.close()
