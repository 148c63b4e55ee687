"""Tables written by the fastpath (seed schema, fastpath.md §6.1 and §7), and
the counters materialized views ClickHouse fills from its inserts."""
from __future__ import annotations

from ooni_common.db import Database

DDL = [
    """CREATE TABLE IF NOT EXISTS fastpath (
    `measurement_uid` String,
    `report_id` String,
    `input` String,
    `probe_cc` LowCardinality(String),
    `probe_asn` UInt32,
    `test_name` LowCardinality(String),
    `test_start_time` DateTime,
    `measurement_start_time` DateTime,
    `filename` String,
    `scores` String,
    `platform` String,
    `anomaly` String,
    `confirmed` String,
    `msm_failure` String,
    `domain` String,
    `software_name` String,
    `software_version` String,
    `control_failure` String,
    `blocking_general` Float32,
    `is_ssl_expected` Int8,
    `page_len` Int32,
    `page_len_ratio` Float32,
    `server_cc` String,
    `server_asn` Int8,
    `server_as_name` String,
    `update_time` DateTime64(3) MATERIALIZED now64(),
    `test_version` String,
    `architecture` String,
    `engine_name` LowCardinality(String),
    `engine_version` String,
    `test_runtime` Float32,
    `blocking_type` String,
    `test_helper_address` LowCardinality(String),
    `test_helper_type` LowCardinality(String),
    INDEX fastpath_rid_idx report_id TYPE minmax GRANULARITY 1,
    INDEX measurement_uid_idx measurement_uid TYPE minmax GRANULARITY 8
    ) ENGINE = ReplacingMergeTree(update_time)
    ORDER BY (measurement_start_time, report_id, input, measurement_uid)
    SETTINGS index_granularity = 8192""",
    "ALTER TABLE fastpath ADD COLUMN IF NOT EXISTS `ooni_run_link_id` Nullable(UInt64)",
    "ALTER TABLE fastpath ADD COLUMN IF NOT EXISTS `is_verified` LowCardinality(String)",
    # The measurement listing filters on exact domain/input (api.md §4.1);
    # without these the FINAL read scans the whole time window. They apply
    # to parts written from now on (MATERIALIZE INDEX covers older ones).
    "ALTER TABLE fastpath ADD INDEX IF NOT EXISTS fastpath_domain_idx domain TYPE bloom_filter(0.01) GRANULARITY 1",
    "ALTER TABLE fastpath ADD INDEX IF NOT EXISTS fastpath_input_idx input TYPE bloom_filter(0.01) GRANULARITY 1",
    # The live feed reads rows by insert time (/api/v1/measurements/feed):
    # recent rows sit in few granules, which this index finds.
    "ALTER TABLE fastpath ADD INDEX IF NOT EXISTS fastpath_update_time_idx update_time TYPE minmax GRANULARITY 1",
    # Daily counters for /api/v1/aggregation over any range (see
    # ooniapi/aggregation/summary.py): the last insert time of each day of
    # measurements, and the summary computed from fastpath FINAL per day.
    """CREATE TABLE IF NOT EXISTS fastpath_day_touch (
    `day` Date,
    `last_insert` DateTime64(3)
    ) ENGINE = ReplacingMergeTree(last_insert) ORDER BY day""",
    """CREATE TABLE IF NOT EXISTS fastpath_daily (
    `day` Date,
    `probe_cc` LowCardinality(String),
    `test_name` LowCardinality(String),
    `anomaly_count` UInt64,
    `confirmed_count` UInt64,
    `failure_count` UInt64,
    `ok_count` UInt64,
    `measurement_count` UInt64,
    `version` DateTime64(3)
    ) ENGINE = ReplacingMergeTree(version) ORDER BY (day, probe_cc, test_name)""",
    """CREATE TABLE IF NOT EXISTS fastpath_daily_days (
    `day` Date,
    `version` DateTime64(3)
    ) ENGINE = ReplacingMergeTree(version) ORDER BY day""",
    """CREATE TABLE IF NOT EXISTS obs_openvpn (
    `anomaly` Int8,
    `bootstrap_time` Float32,
    `confirmed` Int8,
    `error` String,
    `failure` String,
    `input` String,
    `last_handshake_transaction_id` Int32,
    `measurement_start_time` DateTime,
    `measurement_uid` String,
    `minivpn_version` String,
    `obfs4_version` String,
    `obfuscation` String,
    `platform` String,
    `probe_asn` Int32,
    `probe_cc` String,
    `probe_network_name` String,
    `provider` String,
    `remote` String,
    `report_id` String,
    `resolver_asn` Int32,
    `resolver_ip` String,
    `resolver_network_name` String,
    `software_name` String,
    `software_version` String,
    `success` Int8,
    `success_handshake` Int8,
    `success_icmp` Int8,
    `success_urlgrab` Int8,
    `tcp_connect_status_success` Int8,
    `test_runtime` Float32,
    `test_start_time` DateTime,
    `transport` String
    ) ENGINE = ReplacingMergeTree(measurement_start_time)
    ORDER BY (measurement_start_time, report_id, input)
    SETTINGS index_granularity = 8""",
    """CREATE MATERIALIZED VIEW IF NOT EXISTS counters_asn_test_list
    ENGINE = SummingMergeTree ORDER BY (probe_cc, probe_asn, input)
    SETTINGS index_granularity = 8192
    AS SELECT
        toStartOfWeek(measurement_start_time) AS week,
        probe_cc,
        toUInt64(probe_asn) AS probe_asn,
        input,
        count() AS msmt_cnt
    FROM fastpath
    INNER JOIN citizenlab ON fastpath.input = citizenlab.url
    WHERE (measurement_start_time < now()) AND (measurement_start_time > (now() - toIntervalDay(8)))
      AND (test_name = 'web_connectivity')
    GROUP BY week, probe_cc, probe_asn, input""",
    """CREATE MATERIALIZED VIEW IF NOT EXISTS counters_test_list
    ENGINE = SummingMergeTree ORDER BY (probe_cc, input)
    SETTINGS index_granularity = 8192
    AS SELECT
        toDate(measurement_start_time) AS day,
        probe_cc,
        input,
        count() AS msmt_cnt
    FROM fastpath
    INNER JOIN citizenlab ON fastpath.input = citizenlab.url
    WHERE (measurement_start_time < now()) AND (measurement_start_time > (now() - toIntervalDay(8)))
      AND (test_name = 'web_connectivity')
    GROUP BY day, probe_cc, input""",
]


# Created after the tables, by ensure_schema: rows already in fastpath then
# get their days recorded once.
DAY_TOUCH_VIEW = """CREATE MATERIALIZED VIEW IF NOT EXISTS fastpath_day_touch_mv
    TO fastpath_day_touch AS
    SELECT toDate(measurement_start_time) AS day, max(update_time) AS last_insert
    FROM fastpath GROUP BY day"""


def ensure_schema(db: Database) -> None:
    for ddl in DDL:
        db.command(ddl)
    exists = db.execute("SELECT count() FROM system.tables WHERE database = currentDatabase() "
                        "AND name = 'fastpath_day_touch_mv'")[0][0]
    if not exists:
        db.command(DAY_TOUCH_VIEW)
        db.command("INSERT INTO fastpath_day_touch SELECT toDate(measurement_start_time), "
                   "max(update_time) FROM fastpath GROUP BY 1")
