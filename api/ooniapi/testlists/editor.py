"""The editor's state machine (api.md §10.1):

    CLEAN --edit--> IN_PROGRESS --submit--> PR_OPEN --merged or closed--> CLEAN
                         ^                     |
                         +-------edit----------+   (the open PR is closed first)

Every request runs under the account's lock and first syncs: upstream is
fetched when the last fetch is older than ``TESTLISTS_FETCH_INTERVAL``; an
open PR is polled on GitHub and, once merged or closed, the worktree, branch
and journal are dropped (CLEAN, showing upstream, merged change included);
an IN_PROGRESS branch that upstream moved past is rebased, or rebuilt from
the journal on upstream when the rebase conflicts (changes that no longer
apply, e.g. upstream added the same URL, are dropped).
"""
from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ooni_common.metrics import Metrics

from ooniapi.core.errors import ApiError, OoniError
from ooniapi.testlists import errors
from ooniapi.testlists.csv_rows import Entry, MalformedList, apply_change, changes_view, describe, parse_list
from ooniapi.testlists.errors import Unavailable
from ooniapi.testlists.git_repo import GitError, Identity
from ooniapi.testlists.github import GitHub, PullRequest, Refused
from ooniapi.testlists.working_copy import (
    CLEAN,
    IN_PROGRESS,
    PR_OPEN,
    AccountCopy,
    AccountState,
    LockTimeout,
    Settings,
    SharedRepo,
)

log = logging.getLogger("ooni-api.testlists")

PR_TITLE = "Contribution from test-lists.ooni.org"


@dataclass(frozen=True)
class ListView:
    test_list: list[dict[str, str]] | None
    changes: dict[str, list[dict[str, str]]]
    state: str
    pr_url: str | None


def _entry(d: dict | None) -> Entry | None:
    return Entry(**d) if d else None


class WorkingCopyError(ApiError):
    status = 500


