"""Alembic environment: the target schema is ``SQLModel.metadata`` as declared in ``campaigns.store.models``.

``campaigns.store.database.migrate`` passes an open connection (already inside its locked transaction)
in ``config.attributes["connection"]``; the alembic CLI instead gets one from
``CROWD_DATABASE_URL`` through ``open_store``'s own URL rules.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlmodel import SQLModel

import campaigns.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


def _cli_url() -> str:
    from campaigns.store.database import normalize_url
    from campaigns.store.settings import Settings

    return normalize_url(Settings().database_url).render_as_string(hide_password=False)


if context.is_offline_mode():
    context.configure(url=_cli_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (conn := context.config.attributes.get("connection")) is not None:
    _run(conn)
else:
    with create_engine(_cli_url()).begin() as conn:
        _run(conn)
