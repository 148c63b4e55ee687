"""Registry of the periodic data-lifecycle jobs.

The standalone scheduler and ``ooni-backend job NAME`` run jobs from here;
the systemd units run the same functions through each job's own command
(``ooni-api-uploader``, ``analysis --update-citizenlab``...). A job's ``run``
raises on failure with a one-line message; the live tables, files and the
spool are then as they were before the run.

Modules are imported when a job runs, so that importing the registry stays
cheap for the API process and a broken optional dependency only breaks its
own job.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Optional

from ooni_common.config import Config
from ooni_common.db import Database
from ooni_common.metrics import Metrics

# (cfg, db, metrics_root): a job's metrics are a sibling of metrics_root under
# the job's own prefix (the standalone /metrics shows them), or its own
# registry when None.
JobFn = Callable[[Config, Database, Optional[Metrics]], None]


@dataclass(frozen=True)
class Job:
    name: str
    run: JobFn
    interval_key: str
    default_interval: float  # seconds; 0 = not scheduled by default in standalone


def _lazy(module: str, func: str) -> JobFn:
    def run(cfg: Config, db: Database, metrics_root: Metrics | None = None) -> None:
        getattr(importlib.import_module(module), func)(cfg, db, metrics_root)

    run.__name__ = f"{module.rsplit('.', 1)[-1]}.{func}"
    run.__qualname__ = run.__name__
    return run


HOUR = 3600.0

_JOBS = (
    Job("uploader", _lazy("analysis.uploader", "run_job"), "UPLOADER_INTERVAL", HOUR),
    Job("citizenlab", _lazy("analysis.citizenlab", "run_job"), "CITIZENLAB_INTERVAL", HOUR / 2),
    Job("fingerprints", _lazy("analysis.fingerprints", "run_job"), "FINGERPRINTS_INTERVAL", HOUR),
    # Daily counters that let /api/v1/aggregation answer any range quickly.
    Job("aggregation-summary", _lazy("ooniapi.aggregation.summary", "run_job"),
        "AGGREGATION_SUMMARY_INTERVAL", 600),
    Job("asnmeta", _lazy("analysis.asnmeta", "run_job"), "ASNMETA_INTERVAL", 7 * 24 * HOUR),
    # Standalone ships the test MMDB files; downloading needs an operator's URL.
    Job("geoip", _lazy("analysis.geoip_download", "run_job"), "GEOIP_INTERVAL", 0),
    Job("db-backup", _lazy("analysis.backup", "run_job"), "DB_BACKUP_INTERVAL", 0),
    Job("detector", _lazy("analysis.detector.job", "run_job"), "DETECTOR_INTERVAL", HOUR),
    # Spawns and destroys VMs: only where an operator configured a provider.
    Job("rotation", _lazy("analysis.rotation.job", "run_job"), "ROTATION_INTERVAL", 0),
)


def all_jobs() -> dict[str, Job]:
    return {j.name: j for j in _JOBS}


def interval(job: Job, cfg: Config) -> float:
    """The configured interval in seconds (0 = not scheduled)."""
    return cfg.get_float(job.interval_key, job.default_interval)