class Editor:
    def __init__(self, settings: Settings, github: GitHub, metrics: Metrics):
        self.s = settings
        self.gh = github
        self.metrics = metrics
        self.repo = SharedRepo(settings)

    @classmethod
    def from_settings(cls, s: Settings, metrics: Metrics) -> "Editor":
        gh = GitHub(s.github_api, s.github_token, timeout=s.github_timeout,
                    retries=s.github_retries, retry_delay=s.github_retry_delay)
        return cls(s, gh, metrics)

    # --- plumbing ------------------------------------------------------------------

    @contextmanager
    def _account(self, account_id: str) -> Iterator[AccountCopy]:
        ac = AccountCopy(self.repo, account_id)
        t0 = time.monotonic()
        try:
            with ac.lock():
                yield ac
        except LockTimeout:
            raise errors.account_busy() from None
        except GitError as e:
            log.error("account %s: git failed: %s", account_id, e)
            raise WorkingCopyError("The test-list working copy could not be updated") from None
        finally:
            self.metrics.timing("citizenlab_lock_time", (time.monotonic() - t0) * 1000)

    def _pr_url(self, pr: PullRequest) -> str:
        return pr.html_url or f"https://github.com/{self.s.origin_repo}/pull/{pr.number}"

    def _sync(self, ac: AccountCopy, *, force_fetch: bool = False,
              need_github: bool = True) -> AccountState:
        with self.metrics.timer("citizenlab_repo_init"):
            try:
                self.repo.ensure()
            except GitError as e:
                raise Unavailable(f"Cannot fetch the test lists from {self.s.origin_repo}: "
                                  f"{e}") from None
        with self.metrics.timer("citizenlab_repo_pull"):
            try:
                self.repo.refresh(force=force_fetch)
            except GitError as e:
                if force_fetch:
                    raise Unavailable(f"Cannot fetch the test lists from "
                                      f"{self.s.origin_repo}: {e}") from None
                log.warning("fetching upstream failed, using the last fetch: %s", e)
        with self.metrics.timer("citizenlab_sync_state"):
            st = ac.load_state()
            if st.state == PR_OPEN and st.pr_number is not None:
                try:
                    pr = self.gh.get_pull(self.s.origin_repo, st.pr_number)
                except Unavailable:
                    if need_github:
                        raise
                    log.warning("account %s: cannot poll PR %s, showing the last state",
                                ac.account_id, st.pr_number)
                    return st
                if pr.state != "open":
                    log.info("account %s: PR %d %s", ac.account_id, pr.number,
                             "merged" if pr.merged else "closed")
                    ac.discard()
                    st = AccountState(CLEAN)
                    try:
                        self.repo.refresh(force=True)
                    except GitError as e:
                        log.warning("fetching upstream after PR %d failed: %s", pr.number, e)
            if st.state == IN_PROGRESS:
                ac.ensure_consistent()
                st = self._catch_up(ac, st)
        return st

    def _catch_up(self, ac: AccountCopy, st: AccountState) -> AccountState:
        upstream = self.repo.upstream()
        if ac.git.is_ancestor(upstream, "HEAD"):
            return st
        if not ac.git.rebase(upstream):
            self._replay(ac, upstream)
        if ac.git.tree_of("HEAD") == ac.git.tree_of(upstream):
            log.info("account %s: upstream now holds every change, back to CLEAN",
                     ac.account_id)
            ac.discard()
            return AccountState(CLEAN)
        return st

    def _replay(self, ac: AccountCopy, upstream: str) -> None:
        """Rebuilds the branch on upstream from the journal, one commit per
        change that still applies."""
        ac.git.reset_hard(upstream)
        kept = []
        for op in ac.journal():
            author = Identity(**op["author"]) if op.get("author") else ac.author
            try:
                self._apply(ac, op["cc"], _entry(op.get("old")), _entry(op.get("new")),
                            op.get("comment", ""), author)
            except OoniError as e:
                log.info("account %s: dropping a change upstream made obsolete: %s",
                         ac.account_id, e.message)
                continue
            kept.append(op)
        ac.save_journal(kept)

    def _known_urls(self, ac: AccountCopy, cc: str, own: set[str],
                    at: str | None) -> set[str]:
        if cc == "global":
            return own
        text = ac.read_list("global", at)
        return own | (parse_list(text).urls() if text is not None else set())

    def _changed_text(self, ac: AccountCopy, cc: str, old: Entry | None,
                      new: Entry | None, at: str | None = None) -> str:
        text = ac.read_list(cc, at)
        if text is None:
            raise errors.country_not_supported(cc)
        try:
            lf = parse_list(text)
            changed = apply_change(lf, old, new, self._known_urls(ac, cc, lf.urls(), at))
        except MalformedList as e:
            raise WorkingCopyError(f"lists/{cc}.csv cannot be read: {e}") from None
        return changed.render()

    def _apply(self, ac: AccountCopy, cc: str, old: Entry | None, new: Entry | None,
               comment: str, author: Identity) -> None:
        text = self._changed_text(ac, cc, old, new)
        summary = describe(cc, old, new)
        message = f"{comment}\n\n{summary}\n" if comment else f"{summary}\n"
        try:
            path = ac.write_list(cc, text)
            ac.git.commit_file(path, message, author)
        except (GitError, OSError) as e:
            log.error("account %s: cannot commit %s: %s", ac.account_id, summary, e)
            ac.git.reset_hard("HEAD")
            raise WorkingCopyError("The change could not be committed") from None

    # --- the three operations ------------------------------------------------------

    def view(self, account_id: str, cc: str) -> ListView:
        with self._account(account_id) as ac:
            st = self._sync(ac, need_github=False)
            text = ac.read_list(cc)
            try:
                tl = None if text is None else parse_list(text).entries()
            except MalformedList as e:
                raise WorkingCopyError(f"lists/{cc}.csv cannot be read: {e}") from None
            changes = changes_view(ac.journal()) if st.state != CLEAN else {}
            return ListView(tl, changes, st.state,
                            st.pr_html_url if st.state == PR_OPEN else None)

    def update(self, account_id: str, cc: str, old: Entry | None, new: Entry | None,
               comment: str) -> None:
        if old == new:
            raise errors.no_proposed_changes()
        with self._account(account_id) as ac:
            st = self._sync(ac)
            if st.state == PR_OPEN:
                # The open PR is replaced by a new one at the next submit, so
                # that reviewers never merge a branch still being edited.
                try:
                    self.gh.close_pull(self.s.origin_repo, st.pr_number or 0)
                except Refused as e:
                    log.info("account %s: cannot close PR %s: %s", account_id,
                             st.pr_number, e)
                    raise errors.cannot_close_pr() from None
                st = AccountState(IN_PROGRESS)
                ac.save_state(st)
            if st.state == CLEAN:
                # Check the change against upstream before creating anything,
                # at the very commit the worktree will start from.
                upstream = self.repo.upstream()
                self._changed_text(ac, cc, old, new, at=upstream)
                ac.create_worktree(upstream)
                try:
                    self._apply(ac, cc, old, new, comment, ac.author)
                except Exception:
                    ac.discard()  # back to CLEAN rather than an empty IN_PROGRESS
                    raise
            else:
                self._apply(ac, cc, old, new, comment, ac.author)
            ac.save_journal(ac.journal() + [{
                "cc": cc, "old": old.as_dict() if old else None,
                "new": new.as_dict() if new else None, "comment": comment,
                "author": {"name": ac.author.name, "email": ac.author.email},
                "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }])
            ac.save_state(AccountState(IN_PROGRESS))

    def _push_env(self) -> dict[str, str]:
        url = self.s.push_url
        if not self.s.github_token or not url.startswith("https://"):
            return {}
        cred = base64.b64encode(f"{self.s.github_user}:{self.s.github_token}".encode()).decode()
        # Through the environment, so the token is in no argv and no file.
        return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.{url}.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {cred}"}

    def _pr_body(self, ac: AccountCopy) -> str:
        lines = []
        for op in ac.journal():
            lines.append("- " + describe(op["cc"], _entry(op.get("old")), _entry(op.get("new"))))
            if op.get("comment"):
                lines.append("  " + op["comment"].splitlines()[0])
        return "Changes proposed through https://test-lists.ooni.org:\n\n" + "\n".join(lines)

    def submit(self, account_id: str) -> PullRequest:
        with self._account(account_id) as ac, self.metrics.timer("citizenlab_propose_changes"):
            st = self._sync(ac, force_fetch=True)
            if st.state == PR_OPEN:
                raise errors.pr_already_open(st.pr_html_url)
            if st.state == CLEAN:
                raise errors.no_proposed_changes("Nothing to submit")
            if ac.git.tree_of("HEAD") == ac.git.tree_of(self.repo.upstream()):
                ac.discard()
                raise errors.no_proposed_changes("Nothing to submit: the lists equal upstream")
            try:
                ac.git.push(self.s.push_url, ac.branch, extra_env=self._push_env())
            except GitError as e:
                log.warning("account %s: push to %s failed: %s", account_id,
                            self.s.push_repo, e)
                raise Unavailable(f"Cannot push to {self.s.push_repo}, retry later") from None
            with self.metrics.timer("citizenlab_open_pr"):
                pr = self.gh.create_pull(self.s.origin_repo, f"{self.s.push_owner}:{ac.branch}",
                                         self.s.base_branch, PR_TITLE, self._pr_body(ac))
            ac.save_state(AccountState(PR_OPEN, pr.number, pr.api_url, self._pr_url(pr)))
            log.info("account %s: opened PR %d", account_id, pr.number)
            return pr
