"""PICTOFiT's callbacks: registering the gateway's URLs, and turning deliveries into events.

Registration, per PICTOFiT customer: the service keeps one registration per customer and callback
type (a second PUT replaces the first), so tenants sharing a customer (same base URL origin and
`customer_id`: `account_of`) are registered once, with the first tenant's (by id) callback URL
and `callback_secret`. Every type `GET /Customer/callbacks/types` lists is registered with
`PUT /customers/{customerId}/callbacks/{typeId}` as `{callback_url}{TYPE}/` (the service appends
the object id) and the secret as `authorizationHeaderValue`. PUTs: repeating the registration is
harmless, which is what the core's background retries and `gateway callbacks sync` rely on.
Tenants sharing a customer must have the same `callback_secret` (the one registration carries
one): if they differ, nothing is registered and each of them shows the failure. A tenant without
a secret takes no part: it registers nothing (its state says why) and receives no callbacks.

Delivery: `POST /callbacks/pictofit/{tenant}/{TYPE}/{objectId}`, no body to rely on. The
`Authorization` header must equal the URL tenant's secret (constant-time compare), else 401 and
nothing is stored or fetched; an event reaches a tenant only if the header is that tenant's
secret too. A callback is a hint (PICTOFIT.md): the product's configurations are fetched from the
service, with the owning tenant's credentials, and the event carries them, with gateway result
URLs.

Routing: a callback naming a product goes to the tenant of the customer that created it through
the gateway (`CallbackCall.owner`), whichever tenant's URL it arrived at. A product event
(`callback_events`) about a product no tenant of the customer created is refused (404). Any other
type naming no such product (CUSTOMER_NOTICE, or a product made outside the gateway) concerns
the customer, so every tenant of it gets the raw event.

Event types: `callback_events` of the assumptions (PRODUCT_COMPLETED -> product.completed,
PRODUCT_REJECTED -> product.rejected); any other type -> `pictofit.<type in lower case>`, raw,
never dropped.

Dedupe key: `pictofit:{TYPE}:{objectId}:{digest}`, the digest covering each configuration's id,
`stateId` and `modifiedAt`. A repeated delivery of the same news is recognised (the core stores
it once per tenant), while a genuinely new completion of the same product (a configuration added,
or processed again) changes the states or times and is a new event.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, urlsplit

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

__all__ = ["account_of", "event_type_of", "receive", "register"]

log = structlog.get_logger("gateway_pictofit.callbacks")

_TYPE_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_OBJECT_ID: Final = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class CallbackSecretMissing(Exception):
    """The tenant has no `callback_secret`: its callbacks can be neither registered nor trusted."""


class CallbackSecretsDiffer(Exception):
    """Tenants sharing a PICTOFiT customer have different `callback_secret`s: the customer's one
    registration can carry only one, so the others' callbacks would all be refused."""


# Makes the client a callback's event is built with: the owning tenant's, with its config.
MakeClient = Callable[[str, PictofitConfig], Awaitable[PictofitClient]]


def account_of(config: PictofitConfig) -> str | None:
    """The PICTOFiT customer `config`'s callbacks are registered under: the base URL's origin and
    the customer id (ids only: it is logged). None without a `callback_secret`, so that such a
    tenant registers (and fails) alone instead of failing its customer's registration."""
    if config.callback_secret is None:
        return None
    parts = urlsplit(config.base_url)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    return f"{origin} customer {mapping.canonical(config.customer_id).lower()}"


def event_type_of(callback_type: str, config: PictofitConfig) -> str:
    unified = config.assumptions.callback_events.get(callback_type)
    return unified or f"pictofit.{callback_type.lower()}"


