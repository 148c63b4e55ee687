"""Operator command for account roles, needed at least once: the first admin
cannot be made through ``set_account_role``, which itself needs an admin.

    python -m ooniapi.accounts.admin_cli [--config FILE] set-role EMAIL admin|user
    python -m ooniapi.accounts.admin_cli [--config FILE] get-role EMAIL
    python -m ooniapi.accounts.admin_cli [--config FILE] expunge EMAIL

The account id is computed with this deployment's ACCOUNT_ID_HASHING_KEY, so
use the API's configuration. With the embedded database (chdb) stop the
standalone process first: one chdb directory serves one process at a time.
"""
from __future__ import annotations

import argparse
import sys

from ooni_common.config import Config, ConfigError
from ooni_common.db import DatabaseError, connect

from ooniapi.accounts import store as accounts_store
from ooniapi.core import auth
from ooniapi.core.schema import ensure_schema


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ooniapi.accounts.admin_cli",
                                 description="Show or change the role of an API account")
    ap.add_argument("--config", help="TOML configuration (default: $OONI_CONF)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("set-role", help="set the role; applies at the account's next login")
    p.add_argument("email")
    p.add_argument("role", choices=accounts_store.ROLES)
    sub.add_parser("get-role", help="print the stored role").add_argument("email")
    sub.add_parser("expunge", help="end the account's current sessions").add_argument("email")
    args = ap.parse_args(argv)

    email = auth.normalize_email(args.email)
    if not auth.is_valid_email(email):
        print(f"invalid email address: {args.email!r}", file=sys.stderr)
        return 2
    try:
        cfg = Config.load(args.config)
        aid = auth.account_id(cfg, email)
        db = connect(cfg.clickhouse_url)
    except (ConfigError, DatabaseError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        ensure_schema(db)
        if args.cmd == "set-role":
            accounts_store.set_role(db, aid, args.role)
            print(f"{aid} {args.role}")
        elif args.cmd == "get-role":
            role = accounts_store.get_role(db, aid)
            if role is None:
                print(f"{aid}: account not found", file=sys.stderr)
                return 1
            print(f"{aid} {role}")
        else:
            accounts_store.expunge_sessions(db, aid)
            print(f"{aid} sessions expunged")
    except DatabaseError as e:
        print(f"database error: {e}", file=sys.stderr)
        return 1
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
