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
    unstructure,
)
from gateway_pictofit import NAME, mapping
from gateway_pictofit.auth import Auth
from gateway_pictofit.client import JSON, Kind, PictofitClient, TypeCache, open_client
from gateway_pictofit.config import PictofitConfig
from gateway_pictofit.preflight import check_image
from gateway_pictofit.values import (
    Configuration,
    ConfigurationList,
    Image,
    TypeList,
    TypeName,
)

__all__ = ["OPERATIONS", "serve"]

log = structlog.get_logger("gateway_pictofit.operations")

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


Call = OperationCall[PictofitConfig]


def _product_id(call: Call) -> str:
    return str(call.path["productId"])


def _configuration_id(call: Call) -> str:
    return str(call.path["configurationId"])


async def _images(call: Call, configuration_id: str) -> list[ResourceRecord]:
    return await call.services.resources.children("image", configuration_id)


async def _configurations(
    call: Call, client: PictofitClient, product_id: str
) -> tuple[Configuration, ...]:
    raws = await client.configurations(product_id)
    resources = call.services.resources
    records = await resources.children("configuration", product_id)
    images = await resources.children_of("image", [r.id for r in records])
    return mapping.configuration_values(
        raws,
        product_id=product_id,
        records=records,
        images=images,
        assumptions=call.config.assumptions,
        link=mapping.result_link(call.services, product_id),
    )


async def _upstream_configuration(call: Call, client: PictofitClient) -> JSON:
    """The path's configuration as the service has it now (there is no GET of one alone)."""
    wanted = mapping.canonical(_configuration_id(call))
    for raw in await client.configurations(_product_id(call)):
        if mapping.canonical(str(raw["id"])) == wanted:
            return raw
    raise not_found(f"configuration {_configuration_id(call)} is not known to PICTOFiT")


async def _configuration(call: Call, raw: JSON) -> Configuration:
    configuration_id, product_id = _configuration_id(call), _product_id(call)
    return mapping.configuration_value(
        raw,
        configuration_id=configuration_id,
        product_id=product_id,
        assumptions=call.config.assumptions,
        images=await _images(call, configuration_id),
        link=mapping.result_link(call.services, product_id),
    )


async def _type_id(client: PictofitClient, kind: Kind, name: str, location: str) -> Any:
    return mapping.type_id(await client.type_list(kind), kind, name, location)


# --- catalog ----------------------------------------------------------------------------------


async def list_product_types(call: Call, client: PictofitClient) -> Reply:
    types = await client.type_list("product")
    return Reply(200, TypeList(NAME, tuple(TypeName(name) for _, name in types)))


async def list_image_types(call: Call, client: PictofitClient) -> Reply:
    types = await client.type_list("image")
    return Reply(200, TypeList(NAME, tuple(TypeName(name) for _, name in types)))


# --- products ---------------------------------------------------------------------------------


async def put_product(call: Call, client: PictofitClient) -> Reply:
    product_id = _product_id(call)
    _require_uuid4(product_id, "productId")
    body = call.body
    type_name, sku = body["type"], body.get("sku")
    type_id = await _type_id(client, "product", type_name, "/type")
    upstream: JSON = {
        "customerId": call.config.customer_id,
        "name": body["name"],
        "typeId": type_id,
    }
    if sku is not None:
        upstream["sku"] = sku
    await client.put_product(product_id, upstream)
    # Recorded only now that PICTOFiT accepted it: a refused create leaves no record.
    attributes = {"name": body["name"], "type": type_name, "sku": sku}
    put = await call.services.resources.put("product", product_id, attributes)
    configurations = () if put.created else await _configurations(call, client, product_id)
    product = mapping.product_value(put.record, configurations, NAME)
    return Reply(201 if put.created else 200, product)


async def get_product(call: Call, client: PictofitClient) -> Reply:
    product_id = _product_id(call)
    record = await call.services.resources.get("product", product_id)
    if record is None:  # the core checked the tenant owns it: only a deletion in between
        raise not_found(f"product {product_id} does not exist")
    configurations = await _configurations(call, client, product_id)
    return Reply(200, mapping.product_value(record, configurations, NAME))


# --- configurations ---------------------------------------------------------------------------


async def put_configuration(call: Call, client: PictofitClient) -> Reply:
    product_id, configuration_id = _product_id(call), _configuration_id(call)
    _require_uuid4(configuration_id, "configurationId")
    body = call.body
    upstream: JSON = {"productId": product_id, "name": body["name"]}
    if body.get("sku") is not None:
        upstream["sku"] = body["sku"]
    answer = await client.put_configuration(configuration_id, upstream)
    attributes = {"name": body["name"], "sku": body.get("sku")}
    put = await call.services.resources.put(
        "configuration", configuration_id, attributes, parent_id=product_id
    )
    current = answer or await _upstream_configuration(call, client)
    return Reply(201 if put.created else 200, await _configuration(call, current))


