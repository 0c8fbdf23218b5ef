"""Unified operations carried to the backend that serves them, and upstream callbacks received.

Thin on purpose: check the tenant's ownership of the resources in the path, choose the backend,
build the call, let the plugin do its work, encode its reply. Errors propagate to the middleware.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway import idempotency, problems, wire
from gateway.backend import CallbackCall, GatewayServices, OperationCall, ResourceBook
from gateway.contract import Operation
from gateway.middleware import REQUEST_ID_HEADER
from gateway.owners import Owners
from gateway.state import (
    BACKENDS,
    CALLBACKS,
    CONTRACT,
    INPUT,
    OPERATION,
    OWNERS,
    PLUGINS,
    REQUEST_ID,
    SETTINGS,
    STORE,
    TENANT,
    TENANTS,
    UPSTREAMS,
)
from gateway.store import ResourceRecord, Store
from gateway.tenants import Tenant, choose_backend
from gateway.upstream import BoundUpstream
from gateway.validation import read_body
from gateway.values import Event, Reply

MAX_CALLBACK_BYTES = 1024 * 1024


def url_for(request: web.Request, operation_id: str, /, **path: str) -> str:
    base = request.app[SETTINGS].server.public_url or f"{request.scheme}://{request.host}"
    template = request.app[CONTRACT].operations[operation_id].path
    quoted = {name: urllib.parse.quote(str(value), safe="") for name, value in path.items()}
    return base.rstrip("/") + template.format_map(quoted)


async def start_stream(
    request: web.Request,
    *,
    content_type: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    content_length: int | None = None,
) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type = content_type
    if content_length is not None:
        response.content_length = content_length
    response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID]
    await response.prepare(request)
    return response


def services(request: web.Request, tenant: str, backend: str) -> GatewayServices:
    plugins = request.app[PLUGINS]
    store = request.app[STORE]

    async def publish(event: Event) -> bool:
        return await plugins.publish_event(event)

    return GatewayServices(
        resources=ResourceBook(store, tenant=tenant, backend=backend),
        publish=publish,
        url_for=functools.partial(url_for, request),
        start_stream=functools.partial(start_stream, request),
        tenant=tenant,
        backend=backend,
    )


def bound_upstream(
    request: web.Request, tenant: str, backend: str, config: Any, operation: str
) -> BoundUpstream:
    client = request.app[UPSTREAMS][backend]
    return client.bind(
        tenant=tenant, config=config, request_id=request[REQUEST_ID], operation=operation
    )


def to_response(result: Reply | web.StreamResponse) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if result.body is None:
        return web.Response(status=result.status, headers=result.headers)
    return wire.json_response(result.body, result.status, result.headers)


async def _owned_backend(
    owners: Owners, operation: Operation, tenant: Tenant, path: Mapping[str, Any]
) -> tuple[str | None, list[tuple[str, str, str | None]]]:
    """The backend recorded for the path's resources, and the resources this call creates.

    A resource that another tenant owns, or that hangs under another parent, answers 404 exactly
    like one that does not exist, so ids never leak across tenants.
    """
    owner_backend: str | None = None
    to_create: list[tuple[str, str, str | None]] = []
    parent: str | None = None
    for ref in operation.resources:
        resource_id = str(path[ref.param])
        owner = await owners.get(ref.kind, resource_id)
        if owner is None:
            if not ref.create:
                raise problems.not_found(f"{ref.kind} {resource_id} does not exist")
            to_create.append((ref.kind, resource_id, parent))
        elif owner.tenant != tenant.id or owner.parent_id != parent:
            raise problems.not_found(f"{ref.kind} {resource_id} does not exist")
        else:
            owner_backend = owner_backend or owner.backend
        parent = resource_id
    return owner_backend, to_create


async def backend_operation(request: web.Request) -> web.StreamResponse:
    operation = request[OPERATION]
    tenant = request[TENANT]
    checked = request[INPUT]
    store = request.app[STORE]
    plugins = request.app[PLUGINS]
    owners = request.app[OWNERS]
    owner, to_create = await _owned_backend(owners, operation, tenant, checked.path)
    body_backend = checked.body.get("backend") if isinstance(checked.body, dict) else None
    backend = choose_backend(
        tenant,
        operation.operation_id,
        serves=plugins.serves,
        owner=owner,
        requested=body_backend or checked.query.get("backend"),
        requested_at="/backend" if body_backend else "backend",
    )
    claims = await _claim(store, tenant.id, backend, to_create)
    config = tenant.configs[backend]
    call = OperationCall(
        operation=operation.operation_id,
        backend=backend,
        tenant=tenant.id,
        config=config,
        request_id=request[REQUEST_ID],
        path=checked.path,
        query=checked.query,
        headers=checked.headers,
        body=checked.body,
        form=checked.form,
        upstream=bound_upstream(request, tenant.id, backend, config, operation.operation_id),
        services=services(request, tenant.id, backend),
    )
    serve = request.app[BACKENDS][backend].operation
    key = checked.headers.get(idempotency.HEADER)
    try:
        if key is None:
            result = await serve(call)
        else:
            policy = request.app[SETTINGS].idempotency
            result = await idempotency.run_once(
                store,
                tenant=tenant.id,
                key=key,
                operation_id=operation.operation_id,
                checked=checked,
                ttl=policy.ttl,
                wait=policy.wait,
                run=lambda: serve(call),
            )
    except BaseException:
        await _release(store, tenant.id, claims)
        raise
    if result.status >= 400:
        await _release(store, tenant.id, claims)
    else:
        for record in claims:
            owners.remember(record)
    return to_response(result)


async def _claim(
    store: Store, tenant: str, backend: str, to_create: list[tuple[str, str, str | None]]
) -> list[ResourceRecord]:
    """Claim the ids this call creates, before the upstream sees them, so that two tenants never
    both send a create for one id; another tenant's claim answers 404."""
    claims: list[ResourceRecord] = []
    for kind, resource_id, parent in to_create:
        claimed = await store.claim_resource(
            kind, resource_id, tenant=tenant, backend=backend, parent_id=parent
        )
        if claimed.tenant != tenant:  # another tenant's, or its create is in flight
            await _release(store, tenant, claims)
            raise problems.not_found(f"{kind} {resource_id} does not exist")
        claims.append(claimed)
    return claims


