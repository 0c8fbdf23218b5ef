"""The trace contexts kept in the store (`trace_contexts`), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from gateway.store.protocol import Store


async def test_a_trace_context_is_kept_replaced_and_read_by_subject(store: Store) -> None:
    """Saved by subject, replaced by a later save, read back for the subjects that have one."""
    await store.save_trace_context("resource:product:p1", "first", now=1.0)
    await store.save_trace_context("resource:product:p1", "second", now=2.0)
    await store.save_trace_context("event:e1", "published", now=3.0)
    found = await store.trace_contexts(["resource:product:p1", "event:e1", "event:none"])
    assert found == {"resource:product:p1": "second", "event:e1": "published"}
    assert await store.trace_contexts([]) == {}
