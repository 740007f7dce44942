"""Opening a store: URL rules, SQLite settings, and migrations that build exactly the models' schema."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

from campaigns.errors import CrowdError
from campaigns.store.database import MIGRATIONS, normalize_url, open_store
from campaigns.store.settings import Settings


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def test_migrations_create_exactly_the_models_schema(db_url):
    store = open_store(db_url)
    try:
        with store.engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            assert set(SQLModel.metadata.tables) <= tables
            assert tables - set(SQLModel.metadata.tables) == {"alembic_version"}
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert ctx.get_current_revision() == head_revision()
            assert compare_metadata(ctx, SQLModel.metadata) == []
            uniques = {tuple(u["column_names"]) for u in inspect(conn).get_unique_constraints("assignments")}
            assert ("provider", "assignment_id") in uniques
    finally:
        store.close()


def test_reopen_is_a_no_op_and_downgrade_round_trips(db_url):
    open_store(db_url).close()
    store = open_store(db_url)  # already at head: nothing to do, nothing fails
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        with store.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    finally:
        store.close()
    open_store(db_url).close()  # and back up again


def test_sqlite_connections_are_configured_for_several_processes(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    finally:
        store.close()


def test_url_from_environment_when_not_given(tmp_path, monkeypatch):
    target = tmp_path / "from-env.db"
    monkeypatch.setenv("CROWD_DATABASE_URL", f"sqlite:///{target}")
    open_store().close()
    assert target.exists()


@pytest.mark.parametrize("url", ["postgresql://u:pw@db:5432/crowd", "postgres://u:pw@db/crowd",
                                 "postgresql+psycopg://u:pw@db/crowd"])
def test_postgres_urls_use_psycopg3(url):
    u = normalize_url(url)
    assert u.drivername == "postgresql+psycopg"
    assert u.database == "crowd"


@pytest.mark.parametrize("url", ["mysql://u@db/x", "not a url"])
def test_unsupported_urls_are_one_line_errors(url):
    with pytest.raises(CrowdError) as info:
        normalize_url(url)
    assert "\n" not in str(info.value)


def test_unopenable_database_is_a_crowd_error_without_password(tmp_path):
    with pytest.raises(CrowdError) as info:
        open_store(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}")
    assert "cannot open database" in str(info.value)
    with pytest.raises(CrowdError) as info:  # nothing listens on port 1
        open_store("postgresql://crowd:hunter2@127.0.0.1:1/crowd?connect_timeout=2")
    assert "hunter2" not in str(info.value) and "\n" not in str(info.value)


def test_settings_read_environment_and_hide_secrets(monkeypatch):
    monkeypatch.delenv("CROWD_TOLOKA_API_KEY", raising=False)
    monkeypatch.setenv("TOLOKA_API_KEY", "tok-secret-123")
    monkeypatch.setenv("CROWD_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("CROWD_MTURK_ENDPOINT", "http://127.0.0.1:9999")
    s = Settings()
    assert s.toloka_api_key is not None and s.toloka_api_key.get_secret_value() == "tok-secret-123"
    assert s.log_level == "DEBUG" and s.mturk_endpoint == "http://127.0.0.1:9999"
    assert "tok-secret-123" not in repr(s) and "tok-secret-123" not in str(s.model_dump())
    monkeypatch.setenv("CROWD_TOLOKA_API_KEY", "crowd-wins")
    assert Settings().toloka_api_key.get_secret_value() == "crowd-wins"


def test_page_lanes_survive_migration_0004_both_ways(db_url):
    """0004 turns ``pages.restricted`` (the one lane there was) into ``pages.lane``: a page for
    the trusted lane stays one across a downgrade to 0003 and back."""
    from campaigns.store.models import Page
    from tests.test_store_ops import seed

    store = open_store(db_url)
    try:
        _, (stage_id,) = seed(store)
        with store.write() as s:
            s.add_all([Page(stage_id=stage_id, page_key=f"pg-{lane}", lane=lane)
                       for lane in ("trusted", "probation", None)])
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        with store.engine.connect() as conn:
            rows = dict(conn.exec_driver_sql("SELECT page_key, restricted FROM pages").all())
        assert {k: bool(v) for k, v in rows.items()} == {"pg-trusted": True, "pg-probation": False, "pg-None": False}
    finally:
        store.close()
    store = open_store(db_url)  # back up to head
    try:
        with store.engine.connect() as conn:
            rows = dict(conn.exec_driver_sql("SELECT page_key, lane FROM pages").all())
        assert rows == {"pg-trusted": "trusted", "pg-probation": None, "pg-None": None}  # 0003 knew one lane
    finally:
        store.close()