async def _release(store: Store, tenant: str, claims: list[ResourceRecord]) -> None:
    """A create the backend refused or that failed leaves its ids free for anyone; a claim the
    backend already recorded attributes on (the upstream has the resource) stays."""
    for record in reversed(claims):  # children before their parent
        await store.release_resource(record.kind, record.id, tenant=tenant)


async def receive_callback(request: web.Request) -> web.StreamResponse:
    path = request[INPUT].path
    backend, tenant_id = path["backend"], path["tenantId"]
    receiver = request.app[BACKENDS].get(backend)
    if receiver is None or not receiver.receives_callbacks():
        raise problems.not_found(f"no installed backend {backend!r} receives callbacks")
    body = await read_body(request, limit=MAX_CALLBACK_BYTES)
    tenant = request.app[TENANTS].get(tenant_id)
    config = tenant.configs.get(backend) if tenant else None
    # The tenants the callback may be for: the URL's, or every tenant of its account.
    registration = request.app[CALLBACKS].registration_of(tenant_id, backend)
    if registration is not None:
        tenants, account = registration.configs, registration.account
    else:
        tenants, account = ({tenant_id: config} if config is not None else {}), None
    store = request.app[STORE]

    async def owner_of(kind: str, resource_id: str) -> str | None:
        record = await store.get_resource(kind, resource_id)
        return record.tenant if record is not None and record.backend == backend else None

    call = CallbackCall(
        backend=backend,
        tenant=tenant_id,
        config=config,
        callback_path=path["callbackPath"],
        request_id=request[REQUEST_ID],
        headers=request.headers,
        body=body,
        upstream=bound_upstream(request, tenant_id, backend, config, "receiveBackendCallback"),
        services=services(request, tenant_id, backend),
        account=account,
        tenants=tenants,
        services_for=lambda other: services(request, other, backend),
        owner_of=owner_of,
    )
    return to_response(await receiver.callback(call))
