"""Registering backends' callbacks with their upstreams, kept trying until it succeeds.

At start-up every (tenant, backend) pair whose backend registers callbacks is registered in the
background; a failure is retried with capped exponential backoff, and the state of each pair is
what `/readyz` and `/v1/backends` report. `gateway callbacks sync` runs one round in the foreground.
"""

from __future__ import annotations

import asyncio
import datetime
import random
from typing import Any

import attrs
import structlog

from gateway.backend import Backend, CallbackRegistration
from gateway.tenants import TenantDirectory

log = structlog.get_logger("gateway.callbacks")

FIRST_RETRY = 1.0
MAX_RETRY = 300.0


@attrs.frozen
class SyncState:
    state: str  # pending, synced or failed
    detail: str | None = None
    attempts: int = 0
    at: str | None = None


class CallbackRegistrar:
    def __init__(
        self,
        *,
        backends: dict[str, Backend[Any]],
        tenants: TenantDirectory,
        public_url: str | None,
    ) -> None:
        self._backends = backends
        self._public_url = public_url.rstrip("/") if public_url else None
        self.pairs = [
            (tenant.id, backend, config)
            for tenant in tenants.tenants.values()
            for backend, config in tenant.configs.items()
            if backends[backend].registers_callbacks()
        ]
        self.states: dict[tuple[str, str], SyncState] = {}
        for tenant_id, backend, _ in self.pairs:
            self.states[(tenant_id, backend)] = (
                SyncState("pending")
                if self._public_url
                else SyncState("failed", "server.public_url is not set: upstreams cannot call back")
            )
        self._task: asyncio.Task[None] | None = None

    def state(self, tenant: str, backend: str) -> SyncState | None:
        return self.states.get((tenant, backend))

    async def sync_one(self, tenant: str, backend: str, config: object) -> SyncState:
        previous = self.states.get((tenant, backend), SyncState("pending"))
        if self._public_url is None:
            return previous
        url = f"{self._public_url}/callbacks/{backend}/{tenant}/"
        receiver = self._backends[backend]
        upstream = receiver.context.upstream.bind(
            tenant=tenant,
            config=config,
            request_id=f"callbacks-sync-{tenant}-{backend}",
            operation="registerCallbacks",
        )
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        try:
            await receiver.register_callbacks(CallbackRegistration(tenant, config, url, upstream))
        except Exception as exc:  # any failure is reported and retried, never fatal
            state = SyncState("failed", _describe(exc), previous.attempts + 1, now)
            log.warning("callbacks.sync_failed", tenant=tenant, backend=backend, error=state.detail)
        else:
            state = SyncState("synced", None, previous.attempts + 1, now)
            log.info("callbacks.synced", tenant=tenant, backend=backend)
        self.states[(tenant, backend)] = state
        return state

    async def sync_all(self) -> dict[tuple[str, str], SyncState]:
        for tenant, backend, config in self.pairs:
            await self.sync_one(tenant, backend, config)
        return dict(self.states)

    def start(self) -> None:
        if self.pairs and self._public_url:
            self._task = asyncio.create_task(self._keep_trying(), name="callbacks-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _keep_trying(self) -> None:
        pending = list(self.pairs)
        delay = FIRST_RETRY
        while pending:
            results = [await self.sync_one(t, b, c) for t, b, c in pending]
            pending = [p for p, r in zip(pending, results, strict=True) if r.state != "synced"]
            if pending:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, MAX_RETRY)


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]
