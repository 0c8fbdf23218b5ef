"""State the plugin keeps between calls: per-tenant concurrency slots and cached upload rules.

Held by the backend object, so there is one per app (a process may run several: tests do) and
it goes with the app.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final, Generic, TypeVar

import attrs

from gateway.plugin_api import ProblemError
from gateway_artifi.preflight import UploadRules

__all__ = ["Runtime", "TtlCache"]

T = TypeVar("T")

_BUSY_RETRY_AFTER: Final = "1"


@attrs.define
class _Entry(Generic[T]):
    value: T
    expires: float


class TtlCache(Generic[T]):
    """One value per tenant, fetched at most once at a time and kept for a while."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, _Entry[T]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, tenant: str, ttl: float, fetch: Callable[[], Awaitable[T]]) -> T:
        entry = self._entries.get(tenant)
        if entry is not None and self._clock() < entry.expires:
            return entry.value
        # Concurrent uploads after expiry ask Artifi once, not once each.
        async with self._locks.setdefault(tenant, asyncio.Lock()):
            entry = self._entries.get(tenant)
            if entry is not None and self._clock() < entry.expires:
                return entry.value
            value = await fetch()
            self._entries[tenant] = _Entry(value, self._clock() + ttl)
            return value

    def forget(self, tenant: str) -> None:
        self._entries.pop(tenant, None)


class Runtime:
    """The plugin's state within one app."""

    def __init__(self) -> None:
        self._slots: dict[str, asyncio.Semaphore] = {}
        self.settings: TtlCache[UploadRules] = TtlCache()

    @asynccontextmanager
    async def slot(self, tenant: str, size: int, deadline: float) -> AsyncIterator[None]:
        """Hold one of the tenant's `size` concurrent-call slots; 503 if none frees in time.

        `deadline` is the caller's (absolute `loop.time()`): waiting for a slot must not outlive
        the request that waits.
        """
        semaphore = self._slots.setdefault(tenant, asyncio.Semaphore(size))
        try:
            async with asyncio.timeout_at(deadline):
                await semaphore.acquire()
        except TimeoutError:
            raise ProblemError(
                503,
                "backend-busy",
                "Backend busy",
                f"too many calls to artifi are in flight for this tenant (at most {size})",
                headers={"Retry-After": _BUSY_RETRY_AFTER},
            ) from None
        try:
            yield
        finally:
            semaphore.release()
