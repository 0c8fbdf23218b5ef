"""What the delivery workers ask of the shared store logic: due deliveries leased to them (in
turns by tenant, throttled subscriptions' buckets taken), their attempts' outcomes written back,
and how many deliveries are not yet final."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from gateway.store import rows, steps, throttle
from gateway.store.operations import Operations
from gateway.store.records import AttemptOutcome, ClaimedDelivery
from gateway.store.sql import Claim, Db, Row


class DeliveryWork(Operations):
    """The delivery workers' operations of `Store`."""

    async def claim_deliveries(
        self,
        *,
        owner: str,
        lease: float,
        limit: int,
        exclude: Sequence[str],
        now: float | None = None,
        per_tenant: int | None = None,
        busy: Mapping[str, int] | None = None,
    ) -> Sequence[ClaimedDelivery]:
        most = limit if per_tenant is None else per_tenant

        async def claim(db: Db) -> tuple[float, Sequence[Row]]:
            # By default the moment the claim runs, not the one it was asked at: queued behind
            # writes (SQLite's one writer), it takes what they queued, in the same transaction.
            at = time.time() if now is None else now
            return at, await db.claim(Claim(owner, at, lease, limit, exclude, most, busy or {}))

        at, found = await self._write(claim, single=True)
        claimed = [rows.claimed(row) for row in found]
        if any(c.subscription.max_per_second is not None for c in claimed):
            # Their buckets, in a transaction of their own: a claim without throttled
            # subscriptions (nearly all) stays one statement.
            return await self._write(lambda db: throttle.take(db, claimed, owner, at))
        return claimed

    async def complete_attempts(self, outcomes: Sequence[AttemptOutcome], *, now: float) -> None:
        if outcomes:
            await self._write(lambda db: steps.complete(db, outcomes, now))

    async def queue_depth(self) -> int:
        count = await self._read(
            lambda db: db.value(
                "SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'delivering')"
            )
        )
        return int(count or 0)
