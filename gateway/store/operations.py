"""How the shared store logic runs its operations: what a store supplies (`_read`, `_write`, its
dialect) and what it may run another way (`_lookup`, `_lookup_rows`, `_range`). Every part of the
logic (`logic.SQLStore`'s mixins) stands on this, and each store implements it with its own
connections and transactions: the concurrency primitives."""

from __future__ import annotations

import abc
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar, TypeVar

from gateway.store.sql import Db, Row

T = TypeVar("T")
Op = Callable[[Db], Coroutine[Any, Any, T]]


class Operations(abc.ABC):
    # The store's SQL dialect, whose text and arguments a query may take before it runs.
    dialect: ClassVar[type[Db]]

    @abc.abstractmethod
    async def _read(self, op: Op[T]) -> T:
        """Run `op`, which only reads; its result."""

    @abc.abstractmethod
    async def _write(self, op: Op[T], *, single: bool = False) -> T:
        """Run `op` in a transaction; its result once committed. `single`: it is one statement,
        atomic by itself, so a store may spare the transaction's round trips."""

    async def _lookup(self, op: Op[T]) -> T:
        """Run `op`, which reads a few rows at most by one index range that stops there (a row
        by a unique key, or `resources.FEW_CHILDREN` under a parent), whatever the store's size;
        a store may run it where a longer read would not be allowed to run."""
        return await self._read(op)

    async def _lookup_rows(self, query: str, args: Sequence[object]) -> Sequence[Row]:
        """The rows of `query`, one statement that is a lookup (`_lookup`); a store may spare it
        an operation's plumbing."""
        return await self._lookup(lambda db: db.rows(query, args))

    async def _range(self, op: Op[T]) -> T:
        """Run `op`, which reads a page of an index range in the index's order (a listing); a
        store may pin its plan to that order, as PostgreSQL must without statistics."""
        return await self._read(op)
