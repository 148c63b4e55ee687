"""The fastpath table of a database made before ``is_verified`` (and
``ooni_run_link_id``) existed gains the column at start; old rows read as
unverified and new rows keep the fastpath's verdict. Run in a child
process: chdb allows one database per process and the session's is open."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from fastpath.schema import DDL

from tests.conftest import REPO

SCRIPT = textwrap.dedent("""
    import json, sys
    from ooni_common.db import connect
    from ooni_common.schema import ensure_all
    db = connect("chdb://" + sys.argv[1])
    old = sys.argv[2]
    db.command(old)
    import datetime as dt
    t = dt.datetime(2021, 7, 9)
    row = dict(measurement_uid="old", report_id="r", probe_cc="IT", probe_asn=30722,
               test_name="web_connectivity", measurement_start_time=t, test_start_time=t)
    db.insert_dicts("fastpath", [row])
    ensure_all(db)
    ensure_all(db)   # idempotent
    db.insert_dicts("fastpath", [dict(row, measurement_uid="new", is_verified="t",
                                      measurement_start_time=t + dt.timedelta(seconds=1))])
    rows = db.query("SELECT measurement_uid, is_verified FROM fastpath FINAL "
                    "ORDER BY measurement_uid")
    print(json.dumps(rows))
    db.shutdown()
""")


def test_is_verified_added_to_existing_table(tmp_path):
    old_ddl = DDL[0]
    assert "is_verified" not in old_ddl   # the seed schema, as deployed before
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "db"), old_ddl],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(r.stdout.strip().splitlines()[-1])
    assert rows == [{"measurement_uid": "new", "is_verified": "t"},
                    {"measurement_uid": "old", "is_verified": ""}]
