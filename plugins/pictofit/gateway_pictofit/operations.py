"""The unified operations PICTOFiT serves, one function each.

Ownership is the core's: by the time a function runs, the tenant owns the product and
configuration in the path (or has just claimed a new id). The plugin adds what the service does
not keep or cannot be asked for: a product's name, type and sku (there is no GET of a product),
and the images uploaded to each configuration (kind "image", child of the configuration), which
submitConfiguration's FRONTAL check and the `images` of every configuration read.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import structlog
from aiohttp import web

from gateway.plugin_api import (
    FieldError,
    OperationCall,
    ProblemError,
    Reply,
    ResourceRecord,
    UpstreamError,
    bad_request,
    invalid_input,
    not_found,
)
from gateway_pictofit import catalog, mapping
from gateway_pictofit.client import BACKEND, PictofitClient
from gateway_pictofit.config import PictofitConfig
from gateway_pictofit.preflight import check_image

__all__ = ["OPERATIONS", "handle"]

log = structlog.get_logger("gateway_pictofit.operations")

JSON = dict[str, Any]
_CHUNK: Final = 64 * 1024


def _conflict(detail: str) -> ProblemError:
    return ProblemError(409, "conflict", "Conflict", detail)


def _require_uuid4(value: str, location: str) -> None:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != 4:
        raise bad_request(
            f"{location} must be a UUID version 4 for PICTOFiT",
            [FieldError(location, "PICTOFiT ids are UUIDs version 4")],
        )


class _Session:
    """One operation call: the call, its PICTOFiT client and the tenant's records."""

    def __init__(self, call: OperationCall[PictofitConfig]) -> None:
        self.call = call
        self.config = call.config
        self.client = PictofitClient(call.upstream, call.config)
        self.resources = call.services.resources
        self.assumptions = call.config.assumptions

    @property
    def product_id(self) -> str:
        return str(self.call.path["productId"])

    @property
    def configuration_id(self) -> str:
        return str(self.call.path["configurationId"])

    async def images(self, configuration_id: str) -> list[ResourceRecord]:
        return await self.resources.children("image", configuration_id)

    async def configuration_views(self, product_id: str) -> list[JSON]:
        raws = await self.client.configurations(product_id)
        records = await self.resources.children("configuration", product_id)
        images = await self.resources.children_of("image", (r.id for r in records))
        return mapping.configuration_views(
            raws,
            product_id=product_id,
            records=records,
            images=images,
            assumptions=self.assumptions,
            link=mapping.result_link(self.call.services, product_id),
        )

    async def upstream_configuration(self) -> JSON:
        """This configuration as the service has it now (there is no GET of one alone)."""
        wanted = mapping.canonical(self.configuration_id)
        for raw in await self.client.configurations(self.product_id):
            if mapping.canonical(str(raw["id"])) == wanted:
                return raw
        raise not_found(f"configuration {self.configuration_id} is not known to PICTOFiT")

    async def view(self, raw: Mapping[str, Any]) -> JSON:
        return mapping.configuration_view(
            raw,
            configuration_id=self.configuration_id,
            product_id=self.product_id,
            assumptions=self.assumptions,
            images=await self.images(self.configuration_id),
            link=mapping.result_link(self.call.services, self.product_id),
        )


# --- catalog ----------------------------------------------------------------------------------


async def list_product_types(s: _Session) -> Reply:
    names = await catalog.type_names(s.client, "product")
    return Reply(200, {"backend": BACKEND, "items": [{"name": n} for n in names]})


async def list_image_types(s: _Session) -> Reply:
    names = await catalog.type_names(s.client, "image")
    return Reply(200, {"backend": BACKEND, "items": [{"name": n} for n in names]})


# --- products ---------------------------------------------------------------------------------


async def put_product(s: _Session) -> Reply:
    _require_uuid4(s.product_id, "productId")
    body = s.call.body
    type_name, sku = body["type"], body.get("sku")
    type_id = await catalog.resolve(s.client, "product", type_name, "/type")
    before = await s.resources.get("product", s.product_id)
    existed = before is not None and "createdAt" in before.attributes
    upstream: JSON = {"customerId": s.config.customer_id, "name": body["name"], "typeId": type_id}
    if sku is not None:
        upstream["sku"] = sku
    await s.client.put_product(s.product_id, upstream)
    now = mapping.now_iso()
    attributes: JSON = {"name": body["name"], "type": type_name, "sku": sku, "updatedAt": now}
    if not existed:
        attributes["createdAt"] = now
    record = await s.resources.put("product", s.product_id, attributes)
    configurations = await s.configuration_views(s.product_id) if existed else []
    return Reply(200 if existed else 201, mapping.product_view(record, configurations, BACKEND))


async def get_product(s: _Session) -> Reply:
    record = await s.resources.get("product", s.product_id)
    if record is None or "createdAt" not in record.attributes:
        # Claimed by a putProduct that did not reach PICTOFiT: it does not exist yet.
        raise not_found(f"product {s.product_id} does not exist")
    configurations = await s.configuration_views(s.product_id)
    return Reply(200, mapping.product_view(record, configurations, BACKEND))


# --- configurations ---------------------------------------------------------------------------


