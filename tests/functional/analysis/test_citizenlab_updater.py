"""CitizenLab updater against local git repositories built from the shared
test lists, and the embedded DB."""
from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import pytest

from analysis import citizenlab, cli
from analysis.runner import JobError
from ooni_common.db import DatabaseError
from ooni_common.metrics import Metrics

EXPECTED_PER_CC = {"ZZ": 1722, "br": 1013, "cn": 594, "cy": 1, "de": 195, "gb": 5, "in": 768,
                   "ir": 903, "it": 260, "kp": 1, "mm": 875, "pk": 670, "ru": 1093, "sd": 635,
                   "tr": 426, "us": 58, "ve": 491}
OLD = [("old.example.org", "https://old.example.org/", "it", "NEWS")]


def make_repo(src, dest, mutate=None):
    shutil.copytree(src, dest)
    if mutate:
        mutate(dest)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "core.autocrlf=false"]
    subprocess.run(git + ["init", "-q", "-b", "master", str(dest)], check=True)
    subprocess.run(git + ["-C", str(dest), "add", "-A"], check=True)
    subprocess.run(git + ["-C", str(dest), "commit", "-q", "-m", "lists"], check=True)
    return f"file://{dest}"


@pytest.fixture(scope="module")
def repo_url(shared_data, tmp_path_factory):
    return make_repo(shared_data / "test-lists", tmp_path_factory.mktemp("tl") / "test-lists")


@pytest.fixture
def seeded(db):
    db.insert("citizenlab", ("domain", "url", "cc", "category_code"), OLD)
    return db


def live(db) -> Counter:
    rows = db.execute("SELECT cc, count() FROM citizenlab GROUP BY cc")
    return Counter({cc.rstrip("\x00"): n for cc, n in rows})


def conf(cfg, url, **kw):
    return cfg.with_overrides(CITIZENLAB_REPO_URL=url, CITIZENLAB_MIN_ROWS=1000, **kw)


def test_update_swaps_in_the_parsed_lists(cfg, seeded, repo_url):
    m = Metrics("citizenlab_test_lists_updater", enabled=False)
    rows = citizenlab.run(conf(cfg, repo_url), seeded, metrics=m)
    assert len(rows) == 9710
    assert live(seeded) == Counter(EXPECTED_PER_CC)
    assert m.gauges["citizenlab_test_lists_updater.citizenlab_test_list_len"] == 9710
    assert "citizenlab_test_lists_updater.fetch_citizen_lab_lists" in m.timers
    assert "citizenlab_test_lists_updater.update_citizenlab_table" in m.timers
    got = dict(seeded.execute(
        "SELECT url, domain FROM citizenlab WHERE url IN {u:Array(String)}",
        {"u": ["http://www.kproxy.com./", "https://www.raya.com:443/portal/",
               "https://www.mmpeaceMonitor.org/", "http://124.225.213.74/list-motss-1.shtml/"]}))
    assert got == {"http://www.kproxy.com./": "www.kproxy.com.",
                   "https://www.raya.com:443/portal/": "www.raya.com",
                   "https://www.mmpeaceMonitor.org/": "www.mmpeaceMonitor.org",
                   "http://124.225.213.74/list-motss-1.shtml/": "124.225.213.74"}
    # The previous generation is in the flip table now, not in the live one.
    assert seeded.execute("SELECT count() FROM citizenlab WHERE domain = 'old.example.org'")[0][0] == 0


def _bad_code(d):
    p = d / "lists" / "it.csv"
    lines = p.read_text().split("\n")
    lines[3] = lines[3].replace(",NEWS,", ",NOPE,", 1) if ",NEWS," in lines[3] else \
        ",".join([lines[3].split(",")[0], "NOPE"] + lines[3].split(",")[2:])
    p.write_text("\n".join(lines))


def test_unknown_category_code_aborts_and_keeps_the_table(cfg, seeded, shared_data, tmp_path):
    url = make_repo(shared_data / "test-lists", tmp_path / "bad", _bad_code)
    with pytest.raises(JobError, match=r"it\.csv:4: unknown category code 'NOPE'"):
        citizenlab.run(conf(cfg, url), seeded)
    assert live(seeded) == Counter({"it": 1})


def _short_row(d):
    with open(d / "lists" / "de.csv", "a") as f:
        f.write("https://short.example.org/,NEWS\n")


def test_malformed_row_aborts(cfg, seeded, shared_data, tmp_path):
    url = make_repo(shared_data / "test-lists", tmp_path / "short", _short_row)
    with pytest.raises(JobError, match=r"de\.csv:\d+: malformed row"):
        citizenlab.run(conf(cfg, url), seeded)
    assert live(seeded) == Counter({"it": 1})


def test_too_few_rows_for_the_legacy_bound(cfg, seeded, repo_url):
    with pytest.raises(JobError, match="9710 rows, expected more than 20000"):
        citizenlab.run(cfg.with_overrides(CITIZENLAB_REPO_URL=repo_url), seeded)
    assert live(seeded) == Counter({"it": 1})


def test_clone_failure(cfg, seeded, tmp_path):
    with pytest.raises(JobError, match="git clone of .* failed"):
        citizenlab.run(conf(cfg, f"file://{tmp_path}/missing"), seeded)
    assert live(seeded) == Counter({"it": 1})


def test_db_error_in_the_middle_then_next_run_succeeds(cfg, seeded, repo_url, monkeypatch):
    real = seeded.insert

    def failing(table, *a, **kw):
        raise DatabaseError("Code: 241. Memory limit exceeded (simulated)")

    monkeypatch.setattr(seeded, "insert", failing)
    with pytest.raises(DatabaseError):
        citizenlab.run(conf(cfg, repo_url), seeded)
    assert live(seeded) == Counter({"it": 1})
    monkeypatch.setattr(seeded, "insert", real)
    citizenlab.run(conf(cfg, repo_url), seeded)
    assert sum(live(seeded).values()) == 9710


def _env(monkeypatch, cfg):
    for k, v in cfg.values.items():
        monkeypatch.setenv(f"OONI_{k}", str(v))
    monkeypatch.delenv("OONI_CONF", raising=False)


def test_cli_dry_run_does_not_touch_the_db(cfg, seeded, repo_url, monkeypatch, capsys):
    _env(monkeypatch, conf(cfg, repo_url))
    assert cli.main(["--update-citizenlab", "--dry-run", "--stdout"]) == 0
    assert "dry run: 9710 rows validated" in capsys.readouterr().out
    assert live(seeded) == Counter({"it": 1})


def test_cli_runs_the_update_and_reports_failures(cfg, seeded, repo_url, monkeypatch, capsys):
    _env(monkeypatch, conf(cfg, repo_url))
    assert cli.main(["--update-citizenlab"]) == 0
    assert sum(live(seeded).values()) == 9710
    monkeypatch.setenv("OONI_CITIZENLAB_MIN_ROWS", "50000")
    assert cli.main(["--update-citizenlab"]) == 1
    err = capsys.readouterr().err
    assert "failed: test lists: 9710 rows" in err and "Traceback" not in err
    assert sum(live(seeded).values()) == 9710


def test_cli_refuses_dry_run_for_other_updaters(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--update-fingerprints", "--dry-run"])
    assert e.value.code == 2


def test_registry_job(cfg, seeded, repo_url):
    from analysis.jobs import all_jobs
    all_jobs()["citizenlab"].run(conf(cfg, repo_url), seeded)
    assert sum(live(seeded).values()) == 9710
