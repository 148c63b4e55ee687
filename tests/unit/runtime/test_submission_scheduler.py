"""Scheduler, job runner and control socket of the standalone process, with
injected jobs (no database needed: jobs receive whatever is passed)."""
import threading
from dataclasses import dataclass
from typing import Callable

import pytest

from ooni_common.config import Config
from ooni_common.metrics import Metrics

from ooniapi.runtime.control import ControlServer, NoServer, request_job, socket_path
from ooniapi.runtime.scheduler import JobRunner, Scheduler


@dataclass(frozen=True)
class FakeJob:
    name: str
    run: Callable
    interval_key: str
    default_interval: float


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def make_runner(calls, fail=()):
    def job(name):
        def run(cfg, db, metrics_root=None):
            calls.append(name)
            if name in fail:
                raise RuntimeError(f"{name} broke")
        return FakeJob(name, run, f"{name.upper()}_INTERVAL", 0)
    jobs = {n: job(n) for n in ("alpha", "beta", "gamma")}
    jobs["alpha"] = FakeJob("alpha", jobs["alpha"].run, "ALPHA_INTERVAL", 10)
    jobs["beta"] = FakeJob("beta", jobs["beta"].run, "BETA_INTERVAL", 25)
    return JobRunner(Config({}), object(), jobs, Metrics("t", enabled=False))


def test_runner_turns_failures_into_results():
    calls = []
    r = make_runner(calls, fail={"beta"})
    ok = r.run("alpha")
    assert ok.ok and ok.line().startswith("job alpha: ok in ")
    bad = r.run("beta")
    assert not bad.ok and bad.error == "beta broke" and "failed after" in bad.line()
    unknown = r.run("nope")
    assert not unknown.ok and "known jobs: alpha, beta, gamma" in unknown.error
    assert calls == ["alpha", "beta"]
    assert r.metrics.counters["t.job_beta_failed"] == 1


def test_scheduler_runs_jobs_at_their_intervals():
    calls, clock = [], Clock()
    runner = make_runner(calls)
    # gamma has interval 0 by default but is switched on by config
    s = Scheduler(runner, Config({"JOB_START_DELAY": 5, "GAMMA_INTERVAL": "40"}), clock=clock)
    assert s.intervals == {"alpha": 10, "beta": 25, "gamma": 40}
    assert s.run_due() is None
    clock.t += 5
    ran = [s.run_due(), s.run_due(), s.run_due(), s.run_due()]
    assert [r.name for r in ran if r] == ["alpha", "beta", "gamma"]
    clock.t += 10
    assert s.run_due().name == "alpha" and s.run_due() is None
    clock.t += 15
    assert {s.run_due().name, s.run_due().name} == {"alpha", "beta"}
    assert calls.count("alpha") == 3 and calls.count("beta") == 2 and calls.count("gamma") == 1


def test_scheduler_zero_interval_means_not_scheduled():
    s = Scheduler(make_runner([]), Config({"ALPHA_INTERVAL": 0, "BETA_INTERVAL": "0"}), clock=Clock())
    assert s.due() is None and s.run_due() is None


def test_scheduler_failure_does_not_stop_schedule():
    calls, clock = [], Clock()
    s = Scheduler(make_runner(calls, fail={"alpha"}), Config({"JOB_START_DELAY": 0, "BETA_INTERVAL": 0}),
                  clock=clock)
    assert not s.run_due().ok
    clock.t += 10
    assert s.run_due().name == "alpha"


def test_scheduler_thread_runs_and_stops():
    done = threading.Event()

    def run(cfg, db, metrics_root=None):
        done.set()
    runner = JobRunner(Config({}), None, {"x": FakeJob("x", run, "X_INTERVAL", 0.01)},
                       Metrics("t", enabled=False))
    s = Scheduler(runner, Config({"JOB_START_DELAY": 0}))
    s.start()
    assert done.wait(10)
    s.stop(timeout=10)
    assert not s._thread.is_alive()


def test_control_socket_runs_job_in_server(tmp_path):
    calls = []
    runner = make_runner(calls, fail={"beta"})
    path = socket_path(tmp_path)
    srv = ControlServer(path, runner)
    srv.start()
    try:
        assert (path.stat().st_mode & 0o777) == 0o600
        assert request_job(path, "alpha").ok
        res = request_job(path, "beta")
        assert not res.ok and res.error == "beta broke"
        assert not request_job(path, "nope").ok
        assert calls == ["alpha", "beta"]
    finally:
        srv.stop()
    assert not path.exists() and not srv._thread.is_alive()
    with pytest.raises(NoServer):
        request_job(path, "alpha")


def test_control_socket_replaces_stale_socket(tmp_path):
    path = socket_path(tmp_path)
    path.write_text("stale")
    srv = ControlServer(path, make_runner([]))
    srv.start()
    try:
        assert request_job(path, "gamma").ok
    finally:
        srv.stop()


def test_socket_path_falls_back_for_long_dirs(tmp_path):
    deep = tmp_path / ("d" * 120)
    p = socket_path(deep)
    assert len(str(p)) <= 100 and p.name.startswith("ooni-backend-")
    assert socket_path(deep) == p
    assert socket_path(tmp_path) == tmp_path.resolve() / "control.sock"


def test_runner_wait_idle_waits_for_running_job():
    started, release = threading.Event(), threading.Event()

    def run(cfg, db, metrics_root=None):
        started.set()
        release.wait(10)
    runner = JobRunner(Config({}), None, {"slow": FakeJob("slow", run, "S", 0)},
                       Metrics("t", enabled=False))
    t = threading.Thread(target=runner.run, args=("slow",))
    t.start()
    assert started.wait(10)
    assert runner.wait_idle(0.05) is False
    release.set()
    assert runner.wait_idle(10) is True
    t.join()


def test_cli_jobs_lists_registry(capsys, tmp_path, monkeypatch):
    from analysis.jobs import all_jobs

    from ooniapi.runtime import standalone
    monkeypatch.setenv("OONI_UPLOADER_INTERVAL", "120")
    assert standalone.main(["jobs", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(all_jobs())
    assert any(line.startswith("uploader") and "every 120 s" in line for line in out)
    zero = [j.name for j in all_jobs().values() if j.default_interval == 0]
    for name in zero:
        assert any(line.startswith(name) and "not scheduled" in line for line in out)


def test_cli_bad_config_is_one_line(capsys, tmp_path):
    from ooniapi.runtime import standalone
    assert standalone.main(["jobs", "--config", str(tmp_path / "missing.toml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ooni-backend: cannot read configuration file")


def test_cli_unknown_job_is_one_line(capsys, tmp_path):
    from ooniapi.runtime import standalone
    assert standalone.main(["job", "nope", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown job 'nope'; known jobs:" in err[0]


def test_failed_job_is_one_error_line_traceback_at_debug(caplog):
    import logging
    r = make_runner([], fail={"beta"})
    with caplog.at_level(logging.INFO, logger="ooni-backend"):
        r.run("beta")
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert "\n" not in errors[0].getMessage() and "beta broke" in errors[0].getMessage()
    assert "Traceback" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="ooni-backend"):
        r.run("beta")
    assert len([rec for rec in caplog.records if rec.levelno >= logging.ERROR]) == 1
    assert "Traceback" in caplog.text and "RuntimeError: beta broke" in caplog.text
