"""Tables written by the API (seed schema)."""
from __future__ import annotations

from ooni_common.db import Database

from ooniapi.core.fixed_data import TEST_GROUPS

DDL = [
    """CREATE TABLE IF NOT EXISTS accounts (
    `account_id` FixedString(32),
    `role` String,
    `update_time` DateTime DEFAULT now()
    ) ENGINE = EmbeddedRocksDB PRIMARY KEY account_id""",
    """CREATE TABLE IF NOT EXISTS session_expunge (
    `account_id` FixedString(32),
    `threshold` DateTime DEFAULT now()
    ) ENGINE = EmbeddedRocksDB PRIMARY KEY account_id""",
    # Expunge thresholds in milliseconds (issue 16): session_expunge holds
    # whole seconds and an EmbeddedRocksDB table cannot take a new column.
    """CREATE TABLE IF NOT EXISTS session_revocation (
    `account_id` FixedString(32),
    `threshold_ms` Int64
    ) ENGINE = EmbeddedRocksDB PRIMARY KEY account_id""",
    """CREATE TABLE IF NOT EXISTS msmt_feedback (
    `measurement_uid` String,
    `account_id` String,
    `status` String,
    `update_time` DateTime64(3) MATERIALIZED now64(),
    `comment` String
    ) ENGINE = ReplacingMergeTree
    ORDER BY (measurement_uid, account_id)
    SETTINGS index_granularity = 4""",
    """CREATE TABLE IF NOT EXISTS url_priorities (
    `sign` Int8,
    `category_code` String,
    `cc` String,
    `domain` String,
    `url` String,
    `priority` Int32
    ) ENGINE = CollapsingMergeTree(sign)
    ORDER BY (category_code, cc, domain, url, priority)
    SETTINGS index_granularity = 1024""",
    """CREATE TABLE IF NOT EXISTS oonirun (
    `ooni_run_link_id` UInt64,
    `descriptor_creation_time` DateTime64(3),
    `translation_creation_time` DateTime64(3),
    `creator_account_id` FixedString(32),
    `archived` UInt8 DEFAULT 0,
    `descriptor` String,
    `author` String,
    `name` String,
    `short_description` String,
    `icon` String
    ) ENGINE = ReplacingMergeTree(translation_creation_time)
    ORDER BY (ooni_run_link_id, descriptor_creation_time)
    SETTINGS index_granularity = 1""",
    """CREATE TABLE IF NOT EXISTS incidents (
    `update_time` DateTime DEFAULT now(),
    `start_time` DateTime DEFAULT now(),
    `end_time` Nullable(DateTime),
    `creator_account_id` FixedString(32),
    `reported_by` String,
    `id` String,
    `title` String,
    `text` String,
    `event_type` LowCardinality(String),
    `published` UInt8,
    `deleted` UInt8 DEFAULT 0,
    `CCs` Array(FixedString(2)),
    `ASNs` Array(UInt32),
    `domains` Array(String),
    `tags` Array(String),
    `links` Array(String),
    `test_names` Array(String),
    `short_description` String,
    `email_address` String,
    `create_time` DateTime DEFAULT now()
    ) ENGINE = ReplacingMergeTree(update_time)
    ORDER BY id
    SETTINGS index_granularity = 1""",
    """CREATE TABLE IF NOT EXISTS test_groups (
    `test_name` String,
    `test_group` String
    ) ENGINE = Join(ANY, LEFT, test_name)""",
]


# Columns added after the seed schema, applied to tables that already exist
# (ADD COLUMN IF NOT EXISTS is idempotent; old rows read the default).
MIGRATIONS = [
    # Explorer findings (issue 10): themes, and the slug a finding is shown
    # by (empty on rows written before: the API answers "<year>-<id>").
    "ALTER TABLE incidents ADD COLUMN IF NOT EXISTS `themes` Array(String) DEFAULT []",
    "ALTER TABLE incidents ADD COLUMN IF NOT EXISTS `slug` String DEFAULT ''",
]


def ensure_schema(db: Database) -> None:
    for ddl in DDL:
        db.command(ddl)
    for ddl in MIGRATIONS:
        db.command(ddl)
    seed_test_groups(db)


def seed_test_groups(db: Database) -> None:
    """Fills ``test_groups`` from the map of api.md §20.2 when it is empty
    (a Join table keeps the first row per key, so a refill would not update)."""
    if db.execute("SELECT count() FROM test_groups")[0][0]:
        return
    db.insert("test_groups", ["test_name", "test_group"],
              [[t, g] for g, tests in TEST_GROUPS.items() for t in tests])
