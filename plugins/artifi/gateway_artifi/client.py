"""Artifi as one operation call sees it: its paths, a concurrency slot, the envelope decoded.

The core's upstream client adds the tenant's credentials (query string, see `auth`), logs each
attempt with the key redacted, retries what may be retried and runs the breaker; this module adds
what is Artifi's own. Calls in flight per tenant are bounded (`Slots`: Artifi publishes no rate
limits); every answer is read by `envelope.decode`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

from gateway.plugin_api import BodyFactory, BoundUpstream, ProblemError, TtlCache
from gateway_artifi import NAME
from gateway_artifi.auth import scrub
from gateway_artifi.config import ArtifiConfig
from gateway_artifi.envelope import Context, decode, unexpected
from gateway_artifi.preflight import UnreadableSettings, UploadRules

__all__ = ["ArtifiClient", "RulesCache", "Slots"]

UPLOAD_PATH: Final = "/api/2/UploadPhoto/UploadUserPhotos"
SETTINGS_PATH: Final = "/api/3/UploadImage/GetImageSettings"
LIST_PATH: Final = "/api/3/UploadImage/GetUserUploadedList"
DELETE_PATH: Final = "/api/3/UploadImage/DeleteUserPhoto"
UPDATE_USER_PATH: Final = "/api/3/User/UpdateUserId"

_BUSY_RETRY_AFTER: Final = "1"

RulesCache = TtlCache[str, UploadRules]  # tenant -> the website's upload rules


class Slots:
    """Each tenant's concurrent calls to Artifi, at most the configured number."""

    def __init__(self) -> None:
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    @asynccontextmanager
    async def slot(self, tenant: str, size: int, deadline: float) -> AsyncIterator[None]:
        """Hold one of the tenant's `size` concurrent-call slots; 503 if none frees in time.

        `deadline` is the caller's (absolute `loop.time()`): waiting for a slot must not outlive
        the request that waits.
        """
        semaphore = self._semaphores.setdefault(tenant, asyncio.Semaphore(size))
        try:
            async with asyncio.timeout_at(deadline):
                await semaphore.acquire()
        except TimeoutError:
            raise ProblemError(
                503,
                "backend-busy",
                "Backend busy",
                f"too many calls to {NAME} are in flight for this tenant (at most {size})",
                headers={"Retry-After": _BUSY_RETRY_AFTER},
            ) from None
        try:
            yield
        finally:
            semaphore.release()


class ArtifiClient:
    """The calls of one caller request to the tenant's Artifi website; `slots` and `rules` are
    the backend object's."""

    def __init__(
        self,
        upstream: BoundUpstream[ArtifiConfig],
        slots: Slots,
        rules: RulesCache,
    ) -> None:
        self.upstream = upstream
        self.tenant = upstream.tenant
        self.config = upstream.config
        self.assumptions = self.config.assumptions
        self._slots = slots
        self._rules = rules

    async def send(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        fields: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        data: BodyFactory | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """One Artifi call; its `Data`, or the mapped problem raised.

        `fields` names, for each upstream parameter (lower case), where the caller gave its value,
        so that a rejection points at the caller's input.
        """
        upstream = self.upstream
        async with self._slots.slot(self.tenant, self.config.max_concurrency, upstream.deadline):
            # 400 comes back to us: Artifi sends validation failures as a bare ProblemDetails.
            response = await upstream.request(
                method,
                self.config.url(path),
                operation=operation,
                params=params,
                data=data,
                idempotent=idempotent,
                expect=(400,),
            )
        context = Context(
            tenant=self.tenant,
            operation=operation,
            assumptions=self.assumptions,
            fields=fields,
            scrub=lambda text: scrub(self.config, text),
        )
        return decode(response, context)

    async def rules(self) -> UploadRules:
        """The website's upload rules, from the tenant's cache while they are fresh."""

        async def fetch() -> UploadRules:
            # A read: safe to retry although Artifi makes it a POST.
            data = await self.send(
                "POST", SETTINGS_PATH, operation="GetImageSettings", fields={}, idempotent=True
            )
            try:
                return UploadRules.from_data(data, self.assumptions)
            except UnreadableSettings as exc:
                raise unexpected(str(exc)) from None

        return await self._rules.get(self.tenant, self.config.settings_ttl_s, fetch)

    def forget_rules(self) -> None:
        """The website refused a file that passed the cached rules: they may have changed."""
        self._rules.forget(self.tenant)
