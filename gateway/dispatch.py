"""Unified operations carried to the backend that serves them, and upstream callbacks received.

Thin on purpose: check the tenant's ownership of the resources in the path, choose the backend,
build the call, let the plugin do its work, encode its reply. Errors propagate to the middleware.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import attrs
from aiohttp import web

from gateway import idempotency, problems, wire
from gateway.backend import Backend, CallbackCall
from gateway.calls import (
    GatewayServices,
    OperationCall,
    PathTemplate,
    ResourceBook,
    UrlTemplate,
    path_template,
)
from gateway.contract import Operation
from gateway.middleware import REQUEST_ID_HEADER
from gateway.owners import Owners
from gateway.plugins import PluginHost
from gateway.settings import IdempotencySettings
from gateway.state import (
    BACKENDS,
    CALLBACKS,
    CONTRACT,
    EXCHANGE,
    OWNERS,
    PLUGINS,
    SETTINGS,
    STORE,
    TENANTS,
    UPSTREAMS,
)
from gateway.store.protocol import Store
from gateway.tenants import Tenant, choose_backend
from gateway.upstream import BoundUpstream, UpstreamClient
from gateway.validation import read_body
from gateway.values import Reply

MAX_CALLBACK_BYTES = 1024 * 1024


class Capabilities:
    """Whether a backend serves an operation, asked on every call: the installed backends'
    `capabilities`, read once as the app is built (compiled, as the rest of this module)."""

    def __init__(self, backends: Mapping[str, frozenset[str]]) -> None:
        self._backends: Final = dict(backends)

    def __call__(self, backend: str, operation_id: str) -> bool:
        found = self._backends.get(backend)
        return found is not None and operation_id in found


@attrs.frozen
class Wiring:
    """What dispatch reads of the app for every call, looked up once when the app is built:
    `request.app` walks the match info and each `app[KEY]` is a call, a dozen of them a call."""

    public_url: str | None  # without a trailing slash
    paths: Mapping[str, PathTemplate]  # operationId -> its path, parsed
    store: Store
    plugins: PluginHost
    owners: Owners
    backends: Mapping[str, Backend[Any]]  # filled as the app starts
    upstreams: Mapping[str, UpstreamClient]  # the same
    idempotency: IdempotencySettings
    serves: Capabilities


WIRING = web.AppKey("dispatch_wiring", Wiring)


def wire_dispatch(app: web.Application) -> None:
    """Read once what serving a backend's call needs of `app`; call when its state is set."""
    settings = app[SETTINGS]
    backends = app[BACKENDS]
    upstreams = app[UPSTREAMS]
    app[WIRING] = Wiring(
        public_url=(settings.server.public_url or "").rstrip("/") or None,
        paths={op.operation_id: path_template(op.path) for op in app[CONTRACT].operations.values()},
        store=app[STORE],
        plugins=app[PLUGINS],
        owners=app[OWNERS],
        backends=backends,
        upstreams=upstreams,
        idempotency=settings.idempotency,
        serves=Capabilities(
            {name: backend.capabilities for name, backend in app[PLUGINS].backends.items()}
        ),
    )


def url_template(wiring: Wiring, request: web.Request, operation_id: str) -> UrlTemplate:
    origin = wiring.public_url or f"{request.scheme}://{request.host}"
    return UrlTemplate(origin, wiring.paths[operation_id])


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
    response.headers[REQUEST_ID_HEADER] = request[EXCHANGE].request_id
    await response.prepare(request)
    return response


def services(
    wiring: Wiring,
    request: web.Request,
    tenant: str,
    backend: str,
    resources: ResourceBook | None = None,
) -> GatewayServices:
    return GatewayServices(
        resources=resources or ResourceBook(wiring.store, tenant=tenant, backend=backend),
        publish=wiring.plugins.publish_event,
        url_template=functools.partial(url_template, wiring, request),
        start_stream=functools.partial(start_stream, request),
        tenant=tenant,
        backend=backend,
    )


def bound_upstream(
    wiring: Wiring, request_id: str, tenant: str, backend: str, config: Any, operation: str
) -> BoundUpstream[Any]:
    return wiring.upstreams[backend].bind(
        tenant=tenant, config=config, request_id=request_id, operation=operation
    )


