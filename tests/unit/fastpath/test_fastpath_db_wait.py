"""The fastpath daemon waits for its database, with backoff, instead of
exiting (systemd's Restart=always would crash-loop), and one-shot commands
refuse an old server in one line."""
import logging
import threading

import pytest

from fastpath.cli import open_db, wait_for_database

URL = "clickhouse://127.0.0.1:9/default"


def test_daemon_waits_until_the_server_is_recent(fake_server, caplog):
    s = fake_server(None)
    stop = threading.Event()
    waits = []
    orig_wait = stop.wait

    def wait(delay):
        waits.append(delay)
        # the operator fixes the database while the daemon waits
        if len(waits) == 2:
            s.version = "18.16.1"
        if len(waits) == 4:
            s.version = "24.8.4.13"
        return orig_wait(0)
    stop.wait = wait
    with caplog.at_level(logging.INFO, logger="fastpath"):
        assert wait_for_database(URL, logging.getLogger("fastpath"), stop, first=1, longest=4)
    assert waits == [1, 2, 4, 4]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 4 and all("\n" not in e for e in errors)
    assert "does not answer" in errors[0] and "is too old" in errors[2]
    assert "retrying in 1 s" in errors[0] and "retrying in 4 s" in errors[3]
    assert "ClickHouse 24.8.4.13" in caplog.text


def test_daemon_wait_ends_on_stop(fake_server):
    fake_server(None)
    stop = threading.Event()
    stop.set()
    assert wait_for_database(URL, logging.getLogger("fastpath"), stop) is False


def test_one_shot_open_refuses_an_old_server_in_one_line(fake_server):
    fake_server("21.8.1.1")
    with pytest.raises(SystemExit) as ei:
        open_db(URL, "fastpath reprocessing", logging.getLogger("fastpath"))
    msg = str(ei.value.code)
    assert msg.startswith("fastpath: ClickHouse 21.8.1.1 at 127.0.0.1:9 is too old") and "\n" not in msg
