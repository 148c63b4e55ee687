"""The fastpath: scores each measurement and upserts it into ClickHouse."""
