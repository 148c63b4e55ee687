"""The engine-descriptor's short cache of link versions: this process's
writes are served at once, other processes' writes within the TTL."""
from __future__ import annotations

from ooniapi.oonirun import store
from tests.functional.oonirun.support import link, v2_headers


class Clock:
    t = 100.0

    def __call__(self):
        return self.t


def engine(client, lid):
    r = client.post(f"/api/v2/oonirun/links/{lid}/engine-descriptor/latest", json={})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_cache_ttl_and_local_invalidation(app, client, cfg, db):
    cache = app.extensions["ooni"].extras["oonirun_engine_cache"]
    clock = cache.clock = Clock()
    h = v2_headers(cfg)
    j = client.post("/api/v2/oonirun/links", headers=h, json=link()).get_json()
    lid = j["oonirun_link_id"]
    assert engine(client, lid)["name"] == "Social media"
    # a write of this process: served at once
    r = client.put(f"/api/v2/oonirun/links/{lid}", headers=h, json=dict(j, name="Renamed"))
    assert r.status_code == 200
    assert engine(client, lid)["name"] == "Renamed"
    # a write of another process (straight to the database): within the TTL
    store.archive(db, int(lid), None)
    assert engine(client, lid)["is_expired"] is False
    clock.t += cache.ttl
    assert engine(client, lid)["is_expired"] is True
    # unknown ids are not kept
    assert client.post("/api/v2/oonirun/links/4242/engine-descriptor/latest").status_code == 404
    assert 4242 not in cache._links


def test_cache_bounded(db):
    cache = store.VersionsCache(ttl=60, max_links=2)
    for lid in (1, 2, 3):
        store.insert_version(db, lid, {"name": "n", "author": "a"}, '{"name": "n", "author": "a"}',
                             "a" * 32, store.dt.datetime(2024, 1, 1), store.dt.datetime(2024, 1, 1),
                             False)
        assert cache.get(db, lid)
    assert list(cache._links) == [2, 3]
