"""The edge: request ids, the access line and metrics, caller keys, validation, errors as problems.

Errors are translated here and nowhere else: handlers and plugins raise `ProblemError`, aiohttp
raises its HTTP exceptions, and anything unexpected becomes a 500 problem with one logged traceback
and no detail for the caller.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from urllib.parse import quote

import orjson
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway import problems
from gateway.forms import Spool
from gateway.problems import PROBLEM_CONTENT_TYPE, ProblemError
from gateway.secret_health import missing_secret, secret_unavailable, setting_of
from gateway.state import (
    CONTRACT,
    INPUT,
    METRICS,
    OPERATION,
    REQUEST_ID,
    SETTINGS,
    TENANT,
    TENANTS,
    UPLOADS,
)
from gateway.store import StoreUnavailable
from gateway.validation import validate_request

REQUEST_ID_HEADER = "X-Request-ID"
# Kept unchanged when it is a sane token; anything else (too long, control characters) is replaced.
_ACCEPTED_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
MB = 1024 * 1024

log = structlog.get_logger("gateway.http")


def problem_response(exc: ProblemError, request: web.Request) -> web.Response:
    body = exc.to_body(instance=instance_of(request), request_id=request.get(REQUEST_ID, ""))
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


def _caused_by_store_outage(exc: BaseException | None) -> bool:
    """The store was unreachable, even if a plugin wrapped the error in its own."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, StoreUnavailable):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@web.middleware
async def context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    incoming = request.headers.get(REQUEST_ID_HEADER)
    request_id = (
        incoming if incoming and _ACCEPTED_REQUEST_ID.match(incoming) else str(uuid.uuid4())
    )
    request[REQUEST_ID] = request_id
    route = request.match_info.route.name or "unmatched"
    operation = request.app[CONTRACT].operations.get(route)
    if operation is not None:
        request[OPERATION] = operation
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    response: web.StreamResponse
    try:
        response = await handler(request)
    except ProblemError as exc:
        response = problem_response(exc, request)
    except web.HTTPException as exc:
        response = problem_response(_from_http_exception(exc), request)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if missing := missing_secret(exc):
            # A secret gone since start (gateway.secret_health): the tenant and setting, no trace.
            tenant = request.get(TENANT) or request.app[TENANTS].get(
                request.match_info.get("tenantId", "")
            )
            setting = setting_of(tenant, missing.ref)
            log.warning(
                "http.secret_unavailable",
                route=route,
                tenant=tenant.id if tenant else None,
                setting=setting,
                error=str(missing),
            )
            response = problem_response(secret_unavailable(tenant, setting), request)
        elif _caused_by_store_outage(exc):
            # Nothing was acknowledged: the caller (an upstream's callback too) retries later.
            log.warning("http.store_unavailable", route=route, error=str(exc))
            response = problem_response(store_unavailable(), request)
        else:
            log.exception("http.unhandled_error", route=route)
            internal = ProblemError(
                500,
                "internal-error",
                "Internal server error",
                "the gateway failed to answer; quote the request id to its operators",
            )
            response = problem_response(internal, request)
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    seconds = time.perf_counter() - started
    request.app[METRICS].observe(route, request.method, response.status, seconds)
    tenant = request.get(TENANT)
    log.info(
        "http.request",
        method=request.method,
        path=request.path,
        route=route,
        status=response.status,
        duration_ms=round(seconds * 1000, 2),
        tenant=tenant.id if tenant else None,
    )
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    operation = request.get(OPERATION)
    if operation is None or operation.public:
        return await handler(request)
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise problems.unauthorized("send your caller key as `Authorization: Bearer <key>`")
    tenant = request.app[TENANTS].authenticate(key)
    if tenant is None:
        raise problems.unauthorized("the caller key is not valid")
    request[TENANT] = tenant
    structlog.contextvars.bind_contextvars(tenant=tenant.id)
    return await handler(request)


@web.middleware
async def validation_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    operation = request.get(OPERATION)
    if operation is None:
        return await handler(request)
    limit = request.app[SETTINGS].server.max_upload_mb * MB
    # Whatever ends the request (an answer, an error, a cancellation, the client gone), the files
    # its form spooled go with it.
    spool = Spool(request.app[UPLOADS])
    try:
        request[INPUT] = await validate_request(request, operation, limit=limit, spool=spool)
        return await handler(request)
    finally:
        spool.remove_all()


MIDDLEWARES = (context_middleware, auth_middleware, validation_middleware)
