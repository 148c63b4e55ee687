"""The ``rotation`` job (``/usr/bin/rotation``, ooni-rotation.timer).

    rotation [--conf /etc/ooni/rotation.conf] [--dry-run] [--stdout]

Each run, in order:

1. destroys VMs drained for ``draining_time_minutes`` (DNS records still
   pointing at them first, then the VM);
2. resumes a VM left half-way by an earlier run, from its recorded step;
   a VM that fails a step (not ready in time, certificate or end-to-end
   test failing) is rolled back: destroyed, its records removed;
3. otherwise spawns one VM: a free ``<n>.<dns_zone>`` slot while fewer than
   ``active_droplets_count`` are live, else the slot of the oldest live VM,
   which it replaces. The new VM goes through spawning -> created -> ready
   (provider says active, setup flag present over SSH) -> cert (TLS
   certificate installed, services restarted) -> tested (end-to-end
   test-helper request) -> live (DNS published, then the old VM's records
   removed and the old VM marked draining in the same table write).

Every step is written to ``test_helper_instances`` before the next begins,
and every provider call is repeatable (records and VMs are looked up before
being created or deleted), so a crash at any point is finished or rolled
back by the next run; a new VM is never started while another is in
progress, so a retry never leaves two live VMs on one slot.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.metrics import Metrics, from_config, job_metrics
from ooni_common.timeutil import utcnow

from ..runner import JobError, debug_level, load_config, open_db, run_command
from . import config as rconfig
from . import store
from .config import RotationConf
from .digitalocean import DigitalOcean
from .provider import Instance, NotFound, Provider, ProviderError
from .remote import Remote, RemoteError
from .store import CERT, CREATED, DESTROYED, DRAINING, IN_PROGRESS, LIVE, READY, SPAWNING, TESTED, ThInstance

UNIT = "rotation"
METRICS_PREFIX = "rotation"
log = logging.getLogger(UNIT)


class RotationError(JobError):
    pass


@dataclass
class Plan:
    destroy: list[ThInstance] = field(default_factory=list)
    resume: list[ThInstance] = field(default_factory=list)
    drain: list[ThInstance] = field(default_factory=list)
    spawn_rdn: str | None = None
    replaces: ThInstance | None = None
    regions: list[str] = field(default_factory=list)

    def lines(self, conf: RotationConf) -> list[str]:
        out = []
        for i in self.destroy:
            out.append(f"destroy {i.name} ({i.fqdn}, {i.ipv4}), draining since {i.draining_at}")
        for i in self.resume:
            out.append(f"resume {i.name} ({i.fqdn}) from step {i.state}")
        for i in self.drain:
            out.append(f"drain {i.name} ({i.fqdn}, {i.ipv4}): more live VMs than "
                       f"active_droplets_count={conf.active_droplets_count}")
        if self.spawn_rdn is not None:
            s = (f"spawn a {conf.size_slug} {conf.image_name} droplet in one of "
                 f"{','.join(self.regions)} for {self.spawn_rdn}.{conf.dns_zone}")
            if self.replaces is not None:
                s += (f", replacing {self.replaces.name} ({self.replaces.ipv4}), which then "
                      f"drains for {conf.draining_time_minutes:g} min")
            out.append(s)
        return out or ["nothing to do"]


Hook = Callable[[str, ThInstance], None]


class Rotation:
    def __init__(self, conf: RotationConf, db: Database | None, provider: Provider,
                 remote: Remote, metrics: Metrics, hook: Hook | None = None,
                 clock: Callable[[], dt.datetime] = utcnow,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None):
        self.conf, self.db, self.provider, self.remote = conf, db, provider, remote
        self.metrics, self.hook, self.clock, self.sleep = metrics, hook, clock, sleep
        self.rng = rng or random.Random()

    # --- bookkeeping ----------------------------------------------------------

    def _record(self, *changes: tuple[ThInstance | None, ThInstance]) -> list[ThInstance]:
        return store.record(self.db, list(changes), self.clock())

    def _step(self, name: str, inst: ThInstance) -> None:
        log.info("%s: %s", inst.name, name)
        if self.hook:
            self.hook(name, inst)

    # --- planning -------------------------------------------------------------

    def plan(self, rows: list[ThInstance], droplets: list[Instance]) -> Plan:
        c = self.conf
        now = self.clock()
        p = Plan()
        drain_for = dt.timedelta(minutes=c.draining_time_minutes)
        p.destroy = [r for r in rows if r.state == DRAINING and r.draining_at is not None
                     and r.draining_at + drain_for <= now]
        p.resume = [r for r in rows if r.state in IN_PROGRESS]
        live = sorted((r for r in rows if r.state == LIVE), key=lambda r: (r.updated_at or now, r.name))
        if p.resume:
            return p
        if len(live) > c.active_droplets_count:
            p.drain = live[:len(live) - c.active_droplets_count]
            return p
        if c.active_droplets_count == 0:
            return p
        if len(live) < c.active_droplets_count:
            used = {r.rdn for r in live}
            p.spawn_rdn = next(str(n) for n in range(c.active_droplets_count) if str(n) not in used)
        else:
            p.replaces = live[0]
            p.spawn_rdn = live[0].rdn
        p.regions = self.pick_regions(live)
        return p

    def pick_regions(self, live: list[ThInstance]) -> list[str]:
        """Allowed regions the provider offers, those without a live VM
        first: helpers spread over many datacenters are harder to block."""
        ok = [r for r in self.provider.available_regions() if r in self.conf.regions]
        if not ok:
            raise RotationError(f"none of the regions {','.join(self.conf.regions)} is available")
        best = [r for r in ok if r not in {i.region for i in live}]
        return sorted(best or ok)

    # --- the run --------------------------------------------------------------

    def run(self, dry_run: bool = False) -> Plan:
        c = self.conf
        droplets = self.provider.list_instances(c.tag)
        rows = store.load(self.db, c.dns_zone, self.provider.name) if self.db is not None else []
        p = self.plan(rows, droplets)
        for line in p.lines(c):
            log.info("plan: %s", line)
        if dry_run:
            return p
        known = {r.name for r in rows if r.state != DESTROYED}
        strays = [d.name for d in droplets if d.name not in known]
        self.metrics.gauge("stray_droplets", len(strays))
        if strays:
            log.warning("droplets tagged %s not tracked in test_helper_instances: %s",
                        c.tag, ", ".join(sorted(strays)))
        if len(droplets) > c.active_droplets_count + c.max_extra_droplets:
            raise RotationError(f"{len(droplets)} droplets tagged {c.tag}: more than "
                                f"active_droplets_count + max_extra_droplets; refusing to act")

        by_name = {d.name: d for d in droplets}
        with self.metrics.timer("destroy_drained_droplets"):
            for inst in p.destroy:
                self.destroy(inst, by_name.get(inst.name))
        for inst in p.drain:
            self.drain_alone(inst)
        resume = sorted(p.resume, key=lambda r: r.name)
        # Only one VM is ever in progress; should there be more (a bug or a
        # hand edit), the newest goes on and the others are rolled back.
        for inst in resume[:-1]:
            self.rollback(inst, "another VM is in progress")
        if resume:
            self.advance(self.adopt(resume[-1], by_name))
        elif p.spawn_rdn is not None:
            self.advance(self.spawn(p.spawn_rdn, p.regions, rows))
        self._gauges()
        return p

    def _gauges(self) -> None:
        rows = store.load(self.db, self.conf.dns_zone, self.provider.name)
        for st in (LIVE, DRAINING):
            self.metrics.gauge(f"{st}_droplets", sum(r.state == st for r in rows))

    # --- steps ------------------------------------------------------------------

    def spawn(self, rdn: str, regions: list[str], rows: list[ThInstance]) -> ThInstance:
        c = self.conf
        names = {r.name for r in rows}
        base = f"{c.tag}-{self.clock():%Y%m%d%H%M%S}"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        region = self.rng.choice(regions)
        try:
            user_data = open(c.setup_script).read()
        except OSError as e:
            raise RotationError(f"cannot read the setup script {c.setup_script}: {e}") from None
        ssh_keys = self.provider.ssh_key_ids()
        inst, = self._record((None, ThInstance(name, rdn, c.dns_zone, self.provider.name, region)))
        self._step(SPAWNING, inst)
        with self.metrics.timer("spawn_new_droplet"):
            d = self.provider.create_instance(name, region, c.size_slug, c.image_name,
                                              user_data, c.tag, ssh_keys)
        self._step("spawn_called", inst)
        new, = self._record((inst, inst.but(state=CREATED, provider_id=d.id,
                                             region=d.region or region)))
        self._step(CREATED, new)
        return new

    def adopt(self, inst: ThInstance, by_name: dict[str, Instance]) -> ThInstance:
        """A VM recorded as spawning may or may not exist (the crash or the
        error came around the create call): find it by name, or give up."""
        if inst.state != SPAWNING or inst.provider_id:
            return inst
        d = by_name.get(inst.name)
        if d is None:
            log.warning("%s: never created; marked destroyed", inst.name)
            gone, = self._record((inst, inst.but(state=DESTROYED, destroyed_at=self.clock())))
            self._step(DESTROYED, gone)
            return gone
        new, = self._record((inst, inst.but(state=CREATED, provider_id=d.id,
                                             region=d.region or inst.region)))
        self._step(CREATED, new)
        return new

    def advance(self, inst: ThInstance) -> ThInstance:
        steps = {CREATED: self.wait_ready, READY: self.install_cert, CERT: self.test,
                 TESTED: self.publish}
        while inst.state in steps:
            try:
                inst = steps[inst.state](inst)
            except (RemoteError, NotFound) as e:
                # The VM itself failed (or vanished): it must not linger.
                self.rollback(inst, str(e))
                raise RotationError(f"{inst.name}: {e}; rolled back") from None
        return inst

    def wait_ready(self, inst: ThInstance) -> ThInstance:
        c = self.conf
        deadline = time.monotonic() + c.ready_timeout_seconds
        with self.metrics.timer("wait_droplet_ready"):
            while True:
                d = self.provider.get_instance(inst.provider_id)
                if d.running and self.remote.setup_completed(d.ipv4):
                    break
                if time.monotonic() >= deadline:
                    raise RemoteError(f"not ready after {c.ready_timeout_seconds:g} s "
                                      f"(status {d.status!r})")
                self.sleep(c.poll_seconds)
        new, = self._record((inst, inst.but(state=READY, ipaddr=d.ipv4,
                                             ipv6addr=d.ipv6 or store.NO_IPV6)))
        self._step(READY, new)
        return new

    def install_cert(self, inst: ThInstance) -> ThInstance:
        with self.metrics.timer("install_tls_cert"):
            cert, key = self.remote.obtain_certificate()
            self.remote.install_certificate(inst.ipv4, cert, key)
        new, = self._record((inst, inst.but(state=CERT)))
        self._step(CERT, new)
        return new

    def test(self, inst: ThInstance) -> ThInstance:
        with self.metrics.timer("end_to_end_test"):
            self.remote.end_to_end(inst.ipv4, inst.fqdn)
        new, = self._record((inst, inst.but(state=TESTED)))
        self._step(TESTED, new)
        return new

    def publish(self, inst: ThInstance) -> ThInstance:
        c = self.conf
        zone = c.dns_zone
        wanted = [("A", inst.ipv4)] + ([("AAAA", inst.ipv6)] if inst.ipv6 else [])
        with self.metrics.timer("update_dns_records"):
            records = self.provider.list_records(zone)
            for rtype, ip in wanted:
                if not any(r.name == inst.rdn and r.type == rtype and r.data == ip for r in records):
                    log.info("DNS: %s %s.%s -> %s", rtype, inst.rdn, zone, ip)
                    self.provider.create_record(zone, rtype, inst.rdn, ip, c.dns_ttl)
            self._step("dns_published", inst)
            # Drain: the slot's other addresses leave DNS now; their VMs
            # keep serving the probes that cached them until destroyed.
            mine = {ip for _, ip in wanted}
            for r in records:
                if r.name == inst.rdn and r.type in ("A", "AAAA") and r.data not in mine:
                    log.info("DNS: removing %s %s.%s -> %s", r.type, r.name, zone, r.data)
                    self._delete_record(r.id)
        self._step("dns_drained", inst)
        now = self.clock()
        rows = store.load(self.db, zone, self.provider.name)
        old = [r for r in rows if r.state == LIVE and r.rdn == inst.rdn and r.name != inst.name]
        changes = [(inst, inst.but(state=LIVE))] + [(o, o.but(state=DRAINING, draining_at=now))
                                                    for o in old]
        new = self._record(*changes)[0]
        self._step(LIVE, new)
        self.metrics.incr("rotated")
        return new

    def drain_alone(self, inst: ThInstance) -> None:
        self._delete_records_of(inst)
        new, = self._record((inst, inst.but(state=DRAINING, draining_at=self.clock())))
        self._step(DRAINING, new)

    def destroy(self, inst: ThInstance, droplet: Instance | None) -> None:
        self._delete_records_of(inst)
        pid = inst.provider_id or (droplet.id if droplet else "")
        if pid:
            try:
                self.provider.delete_instance(pid)
            except NotFound:
                log.info("%s: already gone at the provider", inst.name)
        else:
            log.warning("%s: not found at the provider; marking it destroyed", inst.name)
        self._step("destroy_called", inst)
        new, = self._record((inst, inst.but(state=DESTROYED, destroyed_at=self.clock())))
        self._step(DESTROYED, new)
        self.metrics.incr("destroyed")

    def rollback(self, inst: ThInstance, why: str) -> None:
        log.error("%s: rolling back at step %s: %s", inst.name, inst.state, why)
        self.metrics.incr("rollbacks")
        try:
            self._delete_records_of(inst)
            if inst.provider_id:
                try:
                    self.provider.delete_instance(inst.provider_id)
                except NotFound:
                    pass
        except ProviderError as e:
            # Left as it is: the next run retries the rollback from here.
            raise RotationError(f"{inst.name}: rollback failed: {e}") from None
        new, = self._record((inst, inst.but(state=DESTROYED, destroyed_at=self.clock())))
        self._step(DESTROYED, new)

    def _delete_records_of(self, inst: ThInstance) -> None:
        ips = {ip for ip in (inst.ipv4, inst.ipv6) if ip}
        if not ips:
            return
        for r in self.provider.list_records(self.conf.dns_zone):
            if r.type in ("A", "AAAA") and r.data in ips and r.name == inst.rdn:
                self._delete_record(r.id)

    def _delete_record(self, record_id: str) -> None:
        try:
            self.provider.delete_record(self.conf.dns_zone, record_id)
        except NotFound:
            pass


# --- entry points ---------------------------------------------------------------

def make(cfg: Config, db: Database | None, conf: RotationConf,
         metrics: Metrics | None = None, **kw) -> Rotation:
    provider = DigitalOcean(conf.token, conf.api_url, conf.http_timeout)
    return Rotation(conf, db, provider, Remote(conf), metrics or from_config(cfg, METRICS_PREFIX),
                    **kw)


def run(cfg: Config, db: Database | None, conf: RotationConf | None = None,
        dry_run: bool = False, metrics: Metrics | None = None, **kw) -> Plan:
    conf = conf or rconfig.load(cfg.get_str("ROTATION_CONF", rconfig.DEFAULT_PATH))
    metrics = metrics or from_config(cfg, METRICS_PREFIX)
    rot = make(cfg, db, conf, metrics, **kw)
    try:
        with metrics.timer("run_time"):
            return rot.run(dry_run=dry_run)
    except (ProviderError, RemoteError) as e:
        metrics.incr("failed")
        raise RotationError(str(e)) from None
    except Exception:
        metrics.incr("failed")
        raise


def run_job(cfg: Config, db: Database, metrics_root: Metrics | None = None) -> None:
    run(cfg, db, metrics=job_metrics(metrics_root, METRICS_PREFIX))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rotation", description="Test-helper rotation")
    ap.add_argument("--conf", help=f"rotation configuration (default: ROTATION_CONF or "
                                   f"{rconfig.DEFAULT_PATH})")
    ap.add_argument("--dry-run", action="store_true",
                    help="print what would be done; change nothing")
    ap.add_argument("--stdout", action="store_true", help="log to stdout at DEBUG level")
    ap.add_argument("--config", help="backend configuration file (default: $OONI_CONF)")
    ap.add_argument("--db-uri", help="database URL (overrides CLICKHOUSE_URL)")
    args = ap.parse_args(argv)
    root = logging.getLogger()
    handler = None
    if args.stdout:
        handler = logging.StreamHandler(sys.stdout)
        root.addHandler(handler)

    def body(stack) -> int:
        cfg = load_config(args.config, {"CLICKHOUSE_URL": args.db_uri})
        conf = rconfig.load(args.conf or cfg.get_str("ROTATION_CONF", rconfig.DEFAULT_PATH))
        db = open_db(cfg, stack, "rotation", "rotation")
        p = run(cfg, db, conf, dry_run=args.dry_run)
        if args.dry_run:
            for line in p.lines(conf):
                print(line)
        return 0

    try:
        return run_command(UNIT, body, debug_level(args.stdout))
    finally:
        if handler is not None:
            root.removeHandler(handler)


if __name__ == "__main__":
    raise SystemExit(main())
