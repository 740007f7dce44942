"""Shared fixtures: a real PostgreSQL for the session, and a fresh database per test on each dialect.

``pg_url`` is ``CROWD_TEST_PG_URL`` when set (CI starts one cluster for the whole run), else a
throwaway cluster started here; without PostgreSQL binaries the PostgreSQL cases skip and say why.
"""

from __future__ import annotations

import os

import pytest

try:  # tests/ is on sys.path while it has no __init__.py; tests.pg once it becomes a package
    import pg
except ImportError:  # pragma: no cover
    from tests import pg


@pytest.fixture(scope="session")
def pg_url():
    """URL of a PostgreSQL server whose user may CREATE DATABASE."""
    url = os.environ.get("CROWD_TEST_PG_URL")
    if url:
        yield url
        return
    try:
        cluster = pg.start()
    except (pg.PgUnavailable, OSError) as exc:
        pytest.skip(f"PostgreSQL unavailable ({exc}); set CROWD_TEST_PG_URL to use a running server")
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """An empty database URL: a SQLite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crowd.db'}"
        return
    url = pg.create_database(request.getfixturevalue("pg_url"))
    try:
        yield url
    finally:
        pg.drop_database(url)
