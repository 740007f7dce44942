"""Alembic migrations of the store, shipped inside the package; ``campaigns.store.migrate`` runs them."""
