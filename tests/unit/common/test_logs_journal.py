"""journald priorities: ``<N>`` prefixes when the output is the journal."""
import logging

from ooni_common.logs import JournalFormatter, make_formatter, priority


def record(level, msg="x"):
    return logging.LogRecord("fastpath", level, __file__, 1, msg, None, None)


def test_priorities():
    assert [priority(lv) for lv in (logging.CRITICAL, logging.ERROR, logging.WARNING,
                                    logging.INFO, logging.DEBUG, 5)] == [2, 3, 4, 6, 7, 7]


def test_prefix_under_journal_on_every_line(monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    f = make_formatter()
    assert isinstance(f, JournalFormatter)
    assert f.format(record(logging.ERROR, "boom")) == "<3>fastpath ERROR boom"
    assert f.format(record(logging.WARNING, "a\nb")) == "<4>fastpath WARNING a\n<4>b"


def test_no_prefix_elsewhere(monkeypatch):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    text = make_formatter().format(record(logging.ERROR, "boom"))
    assert not text.startswith("<") and text.endswith("fastpath ERROR boom")


def test_gunicorn_lines_get_the_prefix_under_journal(monkeypatch):
    from gunicorn.config import Config as GConfig

    from ooniapi.runtime.server import JournalLogger
    monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    g = GConfig()
    g.set("errorlog", "-")
    lg = JournalLogger(g)
    rec = logging.LogRecord("gunicorn.error", logging.ERROR, __file__, 1, "Worker failed", None, None)
    assert lg.error_log.handlers[0].format(rec).startswith("<3>[")
    monkeypatch.delenv("JOURNAL_STREAM")
    lg = JournalLogger(g)
    assert not lg.error_log.handlers[0].format(rec).startswith("<")
