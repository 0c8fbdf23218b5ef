"""The PICTOFiT sandbox application: its routes, middlewares and lifecycle.

- Literal path segments are matched case-insensitively (the service is case-insensitive, the doc
  prints ``/Customer/callbacks/types``); ``/customer(s)/callbacks/types`` both work.
- Middlewares, outermost first: request recording and faults (``gateway.sandbox_kit``), then the
  JSON error answers (``errors``), then Bearer authentication (``auth``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import hdrs, web

from gateway.plugin_api import simulator_app
from gateway_pictofit.sandbox.auth import CONNECT_ROUTE, auth, connect_token
from gateway_pictofit.sandbox.callbacks import put_callback, trigger_callback
from gateway_pictofit.sandbox.configurations import (
    product_configurations,
    put_configuration,
    ready,
)
from gateway_pictofit.sandbox.errors import errors
from gateway_pictofit.sandbox.files import post_file
from gateway_pictofit.sandbox.products import put_product
from gateway_pictofit.sandbox.results import RESULT_FILE_ROUTE, result_file
from gateway_pictofit.sandbox.settings import PictofitSandboxSettings, fault_answers
from gateway_pictofit.sandbox.state import SANDBOX_STATE, PictofitSandboxState
from gateway_pictofit.sandbox.types import callback_types, file_types, product_types

__all__ = ["create_sandbox_app"]


def _ci(path: str) -> str:
    """Make each literal segment of a route match case-insensitively."""
    parts = []
    for index, segment in enumerate(path.split("/")):
        if segment and not segment.startswith("{"):
            segment = f"{{_seg{index}:(?i:{segment})}}"
        parts.append(segment)
    return "/".join(parts)


# The doc prints /Customer/callbacks/types; accept customer and customers in any case.
_CALLBACK_TYPES_PATH = "/{_seg1:(?i:customers?)}/{_seg2:(?i:callbacks)}/{_seg3:(?i:types)}"
_CALLBACKS_PATH = "/customers/{customer_id}/callbacks/{callback_type}"

ROUTES = [
    web.post("/connect/token", connect_token, name=CONNECT_ROUTE),
    web.get(_ci("/products/types"), product_types),
    web.get(_ci("/files/types"), file_types),
    web.get(_CALLBACK_TYPES_PATH, callback_types),
    web.put(_ci("/products/{product_id}"), put_product),
    web.get(_ci("/products/{product_id}/configurations"), product_configurations),
    web.put(_ci("/configurations/{configuration_id}"), put_configuration),
    web.post(_ci("/configurations/{configuration_id}/ready"), ready),
    web.post(_ci("/files"), post_file),
    web.put(_ci(_CALLBACKS_PATH), put_callback),
    web.post(_ci(_CALLBACKS_PATH + "/trigger/{object_id}"), trigger_callback),
    web.get("/_files/results/{token}", result_file, name=RESULT_FILE_ROUTE),
]


def create_sandbox_app(settings: PictofitSandboxSettings | None = None) -> web.Application:
    """Build the simulator; its state is ``app[SANDBOX_STATE]``."""
    state = PictofitSandboxState(settings or PictofitSandboxSettings())
    app = simulator_app(
        SANDBOX_STATE,
        state,
        ROUTES,
        answers=fault_answers(state.faults),
        middlewares=[errors, auth],
    )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # One session for every callback delivery; background jobs end with the app.
        state.http = aiohttp.ClientSession(headers={hdrs.USER_AGENT: "pictofit-sandbox"})
        try:
            yield
        finally:
            tasks = list(state.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await state.http.close()
            state.http = None

    app.cleanup_ctx.append(lifecycle)
    return app
