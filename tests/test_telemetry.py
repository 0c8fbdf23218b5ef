"""Tracing ([telemetry]): W3C Trace Context in and out, and the spans, read from the SDK's
in-memory exporter, against the real app factory and the Acme simulator."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    SpanContext,
    SpanKind,
    StatusCode,
    format_span_id,
    format_trace_id,
)

from gateway.config_converter import ConfigError
from gateway.config_loading import load_settings
from gateway.state import EVENTS, UPSTREAMS
from gateway.telemetry import contexts
from gateway.testing import GatewayLogs, WebhookSubscriber, eventually
from tests.conftest import SECRETS, Gateway, MakeGateway

TELEMETRY = {"endpoint": "http://127.0.0.1:1", "service_name": "gateway-under-test"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


async def traced_gateway(
    make_gateway: MakeGateway, spans: InMemorySpanExporter, **kw: Any
) -> Gateway:
    gateway: Gateway = await make_gateway(telemetry=TELEMETRY, span_exporter=spans, **kw)
    spans.clear()  # start-up's callback registration
    return gateway


def named(spans: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.kind is kind]


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return format_trace_id(context.trace_id), format_span_id(context.span_id)


def parent_id(span: ReadableSpan) -> str | None:
    return format_span_id(span.parent.span_id) if span.parent is not None else None


def all_text(span: ReadableSpan) -> str:
    return f"{span.name} {dict(span.attributes or {})} {span.resource.attributes}"


async def test_caller_trace_continues_through_the_gateway_to_the_upstream(
    make_gateway: MakeGateway, spans: InMemorySpanExporter, logs: GatewayLogs
) -> None:
    """A caller's traceparent: the server span is its child, named by the route template, with
    tenant and operationId and never the caller's key; one client span per upstream attempt,
    its child; the upstream receives that attempt's traceparent; every log line of the request
    carries the trace and span ids."""
    gateway = await traced_gateway(make_gateway, spans)
    assert [m for m in gateway.client.app.middlewares if m.__module__ == "gateway.telemetry.server"]
    product_id = str(uuid.uuid4())
    response = await gateway.client.put(
        f"/v1/products/{product_id}",
        json={"name": "Shirt", "type": "GARMENT_2D"},
        headers=gateway.auth(traceparent=TRACEPARENT, tracestate="vendor=1"),
    )
    assert response.status == 201, await response.text()

    [server] = named(spans, SpanKind.SERVER)
    assert server.name == "PUT /v1/products/{productId}"
    assert hex_ids(server)[0] == TRACE_ID
    assert parent_id(server) == CALLER_SPAN
    attributes = dict(server.attributes or {})
    assert attributes["gateway.tenant"] == "tenant-a"
    assert attributes["gateway.operation_id"] == "putProduct"
    assert attributes["http.route"] == "/v1/products/{productId}"
    assert attributes["http.response.status_code"] == 201
    assert attributes["gateway.request_id"] == response.headers["X-Request-ID"]
    assert server.resource.attributes["service.name"] == "gateway-under-test"

    [attempt] = named(spans, SpanKind.CLIENT)
    assert parent_id(attempt) == hex_ids(server)[1]
    assert hex_ids(attempt)[0] == TRACE_ID
    attributes = dict(attempt.attributes or {})
    assert attributes["gateway.backend"] == "acme"
    assert attributes["gateway.operation"] == "putProduct"
    assert attributes["gateway.attempt"] == 1
    assert attributes["gateway.breaker_state"] == "closed"
    assert attributes["http.response.status_code"] == 201
    assert "gateway.retry_reason" not in attributes
    [sent] = [r for r in gateway.upstream.requests if r["path"] == f"/products/{product_id}"]
    trace_id, span_id = hex_ids(attempt)
    assert sent["headers"]["traceparent"] == f"00-{trace_id}-{span_id}-01"
    assert sent["headers"]["tracestate"] == "vendor=1"

    for span in spans.get_finished_spans():
        text = all_text(span)
        assert not [secret for secret in SECRETS if secret in text], span.name

    request_id = response.headers["X-Request-ID"]
    request_lines = [line for line in logs.all() if line.get("request_id") == request_id]
    assert {line["event"] for line in request_lines} >= {"http.request", "upstream.call"}
    for line in request_lines:
        assert line["trace_id"] == TRACE_ID, line
    [access] = [line for line in request_lines if line["event"] == "http.request"]
    assert access["span_id"] == hex_ids(server)[1]
    [call] = [line for line in request_lines if line["event"] == "upstream.call"]
    assert call["span_id"] == span_id


async def test_a_request_without_traceparent_starts_a_trace(
    make_gateway: MakeGateway, spans: InMemorySpanExporter
) -> None:
    """No traceparent (or a malformed one): a new trace, the server span its root."""
    gateway = await traced_gateway(make_gateway, spans)
    for headers in ({}, {"traceparent": "00-not-a-trace-01"}):
        response = await gateway.client.get("/v1/product-types", headers=gateway.auth(**headers))
        assert response.status == 200
    first, second = named(spans, SpanKind.SERVER)
    assert parent_id(first) is None
    assert parent_id(second) is None
    assert hex_ids(first)[0] != hex_ids(second)[0]
    assert first.name == "GET /v1/product-types"


async def test_each_retry_is_a_span_with_its_reason(
    make_gateway: MakeGateway, spans: InMemorySpanExporter
) -> None:
    """Two 503s then a success: three attempt spans numbered 1..3, the failed ones marked as
    errors with their status, the retries naming why they were made."""
    gateway = await traced_gateway(make_gateway, spans)
    gateway.upstream.fail_next = 2
    response = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert response.status == 200
    attempts = sorted(named(spans, SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    described = [
        (
            a.attributes["gateway.attempt"],
            a.attributes["http.response.status_code"],
            a.attributes.get("gateway.retry_reason"),
            a.status.status_code,
        )
        for a in attempts
        if a.attributes is not None
    ]
    assert described == [
        (1, 503, None, StatusCode.ERROR),
        (2, 503, "status_503", StatusCode.ERROR),
        (3, 200, "status_503", StatusCode.UNSET),
    ]
    assert attempts[2].attributes is not None
    assert attempts[2].attributes["http.request.resend_count"] == 2
    sent = [r["headers"]["traceparent"] for r in gateway.upstream.requests if r["path"] == "/types"]
    assert len(set(sent)) == 3  # each attempt its own span id, one trace
    assert len({t.split("-")[1] for t in sent}) == 1


async def test_a_delivery_continues_the_trace_of_the_request_that_published(
    make_gateway: MakeGateway, spans: InMemorySpanExporter, subscriber: WebhookSubscriber
) -> None:
    """An event published by a traced request: its delivery is a client span in the caller's
    trace (child of the request's span), and the subscriber receives its traceparent."""
    gateway = await traced_gateway(make_gateway, spans)
    created = await gateway.client.post(
        "/v1/subscriptions",
        json={"url": subscriber.url, "eventTypes": ["acme.widget_ready"]},
        headers=gateway.auth(),
    )
    assert created.status == 201
    subscriber.secrets.append((await created.json())["secret"])
    widget = await gateway.client.put(
        f"/v1/acme/widgets/{uuid.uuid4()}",
        json={"name": "Cog", "sizeMm": 12},
        headers=gateway.auth(traceparent=TRACEPARENT),
    )
    assert widget.status == 201, await widget.text()
    await subscriber.wait_for("acme.widget_ready")
    await eventually(
        lambda: any(s.name == "POST acme.widget_ready" for s in spans.get_finished_spans())
    )

    [server] = [s for s in named(spans, SpanKind.SERVER) if "widgets" in s.name]
    [delivery] = [s for s in named(spans, SpanKind.CLIENT) if s.name == "POST acme.widget_ready"]
    assert hex_ids(delivery)[0] == TRACE_ID
    assert parent_id(delivery) == hex_ids(server)[1]
    attributes = dict(delivery.attributes or {})
    assert attributes["gateway.attempt"] == 1
    assert attributes["http.response.status_code"] == 204
    assert attributes["gateway.event_type"] == "acme.widget_ready"
    [received] = subscriber.deliveries
    assert received.headers["traceparent"] == f"00-{TRACE_ID}-{hex_ids(delivery)[1]}-01"


async def test_without_telemetry_nothing_is_traced(
    make_gateway: MakeGateway, logs: GatewayLogs
) -> None:
    """No [telemetry]: the edge alone, no tracer on the clients or the worker, nothing sent
    upstream, no trace ids in the logs, whatever the caller sent."""
    gateway: Gateway = await make_gateway()
    app = gateway.client.app
    assert not [m for m in app.middlewares if m.__module__.startswith("gateway.telemetry")]
    assert app[EVENTS].tracer is None
    assert all(client.tracer is None for client in app[UPSTREAMS].values())
    response = await gateway.client.get(
        "/v1/product-types", headers=gateway.auth(traceparent=TRACEPARENT)
    )
    assert response.status == 200
    assert not [r for r in gateway.upstream.requests if "traceparent" in r["headers"]]
    assert not [line for line in logs.all() if "trace_id" in line]


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"endpoint": "ftp://collector"}, "telemetry.endpoint: expected the collector's"),
        ({}, "telemetry.endpoint: missing"),
        ({"endpoint": "http://c:4318", "sampling_ratio": 1.5}, "telemetry.sampling_ratio: must"),
        ({"endpoint": "http://c:4318", "sample": 1}, "telemetry.sample: unknown setting"),
        (
            {"endpoint": "http://c:4318", "headers": {"api-key": "plain-value"}},
            "telemetry.headers['api-key']: must be a secret reference",
        ),
    ],
)
def test_telemetry_settings_mistakes_are_named_by_path(table: dict[str, Any], problem: str) -> None:
    """Each mistake in [telemetry] is named by its path, never echoing a value."""
    with pytest.raises(ConfigError) as raised:
        load_settings({"telemetry": table})
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems
    assert "plain-value" not in str(raised.value)


def test_kept_contexts_round_trip_and_anything_else_reads_as_none() -> None:
    """What the store keeps reads back as the same context, links and time; text that is not
    a context (a bad row, an invalid traceparent) reads as None rather than failing a request."""
    context = SpanContext(int(TRACE_ID, 16), int(CALLER_SPAN, 16), is_remote=True, trace_flags=1)
    link = SpanContext(7, 9, is_remote=True)
    kept = contexts.decode(contexts.encode(context, links=[link], at=12.5))
    assert kept is not None
    assert (kept.context.trace_id, kept.context.span_id, kept.at) == (
        context.trace_id,
        context.span_id,
        12.5,
    )
    assert [(k.trace_id, k.span_id) for k in kept.links] == [(7, 9)]
    zeros = f"00-{'0' * 32}-{'0' * 16}-01"
    for text in ("not json", "[]", '{"traceparent": 3}', f'{{"traceparent": "{zeros}"}}'):
        assert contexts.decode(text) is None, text
