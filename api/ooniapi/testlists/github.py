"""The GitHub REST calls the editor makes: open, find, read and close a pull
request. Network errors, timeouts and 5xx answers are retried a few times;
whatever still fails becomes ``Unavailable`` (503, with GitHub's message),
so the route answers and the account's state stays as it was."""
from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from ooniapi.testlists.errors import Unavailable

log = logging.getLogger("ooni-api.testlists")

MAX_ANSWER = 4 * 1024 * 1024


@dataclass(frozen=True)
class PullRequest:
    number: int
    api_url: str
    html_url: str
    state: str  # "open" | "closed"
    merged: bool


class Refused(Exception):
    """GitHub answered 4xx: ``status`` and its message."""

    def __init__(self, status: int, message: str, doc: Any):
        super().__init__(f"GitHub answered {status}: {message}")
        self.status = status
        self.message = message
        self.doc = doc


class GitHub:
    def __init__(self, api_url: str, token: str, *, timeout: float = 15, retries: int = 2,
                 retry_delay: float = 1.0):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay

    def _headers(self) -> dict[str, str]:
        h = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
             "User-Agent": "ooni-backend-test-lists-editor"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def _once(self, method: str, url: str, body: Any) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers()
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                status, raw = r.status, r.read(MAX_ANSWER)
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read(MAX_ANSWER)
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return status, doc

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, str] | None = None) -> Any:
        url = self.api_url + path + (f"?{urlencode(query)}" if query else "")
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.retry_delay * 2 ** (attempt - 1))
            try:
                status, doc = self._once(method, url, body)
            except (OSError, http.client.HTTPException) as e:
                last = f"cannot reach GitHub: {getattr(e, 'reason', e)}"
                log.warning("GitHub %s %s: %s", method, path, last)
                continue
            message = doc.get("message", "") if isinstance(doc, dict) else ""
            if status >= 500:
                last = f"GitHub answered {status} {message}".strip()
                log.warning("GitHub %s %s: %s", method, path, last)
                continue
            if status in (401, 403, 429):
                # Our credentials or rate limit: nothing a user can fix.
                raise Unavailable(f"GitHub refused the request ({status}): {message}".strip())
            if status >= 400:
                raise Refused(status, message, doc)
            return doc
        raise Unavailable(f"GitHub is unavailable, retry later ({last})")

    @staticmethod
    def _pull(doc: Any) -> PullRequest:
        try:
            return PullRequest(number=int(doc["number"]), api_url=str(doc["url"]),
                               html_url=str(doc.get("html_url") or ""),
                               state=str(doc["state"]), merged=bool(doc.get("merged")))
        except (KeyError, TypeError, ValueError):
            raise Unavailable("GitHub answered an unexpected document for a pull request") \
                from None

    def _repo(self, repo: str) -> str:
        owner, _, name = repo.partition("/")
        return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"

    def create_pull(self, repo: str, head: str, base: str, title: str,
                    body: str) -> PullRequest:
        """Opens the PR; when GitHub already has an open one for ``head``
        (an earlier attempt whose answer was lost) that one is returned."""
        try:
            doc = self.request("POST", f"{self._repo(repo)}/pulls",
                               {"head": head, "base": base, "title": title, "body": body})
        except Refused as e:
            if e.status == 422 and "already exists" in json.dumps(e.doc):
                found = self.find_open_pull(repo, head)
                if found is not None:
                    return found
            raise Unavailable(f"GitHub refused the pull request ({e.status}): {e.message}") \
                from None
        return self._pull(doc)

    def find_open_pull(self, repo: str, head: str) -> PullRequest | None:
        try:
            doc = self.request("GET", f"{self._repo(repo)}/pulls",
                               query={"head": head, "state": "open"})
        except Refused as e:
            raise Unavailable(f"GitHub refused to list pull requests ({e.status}): "
                              f"{e.message}") from None
        if not isinstance(doc, list) or not doc:
            return None
        return self._pull(doc[0])

    def get_pull(self, repo: str, number: int) -> PullRequest:
        """A PR GitHub no longer has (404, e.g. repository recreated) reads
        as closed, so that the account is not stuck waiting for it."""
        try:
            return self._pull(self.request("GET", f"{self._repo(repo)}/pulls/{number}"))
        except Refused as e:
            if e.status in (404, 410):
                log.warning("pull request %s/%d is gone (%d)", repo, number, e.status)
                return PullRequest(number, "", "", "closed", False)
            raise Unavailable(f"GitHub refused to show pull request {number} "
                              f"({e.status}): {e.message}") from None

    def close_pull(self, repo: str, number: int) -> PullRequest:
        """Raises Refused when GitHub will not close it (e.g. merged)."""
        return self._pull(self.request("PATCH", f"{self._repo(repo)}/pulls/{number}",
                                       {"state": "closed"}))
