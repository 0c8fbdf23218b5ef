"""The background task that carries out bulk recoveries (`recoverSubscription`).

It leases a running recovery from the store (`Store.claim_recovery`: one process at a time per
recovery, across replicas), queues its failed deliveries again in batches of one transaction
each (`Store.recover_step`), waking the delivery workers after each, and goes on to the next
recovery. Recoveries are rows: one that a stopped or crashed process left is continued by whichever
process leases it next, after the last batch it committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from gateway.logs import get_logger
from gateway.store.protocol import Store
from gateway.store.records import Recovery

log = get_logger("gateway.webhooks")

BATCH = 200  # deliveries queued per transaction
LEASE = 30.0  # seconds a recovery stays leased without a batch (then another process takes it)
# Seconds between looks for recoveries other processes started or left, at the most often; the
# app looks no more often than `[events] poll_interval` either.
POLL = 5.0


class Recoverer:
    def __init__(
        self,
        store: Store,
        *,
        owner: str,
        wake_workers: Callable[[], None],
        batch: int = BATCH,
        poll: float = POLL,
    ) -> None:
        self._store = store
        self._owner = owner
        self._wake_workers = wake_workers
        self._batch = batch
        self._poll = poll
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._current: str | None = None

    @property
    def poll(self) -> float:
        """Seconds between looks for recoveries while none is known to have started."""
        return self._poll

    def wake(self) -> None:
        """A recovery was started: look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="webhooks-recover")

    async def stop(self) -> None:
        """Stop between batches and give the lease back, so that the next process continues at
        once rather than when the lease runs out."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._current is not None:
            with contextlib.suppress(Exception):  # down: the lease runs out by itself
                await self._store.release_recovery(self._current, owner=self._owner)
            self._current = None

    async def run_once(self) -> Recovery | None:
        """Lease one recovery and carry it out to its end (or until the lease is lost); it as it
        ended, or None when there was none to lease."""
        claimed = await self._store.claim_recovery(owner=self._owner, now=time.time(), lease=LEASE)
        if claimed is None:
            return None
        self._current = claimed.id
        recovery: Recovery | None = claimed
        while recovery is not None and recovery.status == "running":
            recovery = await self._store.recover_step(
                claimed.id, owner=self._owner, now=time.time(), lease=LEASE, batch=self._batch
            )
            self._wake_workers()
            await asyncio.sleep(0)  # between transactions, the loop serves the others
        self._current = None
        if recovery is not None:
            log.info(
                "webhook.recovery_ended",
                tenant=recovery.tenant,
                subscription=recovery.subscription_id,
                recovery=recovery.id,
                status=recovery.status,
                requeued=recovery.requeued,
            )
        return recovery

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await self.run_once() is not None:
                    pass
            except Exception as exc:  # the store is down, say: the next look tries again
                log.warning("webhook.recovery_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
