"""OONI Run v2 against the real ``ooni-backend run`` process, as its clients
use it: run.ooni.org logs in through ooniauth v2 (the mail caught by the
SMTP sink), creates a link with a dynamic list, edits it twice and lists
its links; the OONI Probe 5 app fetches the link; probe-cli fetches the
engine descriptor with the list resolved from the test lists the
citizenlab job loaded."""
from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.standalone_process import BIN, standalone
from tests.functional.smtp_sink import SmtpSink

pytestmark = pytest.mark.e2e

EMAIL = "organizer@example.org"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PROBE_CLI_UA = "miniooni/3.22.0 (linux) ooniprobe-engine/3.22.0"
GLOBAL = [(f"https://news{i}.example.org/", "NEWS") for i in range(30)]
ITALY = [(f"https://italia{i}.example.it/", "POLR") for i in range(5)]


def call(base, method, path, body=None, headers=None):
    h = {"User-Agent": BROWSER_UA, **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def load_test_lists(tmp_path, env, data_dir) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed (needed by the citizenlab job)")
    repo = tmp_path / "test-lists"
    (repo / "lists").mkdir(parents=True)
    for name, items in (("global", GLOBAL), ("it", ITALY)):
        lines = ["url,category_code,category_description,date_added,source,notes"]
        lines += [f"{u},{c},x,2020-01-01,," for u, c in items]
        (repo / "lists" / f"{name}.csv").write_text("\n".join(lines) + "\n")
    git = ["git", "-C", str(repo), "-c", "user.name=e2e", "-c", "user.email=e2e@example.org"]
    for args in (["init", "-q", "-b", "master"], ["add", "-A"], ["commit", "-q", "-m", "lists"]):
        subprocess.run(git + args, check=True, capture_output=True)
    jenv = dict(env, OONI_CITIZENLAB_REPO_URL=str(repo), OONI_CITIZENLAB_MIN_ROWS="1")
    r = subprocess.run([str(BIN), "job", "citizenlab", "--data-dir", str(data_dir)],
                       env=jenv, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.fixture
def sink():
    with SmtpSink() as s:
        yield s


@pytest.fixture
def backend(tmp_path, subprocess_env, port, sink):
    data_dir = tmp_path / "data"
    env = {**subprocess_env, "OONI_MAIL_SERVER": "127.0.0.1", "OONI_MAIL_PORT": str(sink.port),
           "OONI_MAIL_USE_SSL": "false", "OONI_MAIL_SOURCE_ADDRESS": "noreply@example.org",
           "OONI_JOB_START_DELAY": "3600", "OONI_RATE_LIMIT_ENABLED": "false"}
    if not BIN.exists():
        pytest.skip(f"{BIN} not installed (pip install -e .)")
    load_test_lists(tmp_path, env, data_dir)
    with standalone(tmp_path, port, env, data_dir) as base:
        yield base


def login_v2(base, sink) -> dict[str, str]:
    status, doc = call(base, "POST", "/api/v2/ooniauth/user-login",
                       {"email_address": EMAIL, "redirect_to": "https://run.ooni.org/"})
    assert status == 200, doc
    assert doc["email_address"] == EMAIL and doc["login_token_expiration"]
    got = sink.messages[-1]
    assert got.mail_from == "noreply@example.org" and got.rcpt_to == [EMAIL]
    url = re.search(r"https://\S+", got.message.get_body(("plain",)).get_content()).group(0)
    assert url.startswith("https://run.ooni.org/login?token=")
    token = parse_qs(urlsplit(url).query)["token"][0]
    status, doc = call(base, "POST", "/api/v2/ooniauth/user-session", {"login_token": token})
    assert status == 200, doc
    assert (doc["email_address"], doc["role"], doc["is_logged_in"]) == (EMAIL, "user", True)
    auth = {"Authorization": "Bearer " + doc["session_token"]}
    status, me = call(base, "GET", "/api/v2/ooniauth/user-session", headers=auth)
    assert (status, me["is_logged_in"], me["email_address"]) == (200, True, EMAIL)
    # refreshed as run.ooni.org does on load
    status, doc = call(base, "POST", "/api/v2/ooniauth/user-session", headers=auth)
    assert status == 200, doc
    return {"Authorization": "Bearer " + doc["session_token"]}


def assert_probe5_decodes(doc: dict) -> None:
    """Every key the OONI Probe 5 app's descriptor decoder requires, of its type."""
    for key in ("oonirun_link_id", "name", "short_description", "description", "author",
                "revision", "date_created", "date_updated", "expiration_date"):
        assert isinstance(doc.get(key), str), key
    for key in ("name_intl", "short_description_intl", "description_intl", "icon", "color"):
        assert key in doc, key  # null allowed
    for key in ("name_intl", "short_description_intl", "description_intl"):
        assert doc[key] is None or all(isinstance(v, str) for v in doc[key].values())
    dt.datetime.strptime(doc["expiration_date"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert isinstance(doc["is_expired"], bool) and isinstance(doc["is_mine"], bool)
    assert isinstance(doc["nettests"], list)
    for nt in doc["nettests"]:
        assert isinstance(nt["test_name"], str)
        assert isinstance(nt["inputs"], list) and all(isinstance(x, str) for x in nt["inputs"])
        assert isinstance(nt["options"], dict)
        for flag in ("is_background_run_enabled_default", "is_manual_run_enabled_default"):
            assert isinstance(nt[flag], bool)


def assert_probe_cli_decodes(doc: dict) -> None:
    """The Go engine's types (probe-protocol.md §3.15)."""
    for key in ("name", "description", "author", "revision", "date_created"):
        assert isinstance(doc[key], str), key
    for nt in doc["nettests"]:
        assert isinstance(nt["test_name"], str) and isinstance(nt["options"], dict)
        assert isinstance(nt["inputs"], list) and all(isinstance(x, str) for x in nt["inputs"])
        assert isinstance(nt["inputs_extra"], list) and isinstance(nt["targets_name"], str)
        for flag in ("is_background_run_enabled", "is_manual_run_enabled"):
            assert nt[flag] is None or isinstance(nt[flag], bool)


def test_run_ooni_org_probe5_and_probe_cli(backend, sink):
    base = backend
    auth = login_v2(base, sink)
    link = {
        "name": "Italian news", "short_description": "News sites in Italy",
        "description": "Tests the prioritized news sites for your network",
        "author": EMAIL, "icon": "FaNewspaper", "color": "#3498db",
        "name_intl": {"it": "Notizie italiane"},
        "nettests": [{"test_name": "web_connectivity",
                      "targets_name": "websites_list_prioritized",
                      "is_manual_run_enabled_default": True},
                     {"test_name": "dnscheck", "inputs": ["https://dns.google/dns-query"]}],
    }
    status, created = call(base, "POST", "/api/v2/oonirun/links", link, auth)
    assert status == 200, created
    lid = created["oonirun_link_id"]
    assert created["revision"] == "1" and created["is_mine"] is True

    # edit 1: texts only; edit 2: nettests -> revision 2
    status, e1 = call(base, "PUT", f"/api/v2/oonirun/links/{lid}",
                      dict(created, description_intl={"it": "Siti di notizie"}), auth)
    assert status == 200, e1
    assert e1["revision"] == "1"
    e2_body = dict(e1)
    e2_body["nettests"] = e1["nettests"] + [{"test_name": "signal"}]
    status, e2 = call(base, "PUT", f"/api/v2/oonirun/links/{lid}", e2_body, auth)
    assert (status, e2["revision"]) == (200, "2"), e2

    status, mine = call(base, "GET", "/api/v2/oonirun/links?is_mine=true&is_expired=false",
                        headers=auth)
    assert status == 200
    assert [(x["oonirun_link_id"], x["revision"], x["is_mine"]) for x in mine["oonirun_links"]] \
        == [(lid, "2", True)]
    status, revs = call(base, "GET", f"/api/v2/oonirun/links/{lid}/revisions")
    assert revs == {"revisions": ["2", "1"]}
    status, full = call(base, "GET", f"/api/v2/oonirun/links/{lid}/full-descriptor/1",
                        headers=auth)
    assert status == 200 and len(full["nettests"]) == 2

    # the OONI Probe 5 app adds the link
    status, doc = call(base, "GET", f"/api/v2/oonirun/links/{lid}",
                       headers={"User-Agent": "ooniprobe-android/5.0.0"})
    assert status == 200, doc
    assert_probe5_decodes(doc)
    assert (doc["revision"], doc["is_expired"], doc["is_mine"]) == ("2", False, False)
    assert doc["short_description_intl"] is None and doc["description_intl"] == \
        {"it": "Siti di notizie"}

    # probe-cli runs it: the dynamic list resolved for its network
    meta = {"run_type": "manual", "is_charging": True, "probe_cc": "IT",
            "probe_asn": "AS30722", "network_type": "wifi", "website_category_codes": []}
    status, eng = call(base, "POST", f"/api/v2/oonirun/links/{lid}/engine-descriptor/latest",
                       meta, {"User-Agent": PROBE_CLI_UA,
                              "x-ooni-networkinfo": "AS30722,IT (wifi)"})
    assert status == 200, eng
    assert_probe_cli_decodes(eng)
    wc = eng["nettests"][0]
    assert wc["test_name"] == "web_connectivity" and wc["targets_name"] == ""
    assert set(wc["inputs"]) == {u for u, _ in GLOBAL + ITALY}
    assert [e["category_code"] for e in wc["inputs_extra"]] == \
        [dict(GLOBAL + ITALY)[u] for u in wc["inputs"]]
    assert eng["nettests"][1]["inputs"] == ["https://dns.google/dns-query"]
    # a timed run on battery gets the check-in's 20
    status, eng = call(base, "POST", f"/api/v2/oonirun/links/{lid}/engine-descriptor/2",
                       dict(meta, run_type="timed", is_charging=False),
                       {"User-Agent": PROBE_CLI_UA})
    assert status == 200 and len(eng["nettests"][0]["inputs"]) == 20
    # bad metadata is a 400, never a 500
    status, err = call(base, "POST", f"/api/v2/oonirun/links/{lid}/engine-descriptor/latest",
                       dict(meta, network_type="pigeon"), {"User-Agent": PROBE_CLI_UA})
    assert status == 400 and "network_type" in err["error"]

    # the link made here is served by the v1 UI routes too
    status, v1 = call(base, "GET", f"/api/_/ooni_run/fetch/{lid}")
    assert status == 200 and v1["descriptor"]["name"] == "Italian news"
