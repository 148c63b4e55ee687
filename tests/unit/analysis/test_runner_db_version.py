"""A job against an old or unreachable server, or failing for any reason,
says so in one ERROR line and exits non-zero; the traceback is DEBUG only."""
import logging

import pytest

from analysis.runner import EXIT_FAILED, JobError, load_config, open_db, run_command


def _job(url):
    def body(stack):
        cfg = load_config(None, {"CLICKHOUSE_URL": url})
        open_db(cfg, stack, "test job")
        return 0
    return body


@pytest.fixture
def quiet_root():
    root = logging.getLogger()
    old = root.level
    yield root
    root.setLevel(old)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if " ERROR " in line]


@pytest.mark.parametrize("version,text", [
    ("18.16.1", "ClickHouse 18.16.1 at ch.example:9000 is too old"),
    (None, "ClickHouse at ch.example:9000 does not answer"),
])
def test_bad_server_is_one_error_line(fake_server, capsys, quiet_root, monkeypatch, version, text):
    monkeypatch.delenv("OONI_CONF", raising=False)
    s = fake_server(version)
    rc = run_command("fingerprints_updater", _job("clickhouse://ch.example:9000/default"), "INFO")
    err = capsys.readouterr().err
    assert rc == EXIT_FAILED
    assert len(err.strip().splitlines()) == 1, err
    assert error_lines(err) and text in err and "Traceback" not in err
    # refused before any DDL
    assert s.queries == ["SELECT version()"]


def test_unexpected_failure_is_one_line_and_traceback_at_debug(capsys, quiet_root):
    def body(stack):
        raise KeyError("boom")
    assert run_command("detector", body, "INFO") == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KeyError" in err and "Traceback" not in err
    assert run_command("detector", body, "DEBUG") == EXIT_FAILED
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "Traceback" in err


def test_job_error_is_one_line(capsys, quiet_root):
    def body(stack):
        raise JobError("cannot fetch https://example.org: network unreachable\nmore detail")
    assert run_command("citizenlab_test_lists_updater", body, "INFO") == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "failed: cannot fetch" in err and "more detail" not in err
