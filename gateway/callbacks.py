"""Registering backends' callbacks with their upstreams, kept trying until it succeeds.

At start-up every (tenant, backend) pair whose backend registers callbacks is registered in the
background; a failure is retried with capped exponential backoff, and the state of each pair is
what `/readyz` and `/v1/backends` report. `gateway callbacks sync` runs one round in the foreground.

Some upstreams keep one callback registration per account, which several tenants may share (a
second registration would replace the first). A backend says which account a tenant's
configuration belongs to (`Backend.callback_account`); tenants of one account are registered once,
with a registration naming all of them, and a callback for the account reaches the backend with
those tenants (`CallbackCall.tenants`), for it to tell whose it is. The state is still each
tenant's: an account's outcome is every one of its tenants'.
"""

from __future__ import annotations

import asyncio
import datetime
import random
from collections.abc import Mapping
from typing import Any

import attrs

from gateway.backend import Backend, CallbackRegistration
from gateway.logs import get_logger
from gateway.tenants import TenantDirectory

log = get_logger("gateway.callbacks")

FIRST_RETRY = 1.0
MAX_RETRY = 300.0


@attrs.frozen
class SyncState:
    state: str  # pending, synced or failed
    detail: str | None = None
    attempts: int = 0
    at: str | None = None


@attrs.frozen
class Registration:
    """One registration with a backend's upstream: a tenant's own, or an account's, for every
    tenant that shares it (sorted; the first names the callback URL, and its config is used)."""

    backend: str
    account: str | None
    tenants: tuple[str, ...]
    configs: Mapping[str, Any] = attrs.field(eq=False)

    @property
    def tenant(self) -> str:
        return self.tenants[0]


def plan_registrations(
    backends: Mapping[str, Backend[Any]], tenants: TenantDirectory
) -> list[Registration]:
    """The registrations the configured tenants need, for every backend that has callbacks:
    one per tenant, but one per account where the backend names accounts."""
    accounts: dict[tuple[str, str], dict[str, Any]] = {}
    found: list[Registration] = []
    for tenant in sorted(tenants.tenants.values(), key=lambda t: t.id):
        for name, config in tenant.configs.items():
            backend = backends[name]
            if not (backend.registers_callbacks() or backend.receives_callbacks()):
                continue
            account = backend.callback_account(config)
            if account is None:
                found.append(Registration(name, None, (tenant.id,), {tenant.id: config}))
            else:
                accounts.setdefault((name, account), {})[tenant.id] = config
    found += [
        Registration(name, account, tuple(configs), configs)
        for (name, account), configs in accounts.items()
    ]
    return sorted(found, key=lambda r: (r.backend, r.tenant))


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
        planned = plan_registrations(backends, tenants)
        # Which registration each (tenant, backend) is part of: callbacks are routed by it.
        self._of = {(t, r.backend): r for r in planned for t in r.tenants}
        self.registrations = [r for r in planned if backends[r.backend].registers_callbacks()]
        self.states: dict[tuple[str, str], SyncState] = {}
        for registration in self.registrations:
            for tenant in registration.tenants:
                self.states[(tenant, registration.backend)] = (
                    SyncState("pending")
                    if self._public_url
                    else SyncState(
                        "failed", "server.public_url is not set: upstreams cannot call back"
                    )
                )
        self._task: asyncio.Task[None] | None = None

    def state(self, tenant: str, backend: str) -> SyncState | None:
        return self.states.get((tenant, backend))

    def registration_of(self, tenant: str, backend: str) -> Registration | None:
        """The registration `tenant`'s callbacks from `backend` arrive through: its own, or its
        account's (every tenant of the account in it)."""
        return self._of.get((tenant, backend))

    async def sync_one(self, tenant: str, backend: str, config: object) -> SyncState:
        """Register `tenant`'s callbacks now: its account's registration if it shares one."""
        registration = self._of.get((tenant, backend)) or Registration(
            backend, None, (tenant,), {tenant: config}
        )
        return await self.sync(registration)

    async def sync(self, registration: Registration) -> SyncState:
        tenant, backend = registration.tenant, registration.backend
        previous = self.states.get((tenant, backend), SyncState("pending"))
        if self._public_url is None:
            return previous
        url = f"{self._public_url}/callbacks/{backend}/{tenant}/"
        receiver = self._backends[backend]
        config = registration.configs[tenant]
        upstream = receiver.context.upstream.bind(
            tenant=tenant,
            config=config,
            request_id=f"callbacks-sync-{tenant}-{backend}",
            operation="registerCallbacks",
        )
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        shared = {"account": registration.account, "tenants": list(registration.tenants)}
        context = shared if registration.account is not None else {}
        try:
            await receiver.register_callbacks(
                CallbackRegistration(
                    tenant,
                    config,
                    url,
                    upstream,
                    tenants=registration.tenants,
                    account=registration.account,
                )
            )
        except Exception as exc:  # any failure is reported and retried, never fatal
            state = SyncState("failed", _describe(exc), previous.attempts + 1, now)
            log.warning(
                "callbacks.sync_failed",
                tenant=tenant,
                backend=backend,
                error=state.detail,
                **context,
            )
        else:
            state = SyncState("synced", None, previous.attempts + 1, now)
            log.info("callbacks.synced", tenant=tenant, backend=backend, **context)
        # An account's outcome is each of its tenants': each sees it in /v1/backends.
        for member in registration.tenants:
            self.states[(member, backend)] = state
        return state

    async def sync_all(self) -> dict[tuple[str, str], SyncState]:
        for registration in self.registrations:
            await self.sync(registration)
        return dict(self.states)

    def start(self) -> None:
        if self.registrations and self._public_url:
            self._task = asyncio.create_task(self._keep_trying(), name="callbacks-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _keep_trying(self) -> None:
        pending = list(self.registrations)
        delay = FIRST_RETRY
        while pending:
            results = [await self.sync(r) for r in pending]
            pending = [r for r, s in zip(pending, results, strict=True) if s.state != "synced"]
            if pending:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, MAX_RETRY)


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]
