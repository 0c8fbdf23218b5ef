"""Idempotency keys, as the shared store logic keeps them: the first request made with a key
claims it for a lease, its answer is kept for a while, and a retried request finds either."""

from __future__ import annotations

import time
from collections.abc import Mapping

from gateway.store import steps
from gateway.store.operations import Operations
from gateway.store.records import IdempotentRecord
from gateway.store.rows import to_json
from gateway.store.sql import Db, timestamp


class IdempotencyKeys(Operations):
    """The idempotency-key operations of `Store`."""

    async def begin_idempotent(
        self, tenant: str, key: str, *, operation: str, fingerprint: str, lease: float
    ) -> IdempotentRecord | None:
        async def op(db: Db) -> IdempotentRecord | None:
            now = time.time()
            await db.count(
                "DELETE FROM idempotency_keys WHERE tenant = ? AND key = ? AND expires_at <= ?",
                (tenant, key, now),
            )
            # Another replica's claim in flight: ON CONFLICT waits for it, then sees it.
            claimed = await db.count(
                "INSERT INTO idempotency_keys (tenant, key, operation, fingerprint, state,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, 'running', ?, ?)"
                " ON CONFLICT DO NOTHING",
                (tenant, key, operation, fingerprint, timestamp(), now + lease),
            )
            return None if claimed else await steps.get_idempotent(db, tenant, key)

        return await self._write(op)

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
        await self._write(
            lambda db: db.count(
                "UPDATE idempotency_keys SET state = 'done', status = ?, headers = ?, body = ?,"
                " expires_at = ? WHERE tenant = ? AND key = ?",
                (status, to_json(dict(headers)), body, time.time() + ttl, tenant, key),
            ),
            single=True,
        )

    async def abandon_idempotent(self, tenant: str, key: str) -> None:
        await self._write(
            lambda db: db.count(
                "DELETE FROM idempotency_keys WHERE tenant = ? AND key = ? AND state = 'running'",
                (tenant, key),
            ),
            single=True,
        )

    async def get_idempotent(self, tenant: str, key: str) -> IdempotentRecord | None:
        return await self._read(lambda db: steps.get_idempotent(db, tenant, key))
