"""The few git commands the editor runs, each a real ``git`` process with
explicit arguments (never a shell), a timeout and an environment that no
user or system configuration leaks into (no hooks, no signing, no pager, no
credential prompts)."""
from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

log = logging.getLogger("ooni-api.testlists")


class GitError(Exception):
    def __init__(self, args: list[str], returncode: int | None, stderr: str):
        self.cmd = args
        self.returncode = returncode
        self.stderr = stderr.strip()
        last = self.stderr.splitlines()[-1] if self.stderr else f"exit status {returncode}"
        super().__init__(f"git {args[0] if args else ''}: {last}")


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "LANG", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
                    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                    "NO_PROXY")}
    env.update({
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "GIT_PAGER": "cat",
        "LC_ALL": "C",
        "HOME": os.devnull,
    })
    return env


# Settings for every command: hooks and signing off, no automatic gc (which
# could run while another account's request uses the repository).
_CONFIG = ["-c", "core.hooksPath=/dev/null", "-c", "commit.gpgSign=false",
           "-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "core.autocrlf=false",
           "-c", "advice.detachedHead=false", "-c", "init.defaultBranch=master"]


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    def env(self, prefix: str) -> dict[str, str]:
        return {f"GIT_{prefix}_NAME": self.name, f"GIT_{prefix}_EMAIL": self.email}


@dataclass
class Git:
    """git for one repository: ``git_dir`` (the shared bare repository) or a
    worktree directory (``cwd``)."""
    cwd: Path
    timeout: float = 60.0
    committer: Identity = Identity("OONI test-lists editor", "contact@openobservatory.org")
    env: dict[str, str] = field(default_factory=_base_env)

    def run(self, *args: str, input: bytes | None = None, check: bool = True,
            extra_env: Mapping[str, str] | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess:
        env = {**self.env, **self.committer.env("COMMITTER"),
               **self.committer.env("AUTHOR"), **(extra_env or {})}
        argv = ["git", *_CONFIG, *args]
        try:
            p = subprocess.run(argv, cwd=self.cwd, input=input, capture_output=True,
                               env=env, timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            raise GitError(list(args), None, f"timed out after {timeout or self.timeout:.0f} s") \
                from None
        except OSError as e:
            raise GitError(list(args), None, f"cannot run git: {e}") from e
        if check and p.returncode != 0:
            raise GitError(list(args), p.returncode, p.stderr.decode(errors="replace"))
        return p

    def out(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout.decode().strip()

    # --- queries -----------------------------------------------------------------

    def rev_parse(self, ref: str) -> str | None:
        p = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return p.stdout.decode().strip() if p.returncode == 0 else None

    def tree_of(self, ref: str) -> str:
        return self.out("rev-parse", "--verify", f"{ref}^{{tree}}")

    def file_at(self, ref: str, path: str) -> bytes | None:
        """A file's content at a commit, None when it has no such file."""
        spec = f"{ref}:{path}"
        p = self.run("cat-file", "-e", spec, check=False)
        if p.returncode != 0:
            return None
        return self.run("cat-file", "blob", spec).stdout

    def is_ancestor(self, ancestor: str, ref: str) -> bool:
        p = self.run("merge-base", "--is-ancestor", ancestor, ref, check=False)
        if p.returncode not in (0, 1):
            raise GitError(["merge-base"], p.returncode, p.stderr.decode(errors="replace"))
        return p.returncode == 0

    def status(self) -> str:
        return self.run("status", "--porcelain", "--untracked-files=all",
                        extra_env={"GIT_OPTIONAL_LOCKS": "0"}).stdout.decode()

    # --- changes -------------------------------------------------------------------

    def fetch(self, url: str, branch: str, ref: str, timeout: float | None = None) -> None:
        self.run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", url,
                 f"+refs/heads/{branch}:{ref}", timeout=timeout)

    def commit_file(self, path: str, message: str, author: Identity) -> None:
        self.run("add", "--", path)
        self.run("commit", "--quiet", "--no-verify", "-F", "-", "--", path,
                 input=message.encode(), extra_env=author.env("AUTHOR"))

    def reset_hard(self, ref: str = "HEAD") -> None:
        self.run("reset", "--quiet", "--hard", ref)
        self.run("clean", "--quiet", "-f", "-d")

    def rebase(self, onto: str) -> bool:
        """Replays the branch's commits on ``onto``; False (and the branch
        untouched) when they conflict."""
        p = self.run("rebase", "--quiet", "--no-autostash", onto, check=False)
        if p.returncode == 0:
            return True
        log.info("rebase onto %s failed: %s", onto, p.stderr.decode(errors="replace").strip())
        self.run("rebase", "--abort", check=False)
        return False

    def push(self, url: str, branch: str, extra_env: Mapping[str, str] | None = None,
             timeout: float | None = None) -> None:
        self.run("push", "--quiet", "--force", "--no-verify", "--", url,
                 f"refs/heads/{branch}:refs/heads/{branch}", extra_env=extra_env,
                 timeout=timeout)
