"""Issue 16, defect 3: concurrent writes of one finding. A delete is never
undone by an edit running at the same time, and of two edits made from the
same copy (the same update_time) one wins and the other gets a 409. Each
race runs 50 times with two threads released together."""
from __future__ import annotations

import threading

import pytest

from ooniapi.core.auth import account_id, session_token

ADMIN_EMAIL = "admin@ooni.org"
RUNS = 50


@pytest.fixture
def admin(cfg):
    return {"Authorization": "Bearer " + session_token(cfg, account_id(cfg, ADMIN_EMAIL),
                                                       "admin")}


def body(title: str) -> dict:
    return {"title": title, "text": "t", "email_address": ADMIN_EMAIL,
            "start_time": "2024-01-01T00:00:00Z", "CCs": ["IT"], "themes": ["im"]}


def race(app, *calls):
    """Runs each ``call(client)`` in its own thread, released together;
    returns their answers in order."""
    barrier = threading.Barrier(len(calls))
    out: list = [None] * len(calls)

    def run(i, call):
        c = app.test_client()
        barrier.wait()
        out[i] = call(c)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_delete_during_update_is_never_undone(app, client, admin):
    for run in range(RUNS):
        r = client.post("/api/v1/incidents/create", json=body(f"run {run}"), headers=admin)
        iid = r.get_json()["id"]
        edit = dict(body(f"edited {run}"), id=iid)
        up, rm = race(
            app,
            lambda c: c.post("/api/v1/incidents/update", json=edit, headers=admin),
            lambda c: c.post("/api/v1/incidents/delete", json={"id": iid}, headers=admin))
        assert rm.status_code == 200, (run, rm.get_json())
        assert up.status_code in (200, 404), (run, up.get_json())
        r = client.get(f"/api/v1/incidents/show/{iid}", headers=admin)
        assert r.status_code == 404, (run, up.status_code, r.get_json())
    r = client.get("/api/v1/incidents/search", headers=admin)
    assert r.get_json()["incidents"] == []


def test_publish_during_delete_is_never_undone(app, client, admin):
    for run in range(RUNS):
        r = client.post("/api/v1/incidents/create", json=body(f"run {run}"), headers=admin)
        iid = r.get_json()["id"]
        pub, rm = race(
            app,
            lambda c: c.post("/api/v1/incidents/publish", json={"id": iid}, headers=admin),
            lambda c: c.post("/api/v1/incidents/delete", json={"id": iid}, headers=admin))
        assert rm.status_code == 200 and pub.status_code in (200, 404), run
        assert client.get(f"/api/v1/incidents/show/{iid}").status_code == 404, run


def test_two_edits_from_one_copy_one_wins_one_409(app, client, admin):
    for run in range(RUNS):
        r = client.post("/api/v1/incidents/create", json=body(f"run {run}"), headers=admin)
        iid = r.get_json()["id"]
        copy = client.get(f"/api/v1/incidents/show/{iid}", headers=admin).get_json()["incident"]
        a, b = dict(copy, title=f"A {run}"), dict(copy, title=f"B {run}")
        ra, rb = race(
            app,
            lambda c: c.post("/api/v1/incidents/update", json=a, headers=admin),
            lambda c: c.post("/api/v1/incidents/update", json=b, headers=admin))
        codes = sorted([ra.status_code, rb.status_code])
        assert codes == [200, 409], (run, ra.get_json(), rb.get_json())
        winner = a if ra.status_code == 200 else b
        loser = rb if ra.status_code == 200 else ra
        assert loser.get_json()["error"].startswith("update_time:")
        now = client.get(f"/api/v1/incidents/show/{iid}", headers=admin).get_json()["incident"]
        assert now["title"] == winner["title"], run
        assert now["update_time"] > copy["update_time"]
        # The loser re-reads and edits again: accepted.
        r = client.post("/api/v1/incidents/update", json=dict(now, title="again"),
                        headers=admin)
        assert r.status_code == 200, r.get_json()


def test_concurrent_creates_with_one_title_get_distinct_slugs(app, client, admin):
    for run in range(RUNS // 5):
        title = f"Same title {run}"
        a, b = race(
            app,
            lambda c: c.post("/api/v1/incidents/create", json=body(title), headers=admin),
            lambda c: c.post("/api/v1/incidents/create", json=body(title), headers=admin))
        assert a.status_code == b.status_code == 200
        slugs = {client.get(f"/api/v1/incidents/show/{r.get_json()['id']}",
                            headers=admin).get_json()["incident"]["slug"] for r in (a, b)}
        assert len(slugs) == 2, (run, slugs)
