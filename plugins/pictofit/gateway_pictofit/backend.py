"""The PICTOFiT Content Service as a backend object: one per app, holding the tenants' tokens.

config.py (the tenant's table and the assumptions), auth.py and token.py (credentials),
client.py (the service's calls), catalog.py (type names), preflight.py (image rules),
mapping.py (the contract's shapes), operations.py and callbacks.py (the work).
"""

from __future__ import annotations

from importlib import metadata
from typing import Final

from aiohttp import web

from gateway.plugin_api import (
    Backend,
    BackendContext,
    CallbackCall,
    CallbackRegistration,
    Credentials,
    CredentialsRequest,
    OperationCall,
    Reply,
)
from gateway_pictofit import callbacks, operations
from gateway_pictofit.auth import Auth
from gateway_pictofit.client import BACKEND
from gateway_pictofit.config import PictofitConfig

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
    name = BACKEND
    version = metadata.version("gateway-pictofit")
    config_type = PictofitConfig
    capabilities = frozenset(operations.OPERATIONS)
    description = "PICTOFiT Content Service: garment photos to virtual try-on assets."
    event_types = EVENT_TYPES

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.auth = Auth()

    async def credentials(self, request: CredentialsRequest) -> Credentials:
        return await self.auth.credentials(request)

    async def operation(self, call: OperationCall[PictofitConfig]) -> Reply | web.StreamResponse:
        await self.auth.prepare(call.tenant, call.config, call.upstream)
        return await operations.handle(call)

    async def callback(self, call: CallbackCall[PictofitConfig]) -> Reply:
        return await callbacks.receive(call, self.auth)

    async def register_callbacks(self, registration: CallbackRegistration[PictofitConfig]) -> None:
        await callbacks.register(registration, self.auth)
