"""The test-list editor (api.md §10.1-10.4) over local bare repositories for
upstream and the fork, and the fake GitHub server: edits by two accounts in
two countries, submit, merge and close upstream, upstream moving under an
open edit, and concurrent requests of one account."""
from __future__ import annotations

import threading

import pytest

from tests.functional.testlists.conftest import ALICE, BOB
from tests.functional.testlists.fake_github import git
from tests.functional.testlists.support import (commit_upstream, rows_of, upstream_file)

LIST = "/api/_/url-submission/test-list/"
UPDATE = "/api/v1/url-submission/update-url"
SUBMIT = "/api/v1/url-submission/submit"


def entry(url, code="NEWS", date="2024-01-31", source="", notes="") -> dict:
    return {"url": url, "category_code": code, "date_added": date, "source": source,
            "notes": notes}


def view(client, h, cc):
    r = client.get(LIST + cc, headers=h)
    assert r.status_code == 200, r.json
    return r.json


def update(client, h, cc, old=None, new=None, comment="", status=200):
    body = {"country_code": cc, "comment": comment, "old_entry": old or {},
            "new_entry": new or {}}
    r = client.post(UPDATE, json=body, headers=h)
    assert r.status_code == status, r.json
    return r.json


def worktree(cfg, account):
    return cfg.data_dir / "testlists" / "users" / account / "test-lists"


def wt_git(cfg, account, *args):
    return git(*args, cwd=worktree(cfg, account))


def test_views_upstream_when_clean(client, headers, remotes):
    upstream, _ = remotes
    doc = view(client, headers(), "IT")
    assert doc["state"] == "CLEAN" and doc["pr_url"] is None and doc["changes"] == {}
    assert doc["test_list"] == rows_of(upstream_file(upstream, "lists/it.csv"))
    assert view(client, headers(), "global")["test_list"] == \
        rows_of(upstream_file(upstream, "lists/global.csv"))
    # A well-formed code without a list (legacy: null, not an error).
    assert view(client, headers(), "xy")["test_list"] is None


def test_two_accounts_two_countries_add_edit_delete(client, headers, cfg, remotes):
    upstream, _ = remotes
    it_up = rows_of(upstream_file(upstream, "lists/it.csv"))
    de_up = rows_of(upstream_file(upstream, "lists/de.csv"))
    alice, bob = headers(ALICE), headers(BOB)

    # Alice: add and delete in it, edit in de.
    added = entry("https://alice-example.org/news/", "NEWS", notes="added, by alice")
    assert update(client, alice, "it", new=added, comment="Add alice-example") == \
        {"updated_entry": added}
    update(client, alice, "IT", old=it_up[0], comment="Remove a dead site")
    edited = dict(de_up[1], notes="edited by alice", category_code="POLR")
    update(client, alice, "de", old=de_up[1], new=edited, comment="Recategorise")
    # Bob: add in de.
    bob_new = entry("https://bob-example.net/", "HUMR")
    update(client, bob, "de", new=bob_new)

    a_it = view(client, alice, "it")
    assert a_it["state"] == "IN_PROGRESS" and a_it["pr_url"] is None
    assert a_it["test_list"] == it_up[1:] + [added]
    a_de = view(client, alice, "de")
    assert a_de["test_list"] == de_up[:1] + [edited] + de_up[2:]
    assert bob_new not in a_de["test_list"]
    b_de = view(client, bob, "de")
    assert b_de["test_list"] == de_up + [bob_new]
    assert edited not in b_de["test_list"]
    assert view(client, bob, "it")["test_list"] == it_up
    # Upstream is untouched until a PR is merged.
    assert rows_of(upstream_file(upstream, "lists/it.csv")) == it_up

    desc = {"NEWS": "News Media", "POLR": "Political Criticism", "HUMR": "Human Rights Issues"}
    d = lambda e: dict(e, category_description=desc.get(e["category_code"],  # noqa: E731
                                                        e.get("category_description", "")))
    assert a_it["changes"] == {
        "it": [dict(d(added), action="add"),
               dict(it_up[0], category_description=_description(it_up[0]), action="delete")],
        "de": [dict(d(edited), action="add")]}
    assert b_de["changes"] == {"de": [dict(d(bob_new), action="add")]}

    # Real commits, one per change, authored by the account, named after it.
    log = wt_git(cfg, ALICE, "log", "--format=%ae|%s|%b", "-3").split("\n")
    assert all(line.startswith(f"{ALICE}@") for line in log if "|" in line)
    subjects = wt_git(cfg, ALICE, "log", "--format=%s", "-3").splitlines()
    assert subjects == ["Recategorise", "Remove a dead site", "Add alice-example"]
    body = wt_git(cfg, ALICE, "log", "--format=%b", "-1")
    assert f"Edit {de_up[1]['url']} in lists/de.csv" in body
    for acc in (ALICE, BOB):
        assert wt_git(cfg, acc, "status", "--porcelain") == ""
    # Only the changed rows differ: the rest of the file is byte for byte upstream's.
    diff = wt_git(cfg, ALICE, "diff", "refs/remotes/origin/master", "--", "lists/it.csv")
    assert sum(1 for line in diff.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))) == 2
    text = (worktree(cfg, ALICE) / "lists" / "it.csv").read_text()
    assert text.endswith('https://alice-example.org/news/,NEWS,News Media,2024-01-31,,'
                         '"added, by alice"\n')


