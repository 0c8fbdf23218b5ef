"""Result downloads from wherever the service hosts its files: streamed, and keyless off-site."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from pictofit_harness import Pictofit, image, make_pictofit, pictofit, upstream_calls, wait_for

from gateway.plugin_api import GatewayLogs
from gateway_pictofit.sandbox import STATE_FINISHED

BODY = bytes(range(256)) * 1024  # 256 KiB

__all__ = ["make_pictofit", "pictofit"]  # the fixtures, for this module's tests


def file_host(seen: list[dict[str, str]], *, truncate: bool = False) -> web.Application:
    """A stand-in for a CDN serving result files: records headers, may cut the body short."""

    async def serve(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(BODY)
        await response.prepare(request)
        await response.write(BODY[: len(BODY) // 2] if truncate else BODY)
        if truncate:
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/files/{name}", serve)
    return app


async def _finished(gateway: Pictofit) -> str:
    product_id = await gateway.put_product()
    configuration_id = await gateway.put_configuration(product_id)
    assert (await gateway.upload(product_id, configuration_id, image())).status == 201
    base = f"/v1/products/{product_id}/configurations/{configuration_id}"
    await gateway.call("POST", f"{base}/submit", expect=202)
    await wait_for(
        lambda: gateway.sandbox.configurations[configuration_id].state_id, STATE_FINISHED
    )
    return base


def _move_results(gateway: Pictofit, host: str) -> None:
    """Point every result of every configuration at `host` (as if the service used a CDN)."""
    for key, configuration in gateway.sandbox.configurations.items():
        results = tuple(
            attrs.evolve(r, url=f"{host}/files/{r.file_name}") for r in configuration.results
        )
        gateway.sandbox.configurations[key] = attrs.evolve(configuration, results=results)


async def test_off_site_result_is_fetched_without_the_tenants_key(
    pictofit: Pictofit, aiohttp_server: Any
) -> None:
    """A result hosted elsewhere is streamed through, and that host never sees the key."""
    seen: list[dict[str, str]] = []
    server = await aiohttp_server(file_host(seen))
    base = await _finished(pictofit)
    _move_results(pictofit, str(server.make_url("")).rstrip("/"))
    response = await pictofit.client.get(f"{base}/results/WEB", headers=pictofit.auth())
    assert response.status == 200
    assert await response.read() == BODY
    [headers] = seen
    assert "Authorization" not in headers
    assert headers["X-Request-ID"] == response.headers["X-Request-ID"]


async def test_body_cut_short_upstream_is_cut_short_for_the_caller(
    pictofit: Pictofit, aiohttp_server: Any, gateway_logs: GatewayLogs
) -> None:
    """When the file breaks off mid-way, the caller's download breaks too (never a complete-
    looking short file), and the attempt is logged as a connection error."""
    server = await aiohttp_server(file_host([], truncate=True))
    base = await _finished(pictofit)
    _move_results(pictofit, str(server.make_url("")).rstrip("/"))
    response = await pictofit.client.get(f"{base}/results/WEB", headers=pictofit.auth())
    assert response.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        async with asyncio.timeout(5):  # a regression would leave the caller waiting
            await response.read()
    [line] = [e for e in upstream_calls(gateway_logs) if e["operation"] == "getResult"]
    assert "error" in line
