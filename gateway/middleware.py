"""The edge: request ids, the access line and metrics, caller keys, validation, errors as problems.

Errors are translated here and nowhere else: handlers and plugins raise `ProblemError`, aiohttp
raises its HTTP exceptions, and anything unexpected becomes a 500 problem with one logged traceback
and no detail for the caller.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import re
import time
from urllib.parse import quote

import attrs
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway import problems
from gateway.contract import Operation
from gateway.exchange import Exchange
from gateway.forms import Spool
from gateway.logs import bind_request_context, get_logger
from gateway.metrics import Metrics
from gateway.problems import PROBLEM_CONTENT_TYPE, ProblemError
from gateway.request_tracker import RequestTracker
from gateway.secret_health import secret_unavailable, setting_of
from gateway.state import EXCHANGE, METRICS, SETTINGS, TENANTS, UPLOADS
from gateway.store.errors import StoreUnavailable
from gateway.tenants import Tenant, TenantDirectory
from gateway.validation import validate_request
from gateway.values import SecretUnavailable

REQUEST_ID_HEADER = "X-Request-ID"
# Kept unchanged when it is a sane token; anything else (too long, control characters) is replaced.
_ACCEPTED_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
MB = 1024 * 1024

log = get_logger("gateway.http")


def problem_response(exc: ProblemError, request: web.Request) -> web.Response:
    exchange = request.get(EXCHANGE)
    request_id = exchange.request_id if exchange is not None else ""
    body = exc.to_body(instance=instance_of(request), request_id=request_id)
    return web.Response(
        body=orjson.dumps(body),
        status=exc.status,
        content_type=PROBLEM_CONTENT_TYPE,
        headers=exc.headers,
    )


_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Everything a URI path may carry as is (RFC 3986 pchar and "/"), plus existing %XX escapes.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def instance_of(request: web.Request) -> str:
    """The request's path as a valid URI reference (the problem's `instance`), as it was sent.

    The decoded path may hold spaces, control or non-ASCII characters; the raw one is re-escaped
    where needed, so `instance` always satisfies the contract's `format: uri-reference`.
    """
    raw = _STRAY_PERCENT.sub("%25", request.rel_url.raw_path)
    return quote(raw, safe=_PATH_SAFE, errors="surrogateescape")


def _from_http_exception(exc: web.HTTPException) -> ProblemError:
    slug, title = problems.HTTP_STATUS_SLUGS.get(exc.status, ("http-error", exc.reason))
    detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
    headers = {k: v for k, v in exc.headers.items() if k in {"Allow", "Retry-After"}}
    return ProblemError(exc.status, slug, title, detail or exc.reason, headers=headers)


STORE_RETRY_AFTER = 5  # seconds; a restarting database is usually back within a few


def store_unavailable() -> ProblemError:
    return ProblemError(
        503,
        "store-unavailable",
        "Service unavailable",
        "the gateway's database cannot be reached; nothing was stored: retry later",
        headers={"Retry-After": str(STORE_RETRY_AFTER)},
    )


def new_request_id() -> str:
    """A random UUID version 4, as `str(uuid.uuid4())` writes it, at a tenth of its cost: the
    `uuid.UUID` object it builds and formats is most of what a request id costs."""
    raw = os.urandom(16).hex()
    return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-{_VARIANT[raw[16]]}{raw[17:20]}-{raw[20:]}"


# The variant bits (10xx) of the 17th hex digit, applied to a random one: 0-f -> 8-b.
_VARIANT = {f"{n:x}": f"{8 + n % 4:x}" for n in range(16)}


@attrs.frozen
class Edge:
    """What the edge reads of the app for every request, looked up once when the routes are
    added (each `app[KEY]` is a call)."""

    tenants: TenantDirectory
    metrics: Metrics
    upload_limit: int  # bytes


def edge_of(app: web.Application) -> Edge:
    """What `at_edge` needs of `app`; call when its state is set."""
    return Edge(
        tenants=app[TENANTS],
        metrics=app[METRICS],
        upload_limit=app[SETTINGS].server.max_upload_mb * MB,
    )


UNMATCHED = "unmatched"
"""The route (and its label in logs and metrics) of a request no operation's path and method
match: a 404 or 405 problem."""


def at_edge(edge: Edge, operation: Operation | None, handler: Handler) -> Handler:
    """`handler` behind the edge: the connection's timers, the request id, the caller key,
    validation, errors as problems, the access line and metrics, in one function.

    Each route's handler is wrapped, rather than the app given a middleware: aiohttp runs an
    app's middlewares through a chain it builds (and a layer of its own) on every request, 17 k
    instructions of what a proxied read costs. `operation` is None for the `UNMATCHED` route.
    """
    return functools.partial(_at_edge, edge, operation, handler)


async def _at_edge(
    edge: Edge, operation: Operation | None, handler: Handler, request: web.Request
) -> web.StreamResponse:
    started = time.perf_counter()
    protocol = request.protocol
    tracker = protocol if isinstance(protocol, RequestTracker) else None
    if tracker is not None:
        tracker.request_started(request.content)
    try:
        incoming = request.headers.get(REQUEST_ID_HEADER)
        request_id = (
            incoming if incoming and _ACCEPTED_REQUEST_ID.match(incoming) else new_request_id()
        )
        exchange = Exchange(request_id, operation)
        request[EXCHANGE] = exchange
        route = UNMATCHED if operation is None else operation.operation_id
        log_context = bind_request_context(request_id=request_id)
        tenant: Tenant | None = None
        response: web.StreamResponse
        try:
            if operation is None:
                response = await handler(request)
            else:
                if not operation.public:
                    tenant = _authenticate(request, edge.tenants)
                    exchange.found_tenant = tenant
                    log_context["tenant"] = tenant.id
                limit = edge.upload_limit
                if _FORM in operation.body_validators:
                    response = await _with_form(request, handler, exchange, limit)
                else:
                    # No form, no files to spool: nothing to clean up either.
                    exchange.checked = await validate_request(
                        request, operation, limit=limit, spool=None
                    )
                    response = await handler(request)
        except ProblemError as exc:
            response = problem_response(exc, request)
        except web.HTTPException as exc:
            response = problem_response(_from_http_exception(exc), request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            response = _unexpected(exc, route, request)
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        seconds = time.perf_counter() - started
        # Each read of these is a Python property call: once each.
        method, status = request.method, response.status
        edge.metrics.observe(route, method, status, seconds)
        log.info(
            "http.request",
            method=method,
            path=request.path,
            route=route,
            status=status,
            # To a hundredth; round() would format a decimal string (2.6 k instructions).
            duration_ms=math.floor(seconds * 100_000 + 0.5) / 100,
            tenant=tenant.id if tenant else None,
        )
        return response
    finally:
        if tracker is not None:
            tracker.request_done()


def _unexpected(exc: Exception, route: str, request: web.Request) -> web.Response:
    if missing := problems.cause_of(exc, SecretUnavailable):
        # A secret gone since start (gateway.secret_health): the tenant and setting, no trace.
        exchange = request.get(EXCHANGE)
        found = exchange.found_tenant if exchange is not None else None
        tenant = found or request.app[TENANTS].get(request.match_info.get("tenantId", ""))
        setting = setting_of(tenant, missing.ref)
        log.warning(
            "http.secret_unavailable",
            route=route,
            tenant=tenant.id if tenant else None,
            setting=setting,
            error=str(missing),
        )
        return problem_response(secret_unavailable(tenant, setting), request)
    if problems.cause_of(exc, StoreUnavailable):
        # Nothing was acknowledged: the caller (an upstream's callback too) retries later.
        log.warning("http.store_unavailable", route=route, error=str(exc))
        return problem_response(store_unavailable(), request)
    log.exception("http.unhandled_error", route=route)
    internal = ProblemError(
        500,
        "internal-error",
        "Internal server error",
        "the gateway failed to answer; quote the request id to its operators",
    )
    return problem_response(internal, request)


def _authenticate(request: web.Request, tenants: TenantDirectory) -> Tenant:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise problems.unauthorized("send your caller key as `Authorization: Bearer <key>`")
    tenant = tenants.authenticate(key)
    if tenant is None:
        raise problems.unauthorized("the caller key is not valid")
    return tenant


async def _with_form(
    request: web.Request, handler: Handler, exchange: Exchange, limit: int
) -> web.StreamResponse:
    # Whatever ends the request (an answer, an error, a cancellation, the client gone), the files
    # its form spooled go with it.
    spool = Spool(request.app[UPLOADS])
    try:
        exchange.checked = await validate_request(request, exchange.route, limit=limit, spool=spool)
        return await handler(request)
    finally:
        spool.remove_all()


_FORM = "multipart/form-data"


async def unmatched(request: web.Request) -> web.StreamResponse:
    """The `UNMATCHED` route's handler: 405 with `Allow` when a route has the path but not the
    method, else 404 (what aiohttp's router would answer, as problems through the edge)."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.name != UNMATCHED:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()
