"""Product and file type names, resolved to the service's ids from its own lists.

The ids are never hard-coded: each list is read from the service, kept per tenant for
`types_ttl_s`, and fetched once at a time however many calls need it. A name that is not in the
list is the caller's mistake: 422, naming the field and listing the valid names.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import attrs

from gateway.plugin_api import FieldError, invalid_input
from gateway_pictofit.client import PictofitClient, TypeEntry
from gateway_pictofit.config import PictofitConfig

__all__ = ["Kind", "clock", "resolve", "type_names"]

Kind = Literal["product", "image"]

clock: Callable[[], float] = time.monotonic
"""The cache's clock (module level so that tests can move time forward)."""


@attrs.frozen
class _Entry:
    types: tuple[TypeEntry, ...]
    expires: float


class _TypeCache:
    """One tenant's type lists."""

    def __init__(self) -> None:
        self._entries: dict[Kind, _Entry] = {}
        self._locks: dict[Kind, asyncio.Lock] = {}

    async def get(
        self, kind: Kind, ttl: float, fetch: Callable[[], Awaitable[list[TypeEntry]]]
    ) -> tuple[TypeEntry, ...]:
        entry = self._entries.get(kind)
        if entry is not None and clock() < entry.expires:
            return entry.types
        async with self._locks.setdefault(kind, asyncio.Lock()):
            entry = self._entries.get(kind)
            if entry is not None and clock() < entry.expires:
                return entry.types
            types = tuple(await fetch())
            self._entries[kind] = _Entry(types, clock() + ttl)
            return types


_caches: weakref.WeakKeyDictionary[PictofitConfig, _TypeCache] = weakref.WeakKeyDictionary()


async def _types(client: PictofitClient, kind: Kind) -> tuple[TypeEntry, ...]:
    cache = _caches.get(client.config)
    if cache is None:
        cache = _caches[client.config] = _TypeCache()
    fetch = client.product_types if kind == "product" else client.file_types
    return await cache.get(kind, client.config.types_ttl_s, fetch)


async def type_names(client: PictofitClient, kind: Kind) -> list[str]:
    return [name for _, name in await _types(client, kind)]


async def resolve(client: PictofitClient, kind: Kind, name: str, location: str) -> Any:
    """The service's id of the type called `name` (exact match); 422 if there is none."""
    types = await _types(client, kind)
    for type_id, type_name in types:
        if type_name == name:
            return type_id
    valid = sorted(type_name for _, type_name in types)
    what = "product type" if kind == "product" else "image type"
    raise invalid_input(
        f"{name!r} is not a PICTOFiT {what}",
        [FieldError(location, f"unknown {what} {name!r}; valid names: {', '.join(valid)}")],
        extra={"validNames": valid},
    )
