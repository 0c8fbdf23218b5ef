"""Resource ownership, remembered in the process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from gateway.store.protocol import Store
from gateway.store.records import ResourceRecord


class Owners:
    """Who owns which resource, remembered: a record is written only once its create succeeded,
    and its owner, backend and parent never change, so the hot path asks the store once per
    resource and process.

    Creates of one id in this process take turns (`creating`), from the ownership check to the
    backend's record: a second tenant's create of the same id sees the first one's record and is
    a 404 before anything reaches the upstream.
    """

    def __init__(self, store: Store, size: int = 100_000) -> None:
        self._store = store
        self._size = size
        self._known: dict[tuple[str, str], ResourceRecord] = {}
        self._creating: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    def known(self, kind: str, resource_id: str) -> ResourceRecord | None:
        """The record if it is remembered: the hot path's answer, without a coroutine."""
        return self._known.get((kind, resource_id))

    async def get(self, kind: str, resource_id: str) -> ResourceRecord | None:
        key = (kind, resource_id)
        found = self._known.get(key)
        if found is None:
            found = await self._store.get_resource(kind, resource_id)
            if found is not None:
                self.remember(found)
        return found

    def remember(self, record: ResourceRecord) -> None:
        if len(self._known) >= self._size:
            self._known.pop(next(iter(self._known)))  # the oldest: dicts keep insertion order
        self._known[(record.kind, record.id)] = record

    @asynccontextmanager
    async def creating(self, keys: Sequence[tuple[str, str]]) -> AsyncIterator[None]:
        """Hold the turn of each (kind, id) a call may create, taken in one order (no deadlock);
        a lock is dropped once nobody holds or waits for it."""
        counted: list[tuple[str, str]] = []
        acquired: set[tuple[str, str]] = set()
        try:
            for key in sorted(set(keys)):
                lock, users = self._creating.get(key) or (asyncio.Lock(), 0)
                self._creating[key] = (lock, users + 1)
                counted.append(key)
                await lock.acquire()
                acquired.add(key)
            yield
        finally:
            for key in reversed(counted):
                lock, users = self._creating[key]
                if key in acquired:
                    lock.release()
                if users == 1:
                    del self._creating[key]
                else:
                    self._creating[key] = (lock, users - 1)
