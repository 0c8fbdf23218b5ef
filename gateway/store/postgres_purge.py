"""The PostgreSQL store's purge rounds, one at a time across replicas: a session advisory lock,
held on a connection of its own for the round while its batches commit on the others."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from gateway.store.retention import Runner

PURGE_LOCK = 0x6761_7465_7075_7267  # "gatepurg": one bigint key, apart from the two-int keys
ACQUIRE_TIMEOUT = 10.0


@contextlib.asynccontextmanager
async def exclusive(pool: Any, run: Runner) -> AsyncIterator[Runner | None]:
    """`run`, while this process holds the purge lock; None when another one does (it is
    purging now: this round is skipped, the next one tries again)."""
    conn = await pool.acquire(timeout=ACQUIRE_TIMEOUT)
    try:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", PURGE_LOCK):
            yield None
            return
        try:
            yield run
        finally:
            try:
                await conn.execute("SELECT pg_advisory_unlock($1)", PURGE_LOCK)
            except BaseException:
                # Never back to the pool still holding the lock: closed, the server frees it.
                conn.terminate()
                raise
    finally:
        with contextlib.suppress(Exception):
            await pool.release(conn)
