"""The scaffolding the sandbox simulators share (gateway.sandbox_kit), on a toy simulator."""

from __future__ import annotations

import random
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from gateway.sandbox_kit import (
    FaultAnswers,
    RecordedRequest,
    count_knob,
    json_error,
    rate_knob,
    seconds_knob,
    simulator_app,
    switch_knob,
)

Client = TestClient[web.Request, web.Application]


@attrs.define
class Knobs:
    latency_s: float = seconds_knob()
    error_rate: float = rate_knob()
    drop_rate: float = rate_knob()
    fail_next: int = count_knob()
    teapot: bool = switch_knob()


@attrs.define
class Toy:
    requests: list[RecordedRequest] = attrs.Factory(list)
    faults: Knobs = attrs.Factory(Knobs)
    rng: random.Random = attrs.Factory(lambda: random.Random(0))

    def summary(self) -> dict[str, Any]:
        return {"requests": len(self.requests)}


TOY: web.AppKey[Toy] = web.AppKey("toy", Toy)


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


def teapot(state: Toy) -> web.Response | None:
    return json_error(418, "teapot") if state.faults.teapot else None


async def toy_client(aiohttp_client: AiohttpClient, *, record_control: bool) -> tuple[Client, Toy]:
    state = Toy()
    answers = FaultAnswers(
        unavailable=lambda: json_error(503, "unavailable"),
        server_error=lambda: json_error(500, "broken"),
        extra=lambda: teapot(state),
    )
    app = simulator_app(
        TOY, state, [web.get("/hello", hello)], answers=answers, record_control=record_control
    )
    return await aiohttp_client(app), app[TOY]


def test_knobs_are_validated_on_assignment() -> None:
    knobs = Knobs()
    with pytest.raises(ValueError, match="error_rate must be within"):
        knobs.error_rate = 1.5
    with pytest.raises(ValueError, match="fail_next must not be negative"):
        knobs.fail_next = -1


async def test_faults_apply_in_order_and_spare_control_calls(aiohttp_client: AiohttpClient) -> None:
    client, state = await toy_client(aiohttp_client, record_control=False)
    state.faults.fail_next = 1
    state.faults.teapot = True
    assert (await client.get("/hello")).status == 418  # the simulator's own fault comes first
    state.faults.teapot = False
    assert (await client.get("/hello")).status == 503
    assert (await client.get("/hello")).status == 200
    state.faults.error_rate = 1.0
    assert (await client.get("/_sandbox/state")).status == 200
    assert (await client.get("/hello")).status == 500
    assert [r.path for r in state.requests] == ["/hello"] * 4  # control calls not recorded


async def test_faults_endpoint_changes_all_or_nothing(aiohttp_client: AiohttpClient) -> None:
    client, state = await toy_client(aiohttp_client, record_control=True)
    response = await client.post("/_sandbox/faults", json={"latency_s": 0, "teapot": True})
    assert response.status == 200
    assert await response.json() == {
        "latency_s": 0,
        "error_rate": 0.0,
        "drop_rate": 0.0,
        "fail_next": 0,
        "teapot": True,
    }
    for body in ({"teapot": 1}, {"fail_next": True}, {"nope": 1}, {"fail_next": 2, "drop_rate": 2}):
        response = await client.post("/_sandbox/faults", json=body)
        assert response.status == 400, body
        assert "message" in await response.json()
    assert state.faults == Knobs(latency_s=0, teapot=True)
    assert (await client.post("/_sandbox/faults", data=b"{")).status == 400
    assert len(state.requests) == 6  # control calls recorded when the simulator asks
