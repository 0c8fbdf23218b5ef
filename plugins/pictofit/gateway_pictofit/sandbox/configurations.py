"""The PICTOFiT sandbox's configurations: upsert, listing by product, and processing.

- Configuration ids must be UUID version 4, and ``PUT`` upserts like products do (201 when
  created, 200 when replaced; ``createdAt`` and the state are kept).

Processing
- ``POST /configurations/{id}/ready`` answers 200 with the configuration: the state goes 2 then at
  once 3; after ``processing_delay_s`` it becomes 4 (finished) when the configuration has at least
  one FRONTAL file at that moment, else 5 (rejected, no results). Flagging a configuration that is
  ready, in progress or finished again changes nothing; a rejected one is processed again.
- When every configuration of the product is finished or rejected, the product's callback fires
  (see ``callbacks``); a finished configuration has results (see ``results``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import attrs
from aiohttp import web
from yarl import URL

from gateway.plugin_api import JSON, SandboxProblem, json_object
from gateway_pictofit.sandbox.callbacks import deliver
from gateway_pictofit.sandbox.errors import optional_str, required_name, v4_path_id
from gateway_pictofit.sandbox.records import SandboxConfiguration, StateTransition
from gateway_pictofit.sandbox.results import make_results
from gateway_pictofit.sandbox.state import SANDBOX_STATE, PictofitSandboxState
from gateway_pictofit.sandbox.types import (
    STATE_CREATED,
    STATE_FINISHED,
    STATE_IN_PROGRESS,
    STATE_READY,
    STATE_REJECTED,
    canonical_uuid,
)

__all__ = ["configuration_json", "product_configurations", "put_configuration", "ready"]

_FRONTAL_ID: Final = 1


def configuration_json(state: PictofitSandboxState, configuration: SandboxConfiguration) -> JSON:
    product = state.products.get(configuration.product_id)
    return {
        "productId": configuration.product_id,
        "name": configuration.name,
        "sku": configuration.sku,
        "createdAt": configuration.created_at,
        "modifiedAt": configuration.modified_at,
        "stateId": configuration.state_id,
        "productTypeId": product.type_id if product else None,
        "customerId": product.customer_id if product else state.customer_id,
        "url": None,
        "results": [r.to_json() for r in configuration.results],
        "metadata": {},
        "id": configuration.id,
    }


async def put_configuration(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    body = await json_object(request)
    errors: dict[str, list[str]] = {}
    configuration_id = v4_path_id(request, "configuration", errors)
    product_id = canonical_uuid(body.get("productId"))
    if product_id is None or product_id not in state.products:
        errors["productId"] = ["productId must name an existing product"]
    name = required_name(body, errors)
    sku = optional_str(body, "sku", errors)
    if errors or configuration_id is None or product_id is None:
        raise SandboxProblem(400, "the configuration is invalid", errors)
    now = time.time()
    existing = state.configurations.get(configuration_id)
    if existing is None:
        configuration = SandboxConfiguration(configuration_id, product_id, name, sku, now, now)
        state.transitions.append(StateTransition(configuration_id, STATE_CREATED, now))
    else:
        configuration = attrs.evolve(
            existing, product_id=product_id, name=name, sku=sku, modified_at=now
        )
    state.configurations[configuration_id] = configuration
    return web.json_response(
        configuration_json(state, configuration), status=200 if existing else 201
    )


async def product_configurations(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    product_id = canonical_uuid(request.match_info["product_id"])
    if product_id is None or product_id not in state.products:
        raise SandboxProblem(404, "no such product")
    return web.json_response(
        [configuration_json(state, c) for c in state.configurations_of(product_id)]
    )


async def ready(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    configuration_id = canonical_uuid(request.match_info["configuration_id"])
    configuration = state.configurations.get(configuration_id or "")
    if configuration is None:
        raise SandboxProblem(404, "no such configuration")
    if configuration.state_id in (STATE_CREATED, STATE_REJECTED):
        configuration = state.set_state(attrs.evolve(configuration, results=()), STATE_READY)
        configuration = state.set_state(configuration, STATE_IN_PROGRESS)
        state.spawn(_process(request.app, configuration.id, request.url.origin()))
    return web.json_response(configuration_json(state, configuration))


async def _process(app: web.Application, configuration_id: str, origin: URL) -> None:
    state = app[SANDBOX_STATE]
    await asyncio.sleep(state.settings.processing_delay_s)
    configuration = state.configurations.get(configuration_id)
    if configuration is None or configuration.state_id != STATE_IN_PROGRESS:
        return
    has_frontal = any(
        f.configuration_id == configuration_id and f.type_id == _FRONTAL_ID
        for f in state.files.values()
    )
    if has_frontal:
        configuration = attrs.evolve(
            configuration, results=make_results(app, configuration, origin)
        )
        state.set_state(configuration, STATE_FINISHED)
    else:
        state.set_state(configuration, STATE_REJECTED)
    siblings = state.configurations_of(configuration.product_id)
    if all(c.state_id in (STATE_FINISHED, STATE_REJECTED) for c in siblings):
        finished = any(c.state_id == STATE_FINISHED for c in siblings)
        callback = "PRODUCT_COMPLETED" if finished else "PRODUCT_REJECTED"
        await deliver(state, callback, configuration.product_id, "processing")
