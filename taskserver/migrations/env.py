"""Alembic environment for the task server: the target schema is ``taskserver.models.Base.metadata``.

``taskserver.db.migrate`` passes an open connection in ``config.attributes["connection"]``; the
alembic CLI gets one from ``CROWD_SERVE_DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from taskserver.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def _cli_url() -> str:
    from taskserver.db import normalize_url
    from taskserver.settings import ServerSettings

    return normalize_url(ServerSettings().database_url).render_as_string(hide_password=False)


if context.is_offline_mode():
    context.configure(url=_cli_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (conn := context.config.attributes.get("connection")) is not None:
    _run(conn)
else:
    with create_engine(_cli_url()).begin() as conn:
        _run(conn)