def to_response(result: Reply | web.StreamResponse) -> web.StreamResponse:
    # Reply first: a compiled class's check is a pointer compare, while StreamResponse is a
    # MutableMapping, whose isinstance goes through ABCMeta.__instancecheck__.
    if not isinstance(result, Reply):
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
        # Remembered (the usual case) is answered without a coroutine.
        owner = owners.known(ref.kind, resource_id) or await owners.get(ref.kind, resource_id)
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


def handler_for(operation: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The route's handler, chosen once: an operation that creates nothing goes straight to
    `operate` (a coroutine less each request)."""
    return _creating if operation.creates else operate


async def _creating(request: web.Request) -> web.StreamResponse:
    exchange = request[EXCHANGE]
    operation, path = exchange.route, exchange.input.path
    # Creates of one id take turns in this process, from the check to the backend's record.
    async with request.app[WIRING].owners.creating(
        [(r.kind, str(path[r.param])) for r in operation.creates]
    ):
        return await operate(request)


async def operate(request: web.Request) -> web.StreamResponse:
    """Serve a backend operation: check ownership, choose the backend, call it."""
    exchange = request[EXCHANGE]
    operation, tenant, checked = exchange.route, exchange.tenant, exchange.input
    request_id = exchange.request_id
    wiring = request.app[WIRING]
    store = wiring.store
    owners = wiring.owners
    owner, to_create = await _owned_backend(owners, operation, tenant, checked.path)
    body_backend = checked.body.get("backend") if isinstance(checked.body, dict) else None
    backend = choose_backend(
        tenant,
        operation.operation_id,
        serves=wiring.serves,
        owner=owner,
        requested=body_backend or checked.query.get("backend"),
        requested_at="/backend" if body_backend else "backend",
    )
    config = tenant.configs[backend]
    book = ResourceBook(store, tenant=tenant.id, backend=backend)
    call = OperationCall(
        operation=operation.operation_id,
        backend=backend,
        tenant=tenant.id,
        config=config,
        request_id=request_id,
        path=checked.path,
        query=checked.query,
        headers=checked.headers,
        body=checked.body,
        form=checked.form,
        upstream=bound_upstream(
            wiring, request_id, tenant.id, backend, config, operation.operation_id
        ),
        services=services(wiring, request, tenant.id, backend, book),
    )
    serve = wiring.backends[backend].operation
    key = checked.headers.get(idempotency.HEADER)
    if key is None:
        result = await serve(call)
    else:
        policy = wiring.idempotency
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
    if to_create and result.status < 400:
        await _record_created(book, owners, to_create)
    return to_response(result)


async def _record_created(
    book: ResourceBook, owners: Owners, to_create: list[tuple[str, str, str | None]]
) -> None:
    """Remember the owners of what the call created; record what the backend did not (a backend
    that keeps nothing of its own), now that the upstream accepted it. Another tenant's record,
    made while this call's upstream request was out (another process), makes it a 404."""
    for kind, resource_id, parent in to_create:
        record = book.recorded.get((kind, resource_id))
        if record is None:
            record = (await book.put(kind, resource_id, {}, parent_id=parent)).record
        owners.remember(record)


async def receive_callback(request: web.Request) -> web.StreamResponse:
    exchange = request[EXCHANGE]
    path = exchange.input.path
    backend, tenant_id = path["backend"], path["tenantId"]
    wiring = request.app[WIRING]
    receiver = wiring.backends.get(backend)
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
    store = wiring.store

    async def owner_of(kind: str, resource_id: str) -> str | None:
        record = await store.get_resource(kind, resource_id)
        return record.tenant if record is not None and record.backend == backend else None

    call = CallbackCall(
        backend=backend,
        tenant=tenant_id,
        config=config,
        callback_path=path["callbackPath"],
        request_id=exchange.request_id,
        headers=request.headers,
        body=body,
        upstream=bound_upstream(
            wiring, exchange.request_id, tenant_id, backend, config, "receiveBackendCallback"
        ),
        services=services(wiring, request, tenant_id, backend),
        account=account,
        tenants=tenants,
        services_for=lambda other: services(wiring, request, other, backend),
        owner_of=owner_of,
    )
    return to_response(await receiver.callback(call))
