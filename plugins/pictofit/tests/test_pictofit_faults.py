"""Upstream faults reach the caller as the core's problems; what is safe to retry is retried."""

from __future__ import annotations

from typing import Any

from pictofit_harness import (
    WRONG_KEY,
    MakePictofit,
    Pictofit,
    image,
    make_pictofit,
    pictofit,
    tenant_a_config,
    upstream_calls,
)

from gateway.plugin_api import GatewayLogs

__all__ = ["make_pictofit", "pictofit"]  # the fixtures, for this module's tests


def _wrong_key(url: str) -> dict[str, Any]:
    return {**tenant_a_config(url), "api_key": "env:TEST_PICTOFIT_WRONG_KEY"}


def _attempts(gateway_logs: GatewayLogs, operation: str) -> list[Any]:
    return [
        (line["attempt"], line["status"])
        for line in upstream_calls(gateway_logs)
        if line["operation"] == operation
    ]


async def test_wrong_upstream_key_is_a_502_credentials_problem(
    make_pictofit: MakePictofit, gateway_logs: GatewayLogs
) -> None:
    """PICTOFiT refusing the tenant's key is the gateway's problem (502), not the caller's 401;
    the key is never shown."""
    gateway = await make_pictofit(tenant_a=_wrong_key, wait_synced=False)
    response = await gateway.client.get("/v1/product-types", headers=gateway.auth())
    assert response.status == 502
    problem = await response.json()
    assert problem["type"] == "urn:gateway:problem:upstream-credentials-rejected"
    assert "credentials" in problem["detail"]
    assert WRONG_KEY not in await response.text()
    # One re-send after the 401 (credentials asked again), then the verdict.
    assert _attempts(gateway_logs, "getProductTypes") == [(1, 401), (2, 401)]
    assert WRONG_KEY not in gateway_logs.text()


async def test_5xx_is_retried_for_gets(pictofit: Pictofit, gateway_logs: GatewayLogs) -> None:
    """Two 503s then success: the caller sees only the answer."""
    product_id = await pictofit.put_product()
    pictofit.sandbox.faults.fail_next = 2
    await pictofit.call("GET", f"/v1/products/{product_id}/configurations", expect=200)
    assert _attempts(gateway_logs, "getConfigurations") == [(1, 503), (2, 503), (3, 200)]


async def test_persistent_5xx_is_a_502(pictofit: Pictofit, gateway_logs: GatewayLogs) -> None:
    """A PUT that keeps failing is tried `max_attempts` times, then 502 upstream-error."""
    await pictofit.call("GET", "/v1/product-types", expect=200)  # types cached
    pictofit.sandbox.faults.fail_next = 10
    body = {"name": "Shirt", "type": "GARMENT_2D"}
    problem = await pictofit.call(
        "PUT", "/v1/products/6f1c2a4e-8b7d-4c1e-9a2b-5d6e7f809a1b", expect=502, json=body
    )
    assert problem["type"] == "urn:gateway:problem:upstream-error"
    assert _attempts(gateway_logs, "putProduct") == [(1, 503), (2, 503), (3, 503)]


async def test_429_is_retried_after_retry_after(
    pictofit: Pictofit, gateway_logs: GatewayLogs
) -> None:
    """A 429 with `Retry-After: 0` is retried at once."""
    product_id = await pictofit.put_product()
    pictofit.sandbox.faults.throttle_retry_after = 0
    pictofit.sandbox.faults.throttle_remaining = 1
    await pictofit.call("GET", f"/v1/products/{product_id}", expect=200)
    assert _attempts(gateway_logs, "getConfigurations") == [(1, 429), (2, 200)]


async def test_429_longer_than_the_cap_reaches_the_caller(make_pictofit: MakePictofit) -> None:
    """A `Retry-After` longer than the policy's cap is passed on: 429 with Retry-After."""
    gateway = await make_pictofit(upstream={"retry_after_cap": 0.5})
    gateway.sandbox.faults.throttle_retry_after = 30
    gateway.sandbox.faults.throttle_remaining = 5
    response = await gateway.client.get("/v1/image-types", headers=gateway.auth())
    assert response.status == 429
    assert response.headers["Retry-After"] == "30"


async def test_timeouts_are_504(make_pictofit: MakePictofit, gateway_logs: GatewayLogs) -> None:
    """An upstream slower than the attempt timeout: retried, then 504 upstream-timeout."""
    gateway = await make_pictofit(upstream={"attempt_timeout": 0.1, "deadline": 2.0})
    gateway.sandbox.faults.latency_s = 0.3
    problem = await gateway.call("GET", "/v1/product-types", expect=504)
    assert problem["type"] == "urn:gateway:problem:upstream-timeout"
    assert [status for _, status in _attempts(gateway_logs, "getProductTypes")] == [None] * 3


async def test_upload_is_retried_with_the_same_file_id(
    pictofit: Pictofit, gateway_logs: GatewayLogs
) -> None:
    """The file id is the gateway's, so a failed upload is resent safely: one file upstream."""
    product_id = await pictofit.put_product()
    configuration_id = await pictofit.put_configuration(product_id)
    await pictofit.call("GET", "/v1/image-types", expect=200)  # types cached
    pictofit.sandbox.faults.fail_next = 1
    response = await pictofit.upload(product_id, configuration_id, image())
    assert response.status == 201, await response.text()
    [stored] = pictofit.sandbox.files.values()
    assert stored.id == (await response.json())["id"]
    assert stored.data == image()
    assert _attempts(gateway_logs, "postFile") == [(1, 503), (2, 201)]