async def register(
    registration: CallbackRegistration[PictofitConfig],
    make_client: Callable[[], Awaitable[PictofitClient]],
    sharing: Collection[PictofitConfig] = (),
) -> None:
    """Register the callbacks of one tenant, or of the customer `registration.account` its
    `tenants` share; `sharing` are their configurations (the registration holds the first's)."""
    tenant, config = registration.tenant, registration.config
    if config.callback_secret is None:
        raise CallbackSecretMissing(
            f"tenant {tenant}: tenants.backends.pictofit.callback_secret is not set; "
            "PICTOFiT callbacks cannot be authenticated without it"
        )
    secret = config.callback_secret.reveal()
    # Compared at each registration (secrets are re-read): registering the first tenant's secret
    # while another's differs would make every callback of that other tenant a 401.
    if any(_secret(other) != secret for other in sharing):
        raise CallbackSecretsDiffer(
            f"tenants {', '.join(registration.tenants)} share PICTOFiT customer "
            f"{registration.account} but their tenants.backends.pictofit.callback_secret differ; "
            "the customer has one callback registration, so they must be the same"
        )
    client = await make_client()
    types = await client.callback_types()
    for type_id, name in types:
        url = f"{registration.callback_url}{quote(name, safe='')}/"
        await client.register_callback(type_id, url, secret)
    log.info(
        "pictofit.callbacks_registered",
        tenant=tenant,
        tenants=list(registration.tenants),
        account=registration.account,
        types=[name for _, name in types],
    )


def _secret(config: PictofitConfig) -> str | None:
    return config.callback_secret.reveal() if config.callback_secret is not None else None


def _authentic(call: CallbackCall[PictofitConfig], config: PictofitConfig | None) -> bool:
    """The callback carries `config`'s secret (a tenant's callbacks need that tenant's)."""
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


async def _product_owner(call: CallbackCall[PictofitConfig], object_id: str) -> str | None:
    """The tenant of the callback's customer that created this product through the gateway (the
    gateway keeps ids canonical: a UUID in lower case), or None."""
    try:
        parsed = uuid.UUID(object_id)
    except ValueError:
        return None
    return await call.owner("product", str(parsed))


async def receive(call: CallbackCall[PictofitConfig], make_client: MakeClient) -> Reply:
    config = call.config
    if config is None or not _authentic(call, config):
        raise unauthorized("the callback's Authorization does not match this tenant's secret")
    callback_type, object_id = _parse_path(call.callback_path)
    owner = await _product_owner(call, object_id)
    if owner is None:
        if callback_type in config.assumptions.callback_events:
            raise not_found(
                f"product {object_id} was not created through the gateway by a tenant of this "
                "PICTOFiT customer"
            )
        # Nothing of one tenant's: the customer's news, for each tenant of it.
        tenants = [t for t, c in sorted(call.tenants.items()) if _authentic(call, c)]
        data = ProductEventData(callback_type, object_id)
        for tenant in tenants:
            await _emit(call, tenant, call.tenants[tenant], callback_type, object_id, data)
        return Reply(204)
    owner_config = call.tenants[owner]
    if not _authentic(call, owner_config):
        raise unauthorized("the callback's Authorization does not match its tenant's secret")
    unified = callback_type in owner_config.assumptions.callback_events
    data = ProductEventData() if unified else ProductEventData(callback_type, object_id)
    services = call.services_for(owner)
    record = await services.resources.get("product", str(uuid.UUID(object_id)))
    if record is None:  # deleted since `owner` was read: as if never created
        raise not_found(f"product {object_id} does not exist")
    client = await make_client(owner, owner_config)
    raws = await client.configurations(record.id)
    records = await services.resources.children("configuration", record.id)
    images = await services.resources.children_of("image", (r.id for r in records))
    configurations = mapping.configuration_values(
        raws,
        product_id=record.id,
        records=records,
        images=images,
        assumptions=owner_config.assumptions,
        link=mapping.result_link(services, record.id),
    )
    data = attrs.evolve(data, product_id=record.id, configurations=configurations)
    await _emit(call, owner, owner_config, callback_type, object_id, data, _digest(raws))
    return Reply(204)


async def _emit(
    call: CallbackCall[PictofitConfig],
    tenant: str,
    config: PictofitConfig,
    callback_type: str,
    object_id: str,
    data: ProductEventData,
    digest: str | None = None,
) -> None:
    event_type = event_type_of(callback_type, config)
    dedupe_key = f"pictofit:{callback_type}:{object_id}" + (f":{digest}" if digest else "")
    event = await call.services_for(tenant).emit(event_type, data, dedupe_key=dedupe_key)
    log.info(
        "pictofit.callback",
        tenant=tenant,
        account=call.account,
        callback_type=callback_type,
        object_id=object_id,
        event_type=event_type,
        event_id=event.id if event else None,
        duplicate=event is None,
    )