def _description(row) -> str:
    from ooni_common.testlists import CATEGORY_DESCRIPTIONS
    return CATEGORY_DESCRIPTIONS[row["category_code"]]


def test_submit_merged_upstream_back_to_clean(client, headers, cfg, remotes, github):
    upstream, fork = remotes
    h = headers()
    new = entry("https://merged-example.org/", "HUMR")
    update(client, h, "it", new=new, comment="Add merged-example")
    r = client.post(SUBMIT, headers=h)
    assert r.status_code == 200, r.json
    (pr,) = github.open_pulls()
    assert r.json == {"pr_id": f"{github.url}/repos/citizenlab/test-lists/pulls/{pr.number}"}
    assert pr.head == f"ooni-bot:user-contribution/{ALICE}" and pr.base == "master"
    assert pr.title == "Contribution from test-lists.ooni.org"
    assert "Add https://merged-example.org/ (HUMR) to lists/it.csv" in pr.body
    # The branch on the fork is what the worktree holds.
    assert pr.head_sha == wt_git(cfg, ALICE, "rev-parse", "HEAD")
    pushed = git("--git-dir", str(fork), "show", f"user-contribution/{ALICE}:lists/it.csv")
    assert "https://merged-example.org/" in pushed

    doc = view(client, h, "it")
    assert doc["state"] == "PR_OPEN"
    assert doc["pr_url"] == f"https://github.com/citizenlab/test-lists/pull/{pr.number}"
    assert new in doc["test_list"]

    github.merge(pr.number)
    doc = view(client, h, "it")
    assert doc["state"] == "CLEAN" and doc["changes"] == {} and doc["pr_url"] is None
    assert new in doc["test_list"]
    assert doc["test_list"] == rows_of(upstream_file(upstream, "lists/it.csv"))
    assert not worktree(cfg, ALICE).exists()
    shared = cfg.data_dir / "testlists" / "test-lists.git"
    assert git("--git-dir", str(shared), "branch", "--list", f"user-contribution/{ALICE}") == ""
    # And editing starts afresh from the new upstream.
    update(client, h, "it", old=new, comment="Remove it again")
    assert view(client, h, "it")["state"] == "IN_PROGRESS"


def test_pr_closed_unmerged_drops_the_changes(client, headers, cfg, remotes, github):
    upstream, _ = remotes
    h = headers()
    new = entry("https://rejected-example.org/")
    update(client, h, "de", new=new)
    assert client.post(SUBMIT, headers=h).status_code == 200
    (pr,) = github.open_pulls()
    github.close(pr.number)
    doc = view(client, h, "de")
    assert doc["state"] == "CLEAN" and doc["changes"] == {}
    assert new not in doc["test_list"]
    assert doc["test_list"] == rows_of(upstream_file(upstream, "lists/de.csv"))


def test_editing_while_pr_open_closes_it_and_resubmits_everything(client, headers, github,
                                                                  remotes):
    _, fork = remotes
    h = headers()
    a, b = entry("https://first-example.org/"), entry("https://second-example.org/")
    update(client, h, "it", new=a)
    assert client.post(SUBMIT, headers=h).status_code == 200
    (first,) = github.open_pulls()
    update(client, h, "it", new=b)
    assert github.pulls[first.number].state == "closed"
    doc = view(client, h, "it")
    assert doc["state"] == "IN_PROGRESS" and doc["pr_url"] is None
    assert client.post(SUBMIT, headers=h).status_code == 200
    (second,) = github.open_pulls()
    assert second.number != first.number
    pushed = git("--git-dir", str(fork), "show", f"user-contribution/{ALICE}:lists/it.csv")
    assert a["url"] in pushed and b["url"] in pushed


