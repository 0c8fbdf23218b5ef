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

import orjson
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway import problems
from gateway.problems import PROBLEM_CONTENT_TYPE, ProblemError
from gateway.state import CONTRACT, INPUT, METRICS, OPERATION, REQUEST_ID, SETTINGS, TENANT, TENANTS
from gateway.validation import validate_request

REQUEST_ID_HEADER = "X-Request-ID"
# Kept unchanged when it is a sane token; anything else (too long, control characters) is replaced.
_ACCEPTED_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
MB = 1024 * 1024

log = structlog.get_logger("gateway.http")


def problem_response(exc: ProblemError, request: web.Request) -> web.Response:
    body = exc.to_body(instance=request.path, request_id=request.get(REQUEST_ID, ""))
    return web.Response(
        body=orjson.dumps(body),
        status=exc.status,
        content_type=PROBLEM_CONTENT_TYPE,
        headers=exc.headers,
    )


def _from_http_exception(exc: web.HTTPException) -> ProblemError:
    slug, title = problems.HTTP_STATUS_SLUGS.get(exc.status, ("http-error", exc.reason))
    detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
    headers = {k: v for k, v in exc.headers.items() if k in {"Allow", "Retry-After"}}
    return ProblemError(exc.status, slug, title, detail or exc.reason, headers=headers)


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
    except Exception:
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
    checked = await validate_request(request, operation, limit=limit)
    request[INPUT] = checked
    try:
        return await handler(request)
    finally:
        if checked.form is not None:
            checked.form.close()


MIDDLEWARES = (context_middleware, auth_middleware, validation_middleware)
