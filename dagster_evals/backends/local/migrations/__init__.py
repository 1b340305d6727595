"""Alembic migrations of the local backend's schema (run programmatically by `store.migrate`)."""