def test_upstream_moved_elsewhere_rebases(client, headers, cfg, remotes):
    upstream, _ = remotes
    h = headers()
    new = entry("https://rebase-example.org/")
    update(client, h, "it", new=new, comment="Mine")
    de = upstream_file(upstream, "lists/de.csv")
    commit_upstream(upstream, "lists/de.csv",
                    de + "https://upstream-only.de/,NEWS,News Media,2024-02-01,,\n", "Theirs")
    doc = view(client, h, "de")
    assert doc["state"] == "IN_PROGRESS"
    assert doc["test_list"][-1]["url"] == "https://upstream-only.de/"
    assert new in view(client, h, "it")["test_list"]
    up_head = git("--git-dir", str(upstream), "rev-parse", "master")
    assert wt_git(cfg, ALICE, "rev-parse", "HEAD~1") == up_head
    assert wt_git(cfg, ALICE, "log", "-1", "--format=%s") == "Mine"


def test_upstream_conflicting_change_is_replayed(client, headers, cfg, remotes):
    upstream, _ = remotes
    h = headers()
    mine = entry("https://replay-example.org/")
    update(client, h, "it", new=mine, comment="Mine")
    # Upstream appends to the same file: the rebase conflicts at the end of it.
    it = upstream_file(upstream, "lists/it.csv")
    commit_upstream(upstream, "lists/it.csv",
                    it + "https://theirs-example.it/,NEWS,News Media,2024-02-01,,\n", "Theirs")
    doc = view(client, h, "it")
    assert doc["state"] == "IN_PROGRESS"
    urls = [e["url"] for e in doc["test_list"]]
    assert urls[-2:] == ["https://theirs-example.it/", mine["url"]]
    assert wt_git(cfg, ALICE, "status", "--porcelain") == ""
    assert wt_git(cfg, ALICE, "log", "-1", "--format=%s") == "Mine"
    assert wt_git(cfg, ALICE, "rev-parse", "HEAD~1") == \
        git("--git-dir", str(upstream), "rev-parse", "master")
    assert doc["changes"] == {"it": [dict(mine, category_description="News Media",
                                          action="add")]}


def test_upstream_making_the_change_itself_returns_to_clean(client, headers, cfg, remotes):
    upstream, _ = remotes
    h = headers()
    mine = entry("https://same-example.org/")
    update(client, h, "it", new=mine)
    it = upstream_file(upstream, "lists/it.csv")
    commit_upstream(upstream, "lists/it.csv",
                    it + "https://same-example.org/,NEWS,News Media,2024-01-31,,\n", "Same")
    doc = view(client, h, "it")
    assert doc["state"] == "CLEAN" and doc["changes"] == {}
    assert [e["url"] for e in doc["test_list"]].count(mine["url"]) == 1


def test_concurrent_updates_of_one_account(cfg, db, headers):
    from ooniapi.core.app import create_app
    # Long enough a wait that every request gets its turn on this machine.
    app = create_app(cfg.with_overrides(TESTLISTS_LOCK_TIMEOUT="120"), db=db,
                     notify_fastpath=lambda *a: None)
    h = headers()
    n = 8
    results: list[int] = []
    barrier = threading.Barrier(n)

    def add(i):
        c = app.test_client()
        barrier.wait()
        r = c.post(UPDATE, headers=h, json={
            "country_code": "it", "comment": f"add {i}", "old_entry": {},
            "new_entry": entry(f"https://concurrent-{i}.example.org/")})
        results.append(r.status_code)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = results.count(200)
    assert results == [200] * n
    assert wt_git(cfg, ALICE, "status", "--porcelain") == ""
    git("fsck", "--no-dangling", cwd=worktree(cfg, ALICE))
    text = (worktree(cfg, ALICE) / "lists" / "it.csv").read_text()
    urls = [e["url"] for e in rows_of(text) if "concurrent-" in e["url"]]
    assert len(urls) == len(set(urls)) == ok
    assert len(wt_git(cfg, ALICE, "log", "--format=%s", "refs/remotes/origin/master..HEAD")
               .splitlines()) == ok
    assert len(view(app.test_client(), h, "it")["changes"]["it"]) == ok
