"""A small GitHub stand-in for the test-list editor tests: a threaded HTTP
server on 127.0.0.1 answering the REST calls the editor makes (open, list,
read and close pull requests), over local bare repositories standing for
the upstream repository and the bot's fork. ``merge`` does what a reviewer
pressing "Merge" does: the fork's branch is merged into upstream's base
branch, with real git."""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

GIT = ["git", "-c", "user.name=Reviewer", "-c", "user.email=reviewer@example.org",
       "-c", "init.defaultBranch=master", "-c", "core.hooksPath=/dev/null",
       "-c", "commit.gpgSign=false"]


def git(*args: str, cwd: Path | None = None) -> str:
    p = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, check=True)
    return p.stdout.decode().strip()


@dataclass
class Pull:
    number: int
    head: str  # owner:branch
    base: str
    title: str
    body: str
    head_sha: str
    state: str = "open"
    merged: bool = False


@dataclass
class FakeGitHub:
    upstream: Path          # bare repository, "citizenlab/test-lists"
    fork: Path              # bare repository, "ooni-bot/test-lists"
    origin_repo: str = "citizenlab/test-lists"
    push_owner: str = "ooni-bot"
    token: str = "test-token"
    pulls: dict[int, Pull] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    # Status codes answered to the next requests instead of serving them.
    fail_next: list[int] = field(default_factory=list)
    # Create the next PR but answer 502, as when an answer is lost.
    lose_next_create_answer: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _answer(self, status: int, doc) -> None:
                raw = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _serve(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                body = json.loads(raw) if raw else None
                status, doc = fake.handle(method, self.path, self.headers, body)
                self._answer(status, doc)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def do_PATCH(self):
                self._serve("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the REST API --------------------------------------------------------------

    def _doc(self, p: Pull) -> dict:
        return {"url": f"{self.url}/repos/{self.origin_repo}/pulls/{p.number}",
                "html_url": f"https://github.com/{self.origin_repo}/pull/{p.number}",
                "number": p.number, "state": p.state, "merged": p.merged,
                "title": p.title, "body": p.body,
                "head": {"label": p.head, "ref": p.head.split(":", 1)[1], "sha": p.head_sha},
                "base": {"ref": p.base}}

    def handle(self, method: str, path: str, headers, body) -> tuple[int, object]:
        u = urlsplit(path)
        with self.lock:
            self.calls.append((method, u.path))
            if self.fail_next:
                return self.fail_next.pop(0), {"message": "Server Error"}
            if headers.get("Authorization") != f"Bearer {self.token}":
                return 401, {"message": "Bad credentials"}
            if headers.get("Accept") != "application/vnd.github+json":
                return 415, {"message": "Unsupported Accept"}
            prefix = f"/repos/{self.origin_repo}/pulls"
            if u.path == prefix and method == "POST":
                return self._create(body)
            if u.path == prefix and method == "GET":
                q = parse_qs(u.query)
                head, state = q.get("head", [""])[0], q.get("state", ["open"])[0]
                return 200, [self._doc(p) for p in self.pulls.values()
                             if p.head == head and (state == "all" or p.state == state)]
            m = re.fullmatch(re.escape(prefix) + r"/([0-9]+)", u.path)
            if m and int(m.group(1)) in self.pulls:
                p = self.pulls[int(m.group(1))]
                if method == "GET":
                    return 200, self._doc(p)
                if method == "PATCH" and body == {"state": "closed"}:
                    if p.merged:
                        return 422, {"message": "Validation Failed",
                                     "errors": [{"message": "Pull request is merged"}]}
                    p.state = "closed"
                    return 200, self._doc(p)
            return 404, {"message": "Not Found"}

    def _create(self, body) -> tuple[int, object]:
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str)
                                                 for k in ("head", "base", "title")):
            return 422, {"message": "Validation Failed"}
        owner, _, branch = body["head"].partition(":")
        try:
            sha = git("--git-dir", str(self.fork), "rev-parse", "--verify", f"refs/heads/{branch}")
        except subprocess.CalledProcessError:
            sha = ""
        if owner != self.push_owner or not sha:
            return 422, {"message": "Validation Failed",
                         "errors": [{"resource": "PullRequest", "field": "head",
                                     "code": "invalid"}]}
        if any(p.head == body["head"] and p.state == "open" for p in self.pulls.values()):
            return 422, {"message": "Validation Failed", "errors": [
                {"resource": "PullRequest", "code": "custom",
                 "message": f"A pull request already exists for {body['head']}."}]}
        p = Pull(len(self.pulls) + 1, body["head"], body["base"], body["title"],
                 body.get("body") or "", sha)
        self.pulls[p.number] = p
        if self.lose_next_create_answer:
            self.lose_next_create_answer = False
            return 502, {"message": "Bad Gateway"}
        return 201, self._doc(p)

    # --- what reviewers do -------------------------------------------------------------

    def merge(self, number: int) -> None:
        with self.lock:
            p = self.pulls[number]
            assert p.state == "open"
            branch = p.head.split(":", 1)[1]
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp) / "w"
                git("clone", "-q", "--branch", p.base, str(self.upstream), str(work))
                git("fetch", "-q", str(self.fork), f"refs/heads/{branch}", cwd=work)
                git("merge", "-q", "--no-ff", "-m", f"Merge pull request #{number}",
                    "FETCH_HEAD", cwd=work)
                git("push", "-q", "origin", p.base, cwd=work)
            p.state, p.merged = "closed", True

    def close(self, number: int) -> None:
        with self.lock:
            self.pulls[number].state = "closed"

    def open_pulls(self) -> list[Pull]:
        return [p for p in self.pulls.values() if p.state == "open"]
