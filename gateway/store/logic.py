"""The store's logic, written once for SQLite and PostgreSQL: every operation of `Store` as steps
on a `sql.Db`, in neutral SQL.

A store subclasses `SQLStore` with how an operation runs (its connections, its transactions: the
concurrency primitives of `operations.Operations`) and a `Db` in its dialect. SQLite is the
reference behaviour; what must hold across processes on one PostgreSQL database is asked of the
dialect where it happens (`Db.lock`, `Db.claim`, `Db.notify`). The operations are grouped by what
they concern, a mixin each: `resources`, `idempotency_keys`, `events`, `subscriptions`,
`delivery_work`, `recovery`, `retention` and `traces`.
"""

from __future__ import annotations

from gateway.store.delivery_work import DeliveryWork
from gateway.store.events import Events
from gateway.store.idempotency_keys import IdempotencyKeys
from gateway.store.recovery import Recovering
from gateway.store.resources import Resources
from gateway.store.retention import Purging
from gateway.store.subscriptions import Subscriptions
from gateway.store.traces import TraceContexts


class SQLStore(
    Resources,
    IdempotencyKeys,
    Events,
    Subscriptions,
    DeliveryWork,
    Purging,
    Recovering,
    TraceContexts,
):
    """Every data operation of `Store`; a subclass adds open, close and listen."""

    writes_in_order = False

    async def schema_version(self) -> int:
        version = await self._read(
            lambda db: db.value("SELECT MAX(version) FROM schema_migrations")
        )
        return int(version or 0)

    async def ping(self) -> None:
        await self._read(lambda db: db.value("SELECT 1"))
