"""The older token mode: one token fetch at a time, reused, renewed early and after a 401."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pictofit_harness import (
    TOKEN_CLIENT_SECRET,
    TOKEN_PASSWORD,
    MakePictofit,
    Pictofit,
    make_pictofit,
    pictofit,
    token_config,
    upstream_calls,
)

from gateway.plugin_api import GatewayLogs
from gateway_pictofit import auth

__all__ = ["make_pictofit", "pictofit"]  # the fixtures, for this module's tests


def _token_requests(gateway: Pictofit) -> int:
    return sum(1 for r in gateway.sandbox.requests if r.path == "/connect/token")


def _bearers(gateway: Pictofit) -> list[str]:
    return [
        r.headers.get("Authorization", "")
        for r in gateway.sandbox.requests
        if r.path != "/connect/token"
    ]


def _without_callbacks(url: str) -> dict[str, Any]:
    """Token mode, and no callback registration to fetch a token before the test does."""
    config = token_config(url)
    del config["callback_secret"]
    return config


async def test_token_is_fetched_once_and_used_as_bearer(
    make_pictofit: MakePictofit, gateway_logs: GatewayLogs
) -> None:
    """Concurrent first calls share one token fetch; every API call carries that token; the
    token call is an `upstream.call` line with nothing secret in it."""
    gateway = await make_pictofit(tenant_a=_without_callbacks, wait_synced=False)
    assert _token_requests(gateway) == 0
    # Slow answers, so that every call is waiting while the first one fetches the token.
    gateway.sandbox.faults.latency_s = 0.1
    products = await asyncio.gather(*(gateway.put_product() for _ in range(8)))
    assert len(set(products)) == 8
    assert _token_requests(gateway) == 1
    [issued] = gateway.sandbox.tokens
    assert set(_bearers(gateway)) == {f"Bearer {issued}"}
    [line] = [e for e in upstream_calls(gateway_logs) if e["operation"] == "connectToken"]
    assert (line["method"], line["status"], line["tenant"]) == ("POST", 200, "tenant-a")
    text = gateway_logs.text()
    assert TOKEN_PASSWORD not in text
    assert TOKEN_CLIENT_SECRET not in text
    assert issued not in text


async def test_token_is_renewed_before_it_expires(
    make_pictofit: MakePictofit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Close to its expiry the token is replaced before use, without waiting for a 401."""
    now = [1000.0]
    monkeypatch.setattr(auth, "clock", lambda: now[0])
    gateway = await make_pictofit(tenant_a=token_config, sandbox={"token_lifetime_s": 600})
    product_id = await gateway.put_product()
    assert _token_requests(gateway) == 1
    now[0] += 600 - 61  # just outside the 60 s margin: still the same token
    await gateway.call("GET", f"/v1/products/{product_id}", expect=200)
    assert _token_requests(gateway) == 1
    now[0] += 2  # within 60 s of expiry
    await gateway.call("GET", f"/v1/products/{product_id}", expect=200)
    assert _token_requests(gateway) == 2
    _, second = gateway.sandbox.tokens
    assert _bearers(gateway)[-1] == f"Bearer {second}"


async def test_rejected_token_is_refreshed_once_for_all_waiting_requests(
    make_pictofit: MakePictofit, gateway_logs: GatewayLogs
) -> None:
    """After the service revoked the token, concurrent requests each get a 401 and a retry,
    but only one new token is fetched."""
    gateway = await make_pictofit(tenant_a=token_config)
    product_id = await gateway.put_product()
    [old] = gateway.sandbox.tokens
    gateway.sandbox.expire_token(old)
    path = f"/v1/products/{product_id}"
    await asyncio.gather(*(gateway.call("GET", path, expect=200) for _ in range(6)))
    assert _token_requests(gateway) == 2
    statuses = [
        line["status"]
        for line in upstream_calls(gateway_logs)
        if line["operation"] == "getConfigurations"
    ]
    assert statuses.count(401) >= 1
    assert statuses.count(200) == 6


async def test_refused_password_is_a_502_credentials_problem(make_pictofit: MakePictofit) -> None:
    """A token endpoint that refuses the grant (400 invalid_grant) is the gateway's credential
    problem, not the caller's."""

    def wrong_password(url: str) -> dict[str, Any]:
        config = token_config(url)
        config["token"]["password"] = "env:TEST_PICTOFIT_WRONG_KEY"
        return config

    gateway = await make_pictofit(tenant_a=wrong_password, wait_synced=False)
    problem = await gateway.call("GET", "/v1/product-types", expect=502)
    assert problem["type"] == "urn:gateway:problem:upstream-credentials-rejected"
    assert not gateway.sandbox.tokens
    assert all(r.path == "/connect/token" for r in gateway.sandbox.requests)
