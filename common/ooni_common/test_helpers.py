"""The live test helpers that rotation published (``test_helper_instances``),
read by the API when ``TEST_HELPERS_FROM_ROTATION`` is on. Kept out of the
rotation package so that the API does not import the job."""
from __future__ import annotations

from .db import Database

# Rows of the legacy script have no state: live = neither draining nor
# destroyed.
LIVE_SQL = """
SELECT DISTINCT rdn FROM test_helper_instances FINAL
WHERE sign = 1 AND dns_zone = {zone:String}
  AND (state = 'live' OR (state = '' AND draining_at IS NULL AND destroyed_at IS NULL))
ORDER BY rdn
"""


def live_hosts(db: Database, dns_zone: str) -> list[str]:
    """Host names (``<rdn>.<zone>``) of the live test helpers of a zone."""
    return [f"{rdn}.{dns_zone}" for (rdn,) in db.execute(LIVE_SQL, {"zone": dns_zone}) if rdn]
