"""The PICTOFiT Content Service as a backend object: one per app, holding the tenants' tokens
and type lists (the package's docstring lists the other modules)."""

from __future__ import annotations

from importlib import metadata
from typing import Final

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
from gateway_pictofit.client import PictofitClient, TypeCache
from gateway_pictofit.config import PictofitConfig
from gateway_pictofit.operations import OPERATIONS

__all__ = ["PictofitBackend"]

EVENT_TYPES: Final = {
    "product.completed": (
        "PICTOFiT finished a product (callback PRODUCT_COMPLETED); data: productId and its "
        "configurations with states and gateway result URLs."
    ),
    "product.rejected": (
        "PICTOFiT rejected a product's input (callback PRODUCT_REJECTED); data: productId and "
        "its configurations."
    ),
    "pictofit.*": (
        "Any other PICTOFiT callback type, lower-cased (e.g. pictofit.product_updated); data: "
        "callbackType, objectId, and productId with configurations when it names a product."
    ),
}


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

    async def _client(
        self, tenant: str, config: PictofitConfig, upstream: BoundUpstream
    ) -> PictofitClient:
        """The tenant's client for one call, its token fetched first if one is due."""
        if config.token is not None:  # an API key needs nothing fetched: no coroutine to await
            await self.auth.prepare(tenant, config, upstream)
        return PictofitClient(upstream, config, self.types)

    async def credentials(self, request: CredentialsRequest) -> Credentials:
        return await self.auth.credentials(request)

    async def operation(self, call: OperationCall[PictofitConfig]) -> Reply | web.StreamResponse:
        client = await self._client(call.tenant, call.config, call.upstream)
        return await OPERATIONS[call.operation](call, client)

    def callback_account(self, config: PictofitConfig) -> str | None:
        account = callbacks.account_of(config)
        if account is not None:
            self._sharing.setdefault(account, set()).add(config)
        return account

    async def callback(self, call: CallbackCall[PictofitConfig]) -> Reply:
        # The client is made only once the callback is authentic: no token fetched for a forgery.
        # A product is read with its owner's credentials, logged as that tenant's call.
        async def client(tenant: str, config: PictofitConfig) -> PictofitClient:
            upstream = call.upstream
            if tenant != call.tenant:
                upstream = self.context.upstream.bind(
                    tenant=tenant,
                    config=config,
                    request_id=call.request_id,
                    operation="receiveBackendCallback",
                )
            return await self._client(tenant, config, upstream)

        return await callbacks.receive(call, client)

    async def register_callbacks(self, registration: CallbackRegistration[PictofitConfig]) -> None:
        config, upstream = registration.config, registration.upstream
        sharing = self._sharing.get(registration.account or "", set())
        await callbacks.register(
            registration, lambda: self._client(registration.tenant, config, upstream), sharing
        )
