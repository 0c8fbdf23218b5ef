"""What the PICTOFiT sandbox tests put in the sandbox: products, configurations and images (frontal
or reference) for the sandbox's customer, and waiting for a configuration's processing."""

from __future__ import annotations

import asyncio
import functools
import io
import uuid

import aiohttp
from PIL import Image

from gateway_pictofit.sandbox import PictofitSandboxSettings, PictofitSandboxState
from tests.sandboxes.pictofit_client import AUTH, Client

CUSTOMER = PictofitSandboxSettings().customer_id
FRONTAL, REFERENCE = 1, 2


@functools.cache
def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 800), (200, 30, 60)).save(buffer, format=fmt)
    return buffer.getvalue()


async def put_product(client: Client, type_id: int = 1, product_id: str | None = None) -> str:
    product_id = product_id or str(uuid.uuid4())
    body = {"customerId": CUSTOMER, "name": "Shirt", "typeId": type_id, "sku": "sku-1"}
    response = await client.put(f"/products/{product_id}", json=body, headers=AUTH)
    assert response.status in (200, 201), await response.text()
    return product_id


async def put_configuration(client: Client, product_id: str) -> str:
    configuration_id = str(uuid.uuid4())
    body = {"productId": product_id, "name": "Default"}
    response = await client.put(f"/configurations/{configuration_id}", json=body, headers=AUTH)
    assert response.status == 201, await response.text()
    return configuration_id


async def upload(
    client: Client,
    configuration_id: str,
    data: bytes,
    content_type: str = "image/png",
    type_id: int = FRONTAL,
    file_id: str | None = None,
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", data, filename="upload", content_type=content_type)
    form.add_field("id", file_id or str(uuid.uuid4()))
    form.add_field("name", "frontal_image")
    form.add_field("configurationId", configuration_id)
    form.add_field("typeId", str(type_id))
    return await client.post("/files", data=form, headers=AUTH)


async def wait_for_state(
    state: PictofitSandboxState, configuration_id: str, wanted: set[int]
) -> None:
    for _ in range(200):
        if state.configurations[configuration_id].state_id in wanted:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"state never reached {wanted}")
