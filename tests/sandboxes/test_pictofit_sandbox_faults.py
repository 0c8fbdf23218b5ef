"""The PICTOFiT sandbox simulator's faults: latency, seeded errors, dropped connections,
throttling and failing the next calls, set through control endpoints that are never faulted."""

from __future__ import annotations

import time

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from gateway_pictofit.sandbox import PictofitSandboxState
from tests.sandboxes.pictofit_client import AUTH, Client, make_client


async def test_latency_fault(sandbox: tuple[Client, PictofitSandboxState]) -> None:
    """latency_s delays every answer by at least that long."""
    client, state = sandbox
    state.faults.latency_s = 0.15
    started = time.monotonic()
    assert (await client.get("/products/types", headers=AUTH)).status == 200
    assert time.monotonic() - started >= 0.15


async def test_error_rate_fault_is_seeded(aiohttp_client: AiohttpClient) -> None:
    """error_rate answers that fraction with 500, in the same order for the same seed."""
    sequences = []
    for _ in range(2):
        client, state = await make_client(aiohttp_client, seed=7)
        state.faults.error_rate = 0.5
        statuses = [(await client.get("/products/types", headers=AUTH)).status for _ in range(20)]
        sequences.append(statuses)
    assert sequences[0] == sequences[1]
    assert set(sequences[0]) == {200, 500}
    state.faults.error_rate = 1.0
    response = await client.get("/products/types", headers=AUTH)
    assert response.status == 500
    assert "message" in await response.json()


async def test_drop_fault_closes_the_connection(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """drop_rate closes the connection without an answer; the client sees a disconnect."""
    client, state = sandbox
    state.faults.drop_rate = 1.0
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await client.get("/products/types", headers=AUTH)
    state.faults.drop_rate = 0.0
    assert (await client.get("/products/types", headers=AUTH)).status == 200


async def test_throttle_fault_answers_429_with_retry_after(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """throttle_remaining=N answers the next N requests 429 with Retry-After, then recovers."""
    client, state = sandbox
    state.faults.throttle_remaining = 2
    state.faults.throttle_retry_after = 7
    for _ in range(2):
        response = await client.get("/products/types", headers=AUTH)
        assert response.status == 429
        assert response.headers["Retry-After"] == "7"
    assert (await client.get("/products/types", headers=AUTH)).status == 200


async def test_fail_next_fault_answers_503(sandbox: tuple[Client, PictofitSandboxState]) -> None:
    """fail_next=N answers the next N requests 503 (even unauthenticated ones), then recovers."""
    client, state = sandbox
    state.faults.fail_next = 2
    assert (await client.get("/products/types", headers=AUTH)).status == 503
    assert (await client.get("/products/types")).status == 503
    assert (await client.get("/products/types", headers=AUTH)).status == 200


async def test_control_endpoints_set_faults_and_are_never_faulted(
    sandbox: tuple[Client, PictofitSandboxState],
) -> None:
    """/_sandbox/faults updates the knobs without auth; /_sandbox/* is exempt from them."""
    client, state = sandbox
    response = await client.post("/_sandbox/faults", json={"error_rate": 1.0, "fail_next": 1})
    assert response.status == 200
    assert (await response.json())["error_rate"] == 1.0
    assert state.faults.error_rate == 1.0
    assert state.faults.fail_next == 1
    summary = await client.get("/_sandbox/state")
    assert summary.status == 200
    assert (await summary.json())["faults"]["fail_next"] == 1
    assert (await client.post("/_sandbox/faults", json={"error_rate": 2})).status == 400
    assert (await client.post("/_sandbox/faults", json={"nope": 1})).status == 400
    assert (await client.post("/_sandbox/faults", json={"fail_next": True})).status == 400
    assert state.faults.error_rate == 1.0
    assert state.requests == []  # control calls are not recorded
