"""The PICTOFiT sandbox's products: ``PUT /products/{productId}``.

- Product and configuration ids must be UUID version 4; file ids any UUID.
- ``PUT`` upserts: 201 when created, 200 when replaced (``createdAt`` and the state are kept).
"""

from __future__ import annotations

import time

from aiohttp import web

from gateway.plugin_api import SandboxProblem, json_object
from gateway_pictofit.sandbox.errors import optional_str, required_name, v4_path_id
from gateway_pictofit.sandbox.records import SandboxProduct
from gateway_pictofit.sandbox.state import SANDBOX_STATE
from gateway_pictofit.sandbox.types import PRODUCT_TYPES, canonical_uuid

__all__ = ["put_product"]


async def put_product(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    body = await json_object(request)
    errors: dict[str, list[str]] = {}
    product_id = v4_path_id(request, "product", errors)
    customer = canonical_uuid(body.get("customerId"))
    if customer != state.customer_id:
        errors["customerId"] = ["customerId must be the caller's customer id"]
    name = required_name(body, errors)
    type_id = body.get("typeId")
    if isinstance(type_id, bool) or not isinstance(type_id, int) or type_id not in PRODUCT_TYPES:
        errors["typeId"] = [f"typeId must be one of {sorted(PRODUCT_TYPES)}"]
    sku = optional_str(body, "sku", errors)
    if errors or product_id is None or customer is None or not isinstance(type_id, int):
        raise SandboxProblem(400, "the product is invalid", errors)
    now = time.time()
    existing = state.products.get(product_id)
    product = SandboxProduct(
        id=product_id,
        customer_id=customer,
        name=name,
        type_id=type_id,
        sku=sku,
        created_at=existing.created_at if existing else now,
        modified_at=now,
    )
    state.products[product_id] = product
    return web.json_response(product.to_json(), status=200 if existing else 201)
