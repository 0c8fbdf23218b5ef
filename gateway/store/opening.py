"""Which store a `store.url` names. Apart from the store's protocol (`gateway.store.protocol`),
which both stores import: the protocol knows no store, so nothing imports itself back."""

from __future__ import annotations

from pathlib import Path

from gateway.store.postgres import PostgresStore
from gateway.store.protocol import Store
from gateway.store.sqlite import SQLiteStore

POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})


def open_store(url: str, *, password: str | None = None, pool_size: int = 10) -> Store:
    """The store named by `store.url` (not yet opened); `password` and `pool_size` are for
    PostgreSQL."""
    scheme, _, rest = url.partition("://")
    if scheme in POSTGRES_SCHEMES:
        return PostgresStore(url, password=password, pool_size=pool_size)
    if scheme != "sqlite":
        raise ValueError(f"unsupported store url scheme {scheme!r}")
    # sqlite:///relative/path.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
    return SQLiteStore(Path(rest[1:]))
