"""Bad-input fuzz run of the whole HTTP API (project rule: bad input gets a
4xx JSON error, never a 500).

    ./manage bench fuzz_api [--max-examples N] [--max-seconds S] [--keep]
                            [--skip-schemathesis] [--skip-nasty]

Starts ``ooni-backend run`` on a free loopback port with a temporary data
directory (rate limiter off), loads the test lists from a local git repo
built from /work/shared/data/test-lists when present, submits the real
measurements of /work/shared/data/measurements so that listings and lookups
have rows, then

1. sends hand-written nasty inputs to every operation of /apispec_1.json:
   malformed JSON, wrong types at every level, huge numbers, NaN/Infinity,
   lone surrogates, NUL bytes, long strings, deep nesting, odd Content-Type
   and Content-Encoding, wrong methods, odd path segments and query values;
2. runs schemathesis (``not_a_server_error``) over every operation, bounded
   by ``--max-examples`` per operation and ``--max-seconds`` in all.

A finding is a 5xx, a database error answered to the caller, a non-JSON or ``error``-less 4xx under /api, /report or
/bouncer, or a traceback in the server log. Exits 1 when there is any.
schemathesis is not a dependency of the project: without it the script says
so and runs only the hand-written part.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
BIN = Path(sys.executable).parent
JSON_PREFIXES = ("/api/", "/report", "/bouncer/")
JWT_KEY = "fuzz-api-jwt-key-of-at-least-32-bytes"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OONI_")}
    # Scheduled jobs would fetch from the internet during the run.
    env.update(OONI_STATSD_ENABLED="false", OONI_RATE_LIMIT_ENABLED="false",
               OONI_JOB_START_DELAY="86400", OONI_JWT_ENCRYPTION_KEY=JWT_KEY)
    return env


def admin_token(data_dir: Path) -> str:
    """A session token of the admin role, signed with the server's key, so
    that the fuzzing reaches past the 401 of the authenticated routes."""
    from ooni_common.config import Config

    from ooniapi.core import auth

    cfg = Config({"DATA_DIR": str(data_dir), "JWT_ENCRYPTION_KEY": JWT_KEY})
    return auth.session_token(cfg, "0123456789abcdef0123456789abcdef", "admin")


# --- setup -----------------------------------------------------------------------

def load_test_lists(data_dir: Path, env: dict[str, str], work: Path) -> str:
    src = SHARED / "test-lists"
    if not src.is_dir() or shutil.which("git") is None:
        return "test lists: skipped (no /work/shared/data/test-lists or no git)"
    repo = work / "test-lists"
    shutil.copytree(src, repo)
    git = ["git", "-C", str(repo), "-c", "user.name=fuzz", "-c", "user.email=fuzz@example.org"]
    for args in (["init", "-q", "-b", "master"], ["add", "-A"], ["commit", "-q", "-m", "lists"]):
        subprocess.run(git + args, check=True, capture_output=True)
    jenv = dict(env, OONI_CITIZENLAB_REPO_URL=str(repo), OONI_CITIZENLAB_MIN_ROWS="1")
    r = subprocess.run([str(BIN / "ooni-backend"), "job", "citizenlab", "--data-dir", str(data_dir)],
                       env=jenv, capture_output=True, text=True, timeout=300)
    return f"test lists: citizenlab job exit {r.returncode} {r.stderr.strip()[-200:]}"


def wait_up(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/robots.txt")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit("server did not come up")


def call(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.putrequest(method, path, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        for k, v in hdrs.items():
            c.putheader(k, v)
        c.endheaders()
        if body:
            c.send(body)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type") or "", r.read()
    finally:
        c.close()


def seed_measurements(port: int) -> int:
    """Submits every JSON measurement of the shared data; returns how many
    were accepted."""
    n = 0
    for f in sorted((SHARED / "measurements").glob("*.json")):
        try:
            msmt = json.loads(f.read_text())
        except ValueError:
            continue
        if not isinstance(msmt, dict):
            continue
        meta = {k: msmt.get(k) or "" for k in ("probe_cc", "probe_asn", "test_name",
                                                "software_name", "software_version",
                                                "test_version", "data_format_version")}
        meta["format"] = "json"
        st, _, body = call(port, "POST", "/report", json.dumps(meta).encode(),
                           {"Content-Type": "application/json"})
        if st != 200:
            continue
        rid = json.loads(body)["report_id"]
        msmt["report_id"] = rid
        st, _, _ = call(port, "POST", f"/report/{rid}",
                        json.dumps({"format": "json", "content": msmt}).encode(),
                        {"Content-Type": "application/json"})
        n += st == 200
    return n


def wait_scored(port: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        st, _, body = call(port, "GET", "/api/v1/measurements?limit=100&since=2000-01-01")
        if st == 200:
            count = len(json.loads(body).get("results", []))
            if count:
                return count
        time.sleep(1)
    return count


# --- hand-written nasty inputs --------------------------------------------------

def _nest(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


NASTY_BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("truncated", b'{"format": "json", "content": {'),
    ("not json", b"hello"),
    ("null", b"null"),
    ("number", b"12"),
    ("string", b'"x"'),
    ("list", b"[1,2]"),
    ("empty object", b"{}"),
    ("NaN", b'{"a": NaN, "format": NaN, "content": NaN}'),
    ("Infinity", b'{"format": Infinity, "content": -Infinity}'),
    ("huge int", b'{"format": "json", "content": {"x": ' + b"9" * 5000 + b"}}"),
    ("huge float", b'{"format": "json", "content": 1e999999}'),
    ("lone surrogate", b'{"format": "json", "content": "\\ud800", "probe_cc": "\\udfff"}'),
    ("NUL", b'{"format": "json\\u0000", "content": {"report_id": "\\u0000"}}'),
    ("raw NUL", b'{"format": "json", "content": {"a": "\x00"}}'),
    ("bad utf8", b'{"format": "json", "content": "\xff\xfe"}'),
    ("deep nesting", b'{"format": "json", "content": ' + _nest(100000) + b"}"),
    ("deep object", b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ("long string", b'{"format": "' + b"j" * 200000 + b'", "content": {}}'),
    ("duplicate keys", b'{"format": "json", "format": 1, "content": {}}'),
    ("BOM", b'\xef\xbb\xbf{"format": "json", "content": {}}'),
    ("yaml", b"format: yaml\ncontent: '---\\na: 1\\n'\n"),
]

# Values of every JSON type, put at each top-level key the schema names and
# at each key of a real-looking body.
WRONG_TYPES = [None, True, 0, -1, 2**70, 1.5, "", "x" * 5000, "\x00", "\ud800",
               [], [None], {}, {"a": {"b": []}}]

NASTY_QUERY_VALUES = [
    "", " ", "%00", "\x00", "\ud800", "..", "../../etc/passwd", "'; DROP TABLE fastpath;--",
    "x" * 10000, "9" * 40, "-1", "-9223372036854775809", "1e400", "NaN", "Infinity",
    "0x10", "true", "null", "[]", "{}", "ðŸ\x80", "Ω≈ç√", "AS", "AS-1", "ZZ",
    "2020-13-45", "9999-12-31", "0001-01-01", "1970-01-01T00:00:00+25:00",
    "2023-01-01T00:00:00.000000000000Z", "2023-01-01T00:00:00.5", "2023-01-01T12:00:00.123+05:30",
    ",,,", "a,b,,c", "\r\nX-Injected: 1",
]

NASTY_PATH_SEGMENTS = [
    "%00", "..", "%2e%2e", "%2F", "%252F", "x" * 5000, "%ED%A0%80", "%FF",
    urllib.parse.quote("Ω≈ç√"), "AS0", "20230101T000000Z_webconnectivity_ZZ_0_n1_abc",
    "-1", "99999999999999999999999", "%20", "a%0Ab",
]

CONTENT_TYPES = [None, "text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", "application/json; charset=latin-1",
                 "application/json; charset=bogus", "\x01"]

CONTENT_ENCODINGS = ["gzip", "zstd", "deflate", "br", "bogus", "zstd, gzip", "identity"]


class Findings:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.requests = 0

    def check(self, method: str, path: str, status: int, ctype: str, body: bytes,
              what: str) -> None:
        self.requests += 1
        bare = path.split("?", 1)[0]
        problem = None
        if status >= 500:
            problem = f"{status}"
        elif b"Database query error" in body:
            # an engine error reaching the caller: validation let it through
            problem = f"{status} database error"
        elif 400 <= status < 500 and method != "HEAD" and \
                (bare.startswith(JSON_PREFIXES) or bare == "/api"):
            try:
                doc = json.loads(body) if "json" in ctype else None
            except ValueError:
                doc = None
            if not isinstance(doc, dict) or "error" not in doc:
                problem = f"{status} without a JSON error body ({ctype})"
        if problem:
            short = path if len(path) < 160 else path[:160] + "..."
            self.items.append(f"{method} {short} [{what}]: {problem} {body[:200]!r}")


def operations(spec: dict) -> list[tuple[str, str, dict]]:
    out = []
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method in ("get", "post", "put", "delete", "patch"):
                out.append((method.upper(), path, op))
    return out


def fill_path(path: str, seg: str | None = None) -> str:
    return re.sub(r"\{[^}]+\}", seg if seg is not None else "x", path)


def run_nasty(port: int, spec: dict, deadline: float, auth_header: str | None = None) -> Findings:
    f = Findings()

    def send(method, path, body=None, headers=None, what=""):
        headers = dict(headers or {})
        if auth_header:
            headers["Authorization"] = auth_header
        try:
            st, ct, data = call(port, method, path, body, headers)
        except (OSError, http.client.HTTPException) as e:
            f.items.append(f"{method} {path[:160]} [{what}]: connection error {e}")
            return
        f.check(method, path, st, ct, data, what)

    jh = {"Content-Type": "application/json"}
    for method, path, op in operations(spec):
        if time.monotonic() > deadline:
            f.items.append("nasty inputs: time budget spent before the last operation")
            break
        url = fill_path(path, "20230101T000000Z_webconnectivity_IT_30722_n1_abcdefghijklmnop"
                        if "report_id" in path else None)
        params = [p for p in op.get("parameters", []) if isinstance(p, dict)]
        if method in ("POST", "PUT", "PATCH"):
            for name, body in NASTY_BODIES:
                send(method, url, body, jh, f"body {name}")
            props = []
            for p in params:
                if p.get("in") == "body":
                    props = list((p.get("schema") or {}).get("properties", {}))
            for key in props or ["format", "content"]:
                for v in WRONG_TYPES:
                    body = json.dumps({key: v, "content": {"report_id": v, "probe_cc": v,
                                                           "test_keys": v}})
                    send(method, url, body.encode("utf-8", "surrogatepass"), jh,
                         f"{key}={v!r:.30}")
            good = b'{"format": "json", "content": {"probe_cc": "IT"}}'
            for ct in CONTENT_TYPES:
                send(method, url, good, {"Content-Type": ct} if ct else {}, f"Content-Type {ct!r}")
            for ce in CONTENT_ENCODINGS:
                send(method, url, b"\x28\xb5\x2f\xfd garbage", dict(jh, **{"Content-Encoding": ce}),
                     f"Content-Encoding {ce}")
        for p in params:
            if p.get("in") != "query":
                continue
            for v in NASTY_QUERY_VALUES:
                q = urllib.parse.quote(v.encode("utf-8", "surrogatepass"), safe="")
                send(method, f"{url}?{p['name']}={q}", b"{}" if method != "GET" else None,
                     jh if method != "GET" else None, f"query {p['name']}")
            send(method, f"{url}?{p['name']}=1&{p['name']}=2", None, None, "repeated param")
        if "{" in path:
            for seg in NASTY_PATH_SEGMENTS:
                send(method, fill_path(path, seg), b"{}" if method != "GET" else None,
                     jh if method != "GET" else None, f"path segment {seg[:20]}")
        for other in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"):
            if other != method:
                send(other, url, b"{}", jh, "method")
    for path in ("/api/v1/%00", "/api/v1/..%2F..%2Fetc%2Fpasswd", "/report/%ED%A0%80",
                 "/api/v1/measurement/%FF", "/bouncer/net-tests/x", "/api/_/%00?x=%00",
                 "/api/v1/" + "a" * 8000, "/api//v1//measurements"):
        send("GET", path, what="odd path")
    return f


# --- schemathesis ----------------------------------------------------------------

def run_schemathesis(port: int, max_examples: int, max_seconds: int, work: Path,
                     auth_header: str) -> tuple[int, str]:
    exe = BIN / "schemathesis"
    if not exe.exists():
        return -1, ("schemathesis is not installed in this virtualenv: "
                    f"`{BIN / 'pip'} install schemathesis` to run the generated part")
    cmd = [str(exe), "run", f"http://127.0.0.1:{port}/apispec_1.json",
           "--checks", "not_a_server_error", "--max-examples", str(max_examples),
           "--max-time", str(max_seconds), "--workers", "2", "--no-color",
           "--header", f"Authorization: {auth_header}",
           "--request-timeout", "30", "--generation-database", "none",
           "--suppress-health-check", "all", "--continue-on-failure",
           "--report", "junit", "--report-dir", str(work / "schemathesis-report")]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=max_seconds + 120,
                           cwd=work)
    except subprocess.TimeoutExpired as e:
        return 1, f"schemathesis timed out: {e}"
    return r.returncode, r.stdout[-6000:] + r.stderr[-2000:]


def request_tracebacks(log_text: str) -> int:
    """Tracebacks of request handling; those of scheduled jobs (which have
    no internet here) are not API findings."""
    n = 0
    last_record = ""
    for line in log_text.splitlines():
        if re.match(r"\d{4}-\d\d-\d\d ", line):
            last_record = line
        elif line.startswith("Traceback (most recent call last)") and \
                not re.search(r" ERROR job \S+ failed", last_record):
            n += 1
    return n


# --- main ------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-examples", type=int, default=50)
    ap.add_argument("--max-seconds", type=int, default=300,
                    help="time budget of the schemathesis run (and of the nasty inputs)")
    ap.add_argument("--skip-schemathesis", action="store_true")
    ap.add_argument("--skip-nasty", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="fuzz_api-"))
    data_dir = work / "data"
    env = server_env(data_dir)
    log_path = work / "server.log"
    proc = None
    try:
        print(load_test_lists(data_dir, env, work))
        # The test-list editor works on local repositories and the fake
        # GitHub, never on github.com.
        sys.path.insert(0, str(REPO))
        from tests.functional.testlists.fake_github import FakeGitHub
        from tests.functional.testlists.support import build_remotes
        gh = FakeGitHub(*build_remotes(work / "testlists-remotes")[:2])
        env.update(OONI_GITHUB_ORIGIN_URL=str(gh.upstream), OONI_GITHUB_PUSH_URL=str(gh.fork),
                   OONI_GITHUB_API_URL=gh.url, OONI_GITHUB_TOKEN=gh.token)
        port = free_port()
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen([str(BIN / "ooni-backend"), "run", "--port", str(port),
                                     "--data-dir", str(data_dir)],
                                    env=env, stdout=logf, stderr=subprocess.STDOUT)
        wait_up(port, proc)
        print(f"server: 127.0.0.1:{port}, data dir {data_dir}")
        print(f"seeded: {seed_measurements(port)} measurements submitted, "
              f"{wait_scored(port)} listed by /api/v1/measurements")
        st, _, raw = call(port, "GET", "/apispec_1.json")
        spec = json.loads(raw)
        ops = operations(spec)
        print(f"spec: {len(ops)} operations")

        failed = False
        bearer = f"Bearer {admin_token(data_dir)}"
        if not args.skip_nasty:
            for who, header in (("anonymous", None), ("admin", bearer)):
                t = time.monotonic()
                f = run_nasty(port, spec, time.monotonic() + args.max_seconds, header)
                print(f"nasty inputs ({who}): {f.requests} requests in "
                      f"{time.monotonic() - t:.0f} s, {len(f.items)} findings")
                for item in f.items[:100]:
                    print("  FINDING", item)
                failed |= bool(f.items)
        if not args.skip_schemathesis:
            t = time.monotonic()
            rc, out = run_schemathesis(port, args.max_examples, args.max_seconds, work, bearer)
            print(f"schemathesis: exit {rc} after {time.monotonic() - t:.0f} s")
            print(out)
            failed |= rc > 0
        if proc.poll() is not None:
            print(f"FINDING server exited with {proc.returncode}")
            failed = True
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    tracebacks = request_tracebacks(log_text)
    print(f"server log: {tracebacks} tracebacks ({log_path})")
    if tracebacks:
        failed = True
        for m in re.finditer(r"unhandled error on .*|^\w*Error: .*$", log_text, re.M):
            print("  LOG", m.group(0)[:300])
    print(f"total: {time.monotonic() - t0:.0f} s, {'FINDINGS' if failed else 'clean'}")
    if not args.keep and not failed:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
