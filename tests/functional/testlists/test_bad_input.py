"""Every bad request to the editor is a 4xx with a JSON error and leaves the
working copy as it was (clean, same commit, same state); GitHub failures
are 503s after which the submit can be retried."""
from __future__ import annotations

from pathlib import Path

import pytest

from ooniapi.core.auth import session_token
from tests.functional.testlists.conftest import ALICE
from tests.functional.testlists.fake_github import git
from tests.functional.testlists.support import rows_of, upstream_file
from tests.functional.testlists.test_editor import (LIST, SUBMIT, UPDATE, entry, update, view,
                                                    worktree, wt_git)

GOOD = entry("https://good-example.org/")


def snapshot(client, h, cfg):
    wt = worktree(cfg, ALICE)
    head = wt_git(cfg, ALICE, "rev-parse", "HEAD") if wt.exists() else None
    files = {p.name: p.read_bytes() for p in (wt / "lists").glob("*.csv")} if wt.exists() else {}
    v = view(client, h, "it")
    return head, files, v["state"], v["changes"]


def assert_consistent(cfg):
    if worktree(cfg, ALICE).exists():
        assert wt_git(cfg, ALICE, "status", "--porcelain") == ""


def test_no_login(client):
    for method, path in (("GET", LIST + "it"), ("POST", UPDATE), ("POST", SUBMIT)):
        r = client.open(path, method=method, json={"country_code": "it", "new_entry": GOOD})
        assert r.status_code == 401 and r.json == {"error": "Authentication required"}
    r = client.get(LIST + "it", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and "error" in r.json


def _it_rows(remotes):
    return rows_of(upstream_file(remotes[0], "lists/it.csv"))


def _global_url(remotes):
    return rows_of(upstream_file(remotes[0], "lists/global.csv"))[0]["url"]


BAD_UPDATES = [
    # (description, body maker, status, err_str)
    ("country code not two letters", lambda r: {"country_code": "ita", "new_entry": GOOD},
     400, "err_invalid_country_code"),
    ("country code digits", lambda r: {"country_code": "1x", "new_entry": GOOD},
     400, "err_invalid_country_code"),
    ("country code not a string", lambda r: {"country_code": 39, "new_entry": GOOD},
     400, "err_invalid_country_code"),
    ("no list for the country", lambda r: {"country_code": "xy", "new_entry": GOOD},
     400, "err_country_not_supported"),
    ("no country code", lambda r: {"new_entry": GOOD}, 400, "err_request_params"),
    ("missing key", lambda r: {"country_code": "it", "new_entry": {
        k: v for k, v in GOOD.items() if k != "notes"}}, 400, "err_request_params"),
    ("extra key", lambda r: {"country_code": "it", "new_entry": dict(GOOD, user="x")},
     400, "err_request_params"),
    ("non-string value", lambda r: {"country_code": "it", "new_entry": dict(GOOD, notes=3)},
     400, "err_request_params"),
    ("entry not an object", lambda r: {"country_code": "it", "new_entry": ["x"]},
     400, "err_request_params"),
    ("multi-line notes", lambda r: {"country_code": "it",
                                    "new_entry": dict(GOOD, notes="a\nb")},
     400, "err_request_params"),
    ("comment not a string", lambda r: {"country_code": "it", "new_entry": GOOD,
                                        "comment": ["x"]}, 400, "err_request_params"),
    ("ftp URL", lambda r: {"country_code": "it", "new_entry": dict(GOOD, url="ftp://x.org/")},
     400, "err_bad_url"),
    ("javascript URL", lambda r: {"country_code": "it",
                                  "new_entry": dict(GOOD, url="javascript:alert(1)")},
     400, "err_bad_url"),
    ("URL without scheme", lambda r: {"country_code": "it",
                                      "new_entry": dict(GOOD, url="example.org/")},
     400, "err_bad_url"),
    ("URL without path", lambda r: {"country_code": "it",
                                    "new_entry": dict(GOOD, url="https://example.org")},
     400, "err_bad_url"),
    ("URL with spaces", lambda r: {"country_code": "it",
                                   "new_entry": dict(GOOD, url=" https://example.org/")},
     400, "err_bad_url"),
    ("URL with a tab", lambda r: {"country_code": "it",
                                  "new_entry": dict(GOOD, url="https://example.org/\t")},
     400, "err_bad_url"),
    ("category outside the legend", lambda r: {"country_code": "it",
                                               "new_entry": dict(GOOD, category_code="NOPE")},
     400, "err_bad_category_code"),
    ("bad date", lambda r: {"country_code": "it",
                            "new_entry": dict(GOOD, date_added="2024-13-01")},
     400, "err_bad_date"),
    ("date not padded", lambda r: {"country_code": "it",
                                   "new_entry": dict(GOOD, date_added="2024-1-01")},
     400, "err_bad_date"),
    ("row already in the country list", lambda r: {"country_code": "it",
                                                   "new_entry": entry(_it_rows(r)[0]["url"])},
     400, "err_duplicate_url"),
    ("row already in the global list", lambda r: {"country_code": "it",
                                                  "new_entry": entry(_global_url(r))},
     400, "err_duplicate_url"),
    ("edit to a URL already listed", lambda r: {
        "country_code": "it", "old_entry": _it_rows(r)[0],
        "new_entry": dict(_it_rows(r)[0], url=_it_rows(r)[1]["url"])},
     400, "err_duplicate_url"),
    ("stale old_entry (edit)", lambda r: {
        "country_code": "it", "old_entry": dict(_it_rows(r)[0], notes="not what is there"),
        "new_entry": dict(_it_rows(r)[0], notes="new")}, 400, "err_cannot_update_list"),
    ("stale old_entry (delete)", lambda r: {
        "country_code": "it", "old_entry": entry("https://never-listed.org/")},
     400, "err_cannot_update_list"),
    ("no change", lambda r: {"country_code": "it", "old_entry": _it_rows(r)[0],
                             "new_entry": _it_rows(r)[0]}, 400, "err_no_proposed_changes"),
    ("neither entry", lambda r: {"country_code": "it"}, 400, "err_no_proposed_changes"),
]


@pytest.mark.parametrize("in_progress", [False, True], ids=["clean", "in_progress"])
def test_bad_updates_change_nothing(client, headers, cfg, remotes, in_progress):
    h = headers()
    if in_progress:
        update(client, h, "it", new=entry("https://already-added.org/"))
    before = snapshot(client, h, cfg)
    for desc, make, status, err in BAD_UPDATES:
        r = client.post(UPDATE, json=make(remotes), headers=h)
        assert r.status_code == status, (desc, r.json)
        assert r.json["err_str"] == err, (desc, r.json)
        assert isinstance(r.json["error"], str) and r.json["error"], desc
        assert_consistent(cfg)
        assert snapshot(client, h, cfg) == before, desc
    for raw in (b"", b"not json", b"[1, 2]", b'{"country_code": NaN}'):
        r = client.post(UPDATE, data=raw, headers={**h, "Content-Type": "application/json"})
        assert r.status_code == 400 and r.json["err_str"] == "err_request_params", raw
    assert snapshot(client, h, cfg) == before


def test_bad_country_code_in_the_list_route(client, headers):
    for cc in ("ita", "i", "1x", "gl0bal", "it.csv"):
        r = client.get(LIST + cc, headers=headers())
        assert r.status_code == 400 and r.json["err_str"] == "err_invalid_country_code", cc


def test_duplicate_of_own_pending_addition(client, headers, cfg):
    h = headers()
    update(client, h, "it", new=GOOD)
    r = client.post(UPDATE, json={"country_code": "it", "new_entry": GOOD}, headers=h)
    assert r.status_code == 400 and r.json["err_str"] == "err_duplicate_url"
    assert r.json["err_args"] == {"url": GOOD["url"]}
    assert_consistent(cfg)


def test_old_entry_invalid_in_upstream_can_still_be_deleted(client, headers, cfg, remotes):
    """Rows the updater drops (e.g. no scheme) are listed; deleting one must
    not need it to pass the checks of a new entry."""
    rows = _it_rows(remotes)
    h = headers()
    # Put such a row upstream through the editor's own view of a list.
    from tests.functional.testlists.support import commit_upstream
    it = upstream_file(remotes[0], "lists/it.csv")
    commit_upstream(remotes[0], "lists/it.csv", it + "www.no-scheme.it,NEWS,News Media,,,\n",
                    "legacy row")
    bad = {"url": "www.no-scheme.it", "category_code": "NEWS", "date_added": "",
           "source": "", "notes": ""}
    assert bad in view(client, h, "it")["test_list"]
    update(client, h, "it", old=bad)
    assert view(client, h, "it")["test_list"] == rows


def test_submit_with_nothing_to_submit(client, headers, cfg, github):
    h = headers()
    r = client.post(SUBMIT, headers=h)
    assert r.status_code == 400 and r.json["err_str"] == "err_no_proposed_changes"
    # An addition then its deletion: commits, but nothing differs from upstream.
    update(client, h, "it", new=GOOD)
    update(client, h, "it", old=GOOD)
    assert view(client, h, "it")["changes"] == {}
    r = client.post(SUBMIT, headers=h)
    assert r.status_code == 400 and r.json["err_str"] == "err_no_proposed_changes"
    assert view(client, h, "it")["state"] == "CLEAN"
    assert github.pulls == {}


def test_second_submit_while_pr_open(client, headers, cfg, github):
    h = headers()
    update(client, h, "it", new=GOOD)
    assert client.post(SUBMIT, headers=h).status_code == 200
    head = wt_git(cfg, ALICE, "rev-parse", "HEAD")
    r = client.post(SUBMIT, headers=h)
    assert r.status_code == 409 and r.json["err_str"] == "err_pr_already_open"
    assert r.json["err_args"]["pr_url"].startswith("https://github.com/citizenlab/test-lists/pull/")
    assert len(github.pulls) == 1 and len(github.open_pulls()) == 1
    assert wt_git(cfg, ALICE, "rev-parse", "HEAD") == head
    assert view(client, h, "it")["state"] == "PR_OPEN"


def test_github_down_mid_submit_is_retryable(client, headers, cfg, remotes, github):
    _, fork = remotes
    h = headers()
    update(client, h, "it", new=GOOD)
    github.fail_next = [502] * 3  # the first try and both retries
    r = client.post(SUBMIT, headers=h)
    assert r.status_code == 503 and "GitHub" in r.json["error"]
    assert github.pulls == {}
    doc = view(client, h, "it")
    assert doc["state"] == "IN_PROGRESS" and GOOD in doc["test_list"]
    assert_consistent(cfg)
    # The branch was pushed before GitHub failed; the retry pushes it again.
    assert GOOD["url"] in git("--git-dir", str(fork), "show",
                              f"user-contribution/{ALICE}:lists/it.csv")
    r = client.post(SUBMIT, headers=h)
    assert r.status_code == 200, r.json
    assert view(client, h, "it")["state"] == "PR_OPEN"
    assert len(github.pulls) == 1


def test_lost_answer_to_pr_creation_adopts_the_open_pr(client, headers, github):
    h = headers()
    update(client, h, "it", new=GOOD)
    github.lose_next_create_answer = True
    r = client.post(SUBMIT, headers=h)
    assert r.status_code == 200, r.json
    (pr,) = github.pulls.values()
    assert r.json["pr_id"].endswith(f"/pulls/{pr.number}")
    assert view(client, h, "it")["pr_url"].endswith(f"/pull/{pr.number}")


def test_fork_unreachable_is_503_and_keeps_the_changes(client, headers, cfg, db, github,
                                                       tmp_path):
    from ooniapi.core.app import create_app
    bad = create_app(cfg.with_overrides(GITHUB_PUSH_URL=str(tmp_path / "no-such-fork.git")),
                     db=db, notify_fastpath=lambda *a: None).test_client()
    h = headers()
    update(bad, h, "it", new=GOOD)
    r = bad.post(SUBMIT, headers=h)
    assert r.status_code == 503 and "ooni-bot/test-lists" in r.json["error"]
    assert github.pulls == {}
    assert view(bad, h, "it")["state"] == "IN_PROGRESS"
    assert_consistent(cfg)


def test_github_refusing_our_token(client, headers, cfg, github):
    h = headers()
    update(client, h, "it", new=GOOD)
    github.token = "another-token"
    r = client.post(SUBMIT, headers=h)
    assert r.status_code == 503 and "401" in r.json["error"]
    assert view(client, h, "it")["state"] == "IN_PROGRESS"


def test_github_down_while_pr_open(client, headers, cfg, github):
    h = headers()
    update(client, h, "it", new=GOOD)
    assert client.post(SUBMIT, headers=h).status_code == 200
    head = wt_git(cfg, ALICE, "rev-parse", "HEAD")
    github.fail_next = [503] * 30
    # Reading degrades to the last known state...
    doc = view(client, h, "it")
    assert doc["state"] == "PR_OPEN" and GOOD in doc["test_list"]
    # ...editing needs GitHub (the open PR must be closed first).
    r = client.post(UPDATE, headers=h, json={"country_code": "it",
                                             "new_entry": entry("https://other.org/")})
    assert r.status_code == 503 and r.json["error"]
    assert wt_git(cfg, ALICE, "rev-parse", "HEAD") == head
    github.fail_next = []
    assert view(client, h, "it")["state"] == "PR_OPEN"


def test_cannot_close_a_pr_merged_meanwhile(client, headers, cfg, github):
    """GitHub refuses to close (the PR got merged between poll and close)."""
    h = headers()
    update(client, h, "it", new=GOOD)
    assert client.post(SUBMIT, headers=h).status_code == 200
    (pr,) = github.pulls.values()
    orig = github.handle

    def merged_on_close(method, path, hdrs, body):
        if method == "PATCH":
            github.pulls[pr.number].merged = True
        return orig(method, path, hdrs, body)

    github.handle = merged_on_close
    r = client.post(UPDATE, headers=h, json={"country_code": "it",
                                             "new_entry": entry("https://other.org/")})
    assert r.status_code == 400 and r.json["err_str"] == "err_cannot_close_pr"
    assert_consistent(cfg)


def test_probe_and_other_tokens_are_refused(client, cfg):
    tok = session_token(cfg, ALICE, "probe")
    r = client.get(LIST + "it", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 401 and r.json["error"]


def test_upstream_unreachable_before_the_first_fetch(cfg, db, headers, tmp_path):
    from ooniapi.core.app import create_app
    c = create_app(cfg.with_overrides(GITHUB_ORIGIN_URL=str(tmp_path / "gone.git")),
                   db=db, notify_fastpath=lambda *a: None).test_client()
    r = c.get(LIST + "it", headers=headers())
    assert r.status_code == 503 and "citizenlab/test-lists" in r.json["error"]
    r = c.post(UPDATE, headers=headers(), json={"country_code": "it", "new_entry": GOOD})
    assert r.status_code == 503
    # Checked before any git or GitHub work: the same answer as when all is up.
    r = c.get(LIST + "ita", headers=headers())
    assert r.status_code == 400 and r.json["err_str"] == "err_invalid_country_code"


def test_upstream_unreachable_later_serves_the_last_fetch(client, headers, cfg, remotes,
                                                          tmp_path):
    upstream, _ = remotes
    h = headers()
    want = view(client, h, "it")["test_list"]
    upstream.rename(tmp_path / "moved.git")
    assert view(client, h, "it")["test_list"] == want
    update(client, h, "it", new=GOOD)
    r = client.post(SUBMIT, headers=h)  # submit needs a fresh upstream
    assert r.status_code == 503 and r.json["error"]
    assert view(client, h, "it")["state"] == "IN_PROGRESS"


def test_pr_gone_from_github_frees_the_account(client, headers, github):
    h = headers()
    update(client, h, "it", new=GOOD)
    assert client.post(SUBMIT, headers=h).status_code == 200
    github.pulls.clear()  # GitHub answers 404 for it now
    assert view(client, h, "it")["state"] == "CLEAN"
    update(client, h, "it", new=GOOD)
    assert view(client, h, "it")["state"] == "IN_PROGRESS"


def test_damaged_state_files_are_repaired(client, headers, cfg):
    h = headers()
    update(client, h, "it", new=GOOD)
    d = cfg.data_dir / "testlists" / "users" / ALICE
    (d / "state.json").write_text('{"state": "PR_OPEN"')
    (d / "journal.json").write_text("garbage")
    doc = view(client, h, "it")
    assert doc["state"] == "IN_PROGRESS" and GOOD in doc["test_list"]
    (d / "state.json").write_text('{"state": "PR_OPEN", "pr_number": null}')
    assert view(client, h, "it")["state"] == "IN_PROGRESS"
    assert client.post(SUBMIT, headers=h).status_code == 200


def test_non_ascii_account_id_is_refused(client, cfg):
    tok = session_token(cfg, "é" * 8, "user")
    r = client.get(LIST + "it", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 403 and r.json["error"]


def test_failed_commit_releases_the_lock_and_is_undone(client, headers, cfg):
    """git refusing to commit (here: a stale index.lock) is a 500 that
    leaves no half-applied change and no held lock behind."""
    h = headers()
    update(client, h, "it", new=GOOD)
    head = wt_git(cfg, ALICE, "rev-parse", "HEAD")
    gitdir = git("rev-parse", "--absolute-git-dir", cwd=worktree(cfg, ALICE))
    lock = Path(gitdir) / "index.lock"
    lock.write_text("")
    other = entry("https://not-committed.org/")
    r = client.post(UPDATE, headers=h, json={"country_code": "it", "new_entry": other})
    assert r.status_code == 500 and r.json["error"]
    lock.unlink()
    doc = view(client, h, "it")  # would wait and 409 if the lock were still held
    assert other not in doc["test_list"] and GOOD in doc["test_list"]
    assert wt_git(cfg, ALICE, "status", "--porcelain") == ""
    assert wt_git(cfg, ALICE, "rev-parse", "HEAD") == head
    assert [c["url"] for c in doc["changes"]["it"]] == [GOOD["url"]]
