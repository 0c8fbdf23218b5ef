"""Attempt outcomes written back to the store in batches.

The delivery worker queues each attempt's outcome as it ends; one loop writes all that gathered
in one transaction, so a burst of attempts costs the store one write, not one each. While the
store is unavailable the outcomes are kept and written once it is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.logs import get_logger
from gateway.store.errors import StoreUnavailable
from gateway.store.protocol import Store
from gateway.store.records import AttemptOutcome

log = get_logger("gateway.webhooks")

RECORD_RETRY = 0.5  # seconds between tries to record outcomes while the store is unavailable


class OutcomeRecorder:
    """Gathers outcomes and writes them in batches; `on_frees` is called once a batch that lets
    another delivery go is written."""

    def __init__(self, store: Store, on_frees: Callable[[], None]) -> None:
        self.store = store
        self.on_frees = on_frees
        self._outcomes: list[AttemptOutcome] = []
        self._have_outcomes = asyncio.Event()
        self._frees = False  # an outcome to flush lets another delivery go

    def record(self, outcome: AttemptOutcome, *, frees: bool = False) -> None:
        """Queue `outcome` for the next flush; `frees`: once written, it lets another delivery
        go (it was handed back, or it ended an ordered key's head), so the claims look again
        then rather than at the next poll."""
        self._outcomes.append(outcome)
        self._frees = self._frees or frees
        self._have_outcomes.set()

    async def run(self) -> None:
        """Flush whenever outcomes are waiting, until cancelled."""
        while True:
            await self._have_outcomes.wait()
            if not await self.flush():
                await asyncio.sleep(RECORD_RETRY)

    async def flush(self) -> bool:
        """Write every outcome gathered since the last flush in one transaction; False when the
        store was unavailable (the outcomes are kept for the next try)."""
        self._have_outcomes.clear()
        batch, self._outcomes = self._outcomes, []
        frees, self._frees = self._frees, False
        if batch:
            try:
                await self.store.complete_attempts(batch, now=time.time())
            except StoreUnavailable:
                # Written once the store is back, unless their leases end first: then they go
                # out again (at least once), and recording them later changes nothing.
                self._outcomes[:0] = batch
                self._frees = self._frees or frees
                self._have_outcomes.set()
                return False
            except Exception:
                # Not lost: the deliveries keep their lease and go out again when it ends.
                log.exception("webhook.record_failed", count=len(batch))
            else:
                if frees:
                    self.on_frees()
        return True
