"""The edge: caller keys, tenant isolation, bad input as problems, request ids, internal errors."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp import FormData

from gateway.testing import GatewayLogs
from tests.conftest import CALLER_KEY_A, CALLER_KEY_B, Gateway

PROBLEM = "application/problem+json"


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body: dict[str, Any] = await response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:gateway:problem:")
    assert body["requestId"] == response.headers["X-Request-ID"]
    return body


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {CALLER_KEY_A}"}],
    ids=["missing", "wrong", "not-bearer"],
)
async def test_v1_needs_a_valid_caller_key(gateway: Gateway, headers: dict[str, str]) -> None:
    """Without a valid bearer key: 401 problem with WWW-Authenticate, nothing sent upstream."""
    response = await gateway.client.get("/v1/product-types", headers=headers)
    await problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert not [r for r in gateway.upstream.requests if r["path"] == "/types"]


async def test_another_tenants_product_is_not_found(gateway: Gateway) -> None:
    """Tenant B cannot read or overwrite tenant A's product: 404, as if it did not exist."""
    product_id = str(uuid.uuid4())
    body = {"name": "A's", "type": "SHIRT"}
    created = await gateway.client.put(
        f"/v1/products/{product_id}", json=body, headers=gateway.auth()
    )
    assert created.status == 201
    read = await gateway.client.get(
        f"/v1/products/{product_id}", headers=gateway.auth(CALLER_KEY_B)
    )
    await problem(read, 404)
    overwrite = await gateway.client.put(
        f"/v1/products/{product_id}", json=body, headers=gateway.auth(CALLER_KEY_B)
    )
    await problem(overwrite, 404)
    unknown = await gateway.client.get(f"/v1/products/{uuid.uuid4()}", headers=gateway.auth())
    await problem(unknown, 404)


async def test_malformed_json_is_400(gateway: Gateway) -> None:
    """A body that is not JSON: 400 naming the parse error."""
    response = await gateway.client.put(
        f"/v1/products/{uuid.uuid4()}",
        data=b'{"name": ',
        headers=gateway.auth(**{"Content-Type": "application/json"}),
    )
    body = await problem(response, 400)
    assert "not valid JSON" in body["detail"]


async def test_bad_path_parameter_is_400_naming_it(gateway: Gateway) -> None:
    """A productId that is not a UUID: 400 with the parameter named as location."""
    response = await gateway.client.get("/v1/products/not-a-uuid", headers=gateway.auth())
    body = await problem(response, 400)
    assert body["errors"][0]["location"] == "productId"


async def test_bad_query_parameter_is_400(gateway: Gateway) -> None:
    """A query value of the wrong type is named."""
    response = await gateway.client.get("/v1/events?limit=lots", headers=gateway.auth())
    body = await problem(response, 400)
    assert [e["location"] for e in body["errors"]] == ["limit"]


async def test_body_against_schema_is_422_with_pointers(gateway: Gateway) -> None:
    """Every schema violation is listed with a JSON pointer; nothing goes upstream."""
    before = len(gateway.upstream.requests)
    response = await gateway.client.put(
        f"/v1/products/{uuid.uuid4()}",
        json={"name": 5, "extra": True},
        headers=gateway.auth(),
    )
    body = await problem(response, 422)
    locations = {e["location"] for e in body["errors"]}
    assert {"/name", "/type", "/extra"} <= locations
    assert len(gateway.upstream.requests) == before


async def test_wrong_content_type_is_415(gateway: Gateway) -> None:
    """A JSON operation sent form data: 415 naming what it takes."""
    response = await gateway.client.put(
        f"/v1/products/{uuid.uuid4()}",
        data=b"name=x",
        headers=gateway.auth(**{"Content-Type": "application/x-www-form-urlencoded"}),
    )
    body = await problem(response, 415)
    assert "application/json" in body["detail"]


