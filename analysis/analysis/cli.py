"""``analysis``: the reference-data updaters, one per invocation.

    analysis --update-citizenlab [--dry-run] [--stdout]
    analysis --update-fingerprints
    analysis --update-asnmeta

Unlike the legacy runner, a failed update exits non-zero (systemd and the
scheduler then see it), and several action flags are refused rather than
silently running the first.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .runner import debug_level, load_config, open_db, run_command

ACTIONS = {
    "update_citizenlab": ("analysis.citizenlab_test_lists_updater", "citizenlab"),
    "update_fingerprints": ("analysis.fingerprints_updater", "fingerprints"),
    "update_asnmeta": ("analysis.asnmeta_updater", "asnmeta"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="analysis", description=__doc__.split("\n\n")[0])
    ap.add_argument("--update-citizenlab", action="store_true", help="update the test lists")
    ap.add_argument("--update-fingerprints", action="store_true", help="update the fingerprints")
    ap.add_argument("--update-asnmeta", action="store_true", help="update the ASN metadata")
    ap.add_argument("--dry-run", action="store_true",
                    help="fetch and validate only, do not touch the database (citizenlab only)")
    ap.add_argument("--stdout", action="store_true", help="log to stdout at DEBUG level")
    ap.add_argument("--config", help="configuration file (default: $OONI_CONF)")
    ap.add_argument("--db-uri", help="database URL (overrides CLICKHOUSE_URL)")
    args = ap.parse_args(argv)
    chosen = [a for a in ACTIONS if getattr(args, a)]
    if len(chosen) != 1:
        ap.error("give exactly one of --update-citizenlab, --update-fingerprints, --update-asnmeta")
    if args.dry_run and chosen[0] != "update_citizenlab":
        ap.error("--dry-run is supported only with --update-citizenlab")
    args.action = chosen[0]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    unit, module = ACTIONS[args.action]
    root = logging.getLogger()
    handler = None
    if args.stdout:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root.addHandler(handler)

    def body(stack) -> int:
        import importlib
        cfg = load_config(args.config, {"CLICKHOUSE_URL": args.db_uri})
        mod = importlib.import_module(f"analysis.{module}")
        if args.dry_run:
            mod.run(cfg, None, dry_run=True)
            return 0
        db = open_db(cfg, stack, f"analysis --{args.action.replace('_', '-')}", module)
        mod.run(cfg, db)
        return 0

    try:
        return run_command(unit, body, debug_level(args.stdout))
    finally:
        if handler is not None:
            root.removeHandler(handler)


if __name__ == "__main__":
    raise SystemExit(main())
