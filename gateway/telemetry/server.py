"""The SERVER span of each request (the outermost middleware when tracing is on)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry.trace import Span, SpanKind, StatusCode

from gateway.middleware import UNMATCHED
from gateway.state import EXCHANGE
from gateway.store.protocol import Store
from gateway.telemetry.propagation import PROPAGATOR
from gateway.telemetry.provider import Telemetry
from gateway.telemetry.traced import CALLBACK_OPERATION, CURRENT, RequestTrace


def server_middleware(telemetry: Telemetry, store: Store) -> Middleware:
    """The outermost middleware when tracing is on: the caller's `traceparent` continued (a new
    trace without one), one SERVER span named after the route template, current while the edge
    and the handler run, so that their log lines and upstream attempts belong to it."""
    tracer = telemetry.tracer

    @web.middleware
    async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        # No template for a path no operation has (the catch-all UNMATCHED route's is none).
        resource = route.resource if route.name != UNMATCHED else None
        template = resource.canonical if resource is not None else None
        attributes: dict[str, str | int] = {
            "http.request.method": request.method,
            "url.path": request.path,
            "url.scheme": request.scheme,
        }
        if template is not None:
            attributes["http.route"] = template
        if agent := request.headers.get("User-Agent"):
            attributes["user_agent.original"] = agent[:256]
        with tracer.start_as_current_span(
            f"{request.method} {template}" if template else request.method,
            context=PROPAGATOR.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,  # an exception here is a cancellation: nothing to show
        ) as span:
            state = RequestTrace(store, span, callback=route.name == CALLBACK_OPERATION)
            token = CURRENT.set(state)
            try:
                response = await handler(request)
            finally:
                CURRENT.reset(token)
                _describe(span, request)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_attribute("error.type", str(response.status))
                span.set_status(StatusCode.ERROR)
            return response

    return traced


def _describe(span: Span, request: web.Request) -> None:
    """What the edge learnt: the caller's tenant and operation (never its key), the request id."""
    exchange = request.get(EXCHANGE)
    if exchange is None:
        return
    if (tenant := exchange.found_tenant) is not None:
        span.set_attribute("gateway.tenant", tenant.id)
    if (operation := exchange.operation) is not None:
        span.set_attribute("gateway.operation_id", operation.operation_id)
    if exchange.request_id:
        span.set_attribute("gateway.request_id", exchange.request_id)
