"""The store: what persists and how to reach it.

Tables (``models``) and their Alembic migrations, the SQLite/PostgreSQL session with leases and
insert-ignore (``database``), deterministic idempotency keys (``keys``), crash points for tests
(``checkpoints``), settings from the environment (``settings``) and the connector they describe
(``connect``). Imports nothing of campaigns but ``errors``.
"""
