"""Archiving an OONI Run link while its owner edits it (issue 16, defect 3):
the archive is never undone. Either the edit comes first (and its version
is archived too), or it finds the link changed and answers 409 (v2: 403
once it reads the link expired) with nothing written."""
from __future__ import annotations

import threading

import pytest

from ooniapi.oonirun import store
from tests.functional.oonirun.support import link, v2_headers

RUNS = 50


def all_archived(db, lid: int) -> bool:
    r = db.execute("SELECT count(), min(archived) FROM oonirun FINAL "
                   "WHERE ooni_run_link_id = {id:UInt64}", {"id": lid})
    return r[0][0] > 0 and r[0][1] == 1


def race(app, calls):
    """Runs the calls at once, each in its own thread with its own client."""
    results: list = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i, fn):
        c = app.test_client()
        barrier.wait()
        results[i] = fn(c)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _v1_create(client, h, body, lid=None):
    q = f"?ooni_run_link_id={lid}" if lid else ""
    return client.post("/api/_/ooni_run/create" + q, headers=h, json=body)


@pytest.mark.parametrize("structural", [False, True])
def test_v1_edit_racing_archive(app, client, cfg, db, structural):
    h = v2_headers(cfg)
    outcomes = set()
    for i in range(RUNS):
        body = {"name": f"Link {i}", "author": "alice@example.org",
                "nettests": [{"test_name": "dnscheck"}]}
        lid = _v1_create(client, h, body).get_json()["ooni_run_link_id"]
        new = dict(body, name=f"Edited {i}")
        if structural:
            new["nettests"] = [{"test_name": "web_connectivity"}]
        archive, edit = race(app, [
            lambda c: c.post(f"/api/_/ooni_run/archive/{lid}", headers=h),
            lambda c: _v1_create(c, h, new, lid),
        ])
        assert archive.status_code == 200
        assert edit.status_code in (200, 409), edit.get_json()
        outcomes.add(edit.status_code)
        assert all_archived(db, lid), f"run {i}: archive undone by a concurrent edit"
        name = client.get(f"/api/_/ooni_run/fetch/{lid}").get_json()["descriptor"]["name"]
        assert name == (new["name"] if edit.status_code == 200 else body["name"])
    print("edit outcomes:", outcomes)


def test_v2_edit_racing_archive(app, client, cfg, db):
    h = v2_headers(cfg)
    for i in range(RUNS):
        j = client.post("/api/v2/oonirun/links", headers=h, json=link(name=f"Link {i}")).get_json()
        lid = j["oonirun_link_id"]
        new = dict(j, name=f"Edited {i}", nettests=[{"test_name": "dnscheck"}])
        archive, edit = race(app, [
            lambda c: c.post(f"/api/_/ooni_run/archive/{lid}", headers=h),
            lambda c: c.put(f"/api/v2/oonirun/links/{lid}", headers=h, json=new),
        ])
        assert archive.status_code == 200
        assert edit.status_code in (200, 403, 409), edit.get_json()
        assert all_archived(db, int(lid)), f"run {i}: archive undone by a concurrent edit"
        g = client.get(f"/api/v2/oonirun/links/{lid}").get_json()
        assert g["is_expired"] is True and g["is_archived"] is True
        assert g["name"] == (new["name"] if edit.status_code == 200 else j["name"])


def test_edit_that_read_before_an_archive_gets_409(app, client, cfg, db, monkeypatch):
    """The interleaving of the race, made certain: the archive lands after
    the edit read the link and before it writes."""
    h = v2_headers(cfg)
    j = client.post("/api/v2/oonirun/links", headers=h, json=link()).get_json()
    lid = int(j["oonirun_link_id"])
    j2 = client.post("/api/v2/oonirun/links", headers=h, json=link(name="Second")).get_json()
    lid2 = int(j2["oonirun_link_id"])
    real_head_of = store.head_of

    def archive_meanwhile(vs):
        seen = real_head_of(vs)
        store.archive(db, vs[0].ooni_run_link_id, None)
        return seen

    monkeypatch.setattr(store, "head_of", archive_meanwhile)
    n = db.execute("SELECT count() FROM oonirun")[0][0]
    r = client.put(f"/api/v2/oonirun/links/{lid}", headers=h, json=dict(j, name="Lost"))
    assert r.status_code == 409 and "retry" in r.get_json()["error"]
    r = client.post(f"/api/_/ooni_run/create?ooni_run_link_id={lid2}", headers=h,
                    json={"name": "Lost too", "author": "x"})
    assert r.status_code == 409
    monkeypatch.setattr(store, "head_of", real_head_of)
    assert db.execute("SELECT count() FROM oonirun")[0][0] == n
    for link_id, was in ((lid, j), (lid2, j2)):
        g = client.get(f"/api/v2/oonirun/links/{link_id}").get_json()
        assert (g["name"], g["is_archived"]) == (was["name"], True)
