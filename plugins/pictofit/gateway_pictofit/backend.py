"""The PICTOFiT Content Service as a backend object: one per app, holding the tenants' tokens
and type lists (the package's docstring lists the other modules)."""

from __future__ import annotations

from collections.abc import Coroutine
from importlib import metadata
from typing import Any

from aiohttp import web

from gateway.plugin_api import (
    Backend,
    BackendContext,
    BoundUpstream,
    CallbackCall,
    CallbackRegistration,
    Credentials,
    CredentialsRequest,
    OperationCall,
    Reply,
    TtlCache,
)
from gateway_pictofit import NAME, callbacks
from gateway_pictofit.auth import Auth
from gateway_pictofit.client import PictofitClient, TypeCache, open_client
from gateway_pictofit.config import PictofitConfig
from gateway_pictofit.operations import OPERATIONS, serve
from gateway_pictofit.values import EVENT_TYPES

__all__ = ["PictofitBackend"]


class PictofitBackend(Backend[PictofitConfig]):
    name = NAME
    version = metadata.version("gateway-pictofit")
    config_type = PictofitConfig
    capabilities = frozenset(OPERATIONS)
    description = "PICTOFiT Content Service: garment photos to virtual try-on assets."
    event_types = EVENT_TYPES

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.auth = Auth()
        self.types: TypeCache = TtlCache()
        # The configs of each customer's tenants, met in `callback_account`: the registration
        # carries only the first's, and their secrets must agree (`callbacks.register`).
        self._sharing: dict[str, set[PictofitConfig]] = {}

    def _client(
        self, upstream: BoundUpstream[PictofitConfig]
    ) -> Coroutine[Any, Any, PictofitClient]:
        """The tenant's client for one call, its token fetched first if one is due."""
        return open_client(self.auth, self.types, upstream)

    # `credentials` and `operation` hand back the compiled coroutines that do the work: each is
    # awaited by the core on every call (`credentials` on every attempt), and a coroutine of
    # their own here would be one more interpreted frame to run each time.
    def credentials(
        self, request: CredentialsRequest[PictofitConfig]
    ) -> Coroutine[Any, Any, Credentials]:
        return self.auth.credentials(request)

    def operation(
        self, call: OperationCall[PictofitConfig]
    ) -> Coroutine[Any, Any, Reply | web.StreamResponse]:
        return serve(call, self.auth, self.types)

    def callback_account(self, config: PictofitConfig) -> str | None:
        account = callbacks.account_of(config)
        if account is not None:
            self._sharing.setdefault(account, set()).add(config)
        return account

    async def callback(self, call: CallbackCall[PictofitConfig]) -> Reply:
        # The client is made only once the callback is authentic: no token fetched for a forgery.
        # A product is read with its owner's credentials, logged as that tenant's call, within
        # the callback's deadline.
        async def client(tenant: str, config: PictofitConfig) -> PictofitClient:
            upstream = self.context.upstream.bind(
                tenant=tenant,
                config=config,
                request_id=call.request_id,
                operation=call.upstream.operation,
                deadline=call.upstream.deadline,
            )
            return await self._client(upstream)

        return await callbacks.receive(call, client)

    async def register_callbacks(self, registration: CallbackRegistration[PictofitConfig]) -> None:
        upstream = registration.upstream
        sharing = self._sharing.get(registration.account or "", set())
        await callbacks.register(registration, lambda: self._client(upstream), sharing)