async def list_configurations(call: Call, client: PictofitClient) -> Reply:
    return Reply(200, ConfigurationList(await _configurations(call, client, _product_id(call))))


async def upload_product_image(call: Call, client: PictofitClient) -> Reply:
    form = call.form
    if form is None or "file" not in form.files:
        raise invalid_input(
            "the form has no file", [FieldError("/file", "a file part is required")]
        )
    upload = form.files["file"]
    configuration_id = _configuration_id(call)
    record = await call.services.resources.get("configuration", configuration_id)
    if record is not None and record.attributes.get("submittedAt"):
        raise _conflict(
            f"configuration {configuration_id} was submitted; images can only be added to a draft"
        )
    # Everything local first: nothing goes upstream for an image PICTOFiT would refuse.
    info = await asyncio.to_thread(
        check_image, upload.path, upload.size, upload.content_type, call.config.images
    )
    kind = call.body["kind"]
    type_id = await _type_id(client, "image", kind, "/kind")
    name = call.body.get("name") or upload.filename or kind.lower()
    file_id = str(uuid.uuid4())
    extension = ".png" if info.content_type == "image/png" else ".jpg"
    await client.upload_file(
        file_id=file_id,
        path=upload.path,
        filename=upload.filename or f"{file_id}{extension}",
        content_type=info.content_type,  # by content, whatever the caller declared
        name=name,
        configuration_id=configuration_id,
        type_id=type_id,
    )
    image = Image(file_id, kind, name, info.content_type, info.width, info.height, info.size)
    # Kept as the record's attributes, in the wire's spelling (what `mapping.image_value` reads).
    attributes = {k: v for k, v in unstructure(image).items() if k != "id"}
    await call.services.resources.put("image", file_id, attributes, parent_id=configuration_id)
    return Reply(201, image)


async def submit_configuration(call: Call, client: PictofitClient) -> Reply:
    required = call.config.images.required_kind
    images = await _images(call, _configuration_id(call))
    if not any(i.attributes.get("kind") == required for i in images):
        raise invalid_input(
            f"configuration {_configuration_id(call)} has no {required} image; upload one first",
            [FieldError("configurationId", f"needs at least one {required} image")],
        )
    current = await _upstream_configuration(call, client)
    state = mapping.unified_state(current, call.config.assumptions)
    if state in ("finished", "rejected"):
        raise _conflict(
            f"configuration {_configuration_id(call)} is {state}; "
            "a finished or rejected configuration cannot be submitted again"
        )
    if state == "draft":
        answer = await client.ready(_configuration_id(call))
        current = answer or await _upstream_configuration(call, client)
    # Submitting while submitted or processing changes nothing upstream.
    await call.services.resources.put(
        "configuration",
        _configuration_id(call),
        {"submittedAt": mapping.now_iso()},
        parent_id=_product_id(call),
    )
    return Reply(202, await _configuration(call, current))


async def download_result(call: Call, client: PictofitClient) -> web.StreamResponse:
    fmt = str(call.path["format"])
    compressed = call.query.get("compressed", True) is not False
    current = await _upstream_configuration(call, client)
    state = mapping.unified_state(current, call.config.assumptions)
    if state != "finished":
        raise _conflict(f"configuration {_configuration_id(call)} is {state}, not finished")
    result = mapping.find_result(current, fmt, compressed, call.config.assumptions)
    variant = "compressed" if compressed else "uncompressed"
    url = result.get(call.config.assumptions.result_url_key) if result else None
    if not isinstance(url, str) or not url:
        raise not_found(f"configuration {_configuration_id(call)} has no {variant} {fmt} result")
    file_name = result.get(call.config.assumptions.result_file_name_key) if result else None
    headers = {}
    if isinstance(file_name, str) and file_name and '"' not in file_name:
        headers["Content-Disposition"] = f'attachment; filename="{file_name}"'
    response: web.StreamResponse | None = None
    try:
        async with client.download(url) as upstream:
            response = await call.services.start_stream(
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
        log.warning("pictofit.download_truncated", tenant=call.tenant, format=fmt)
        response.force_close()
        return response
    assert response is not None
    await response.write_eof()
    return response


Handler = Callable[[Call, PictofitClient], Awaitable[Reply | web.StreamResponse]]

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


async def serve(call: Call, auth: Auth, types: TypeCache) -> Reply | web.StreamResponse:
    """One caller request, from the backend object's tokens and type lists (compiled here: the
    backend's own methods are interpreted, and this runs on every proxied call)."""
    client = await open_client(auth, types, call.upstream)
    return await OPERATIONS[call.operation](call, client)
