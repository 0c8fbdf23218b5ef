"""The store: what the gateway must remember across restarts, behind one narrow interface.

SQLite is the embedded default. The interface stays small so that a second implementation (the
PostgreSQL store for several replicas) can pass the same tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from gateway.backend import Event


@attrs.frozen
class ResourceRecord:
    """A resource created through the gateway: who owns it, which backend serves it, and what
    the backend keeps about it (`attributes`, JSON)."""

    kind: str
    id: str
    tenant: str
    backend: str
    parent_id: str | None
    attributes: Mapping[str, Any]
    created_at: str
    updated_at: str


@attrs.frozen
class IdempotentRecord:
    """The first request made with an Idempotency-Key, and its answer once it has one."""

    tenant: str
    key: str
    operation: str
    fingerprint: str
    state: str  # running or done
    status: int | None
    headers: Mapping[str, str]
    body: bytes | None


@attrs.frozen
class EventPage:
    items: Sequence[Event]
    next_cursor: str | None


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply pending schema migrations."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store cannot answer."""

    async def get_resource(self, kind: str, resource_id: str) -> ResourceRecord | None: ...

    async def claim_resource(
        self,
        kind: str,
        resource_id: str,
        *,
        tenant: str,
        backend: str,
        parent_id: str | None,
        attributes: Mapping[str, Any] | None = None,
    ) -> ResourceRecord:
        """Record the owner unless the resource has one; returns the record as it is now."""

    async def update_resource(
        self, kind: str, resource_id: str, attributes: Mapping[str, Any]
    ) -> ResourceRecord | None:
        """Merge `attributes` into the record's (top-level keys replaced); None if it is unknown."""

    async def list_resources(
        self, tenant: str, kind: str, parent_id: str
    ) -> Sequence[ResourceRecord]:
        """The tenant's resources of `kind` under `parent_id`, oldest first."""

    async def begin_idempotent(
        self, tenant: str, key: str, *, operation: str, fingerprint: str, lease: float
    ) -> IdempotentRecord | None:
        """Claim the key for `lease` seconds (None), or return the live record that holds it."""

    async def finish_idempotent(
        self,
        tenant: str,
        key: str,
        *,
        status: int,
        headers: Mapping[str, str],
        body: bytes | None,
        ttl: float,
    ) -> None:
        """Store the answer of the request that claimed the key, kept for `ttl` seconds."""

    async def abandon_idempotent(self, tenant: str, key: str) -> None:
        """Release a claimed key whose request failed in a way the caller may retry."""

    async def get_idempotent(self, tenant: str, key: str) -> IdempotentRecord | None: ...

    async def record_event(self, event: Event) -> bool:
        """Store an event durably; False when its (tenant, dedupe_key) was already stored."""

    async def get_event(self, tenant: str, event_id: str) -> Event | None: ...

    async def list_events(
        self, tenant: str, *, event_type: str | None, cursor: str | None, limit: int
    ) -> EventPage: ...


def open_store(url: str) -> Store:
    """The store named by `store.url` (not yet opened)."""
    from gateway.store.sqlite import SQLiteStore

    scheme, _, rest = url.partition("://")
    if scheme != "sqlite":
        raise ValueError(f"unsupported store url {url!r}")
    # sqlite:///relative/path.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
    return SQLiteStore(Path(rest[1:]))
