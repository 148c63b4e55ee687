"""WSGI entry point for production servers: ``gunicorn ooniapi.runtime.wsgi:app``.
Configuration comes from the file named by ``$OONI_CONF`` plus ``OONI_*``
environment overrides; the database is connected lazily, on the first route
that needs it, so that submissions are accepted while ClickHouse is down."""
from __future__ import annotations

from ooni_common.config import Config
from ooni_common.logs import setup_logging

from ooniapi.core.app import create_app

setup_logging("ooni-api")
app = create_app(Config.load())
