"""Upstream trouble through the whole app: retries for idempotent calls only, breaker, timeouts."""

from __future__ import annotations

import uuid

import pytest
from aiohttp import FormData

from gateway.testing import GatewayLogs
from tests.conftest import SECRETS, Gateway, MakeGateway

REVOKED_KEY = "revoked-acme-key-xyz-0d9"
SECRETS.append(REVOKED_KEY)


def types_requests(gateway: Gateway) -> int:
    return len([r for r in gateway.upstream.requests if r["path"] == "/types"])


async def test_idempotent_read_is_retried_on_5xx(gateway: Gateway, logs: GatewayLogs) -> None:
    """A GET that meets one 503 is retried and succeeds; both attempts are logged."""
    gateway.upstream.fail_next = 1
    response = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert response.status == 200
    assert types_requests(gateway) == 2
    attempts = [e["attempt"] for e in logs.events("upstream.call") if e["operation"] == "getTypes"]
    assert attempts == [1, 2]


async def test_upstream_503_with_a_garbage_retry_after_is_a_502(make_gateway: MakeGateway) -> None:
    """An upstream 503 whose Retry-After is unreadable ("²" passes str.isdigit) is an upstream
    error like any 503: the caller gets a 502 problem, not a 500."""
    gateway: Gateway = await make_gateway(max_attempts=2)
    gateway.upstream.fail_next = 2
    gateway.upstream.retry_after = "²"
    response = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert response.status == 502
    assert (await response.json())["type"] == "urn:gateway:problem:upstream-error"
    assert types_requests(gateway) == 2


async def test_non_idempotent_upload_is_not_retried(gateway: Gateway) -> None:
    """A POST upload that meets a 503 is not retried: 502 problem, one upstream request."""
    product_id, config_id = str(uuid.uuid4()), str(uuid.uuid4())
    await gateway.client.put(
        f"/v1/products/{product_id}", json={"name": "S", "type": "SHIRT"}, headers=gateway.auth()
    )
    from gateway.state import STORE

    await gateway.client.app[STORE].claim_resource(
        "configuration", config_id, tenant="tenant-a", backend="acme", parent_id=product_id
    )

    def form(name: str) -> FormData:
        data = FormData()
        data.add_field("kind", "FRONTAL")
        data.add_field("name", name)
        data.add_field("file", b"\x89PNG" + b"x" * 100, filename="a.png")
        return data

    url = f"/v1/products/{product_id}/configurations/{config_id}/images"
    gateway.upstream.fail_next = 1
    response = await gateway.client.post(url, data=form("plain"), headers=gateway.auth())
    assert response.status == 502
    assert len([r for r in gateway.upstream.requests if r["path"] == "/files"]) == 1
    # The same upload declared idempotent by the backend (its file id is chosen) is retried.
    gateway.upstream.fail_next = 1
    response = await gateway.client.post(url, data=form("retryable"), headers=gateway.auth())
    assert response.status == 201
    assert len([r for r in gateway.upstream.requests if r["path"] == "/files"]) == 3


async def test_breaker_opens_and_answers_503_without_calling_upstream(
    make_gateway: MakeGateway,
) -> None:
    """After consecutive failures the breaker opens: 503 with Retry-After, nothing sent."""
    gateway: Gateway = await make_gateway(max_attempts=1, breaker_threshold=3, breaker_reset=60)
    gateway.upstream.fail_next = 3
    for _ in range(3):
        failed = await gateway.client.get("/v1/product-types", headers=gateway.auth())
        assert failed.status == 502
    sent = types_requests(gateway)
    refused = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert refused.status == 503
    assert refused.content_type == "application/problem+json"
    assert int(refused.headers["Retry-After"]) > 0
    assert types_requests(gateway) == sent
    backends = await (await gateway.client.get("/v1/backends", headers=gateway.auth())).json()
    assert {b["name"]: b["health"]["breaker"] for b in backends["items"]}["acme"] == "open"
    ready = await gateway.client.get("/readyz")
    assert ready.status == 503


async def test_upstream_timeout_is_504(make_gateway: MakeGateway) -> None:
    """An upstream slower than the attempt timeout: 504 problem naming the backend."""
    gateway: Gateway = await make_gateway(attempt_timeout=0.2, max_attempts=1)
    gateway.upstream.hang_seconds = 1.0
    response = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert response.status == 504
    assert "acme" in (await response.json())["detail"]


async def test_upstream_4xx_becomes_the_same_4xx_with_reason(gateway: Gateway) -> None:
    """An upstream 409 reaches the caller as a 409 problem carrying the upstream's reason."""
    response = await gateway.client.put(
        f"/v1/products/{uuid.uuid4()}",
        json={"name": "reject-me", "type": "SHIRT"},
        headers=gateway.auth(),
    )
    assert response.status == 409
    assert "name is reserved" in (await response.json())["detail"]


async def test_rejected_upstream_key_is_502_not_401(
    make_gateway: MakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upstream refusing the tenant's key is the gateway's problem: 502, not 401."""
    monkeypatch.setenv("TEST_ACME_KEY_A", REVOKED_KEY)
    gateway: Gateway = await make_gateway()
    response = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert response.status == 502
    body = await response.json()
    assert body["type"].endswith("upstream-credentials-rejected")
    assert REVOKED_KEY not in await response.text()
