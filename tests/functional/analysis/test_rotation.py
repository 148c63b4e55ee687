"""Test-helper rotation against a local fake of the Digital Ocean API, fake
VMs on loopback addresses (an SSH server and a test-helper HTTP endpoint per
address) and the embedded database."""
from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from analysis.rotation import config as rconfig
from analysis.rotation import job, store
from analysis.rotation.job import RotationError
from ooni_common.metrics import Metrics
from ooni_common.timeutil import utcnow

from tests.functional.fake_digitalocean import TOKEN, FakeDO
from tests.functional.fake_ssh import FakeSSH, bind_same_port, make_client_key

ZONE = "th.example.org"
ADDRS = [f"127.0.0.{n}" for n in range(10, 30)]
FLAG = "/var/run/rotation_setup_completed"
CERT = "/etc/ssl/private/th_fullchain.pem"
KEY = "/etc/ssl/private/th_privkey.pem"


class FakeTH:
    """oohelperd stand-in on every fake VM address: answers the
    web-connectivity control request; ``broken`` addresses answer 500."""

    def __init__(self, addresses: list[str]):
        self.requests: list[tuple[str, str, dict]] = []
        self.broken: set[str] = set()
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                addr = self.connection.getsockname()[0]
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((addr, self.headers.get("Host"), body))
                ok = addr not in fake.broken and "http_request" in body and "tcp_connect" in body
                out = json.dumps({"dns": {"addrs": ["142.250.1.1"], "failure": None},
                                  "http_request": {"status_code": 200, "failure": None},
                                  "tcp_connect": {t: {"status": True, "failure": None}
                                                  for t in body.get("tcp_connect", [])}}
                                 if ok else {"error": "broken"}).encode()
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.servers = []
        socks = bind_same_port(addresses)
        self.port = socks[0].getsockname()[1]
        for s in socks:
            srv = ThreadingHTTPServer(s.getsockname(), H, bind_and_activate=False)
            srv.socket.close()
            srv.socket = s
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True).start()
            self.servers.append(srv)

    def stop(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()


@pytest.fixture(scope="module")
def vms(tmp_path_factory):
    d = tmp_path_factory.mktemp("rotation-keys")
    key = make_client_key(d)
    ssh = FakeSSH(key, ADDRS).start()
    th = FakeTH(ADDRS)
    yield key, ssh, th
    ssh.stop()
    th.stop()


class Rig:
    def __init__(self, tmp: Path, db, cfg, key: Path, ssh: FakeSSH, th: FakeTH):
        self.db, self.cfg, self.ssh, self.th = db, cfg, ssh, th
        for a in ADDRS:
            ssh.files[a].clear()
            ssh.files[a][FLAG] = b"done\n"
            ssh.modes[a].clear()
            ssh.restarts[a].clear()
        th.requests.clear()
        th.broken.clear()
        self.do = FakeDO(ADDRS).start()
        self.do.zone(ZONE)
        self.metrics = Metrics("rotation", enabled=False)
        setup = tmp / "rotation_setup.sh"
        setup.write_text("#!/bin/bash\necho setting up\ntouch /var/run/rotation_setup_completed\n")
        tls_cert, tls_key = tmp / "fullchain.pem", tmp / "privkey.pem"
        self.values = {
            "token": TOKEN, "active_droplets_count": "1", "size_slug": "s-1vcpu-1gb",
            "image_name": "debian-12-x64", "draining_time_minutes": "0", "dns_zone": ZONE,
            "api_url": self.do.url, "setup_script": str(setup),
            # A real certificate, self-signed here; production runs certbot.
            "cert_command": f"openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
                            f"-subj '/CN=*.{ZONE}' -keyout {tls_key} -out {tls_cert} 2>/dev/null",
            "tls_cert": str(tls_cert), "tls_key": str(tls_key),
            "ssh_key": str(key), "ssh_port": str(ssh.port), "ssh_timeout": "5",
            "ready_timeout_seconds": "2", "poll_seconds": "0.02",
            "th_check_url": f"http://{{ipaddr}}:{th.port}/", "http_timeout": "1",
        }
        self.conf_path = tmp / "rotation.conf"
        self.write_conf()

    def write_conf(self, **kw):
        self.values.update({k: str(v) for k, v in kw.items()})
        self.conf_path.write_text("[DEFAULT]\n" + "".join(f"{k} = {v}\n" for k, v in self.values.items()))
        self.conf = rconfig.load(str(self.conf_path))

    def run(self, **kw):
        return job.run(self.cfg, self.db, self.conf, metrics=self.metrics, **kw)

    def rows(self) -> list[store.ThInstance]:
        return store.load(self.db, ZONE, "Digital Ocean")

    def by_state(self, state: str) -> list[store.ThInstance]:
        return [r for r in self.rows() if r.state == state]

    def check_invariants(self):
        rows = self.rows()
        live = [r for r in rows if r.state == store.LIVE]
        assert len(live) <= self.conf.active_droplets_count
        assert len({r.rdn for r in live}) == len(live), "two live VMs on one slot"
        # Every VM at the provider is tracked and not destroyed; none forgotten.
        alive = {r.provider_id for r in rows if r.state != store.DESTROYED and r.provider_id}
        at_do = {str(d["id"]) for d in self.do.live_droplets()}
        assert at_do == alive, (at_do, alive)
        # DNS serves exactly the live VMs.
        want = sorted([("A", r.rdn, r.ipaddr) for r in live] +
                      [("AAAA", r.rdn, r.ipv6addr) for r in live])
        assert self.do.a_records(ZONE) == want
        assert len(self.do.live_droplets()) <= len(live) + len(self.by_state(store.DRAINING)) + 1


@pytest.fixture
def rig(tmp_path, db, cfg, vms):
    key, ssh, th = vms
    r = Rig(tmp_path, db, cfg, key, ssh, th)
    yield r
    r.do.stop()


def test_full_cycle(rig):
    p = rig.run()
    assert p.spawn_rdn == "0" and p.replaces is None
    a, = rig.rows()
    assert (a.state, a.rdn, a.ipaddr) == (store.LIVE, "0", ADDRS[0])
    d, = rig.do.live_droplets()
    assert (d["size_slug"], d["image"]["slug"], d["tags"]) == ("s-1vcpu-1gb", "debian-12-x64",
                                                               ["roaming-th"])
    assert d["user_data"] == Path(rig.values["setup_script"]).read_text()
    assert d["region"]["slug"] in rconfig.DEFAULT_REGIONS.split(",")
    # certificate and key on the VM, services restarted, end-to-end test run
    files = rig.ssh.files[ADDRS[0]]
    assert b"BEGIN CERTIFICATE" in files[CERT] and b"PRIVATE KEY" in files[KEY]
    assert rig.ssh.modes[ADDRS[0]] == {CERT: "644", KEY: "600"}
    assert rig.ssh.restarts[ADDRS[0]] == ["nginx"]
    assert [(x[0], x[1]) for x in rig.th.requests] == [(ADDRS[0], f"0.{ZONE}")]
    assert rig.do.a_records(ZONE) == [("A", "0", ADDRS[0]), ("AAAA", "0", "fd00::1")]
    rig.check_invariants()

    # next run: a new VM takes slot 0, the old one drains
    p = rig.run()
    assert p.replaces is not None and p.replaces.name == a.name
    b, = rig.by_state(store.LIVE)
    old, = rig.by_state(store.DRAINING)
    assert old.name == a.name and old.draining_at is not None
    assert b.ipaddr == ADDRS[1] and b.rdn == "0"
    assert rig.do.a_records(ZONE) == [("A", "0", ADDRS[1]), ("AAAA", "0", "fd00::2")]
    assert len(rig.do.live_droplets()) == 2
    rig.check_invariants()

    # drained long enough (0 min here): destroyed, and the next rotation runs
    rig.run()
    gone = [r for r in rig.rows() if r.name == a.name][0]
    assert gone.state == store.DESTROYED and gone.destroyed_at is not None
    assert str(gone.provider_id) not in {str(x["id"]) for x in rig.do.live_droplets()}
    assert [r.name for r in rig.by_state(store.DRAINING)] == [b.name]
    rig.check_invariants()
    assert rig.metrics.counters.get("rotation.rotated") == 3
    assert rig.metrics.counters.get("rotation.destroyed") == 1


def test_slots_fill_then_rotate_and_drain_time(rig):
    rig.write_conf(active_droplets_count=2, draining_time_minutes=240)
    rig.run()
    rig.run()
    assert sorted(r.rdn for r in rig.by_state(store.LIVE)) == ["0", "1"]
    regions = {r.region for r in rig.rows()}
    assert len(regions) == 2, "a second helper goes to another datacenter"
    rig.run()
    assert len(rig.by_state(store.LIVE)) == 2 and len(rig.by_state(store.DRAINING)) == 1
    rig.run()
    assert len(rig.by_state(store.DRAINING)) == 2
    assert not rig.by_state(store.DESTROYED)
    rig.check_invariants()
    later = utcnow() + dt.timedelta(minutes=241)
    rig.run(clock=lambda: later)
    assert len(rig.by_state(store.DESTROYED)) == 2
    rig.check_invariants()
    # fewer wanted: the oldest live VM drains, nothing is spawned
    rig.write_conf(active_droplets_count=1)
    n = len(rig.do.live_droplets())
    p = rig.run(clock=lambda: later)
    assert len(p.drain) == 1 and p.spawn_rdn is None
    assert len(rig.by_state(store.LIVE)) == 1 and len(rig.do.live_droplets()) == n
    rig.check_invariants()


class Crash(Exception):
    pass


STAGES = ["destroy_called", "destroyed", "spawning", "spawn_called", "created", "ready",
          "cert", "tested", "dns_published", "dns_drained", "live"]


@pytest.mark.parametrize("stage", STAGES)
def test_crash_after_each_step_then_rerun(rig, stage):
    rig.run()
    rig.run()     # one live, one draining (to be destroyed by the next run)
    first = rig.by_state(store.DRAINING)[0]

    def hook(s, inst):
        if s == stage:
            raise Crash(stage)

    with pytest.raises(Crash):
        rig.run(hook=hook)
    # whatever happened, no slot has two live VMs
    live = rig.by_state(store.LIVE)
    assert len(live) == 1
    rig.run()
    rig.check_invariants()
    assert [r for r in rig.rows() if r.name == first.name][0].state == store.DESTROYED
    assert not [r for r in rig.rows() if r.state in store.IN_PROGRESS]
    rig.run()
    rig.check_invariants()
    assert len(rig.by_state(store.LIVE)) == 1


def test_create_error_then_recovery(rig):
    rig.do.fail("POST", "/droplets", 500)
    with pytest.raises(RotationError, match="HTTP 500"):
        rig.run()
    assert rig.metrics.counters["rotation.failed"] == 1
    row, = rig.rows()
    assert row.state == store.SPAWNING and not row.provider_id and not rig.do.live_droplets()
    rig.run()   # never created: marked destroyed, nothing else this run
    assert [r.state for r in rig.rows()] == [store.DESTROYED]
    rig.run()
    assert len(rig.by_state(store.LIVE)) == 1
    rig.check_invariants()


def test_create_answer_lost_is_adopted(rig):
    # The droplet is created but the answer never arrives (client timeout).
    rig.do.hang_seconds = 2.5
    rig.do.faults.append(["POST", "/droplets", "lost", 1])
    with pytest.raises(RotationError):
        rig.run()
    assert len(rig.do.live_droplets()) == 1
    rig.run()
    row, = rig.rows()
    assert row.state == store.LIVE
    assert row.provider_id == str(rig.do.live_droplets()[0]["id"])
    rig.check_invariants()


def test_timeouts_and_errors_keep_the_table_consistent(rig):
    rig.run()
    before = rig.rows()
    rig.do.hang("GET", "/droplets", 1)
    with pytest.raises(RotationError, match="timed out|time"):
        rig.run()
    assert rig.rows() == before
    rig.do.fail("GET", "/droplets/", 503)      # readiness poll
    with pytest.raises(RotationError):
        rig.run()
    assert len(rig.by_state(store.CREATED)) == 1
    rig.do.fail("POST", f"/domains/{ZONE}/records", 500)
    with pytest.raises(RotationError):
        rig.run()                              # resumes, fails at publish
    assert len(rig.by_state(store.TESTED)) == 1 and len(rig.by_state(store.LIVE)) == 1
    rig.run()
    assert len(rig.by_state(store.LIVE)) == 1 and len(rig.by_state(store.DRAINING)) == 1
    rig.check_invariants()
    assert rig.metrics.counters["rotation.failed"] == 3


def test_failing_vm_is_rolled_back(rig):
    rig.run()
    a, = rig.by_state(store.LIVE)
    rig.th.broken.add(ADDRS[1])
    with pytest.raises(RotationError, match="end-to-end"):
        rig.run()
    assert [r.name for r in rig.by_state(store.LIVE)] == [a.name]
    assert len(rig.by_state(store.DESTROYED)) == 1
    assert len(rig.do.live_droplets()) == 1
    rig.check_invariants()
    # a VM whose setup never finishes: rolled back after ready_timeout_seconds
    del rig.ssh.files[ADDRS[2]][FLAG]
    with pytest.raises(RotationError, match="not ready"):
        rig.run()
    assert [r.name for r in rig.by_state(store.LIVE)] == [a.name]
    rig.check_invariants()
    assert rig.metrics.counters["rotation.rollbacks"] == 2


def test_too_many_droplets_refused(rig):
    rig.write_conf(max_extra_droplets=0)
    rig.run()
    rig.run()
    with pytest.raises(RotationError, match="refusing"):
        rig.run(clock=lambda: utcnow() - dt.timedelta(hours=1))


def test_command_line_and_dry_run(rig, monkeypatch, capsys):
    monkeypatch.setenv("OONI_CLICKHOUSE_URL", rig.cfg.clickhouse_url)
    monkeypatch.setenv("OONI_STATSD_ENABLED", "false")
    assert job.main(["--conf", str(rig.conf_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"spawn a s-1vcpu-1gb debian-12-x64 droplet in one of" in out
    assert f"for 0.{ZONE}" in out
    assert not [c for c in rig.do.calls if c[0] != "GET"]
    assert rig.rows() == []
    assert job.main(["--conf", str(rig.conf_path)]) == 0
    assert job.main(["--conf", str(rig.conf_path), "--dry-run"]) == 0
    assert "replacing roaming-th-" in capsys.readouterr().out
    rig.do.fail("GET", "/droplets", 500)
    assert job.main(["--conf", str(rig.conf_path)]) == 1
    assert "HTTP 500" in capsys.readouterr().err
    bad = rig.conf_path.with_name("bad.conf")
    bad.write_text("[DEFAULT]\ntoken = x\n")
    assert job.main(["--conf", str(bad)]) == 1
