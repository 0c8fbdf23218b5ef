"""Trace contexts kept with what they concern (`gateway.telemetry` writes and reads them): the
request that last wrote a resource, the span that published an event. Opaque text here, keyed by
subject; both stores, one table (`trace_contexts`)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store.operations import Operations
from gateway.store.sql import Db


class TraceContexts(Operations):
    """`Store.save_trace_context` and `Store.trace_contexts`, as `logic.SQLStore` has them."""

    async def save_trace_context(self, subject: str, context: str, *, now: float) -> None:
        async def op(db: Db) -> None:
            query = db.replace("trace_contexts", "subject, context, saved_epoch", "subject")
            await db.count(query, (subject, context, now))

        await self._write(op, single=True)

    async def trace_contexts(self, subjects: Sequence[str]) -> dict[str, str]:
        if not subjects:
            return {}

        async def op(db: Db) -> dict[str, str]:
            among, args = db.any_of("subject", subjects)
            found = await db.rows(
                f"SELECT subject, context FROM trace_contexts WHERE {among}", args
            )
            return {str(subject): str(context) for subject, context in found}

        return await self._read(op)