async def test_oversized_upload_is_413_without_reading_it_all(gateway: Gateway) -> None:
    """A body over max_upload_mb (2 MB in tests) is refused with 413 and the limit."""
    product_id, config_id = str(uuid.uuid4()), str(uuid.uuid4())
    await gateway.client.put(
        f"/v1/products/{product_id}", json={"name": "S", "type": "SHIRT"}, headers=gateway.auth()
    )
    form = FormData()
    form.add_field("kind", "FRONTAL")
    form.add_field("file", b"\x89PNG" + b"0" * (3 * 1024 * 1024), filename="big.png")
    response = await gateway.client.post(
        f"/v1/products/{product_id}/configurations/{config_id}/images",
        data=form,
        headers=gateway.auth(),
    )
    # The configuration does not exist: the body is refused before anything else is looked at.
    body = await problem(response, 413)
    assert body["limitBytes"] == 2 * 1024 * 1024
    response = await gateway.client.put(
        f"/v1/products/{product_id}",
        data=b"{" + b" " * (3 * 1024 * 1024) + b"}",
        headers=gateway.auth(**{"Content-Type": "application/json"}),
    )
    await problem(response, 413)


async def test_multipart_missing_file_is_422(gateway: Gateway) -> None:
    """A form without its required file part names `/file`."""
    form = FormData()
    form.add_field("guest", "true")
    form.add_field("dummy", b"x", filename="x.bin")
    response = await gateway.client.post("/v1/users/u1/photos", data=form, headers=gateway.auth())
    body = await problem(response, 422)
    assert "/file" in {e["location"] for e in body["errors"]}


async def test_unknown_route_and_method_are_problems(gateway: Gateway) -> None:
    """aiohttp's own 404 and 405 come out as problems too."""
    await problem(await gateway.client.get("/v1/nothing-here", headers=gateway.auth()), 404)
    response = await gateway.client.delete("/v1/backends", headers=gateway.auth())
    await problem(response, 405)
    assert "GET" in response.headers["Allow"]


async def test_an_unknown_path_with_a_line_break_is_a_problem(gateway: Gateway) -> None:
    """A path no route has is a 404 problem whatever it decodes to, a line break (%0A) or a tab
    included: the catch-all route matches any character, not only those `.` matches."""
    for path in ("/v1/nothing%0Ahere", "/callbacks/acme/tenant-a/%0A", "/v1/%09"):
        await problem(await gateway.client.post(path, headers=gateway.auth()), 404)


async def test_request_id_is_kept_echoed_and_sent_upstream(
    gateway: Gateway, logs: GatewayLogs
) -> None:
    """An incoming X-Request-ID survives to the answer, the upstream and every log line."""
    response = await gateway.client.get(
        "/v1/product-types", headers=gateway.auth(**{"X-Request-ID": "caller-chose-this"})
    )
    assert response.headers["X-Request-ID"] == "caller-chose-this"
    assert gateway.upstream.requests[-1]["headers"]["X-Request-ID"] == "caller-chose-this"
    lines = [line for line in logs.all() if line.get("request_id") == "caller-chose-this"]
    assert {line["event"] for line in lines} >= {"upstream.call", "http.request"}


async def test_request_id_is_made_when_missing(gateway: Gateway) -> None:
    """Without one, a UUID4 is made and echoed."""
    response = await gateway.client.get("/healthz")
    assert uuid.UUID(response.headers["X-Request-ID"]).version == 4


async def test_unhandled_exception_is_500_without_traceback(
    make_gateway: Any, logs: GatewayLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash in a backend: 500 problem with no internals; one logged traceback."""
    from tests import acme_backend

    async def explode(self: Any, call: Any) -> None:
        raise RuntimeError("internal detail the caller must not see")

    monkeypatch.setattr(acme_backend.AcmeBackend, "operation", explode)
    gateway: Gateway = await make_gateway()
    response = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    body = await problem(response, 500)
    assert "request id" in body["detail"]
    assert "internal detail" not in await response.text()
    assert "Traceback" not in await response.text()
    [crash] = logs.events("http.unhandled_error")
    assert "internal detail the caller must not see" in crash["exception"]


async def test_health_and_metrics_need_no_key(gateway: Gateway) -> None:
    """/healthz and /metrics answer without a caller key; metrics are Prometheus text."""
    assert (await gateway.client.get("/healthz")).status == 200
    await gateway.client.get("/v1/product-types", headers=gateway.auth())
    metrics = await gateway.client.get("/metrics")
    text = await metrics.text()
    assert metrics.status == 200
    assert metrics.content_type == "text/plain"
    assert 'gateway_http_requests_total{method="GET",route="listProductTypes",status="200"}' in text
    assert 'gateway_upstream_calls_total{backend="acme"' in text
    assert "gateway_upstream_breaker_state" in text
