"""CitizenLab test-list updater (``analysis --update-citizenlab``).

Clones the test-lists git repository (shallow, any URL git accepts: a local
``file://`` repository works), parses ``lists/*.csv``, validates strictly and
swaps the result into ``citizenlab`` through ``citizenlab_flip`` with
``EXCHANGE TABLES``. Any failure (clone, parse, validation, database) leaves
``citizenlab`` as it was.

Validation follows reference-data.md §1 (URL pattern: non-matching URLs are
dropped, as upstream has a few; row-count bounds) and is stricter where an
error means the repository itself is broken: a file without the ``url`` or
``category_code`` column, a short row, or a category code outside the known
codes aborts the run with the file and line.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ooni_common import testlists
from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.metrics import Metrics, from_config, job_metrics

from . import swap
from .runner import JobError

UNIT = "analysis.citizenlab_test_lists_updater"
METRICS_PREFIX = "citizenlab_test_lists_updater"
log = logging.getLogger(UNIT)

DEFAULT_REPO = "https://github.com/citizenlab/test-lists.git"

# The legend and the URL rule are shared with the test-list editor
# (ooniapi.testlists), so that it never proposes a row this updater drops.
CATEGORY_CODES = testlists.CATEGORY_CODES
URL_RE = testlists.URL_RE
FORBIDDEN = testlists.FORBIDDEN
extract_domain = testlists.extract_domain


@dataclass(frozen=True)
class CitizenlabRow:
    domain: str
    url: str
    cc: str
    category_code: str


@dataclass(frozen=True)
class CitizenlabSettings:
    repo_url: str
    branch: str
    min_rows: int
    max_rows: int
    git_timeout: float
    category_codes: frozenset[str]

    @classmethod
    def from_config(cls, cfg: Config) -> "CitizenlabSettings":
        codes = cfg.get_list("CITIZENLAB_CATEGORY_CODES", sorted(CATEGORY_CODES))
        return cls(
            repo_url=cfg.get_str("CITIZENLAB_REPO_URL", DEFAULT_REPO),
            branch=cfg.get_str("CITIZENLAB_BRANCH", ""),
            min_rows=cfg.get_int("CITIZENLAB_MIN_ROWS", 20_000),
            max_rows=cfg.get_int("CITIZENLAB_MAX_ROWS", 1_000_000),
            git_timeout=cfg.get_float("CITIZENLAB_GIT_TIMEOUT", 120),
            category_codes=frozenset(codes),
        )


def cc_for_file(path: Path) -> str | None:
    stem = path.stem
    if stem == "global":
        return "ZZ"
    return stem if len(stem) == 2 else None


def parse_list(path: Path, cc: str, codes: frozenset[str]) -> tuple[list[CitizenlabRow], int]:
    """Rows of one list file and the number of dropped URLs."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise JobError(f"{path.name}: cannot read: {e}") from e
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = reader.fieldnames or []
    for col in ("url", "category_code"):
        if col not in fields:
            raise JobError(f"{path.name}: no {col!r} column in the header {fields}")
    rows, dropped = [], 0
    for rec in reader:
        line = reader.line_num
        url, code = rec.get("url"), rec.get("category_code")
        if None in rec or any(v is None for v in rec.values()):
            raise JobError(f"{path.name}:{line}: malformed row: expected {len(fields)} columns")
        if code not in codes:
            raise JobError(f"{path.name}:{line}: unknown category code {code!r}")
        domain = extract_domain(url)
        if domain is None:
            log.debug("dropping invalid URL %r (%s:%d)", url, path.name, line)
            dropped += 1
            continue
        rows.append(CitizenlabRow(domain, url, cc, code))
    return rows, dropped


def parse_repo(workdir: Path, codes: frozenset[str]) -> list[CitizenlabRow]:
    lists = workdir / "lists"
    if not lists.is_dir():
        raise JobError("no lists/ directory in the test-lists repository")
    rows: list[CitizenlabRow] = []
    dropped = 0
    for path in sorted(lists.glob("*.csv")):
        cc = cc_for_file(path)
        if cc is None:
            continue
        r, d = parse_list(path, cc, codes)
        rows += r
        dropped += d
    log.info("parsed %d URLs, dropped %d invalid ones", len(rows), dropped)
    return rows


def clone(settings: CitizenlabSettings, dest: Path) -> None:
    cmd = ["git", "clone", "--quiet", "--depth", "1"]
    if settings.branch:
        cmd += ["--branch", settings.branch]
    cmd += ["--", settings.repo_url, str(dest)]
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=settings.git_timeout, env=env)
    except subprocess.TimeoutExpired:
        raise JobError(f"git clone of {settings.repo_url} timed out after "
                       f"{settings.git_timeout:.0f} s") from None
    except OSError as e:
        raise JobError(f"cannot run git: {e}") from e
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise JobError(f"git clone of {settings.repo_url} failed: {err[-1] if err else p.returncode}")


def fetch_and_validate(settings: CitizenlabSettings, metrics: Metrics) -> list[CitizenlabRow]:
    with tempfile.TemporaryDirectory(prefix="ooni-test-lists-") as tmp:
        with metrics.timer("fetch_citizen_lab_lists"):
            clone(settings, Path(tmp) / "repo")
        rows = parse_repo(Path(tmp) / "repo", settings.category_codes)
    swap.check_bounds("test lists", len(rows), settings.min_rows, settings.max_rows)
    metrics.gauge("citizenlab_test_list_len", len(rows))
    return rows


def update_table(db: Database, rows: list[CitizenlabRow]) -> None:
    swap.fill(db, "citizenlab_flip", ("domain", "url", "cc", "category_code"),
              [(r.domain, r.url, r.cc, r.category_code) for r in rows])
    n = swap.count(db, "citizenlab_flip")
    if n != len(rows):
        raise JobError(f"citizenlab_flip holds {n} rows after inserting {len(rows)}")
    swap.exchange(db, "citizenlab_flip", "citizenlab")


def run(cfg: Config, db: Database | None, dry_run: bool = False,
        metrics: Metrics | None = None) -> list[CitizenlabRow]:
    settings = CitizenlabSettings.from_config(cfg)
    metrics = metrics or from_config(cfg, METRICS_PREFIX)
    rows = fetch_and_validate(settings, metrics)
    with metrics.timer("update_citizenlab_table"):
        if dry_run:
            log.info("dry run: %d rows validated, the database is not touched", len(rows))
            return rows
        assert db is not None
        update_table(db, rows)
    log.info("citizenlab updated with %d rows", len(rows))
    return rows


def run_job(cfg: Config, db: Database, metrics_root: Metrics | None = None) -> None:
    run(cfg, db, metrics=job_metrics(metrics_root, METRICS_PREFIX))
