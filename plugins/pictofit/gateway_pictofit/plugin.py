"""The PICTOFiT Content Service backend: the hooks, each handing over to the module of its role.

config.py (the tenant's table and the assumptions), auth.py and token.py (credentials),
client.py (the service's calls), catalog.py (type names), preflight.py (image rules),
mapping.py (the contract's shapes), operations.py and callbacks.py (the work).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from gateway.backend import (
    BackendDeclaration,
    CallbackCall,
    Credentials,
    OperationCall,
    Reply,
    Sandbox,
    Secret,
    hookimpl,
)
from gateway.upstream import BoundUpstream
from gateway_pictofit import auth, callbacks, operations, sandbox
from gateway_pictofit.client import BACKEND
from gateway_pictofit.config import PictofitConfig

NAME: Final = BACKEND
VERSION: Final = "0.2.0"

# The sandbox's demo tenant authenticates callbacks with this (sandbox mode only).
SANDBOX_CALLBACK_SECRET: Final = "sandbox-pictofit-callback-secret"  # noqa: S105

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


@hookimpl
def gateway_declare_backend() -> BackendDeclaration:
    return BackendDeclaration(
        name=NAME,
        version=VERSION,
        capabilities=frozenset(operations.OPERATIONS),
        config_type=PictofitConfig,
        description="PICTOFiT Content Service: garment photos to virtual try-on assets.",
        event_types=EVENT_TYPES,
    )


@hookimpl
async def gateway_upstream_credentials(
    backend: str, tenant: str, config: PictofitConfig, refresh: bool
) -> Credentials:
    return await auth.credentials(config, refresh=refresh)


@hookimpl
async def gateway_handle_operation(call: OperationCall) -> Reply | web.StreamResponse:
    with auth.bound(call.upstream):
        await auth.prepare(call.config)
        return await operations.handle(call)


@hookimpl
async def gateway_handle_callback(call: CallbackCall) -> Reply:
    return await callbacks.receive(call)


@hookimpl
async def gateway_register_callbacks(
    backend: str, tenant: str, config: PictofitConfig, callback_url: str, upstream: BoundUpstream
) -> None:
    await callbacks.register(tenant, config, callback_url, upstream)


@hookimpl
def gateway_sandbox() -> Sandbox:
    settings = sandbox.PictofitSandboxSettings()
    return Sandbox(
        backend=NAME,
        make_app=lambda: sandbox.create_sandbox_app(settings),
        tenant_config=lambda url: {
            "base_url": url,
            "customer_id": settings.customer_id,
            "api_key": Secret.literal(next(iter(settings.api_keys)), "sandbox"),
            "callback_secret": Secret.literal(SANDBOX_CALLBACK_SECRET, "sandbox"),
        },
    )
