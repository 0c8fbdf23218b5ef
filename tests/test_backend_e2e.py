"""A backend that lives in tests/ serves unified operations end to end, through the real core."""

from __future__ import annotations

import uuid

from aiohttp import FormData

from gateway.testing import GatewayLogs
from tests.acme_backend import RESULT_BYTES
from tests.conftest import ACME_KEY_A, ACME_KEY_B, CALLER_KEY_A, Gateway

UPSTREAM_CALL_FIELDS = {
    "request_id",
    "tenant",
    "backend",
    "operation",
    "method",
    "url",
    "status",
    "duration_ms",
    "attempt",
    "bytes_sent",
    "bytes_received",
}


async def test_operation_carries_tenant_credential_not_caller_key(
    gateway: Gateway, logs: GatewayLogs
) -> None:
    """The upstream sees the tenant's upstream key, never the caller's; one upstream.call line."""
    response = await gateway.client.get(
        "/v1/product-types", headers=gateway.auth(**{"X-Request-ID": "req-e2e-1"})
    )
    assert response.status == 200, await response.text()
    assert await response.json() == {
        "backend": "acme",
        "items": [{"name": "SHIRT"}, {"name": "TROUSERS"}],
    }

    [seen] = [r for r in gateway.upstream.requests if r["path"] == "/types"]
    assert seen["headers"]["Authorization"] == f"Bearer {ACME_KEY_A}"
    assert CALLER_KEY_A not in str(seen)
    assert seen["headers"]["X-Request-ID"] == "req-e2e-1"

    [line] = [e for e in logs.events("upstream.call") if e["operation"] == "getTypes"]
    assert set(line) >= UPSTREAM_CALL_FIELDS
    assert line["request_id"] == "req-e2e-1"
    assert line["tenant"] == "tenant-a"
    assert line["backend"] == "acme"
    assert line["status"] == 200
    assert line["attempt"] == 1
    assert line["bytes_received"] > 0
    assert "error" not in line


async def test_each_tenant_uses_its_own_upstream_key(gateway: Gateway) -> None:
    """Tenant B's calls carry tenant B's upstream key."""
    from tests.conftest import CALLER_KEY_B

    response = await gateway.client.get("/v1/product-types", headers=gateway.auth(CALLER_KEY_B))
    assert response.status == 200
    assert gateway.upstream.requests[-1]["headers"]["Authorization"] == f"Bearer {ACME_KEY_B}"


async def test_put_then_get_product(gateway: Gateway) -> None:
    """putProduct answers 201 then 200 for the same caller-chosen id; getProduct reads it back."""
    product_id = str(uuid.uuid4())
    body = {"name": "Shirt", "type": "SHIRT"}
    first = await gateway.client.put(
        f"/v1/products/{product_id}", json=body, headers=gateway.auth()
    )
    assert first.status == 201, await first.text()
    again = await gateway.client.put(
        f"/v1/products/{product_id}", json=body, headers=gateway.auth()
    )
    assert again.status == 200
    got = await gateway.client.get(f"/v1/products/{product_id}", headers=gateway.auth())
    assert got.status == 200
    assert (await got.json())["name"] == "Shirt"


async def test_download_streams_upstream_bytes(gateway: Gateway, logs: GatewayLogs) -> None:
    """downloadResult passes the upstream file through byte for byte, logging its size once."""
    product_id, config_id = str(uuid.uuid4()), str(uuid.uuid4())
    await gateway.client.put(
        f"/v1/products/{product_id}", json={"name": "S", "type": "SHIRT"}, headers=gateway.auth()
    )
    from gateway.state import STORE

    await gateway.client.app[STORE].claim_resource(
        "configuration", config_id, tenant="tenant-a", backend="acme", parent_id=product_id
    )
    response = await gateway.client.get(
        f"/v1/products/{product_id}/configurations/{config_id}/results/WEB",
        headers=gateway.auth(),
    )
    assert response.status == 200
    assert response.headers["X-Request-ID"]
    assert await response.read() == RESULT_BYTES
    [line] = [e for e in logs.events("upstream.call") if e["operation"] == "downloadResult"]
    assert line["bytes_received"] == len(RESULT_BYTES)


async def test_upload_goes_upstream_as_multipart(gateway: Gateway) -> None:
    """A multipart image upload is spooled, validated and sent upstream with its bytes intact."""
    product_id, config_id = str(uuid.uuid4()), str(uuid.uuid4())
    await gateway.client.put(
        f"/v1/products/{product_id}", json={"name": "S", "type": "SHIRT"}, headers=gateway.auth()
    )
    from gateway.state import STORE

    await gateway.client.app[STORE].claim_resource(
        "configuration", config_id, tenant="tenant-a", backend="acme", parent_id=product_id
    )
    form = FormData()
    form.add_field("kind", "FRONTAL")
    form.add_field("file", b"\x89PNG" + b"x" * 5000, filename="a.png", content_type="image/png")
    response = await gateway.client.post(
        f"/v1/products/{product_id}/configurations/{config_id}/images",
        data=form,
        headers=gateway.auth(),
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["bytes"] == 5004
