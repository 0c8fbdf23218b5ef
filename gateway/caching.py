"""A cache for backends: values fetched from an upstream (type lists, upload rules) reused for a
while, held by the backend object (one per app) and keyed as it likes (per tenant, usually)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import attrs

__all__ = ["TtlCache", "clock"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

clock: Callable[[], float] = time.monotonic
"""Every cache's clock (module level so that tests can move time forward)."""


@attrs.frozen
class _Entry(Generic[T]):
    value: T
    expires: float


class TtlCache(Generic[K, T]):
    """One value per key, fetched at most once at a time and reused for `ttl` seconds."""

    def __init__(self) -> None:
        self._entries: dict[K, _Entry[T]] = {}
        self._locks: dict[K, asyncio.Lock] = {}

    def _fresh(self, key: K) -> _Entry[T] | None:
        entry = self._entries.get(key)
        return entry if entry is not None and clock() < entry.expires else None

    async def get(self, key: K, ttl: float, fetch: Callable[[], Awaitable[T]]) -> T:
        """The key's value while fresh, else `fetch()`ed (once, however many calls wait)."""
        entry = self._fresh(key)
        if entry is not None:
            return entry.value
        async with self._locks.setdefault(key, asyncio.Lock()):
            entry = self._fresh(key)  # another call may have fetched it while this one waited
            if entry is not None:
                return entry.value
            value = await fetch()
            self._entries[key] = _Entry(value, clock() + ttl)
            return value

    def forget(self, key: K) -> None:
        """Drop the key's value: the next `get` fetches it again."""
        self._entries.pop(key, None)
