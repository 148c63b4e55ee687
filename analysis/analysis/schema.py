"""Tables written by the analysis jobs (seed schema)."""
from __future__ import annotations

from ooni_common.db import Database

CITIZENLAB_COLUMNS = """
    `domain` String,
    `url` String,
    `cc` FixedString(32),
    `category_code` String
"""

FINGERPRINT_COLUMNS = """
    `name` String,
    `scope` Enum8('nat' = 1, 'isp' = 2, 'prod' = 3, 'inst' = 4, 'vbw' = 5, 'fp' = 6, 'injb' = 7, 'prov' = 8),
    `other_names` String,
    `location_found` String,
    `pattern_type` Enum8('full' = 1, 'prefix' = 2, 'contains' = 3, 'regexp' = 4),
    `pattern` String,
    `confidence_no_fp` UInt8,
    `expected_countries` String,
    `source` String,
    `exp_url` String,
    `notes` String
"""

ASNMETA_COLUMNS = """
    `asn` UInt32,
    `org_name` String,
    `cc` String,
    `changed` Date,
    `aut_name` String,
    `source` String
"""

DDL = [
    f"""CREATE TABLE IF NOT EXISTS citizenlab ({CITIZENLAB_COLUMNS})
    ENGINE = ReplacingMergeTree ORDER BY (domain, url, cc, category_code)
    SETTINGS index_granularity = 4""",
    f"""CREATE TABLE IF NOT EXISTS citizenlab_flip ({CITIZENLAB_COLUMNS})
    ENGINE = ReplacingMergeTree ORDER BY (domain, url, cc, category_code)
    SETTINGS index_granularity = 4""",
    # The seed's DNS table has no 'injb'/'prov' scopes; a superset keeps one
    # loader for both and accepts every value of the upstream files.
    f"CREATE TABLE IF NOT EXISTS fingerprints_dns ({FINGERPRINT_COLUMNS}) ENGINE = EmbeddedRocksDB PRIMARY KEY name",
    f"CREATE TABLE IF NOT EXISTS fingerprints_dns_tmp ({FINGERPRINT_COLUMNS}) ENGINE = EmbeddedRocksDB PRIMARY KEY name",
    f"CREATE TABLE IF NOT EXISTS fingerprints_http ({FINGERPRINT_COLUMNS}) ENGINE = EmbeddedRocksDB PRIMARY KEY name",
    f"CREATE TABLE IF NOT EXISTS fingerprints_http_tmp ({FINGERPRINT_COLUMNS}) ENGINE = EmbeddedRocksDB PRIMARY KEY name",
    f"""CREATE TABLE IF NOT EXISTS asnmeta ({ASNMETA_COLUMNS})
    ENGINE = MergeTree ORDER BY (asn, changed) SETTINGS index_granularity = 8192""",
    f"""CREATE TABLE IF NOT EXISTS asnmeta_tmp ({ASNMETA_COLUMNS})
    ENGINE = MergeTree ORDER BY (asn, changed) SETTINGS index_granularity = 8192""",
    """CREATE TABLE IF NOT EXISTS jsonl (
    `report_id` String,
    `input` String,
    `s3path` String,
    `linenum` Int32,
    `measurement_uid` String,
    `date` Date,
    `source` String,
    `update_time` DateTime64(3) MATERIALIZED now64()
    ) ENGINE = ReplacingMergeTree(update_time)
    ORDER BY (report_id, input, measurement_uid)
    SETTINGS index_granularity = 8192""",
    """CREATE TABLE IF NOT EXISTS blocking_events (
    `test_name` String,
    `input` String,
    `probe_cc` String,
    `probe_asn` Int32,
    `status` String,
    `time` DateTime64(3),
    `detection_time` DateTime64(0) MATERIALIZED now64()
    ) ENGINE = ReplacingMergeTree
    ORDER BY (test_name, input, probe_cc, probe_asn, time)
    SETTINGS index_granularity = 4""",
    # The changepoint API's table (upstream oonimeasurements); the per-layer
    # columns of upstream's observation-based detector stay NULL here, the
    # fastpath-based detector fills count, the accumulators and the means.
    """CREATE TABLE IF NOT EXISTS event_detector_changepoints (
    `probe_asn` UInt32,
    `probe_cc` String,
    `domain` String,
    `ts` DateTime64(3, 'UTC'),
    `count_isp_resolver` Nullable(UInt32),
    `count_other_resolver` Nullable(UInt32),
    `count` Nullable(UInt32),
    `dns_isp_blocked` Nullable(Float32),
    `dns_other_blocked` Nullable(Float32),
    `tcp_blocked` Nullable(Float32),
    `tls_blocked` Nullable(Float32),
    `change_dir` Nullable(Int8),
    `s_pos` Nullable(Float32),
    `s_neg` Nullable(Float32),
    `current_state` String,
    `h` Nullable(Float32),
    `block_type` String
    ) ENGINE = ReplacingMergeTree
    ORDER BY (probe_asn, probe_cc, ts, domain)
    SETTINGS index_granularity = 8192""",
    "ALTER TABLE event_detector_changepoints ADD COLUMN IF NOT EXISTS `test_name` String",
    "ALTER TABLE event_detector_changepoints ADD COLUMN IF NOT EXISTS `last_ts` Nullable(DateTime64(3, 'UTC'))",
    "ALTER TABLE event_detector_changepoints ADD COLUMN IF NOT EXISTS `current_mean` Nullable(Float32)",
    "ALTER TABLE event_detector_changepoints ADD COLUMN IF NOT EXISTS `previous_mean` Nullable(Float32)",
    # The detector's memory: one row per series (latest ``written`` wins) and
    # one checkpoint row (test_name = '__checkpoint__'), always inserted in
    # the same INSERT so that the two never disagree after a crash.
    """CREATE TABLE IF NOT EXISTS event_detector_state (
    `probe_cc` String,
    `probe_asn` UInt32,
    `test_name` String,
    `domain` String,
    `as_of` DateTime('UTC'),
    `state` String,
    `written` DateTime64(6, 'UTC')
    ) ENGINE = ReplacingMergeTree(written)
    ORDER BY (probe_cc, probe_asn, test_name, domain)
    SETTINGS index_granularity = 8192""",
    """CREATE TABLE IF NOT EXISTS blocking_status (
    `test_name` String,
    `input` String,
    `probe_cc` String,
    `probe_asn` Int32,
    `confirmed_perc` Float32,
    `pure_anomaly_perc` Float32,
    `accessible_perc` Float32,
    `cnt` Float32,
    `status` String,
    `old_status` String,
    `change` Float32,
    `stability` Float32,
    `update_time` DateTime64(0) MATERIALIZED now64()
    ) ENGINE = ReplacingMergeTree
    ORDER BY (test_name, input, probe_cc, probe_asn)
    SETTINGS index_granularity = 4""",
    """CREATE TABLE IF NOT EXISTS test_helper_instances (
    `rdn` String,
    `dns_zone` String,
    `name` String,
    `provider` String,
    `region` String,
    `ipaddr` IPv4,
    `ipv6addr` IPv6,
    `draining_at` Nullable(DateTime('UTC')),
    `sign` Int8,
    `destroyed_at` Nullable(DateTime('UTC'))
    ) ENGINE = CollapsingMergeTree(sign)
    ORDER BY name
    SETTINGS index_granularity = 8""",
    # Rotation's step of each VM (analysis/rotation/store.py); '' on rows of
    # the legacy script, read as live/draining/destroyed from the timestamps.
    "ALTER TABLE test_helper_instances ADD COLUMN IF NOT EXISTS `state` LowCardinality(String)",
    "ALTER TABLE test_helper_instances ADD COLUMN IF NOT EXISTS `provider_id` String",
    "ALTER TABLE test_helper_instances ADD COLUMN IF NOT EXISTS `updated_at` Nullable(DateTime64(3, 'UTC'))",
]


def ensure_schema(db: Database) -> None:
    for ddl in DDL:
        db.command(ddl)