async def put_configuration(s: _Session) -> Reply:
    _require_uuid4(s.configuration_id, "configurationId")
    body = s.call.body
    before = await s.resources.get("configuration", s.configuration_id)
    existed = before is not None and "createdAt" in before.attributes
    upstream: JSON = {"productId": s.product_id, "name": body["name"]}
    if body.get("sku") is not None:
        upstream["sku"] = body["sku"]
    answer = await s.client.put_configuration(s.configuration_id, upstream)
    now = mapping.now_iso()
    attributes: JSON = {"name": body["name"], "sku": body.get("sku"), "updatedAt": now}
    if not existed:
        attributes["createdAt"] = now
    await s.resources.put("configuration", s.configuration_id, attributes, parent_id=s.product_id)
    current = answer or await s.upstream_configuration()
    return Reply(200 if existed else 201, await s.view(current))


async def list_configurations(s: _Session) -> Reply:
    return Reply(200, {"items": await s.configuration_views(s.product_id)})


async def upload_product_image(s: _Session) -> Reply:
    form = s.call.form
    if form is None or "file" not in form.files:
        raise invalid_input(
            "the form has no file", [FieldError("/file", "a file part is required")]
        )
    upload = form.files["file"]
    record = await s.resources.get("configuration", s.configuration_id)
    if record is not None and record.attributes.get("submittedAt"):
        raise _conflict(
            f"configuration {s.configuration_id} was submitted; images can only be added to a draft"
        )
    # Everything local first: nothing goes upstream for an image PICTOFiT would refuse.
    info = await asyncio.to_thread(
        check_image, upload.path, upload.size, upload.content_type, s.config.images
    )
    kind = s.call.body["kind"]
    type_id = await catalog.resolve(s.client, "image", kind, "/kind")
    name = s.call.body.get("name") or upload.filename or kind.lower()
    file_id = str(uuid.uuid4())
    extension = ".png" if info.content_type == "image/png" else ".jpg"
    await s.client.upload_file(
        file_id=file_id,
        path=upload.path,
        filename=upload.filename or f"{file_id}{extension}",
        content_type=info.content_type,  # by content, whatever the caller declared
        name=name,
        configuration_id=s.configuration_id,
        type_id=type_id,
    )
    attributes = {
        "kind": kind,
        "name": name,
        "contentType": info.content_type,
        "width": info.width,
        "height": info.height,
        "bytes": info.size,
    }
    await s.resources.put("image", file_id, attributes, parent_id=s.configuration_id)
    return Reply(201, {"id": file_id, **attributes})


async def submit_configuration(s: _Session) -> Reply:
    required = s.config.images.required_kind
    images = await s.images(s.configuration_id)
    if not any(i.attributes.get("kind") == required for i in images):
        raise invalid_input(
            f"configuration {s.configuration_id} has no {required} image; upload one first",
            [FieldError("configurationId", f"needs at least one {required} image")],
        )
    current = await s.upstream_configuration()
    state = mapping.unified_state(current, s.assumptions)
    if state in ("finished", "rejected"):
        raise _conflict(
            f"configuration {s.configuration_id} is {state}; "
            "a finished or rejected configuration cannot be submitted again"
        )
    if state == "draft":
        answer = await s.client.ready(s.configuration_id)
        current = answer or await s.upstream_configuration()
    # Submitting while submitted or processing changes nothing upstream.
    await s.resources.put(
        "configuration",
        s.configuration_id,
        {"submittedAt": mapping.now_iso()},
        parent_id=s.product_id,
    )
    return Reply(202, await s.view(current))


async def download_result(s: _Session) -> web.StreamResponse:
    fmt = str(s.call.path["format"])
    compressed = s.call.query.get("compressed", True) is not False
    current = await s.upstream_configuration()
    state = mapping.unified_state(current, s.assumptions)
    if state != "finished":
        raise _conflict(f"configuration {s.configuration_id} is {state}, not finished")
    result = mapping.find_result(current, fmt, compressed, s.assumptions)
    variant = "compressed" if compressed else "uncompressed"
    url = result.get(s.assumptions.result_url_key) if result else None
    if not isinstance(url, str) or not url:
        raise not_found(f"configuration {s.configuration_id} has no {variant} {fmt} result")
    file_name = result.get(s.assumptions.result_file_name_key) if result else None
    headers = {}
    if isinstance(file_name, str) and file_name and '"' not in file_name:
        headers["Content-Disposition"] = f'attachment; filename="{file_name}"'
    response: web.StreamResponse | None = None
    try:
        async with s.client.download(url) as upstream:
            response = await s.call.services.start_stream(
                content_type="application/octet-stream",
                content_length=upstream.content_length,
                headers=headers,
            )
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                await response.write(chunk)
    except UpstreamError:
        if response is None:
            raise  # nothing sent yet: the caller gets the problem
        # The status line is out, a problem cannot follow: close the connection so that the
        # caller sees an incomplete body instead of a complete-looking short one.
        log.warning("pictofit.download_truncated", tenant=s.call.tenant, format=fmt)
        response.force_close()
        return response
    assert response is not None
    await response.write_eof()
    return response


Handler = Callable[[_Session], Awaitable[Reply | web.StreamResponse]]

OPERATIONS: Final[Mapping[str, Handler]] = {
    "listProductTypes": list_product_types,
    "listImageTypes": list_image_types,
    "putProduct": put_product,
    "getProduct": get_product,
    "putConfiguration": put_configuration,
    "listConfigurations": list_configurations,
    "uploadProductImage": upload_product_image,
    "submitConfiguration": submit_configuration,
    "downloadResult": download_result,
}


async def handle(call: OperationCall[PictofitConfig]) -> Reply | web.StreamResponse:
    return await OPERATIONS[call.operation](_Session(call))
