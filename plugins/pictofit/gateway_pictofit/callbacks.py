"""PICTOFiT's callbacks: registering the gateway's URLs, and turning deliveries into events.

Registration, per tenant: every type `GET /Customer/callbacks/types` lists is registered with
`PUT /customers/{customerId}/callbacks/{typeId}` as `{callback_url}{TYPE}/` (the service appends
the object id) and the tenant's `callback_secret` as `authorizationHeaderValue`. PUTs: repeating
the registration is harmless, which is what the core's background retries and
`gateway callbacks sync` rely on.

Delivery: `POST /callbacks/pictofit/{tenant}/{TYPE}/{objectId}`, no body to rely on. The
`Authorization` header must equal the tenant's secret (constant-time compare), else 401 and
nothing is stored or fetched. A callback is a hint (PICTOFIT.md): the product's configurations
are fetched from the service and the event carries them, with gateway result URLs.

Event types: `callback_events` of the assumptions (PRODUCT_COMPLETED -> product.completed,
PRODUCT_REJECTED -> product.rejected); any other type -> `pictofit.<type in lower case>`, raw,
never dropped. A product event about a product this tenant did not create through the gateway
is refused (404): when tenants share a PICTOFiT customer, another tenant's product must not
become this tenant's event.

Dedupe key: `pictofit:{TYPE}:{objectId}:{digest}`, the digest covering each configuration's id,
`stateId` and `modifiedAt`. A repeated delivery of the same news is recognised (the core stores
it once), while a genuinely new completion of the same product (a configuration added, or
processed again) changes the states or times and is a new event.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

import attrs
import structlog

from gateway.plugin_api import (
    CallbackCall,
    CallbackRegistration,
    FieldError,
    Reply,
    bad_request,
    not_found,
    unauthorized,
)
from gateway_pictofit import mapping
from gateway_pictofit.client import PictofitClient
from gateway_pictofit.config import PictofitConfig
from gateway_pictofit.values import ProductEventData

__all__ = ["event_type_of", "receive", "register"]

log = structlog.get_logger("gateway_pictofit.callbacks")

_TYPE_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_OBJECT_ID: Final = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class CallbackSecretMissing(Exception):
    """The tenant has no `callback_secret`: its callbacks can be neither registered nor trusted."""


def event_type_of(callback_type: str, config: PictofitConfig) -> str:
    unified = config.assumptions.callback_events.get(callback_type)
    return unified or f"pictofit.{callback_type.lower()}"


async def register(
    registration: CallbackRegistration[PictofitConfig],
    make_client: Callable[[], Awaitable[PictofitClient]],
) -> None:
    tenant, config = registration.tenant, registration.config
    if config.callback_secret is None:
        raise CallbackSecretMissing(
            f"tenant {tenant}: tenants.backends.pictofit.callback_secret is not set; "
            "PICTOFiT callbacks cannot be authenticated without it"
        )
    secret = config.callback_secret.reveal()
    client = await make_client()
    types = await client.callback_types()
    for type_id, name in types:
        url = f"{registration.callback_url}{quote(name, safe='')}/"
        await client.register_callback(type_id, url, secret)
    log.info("pictofit.callbacks_registered", tenant=tenant, types=[name for _, name in types])


def _authentic(call: CallbackCall[PictofitConfig]) -> bool:
    config = call.config
    if not isinstance(config, PictofitConfig) or config.callback_secret is None:
        return False
    try:
        expected = config.callback_secret.reveal().encode()
    except (LookupError, OSError):
        return False
    # The bytes as sent: aiohttp keeps those that are not UTF-8 as surrogates.
    given = call.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, expected)


def _parse_path(path: str) -> tuple[str, str]:
    callback_type, _, object_id = path.strip("/").partition("/")
    errors = []
    if not _TYPE_NAME.match(callback_type):
        errors.append(FieldError("callbackPath", "expected {CALLBACK_TYPE}/{objectId}"))
    elif not _OBJECT_ID.match(object_id):
        errors.append(FieldError("callbackPath", "the object id is missing or malformed"))
    if errors:
        raise bad_request("not a PICTOFiT callback path", errors)
    return callback_type, object_id


def _digest(configurations: Sequence[Mapping[str, Any]]) -> str:
    lines = sorted(
        f"{mapping.canonical(str(c.get('id')))}={c.get('stateId')}@{c.get('modifiedAt')}"
        for c in configurations
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


async def _product_record(call: CallbackCall[PictofitConfig], object_id: str) -> Any:
    """The tenant's product with this id, if it created one (the gateway keeps ids canonical:
    a UUID in lower case)."""
    try:
        parsed = uuid.UUID(object_id)
    except ValueError:
        return None
    return await call.services.resources.get("product", str(parsed))


async def receive(
    call: CallbackCall[PictofitConfig],
    make_client: Callable[[PictofitConfig], Awaitable[PictofitClient]],
) -> Reply:
    config = call.config
    if config is None or not _authentic(call):
        raise unauthorized("the callback's Authorization does not match this tenant's secret")
    callback_type, object_id = _parse_path(call.callback_path)
    event_type = event_type_of(callback_type, config)
    unified = callback_type in config.assumptions.callback_events
    record = await _product_record(call, object_id)
    if record is None and unified:
        raise not_found(f"product {object_id} was not created through the gateway by this tenant")

    data = ProductEventData() if unified else ProductEventData(callback_type, object_id)
    dedupe_key = f"pictofit:{callback_type}:{object_id}"
    if record is not None:
        client = await make_client(config)
        raws = await client.configurations(record.id)
        records = await call.services.resources.children("configuration", record.id)
        images = await call.services.resources.children_of("image", (r.id for r in records))
        configurations = mapping.configuration_values(
            raws,
            product_id=record.id,
            records=records,
            images=images,
            assumptions=config.assumptions,
            link=mapping.result_link(call.services, record.id),
        )
        data = attrs.evolve(data, product_id=record.id, configurations=configurations)
        dedupe_key += f":{_digest(raws)}"
    event = await call.services.emit(event_type, data, dedupe_key=dedupe_key)
    log.info(
        "pictofit.callback",
        tenant=call.tenant,
        callback_type=callback_type,
        object_id=object_id,
        event_type=event_type,
        event_id=event.id if event else None,
        duplicate=event is None,
    )
    return Reply(204)
