"""One trace from a caller through the gateway to PICTOFiT, and from PICTOFiT's callback to the
subscriber, exported over OTLP/HTTP to a receiver the test runs (decoding the protobuf), on
SQLite and PostgreSQL. This tests the core's tracing through that backend."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from gateway.testing import WebhookSubscriber
from tests.conftest import CALLER_KEY_A, SECRETS
from tests.pictofit.conftest import CUSTOMER, PICTOFIT_KEY_A, MakePictofit, Pictofit, image

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
COLLECTOR_KEY = "otlp-collector-key-Xe4r9Tq2"
SECRETS.append(COLLECTOR_KEY)


@attrs.define
class Collector:
    """An OTLP/HTTP receiver: every span exported to it, and the headers of each export."""

    url: str = ""
    spans: list[Span] = attrs.field(factory=list)
    headers: list[dict[str, str]] = attrs.field(factory=list)

    def named(self, prefix: str) -> list[Span]:
        return [span for span in self.spans if span.name.startswith(prefix)]


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    collected = Collector()

    async def export(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        decoded = ExportTraceServiceRequest.FromString(body)
        collected.headers.append(dict(request.headers))
        for resource_spans in decoded.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                collected.spans.extend(scope_spans.spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", export)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    collected.url = str(server.make_url("")).rstrip("/")
    yield collected
    await server.close()


async def submit_traced(gateway: Pictofit, subscriber: WebhookSubscriber) -> str:
    """Subscribe to product.completed; a product with one configuration and its FRONTAL image;
    submitConfiguration sent with the caller's traceparent. The product's id."""
    created = await gateway.client.post(
        "/v1/subscriptions",
        json={"url": subscriber.url, "eventTypes": ["product.completed"]},
        headers=gateway.auth(),
    )
    assert created.status == 201, await created.text()
    subscriber.secrets.append((await created.json())["secret"])
    product_id = await gateway.put_product()
    configuration_id = await gateway.put_configuration(product_id)
    upload = await gateway.upload(product_id, configuration_id, image("PNG"))
    assert upload.status == 201, await upload.text()
    path = f"/v1/products/{product_id}/configurations/{configuration_id}/submit"
    submitted = await gateway.client.post(
        path, headers={**gateway.auth(CALLER_KEY_A), "traceparent": TRACEPARENT}
    )
    assert submitted.status == 202, await submitted.text()
    return product_id


def attribute(span: Span, key: str) -> Any:
    for item in span.attributes:
        if item.key == key:
            value = item.value
            return getattr(value, value.WhichOneof("value"))
    return None


async def test_caller_trace_reaches_the_backend_and_the_subscriber_of_its_callback(
    make_pictofit: MakePictofit,
    collector: Collector,
    subscriber: WebhookSubscriber,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller's traceparent on submitConfiguration: PICTOFiT receives the same trace id; its
    completion callback (received later, with no trace of its own) links to the submit, and the
    webhook the subscriber receives for the job carries the caller's trace id; every span goes
    to the collector with its key, exported over OTLP/HTTP protobuf."""
    monkeypatch.setenv("TEST_OTLP_KEY", COLLECTOR_KEY)
    telemetry = {"endpoint": collector.url, "headers": {"x-api-key": "env:TEST_OTLP_KEY"}}
    gateway = await make_pictofit(store_url=store_url, telemetry=telemetry)
    product_id = await submit_traced(gateway, subscriber)

    [event] = await subscriber.wait_for("product.completed")
    assert event["data"]["productId"] == product_id
    [webhook] = subscriber.deliveries
    assert webhook.headers["traceparent"].split("-")[1] == TRACE_ID
    [ready] = [r for r in gateway.upstream_requests() if r.path.endswith("/ready")]
    assert ready.headers["traceparent"].split("-")[1] == TRACE_ID  # submit's call to PICTOFiT

    await gateway.client.close()  # the app stops: its spans are flushed to the collector
    assert {h.get("x-api-key") for h in collector.headers} == {COLLECTOR_KEY}
    trace_id = bytes.fromhex(TRACE_ID)
    [submit] = [s for s in collector.named("POST /v1/products/") if s.name.endswith("/submit")]
    assert submit.trace_id == trace_id
    assert submit.parent_span_id == bytes.fromhex(CALLER_SPAN)
    assert attribute(submit, "gateway.operation_id") == "submitConfiguration"
    [callback] = collector.named("POST /callbacks/")
    assert callback.trace_id != trace_id  # PICTOFiT sent none: a trace of its own ...
    assert trace_id in {link.trace_id for link in callback.links}  # ... linked to the job
    [delivery] = collector.named("POST product.completed")
    assert delivery.trace_id == trace_id
    assert (callback.trace_id, callback.span_id) in {
        (link.trace_id, link.span_id) for link in delivery.links
    }
    assert webhook.headers["traceparent"].split("-")[2] == delivery.span_id.hex()
    upstream = [s for s in collector.spans if s.kind == Span.SPAN_KIND_CLIENT]
    assert any(s.trace_id == trace_id and attribute(s, "gateway.backend") for s in upstream)


async def test_a_callback_reaching_another_process_continues_the_callers_trace(
    make_pictofit: MakePictofit,
    collector: Collector,
    subscriber: WebhookSubscriber,
    store_url: str,
) -> None:
    """Submitted through a gateway that then stops; PICTOFiT's callback reaches another process
    on the same database (a restart, or a replica): the subscriber's webhook still carries the
    caller's trace id, read from the store."""
    telemetry = {"endpoint": collector.url}
    # PICTOFiT takes its time: the callback comes when the test triggers it.
    first = await make_pictofit(
        store_url=store_url, telemetry=telemetry, sandbox={"processing_delay_s": 60.0}
    )
    product_id = await submit_traced(first, subscriber)
    await first.client.close()
    # The second registers its own callback URL at start-up: PICTOFiT calls it from now on.
    second = await make_pictofit(store_url=store_url, telemetry=telemetry, behind=first)
    trigger = f"/customers/{CUSTOMER}/callbacks/PRODUCT_COMPLETED/trigger/{product_id}"
    fired = await second.client.session.post(
        f"{second.sandbox_url}{trigger}", headers={"Authorization": f"Bearer {PICTOFIT_KEY_A}"}
    )
    sent = (await fired.json())["sent"]
    assert (sent["status"], sent["url"].startswith(second.public_url)) == (204, True)
    [event] = await subscriber.wait_for("product.completed")
    assert event["data"]["productId"] == product_id
    [webhook] = subscriber.deliveries
    assert webhook.headers["traceparent"].split("-")[1] == TRACE_ID
