"""PostgreSQL's own: listeners woken when another process queues deliveries (LISTEN/NOTIFY), and
a store that rides out a stopped server."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.store import postgres as pg_store
from gateway.store.errors import StoreUnavailable
from gateway.store.records import AttemptOutcome
from tests.conftest import eventually
from tests.pg import running_server
from tests.store_records import event, subscription


async def test_listeners_wake_when_another_process_queues_deliveries(pg_url: str) -> None:
    """A new event, a redelivery and a lease handed back through one store wake the other's
    listener once each (LISTEN/NOTIFY); what queues nothing (an event without subscribers, a
    claim) does not, nor does what the listening store queues itself (its process wakes its own
    workers)."""
    writer, reader = pg_store.PostgresStore(pg_url), pg_store.PostgresStore(pg_url)
    await writer.open()
    await reader.open()
    wakes: list[float] = []
    reader.listen(lambda: wakes.append(time.time()))
    try:
        await eventually(lambda: len(wakes) == 1, within=10)  # on connecting: the backlog
        await writer.record_event(event(), dedupe_window=60)  # no subscription: nothing queued
        await writer.create_subscription(subscription("s1"))
        await reader.record_event(event(), dedupe_window=60)  # its own
        stored = event()
        await writer.record_event(stored, dedupe_window=60)
        await eventually(lambda: len(wakes) == 2, within=10)
        await writer.redeliver("t1", stored.id, None)
        await eventually(lambda: len(wakes) == 3, within=10)
        [claimed, *_] = await writer.claim_deliveries(
            owner="a", now=time.time(), lease=30, limit=3, exclude=()
        )
        back = AttemptOutcome(claimed.delivery.id, "s1", None, "pending", time.time(), True)
        await writer.complete_attempts([back], now=time.time())
        await eventually(lambda: len(wakes) >= 4, within=10)
        # Notifications arrive in commit order: had the others woken it, it would show by now.
        assert len(wakes) == 4
    finally:
        await reader.close()
        await writer.close()


async def test_a_stopped_server_is_unavailable_and_the_store_recovers_by_itself() -> None:
    """With PostgreSQL stopped every operation raises StoreUnavailable (nothing else); once it is
    started again the same store works without reopening, and its listener reconnects."""
    with running_server() as server:
        url = await server.create_database()
        store = pg_store.PostgresStore(url)
        await store.open()
        wakes: list[float] = []
        store.listen(lambda: wakes.append(time.time()))
        try:
            await store.create_subscription(subscription("s1"))
            await eventually(lambda: len(wakes) == 1, within=10)
            await asyncio.to_thread(server.stop)
            with pytest.raises(StoreUnavailable):
                await store.ping()
            with pytest.raises(StoreUnavailable):
                await store.record_event(event(), dedupe_window=60)
            with pytest.raises(StoreUnavailable):
                await store.claim_deliveries(
                    owner="a", now=time.time(), lease=1, limit=1, exclude=()
                )
            await asyncio.to_thread(server.start)
            await eventually(lambda: len(wakes) == 2, within=20)  # reconnected: catch up
            await store.ping()
            assert await store.record_event(event(), dedupe_window=60)
            assert await store.queue_depth() == 1
        finally:
            await store.close()
