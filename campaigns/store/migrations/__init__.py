"""Alembic migrations of the store, shipped inside the package; ``campaigns.store.database.migrate`` runs them."""
