"""The editor's files under ``GITHUB_WORKDIR`` (api.md §10.1):

* ``test-lists.git``: a bare repository holding the upstream branch as
  ``refs/remotes/origin/<base>`` and every account's branch;
* ``fetched``: touched after each successful fetch of upstream;
* ``repo.lock``: held while the shared repository's refs or worktree list
  change (fetch, worktree add/remove), never while waiting for an account;
* ``users/<account_id>/``: ``lock`` (held for the whole request, so one
  account's requests run one at a time across threads and gunicorn
  workers), ``state.json``, ``journal.json`` (the changes applied, in
  order) and ``test-lists/``, a git worktree on the account's branch.

Accounts never share a worktree or a branch, so they never see each
other's changes. Locks are ``flock`` locks: released by the kernel when a
worker dies, and exclusive between threads of one process too (each holder
opens the file itself).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from ooni_common.config import Config
from ooni_common.durable import write_atomic

from ooniapi.testlists.git_repo import Git, Identity

log = logging.getLogger("ooni-api.testlists")

CLEAN, IN_PROGRESS, PR_OPEN = "CLEAN", "IN_PROGRESS", "PR_OPEN"
_ACCOUNT_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class Settings:
    workdir: Path
    origin_repo: str   # owner/name on GitHub: PRs are opened there
    origin_url: str    # what git fetches upstream from
    push_repo: str     # owner/name of the fork the branches are pushed to
    push_url: str
    base_branch: str
    branch_prefix: str
    github_api: str
    github_user: str
    github_token: str
    github_timeout: float
    github_retries: int
    github_retry_delay: float
    git_timeout: float
    lock_timeout: float
    fetch_interval: float
    author_domain: str

    @classmethod
    def from_config(cls, cfg: Config) -> "Settings":
        origin = cfg.get_str("GITHUB_ORIGIN_REPO", "citizenlab/test-lists")
        push = cfg.get_str("GITHUB_PUSH_REPO", "ooni-bot/test-lists")
        workdir = cfg.get("GITHUB_WORKDIR", None) or cfg.data_dir / "testlists"
        return cls(
            workdir=Path(workdir),
            origin_repo=origin,
            origin_url=cfg.get_str("GITHUB_ORIGIN_URL", f"https://github.com/{origin}.git"),
            push_repo=push,
            push_url=cfg.get_str("GITHUB_PUSH_URL", f"https://github.com/{push}.git"),
            base_branch=cfg.get_str("GITHUB_BASE_BRANCH", "master"),
            branch_prefix=cfg.get_str("TESTLISTS_BRANCH_PREFIX", "user-contribution/"),
            github_api=cfg.get_str("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
            github_user=cfg.get_str("GITHUB_USER", "x-access-token"),
            github_token=cfg.get_str("GITHUB_TOKEN", ""),
            github_timeout=cfg.get_float("GITHUB_TIMEOUT", 15),
            github_retries=cfg.get_int("GITHUB_RETRIES", 2),
            github_retry_delay=cfg.get_float("GITHUB_RETRY_DELAY", 1.0),
            git_timeout=cfg.get_float("TESTLISTS_GIT_TIMEOUT", 120),
            lock_timeout=cfg.get_float("TESTLISTS_LOCK_TIMEOUT", 5),
            fetch_interval=cfg.get_float("TESTLISTS_FETCH_INTERVAL", 60),
            author_domain=cfg.get_str("TESTLISTS_AUTHOR_DOMAIN", "users.test-lists.ooni.org"),
        )

    @property
    def push_owner(self) -> str:
        return self.push_repo.split("/", 1)[0]

    @property
    def upstream_ref(self) -> str:
        return f"refs/remotes/origin/{self.base_branch}"


class LockTimeout(Exception):
    pass


@contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(str(path)) from None
                time.sleep(0.005)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@dataclass
class AccountState:
    state: str = CLEAN
    pr_number: int | None = None
    pr_api_url: str | None = None
    pr_html_url: str | None = None


class SharedRepo:
    """The bare repository and the upstream branch in it."""

    def __init__(self, s: Settings):
        self.s = s
        self.path = s.workdir / "test-lists.git"
        self.git = Git(self.path, timeout=s.git_timeout)

    @contextmanager
    def locked(self) -> Iterator[None]:
        # Another account's clone or fetch may hold it for a while.
        with file_lock(self.s.workdir / "repo.lock", self.s.git_timeout * 2 + 5):
            yield

    def ready(self) -> bool:
        return self.git.rev_parse(self.s.upstream_ref) is not None \
            if (self.path / "HEAD").exists() else False

    def ensure(self) -> None:
        """Creates the repository and fetches upstream once; raises GitError."""
        if self.ready():
            return
        with self.locked():
            if not (self.path / "HEAD").exists():
                self.path.mkdir(parents=True, exist_ok=True)
                self.git.run("init", "--quiet", "--bare")
            if self.git.rev_parse(self.s.upstream_ref) is None:
                log.info("fetching %s for the test-list editor", self.s.origin_url)
                self._fetch()

    def _fetch(self) -> None:
        self.git.fetch(self.s.origin_url, self.s.base_branch, self.s.upstream_ref)
        (self.s.workdir / "fetched").touch()

    def fetch_age(self) -> float:
        try:
            return time.time() - (self.s.workdir / "fetched").stat().st_mtime
        except FileNotFoundError:
            return float("inf")

    def refresh(self, force: bool = False) -> None:
        """Fetches upstream when the last fetch is older than the interval
        (or always with ``force``); raises GitError."""
        if not force and self.fetch_age() < self.s.fetch_interval:
            return
        with self.locked():
            # Another worker may have fetched while this one waited.
            if not force and self.fetch_age() < self.s.fetch_interval:
                return
            self._fetch()

    def upstream(self) -> str:
        sha = self.git.rev_parse(self.s.upstream_ref)
        assert sha is not None
        return sha


class AccountCopy:
    """One account's directory; use only while holding ``lock()``."""

    def __init__(self, repo: SharedRepo, account_id: str):
        if not _ACCOUNT_RE.fullmatch(account_id):
            raise ValueError(f"unusable account id {account_id!r}")
        self.repo = repo
        self.s = repo.s
        self.account_id = account_id
        self.dir = self.s.workdir / "users" / account_id
        self.worktree = self.dir / "test-lists"
        self.branch = f"{self.s.branch_prefix}{account_id}"
        self.git = Git(self.worktree, timeout=self.s.git_timeout)

    @property
    def author(self) -> Identity:
        return Identity(f"test-lists.ooni.org user {self.account_id[:12]}",
                        f"{self.account_id}@{self.s.author_domain}")

    @contextmanager
    def lock(self) -> Iterator[None]:
        with file_lock(self.dir / "lock", self.s.lock_timeout):
            yield

    # --- state ---------------------------------------------------------------------

    def _read_json(self, name: str, default: Any) -> Any:
        try:
            return json.loads((self.dir / name).read_text())
        except FileNotFoundError:
            return default
        except (OSError, ValueError) as e:
            log.error("account %s: unreadable %s (%s), starting from empty",
                      self.account_id, name, e)
            return default

    def _write_json(self, name: str, doc: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.dir / name, json.dumps(doc, sort_keys=True).encode())

    def has_worktree(self) -> bool:
        return (self.worktree / ".git").exists()

    def load_state(self) -> AccountState:
        doc = self._read_json("state.json", {})
        try:
            st = AccountState(**doc)
        except TypeError:
            st = AccountState()
        # Repair what a crash between two steps may have left.
        if st.state not in (CLEAN, IN_PROGRESS, PR_OPEN) or \
                (st.state == PR_OPEN and not isinstance(st.pr_number, int)):
            st = AccountState(IN_PROGRESS if self.has_worktree() else CLEAN)
        if st.state == CLEAN and self.has_worktree():
            st = AccountState(IN_PROGRESS)
        elif st.state == IN_PROGRESS and not self.has_worktree():
            st = AccountState(CLEAN)
        return st

    def save_state(self, st: AccountState) -> None:
        if st.state == CLEAN:
            (self.dir / "state.json").unlink(missing_ok=True)
        else:
            self._write_json("state.json", asdict(st))

    def journal(self) -> list[dict[str, Any]]:
        return self._read_json("journal.json", [])

    def save_journal(self, ops: list[dict[str, Any]]) -> None:
        self._write_json("journal.json", ops)

    # --- worktree ------------------------------------------------------------------

    def create_worktree(self, start: str) -> None:
        """A fresh worktree on the account's branch, at ``start``."""
        with self.repo.locked():
            self._remove_worktree()
            self.dir.mkdir(parents=True, exist_ok=True)
            self.repo.git.run("worktree", "add", "--quiet", "-B", self.branch,
                              str(self.worktree), start)

    def _remove_worktree(self) -> None:
        if self.worktree.exists():
            self.repo.git.run("worktree", "remove", "--force", "--force", str(self.worktree),
                              check=False)
            shutil.rmtree(self.worktree, ignore_errors=True)
        self.repo.git.run("worktree", "prune")

    def discard(self) -> None:
        """Back to CLEAN: worktree, branch and journal go, in an order that a
        crash at any point leaves repairable (the state file goes last)."""
        with self.repo.locked():
            self._remove_worktree()
            self.repo.git.run("branch", "--quiet", "-D", self.branch, check=False)
        (self.dir / "journal.json").unlink(missing_ok=True)
        self.save_state(AccountState(CLEAN))

    def ensure_consistent(self) -> None:
        """Undoes what a crash between writing a file and committing it
        left in the worktree: the last commit is the truth."""
        dirty = self.git.status()
        if dirty:
            log.warning("account %s: discarding uncommitted changes %r",
                        self.account_id, dirty[:200])
            self.git.reset_hard("HEAD")

    def read_list(self, cc: str, at: str | None = None) -> str | None:
        """The list as the account sees it: its worktree, else upstream (or
        the upstream commit ``at``)."""
        if self.has_worktree():
            try:
                return (self.worktree / "lists" / f"{cc}.csv").read_text(encoding="utf-8")
            except FileNotFoundError:
                return None
        data = self.repo.git.file_at(at or self.s.upstream_ref, f"lists/{cc}.csv")
        return None if data is None else data.decode("utf-8")

    def write_list(self, cc: str, text: str) -> str:
        path = f"lists/{cc}.csv"
        tmp = self.worktree / "lists" / f".{cc}.csv.tmp"
        tmp.write_text(text, encoding="utf-8", newline="")
        os.replace(tmp, self.worktree / path)
        return path
