"""The gateway listening as `gateway serve` does (through `EdgeSite`), for the server tests: the
`serve` fixture, and requests and answers over raw sockets, read with the patience those tests
allow the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config_loading import load_settings
from gateway.problems import PROBLEM_CONTENT_TYPE
from gateway.server import EdgeSite
from gateway.state import CALLBACKS
from gateway.testing import ContractCheck, problem_validator
from tests.acme_backend import ACME_STATE, AcmePlugin, AcmeUpstreamState, make_acme_upstream
from tests.conftest import ACME_KEY_A, ACME_KEY_B, eventually, gateway_config

MB = 1024 * 1024
# Limits small enough to watch them act; each test waits a few times longer at most.
QUICK = {"headers_timeout": 0.5, "body_idle_timeout": 0.5, "keepalive_timeout": 0.5}
PATIENCE = 3.0  # seconds a test waits for the server to act before failing


@attrs.frozen
class Edge:
    port: int
    upstream: AcmeUpstreamState

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


Serve = Callable[..., Awaitable[Edge]]


@pytest.fixture
async def serve(
    aiohttp_server: Any, tmp_path: Path, secrets_env: None, contract_check: ContractCheck
) -> AsyncIterator[Serve]:
    """Start the gateway (tenants A and B on the Acme simulator) as `gateway serve` does, through
    `EdgeSite`, on a free loopback port; keyword arguments set [server] limits."""
    runners: list[web.AppRunner] = []

    async def start(**server: Any) -> Edge:
        upstream = await aiohttp_server(make_acme_upstream(ACME_KEY_A, ACME_KEY_B))
        raw = gateway_config(tmp_path, str(upstream.make_url("")).rstrip("/"))
        raw["server"].update(port=0, **server)
        settings = load_settings(raw)
        app = contract_check.install(create_app(settings, extra_plugins=[AcmePlugin()]))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = EdgeSite(runner, settings.server)
        await site.start()
        registrar = app[CALLBACKS]
        await eventually(lambda: all(s.state != "pending" for s in registrar.states.values()))
        return Edge(site.port, upstream.app[ACME_STATE])

    yield start
    for runner in runners:
        await runner.cleanup()


@attrs.frozen
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def problem(self) -> dict[str, Any]:
        """The body as a problem document, checked against the contract's `Problem` schema."""
        assert self.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE), self.headers
        document: dict[str, Any] = orjson.loads(self.body)
        errors = [e.message for e in problem_validator().iter_errors(document)]
        assert not errors, errors
        assert document["status"] == self.status
        assert document["requestId"] == self.headers["x-request-id"]
        return document


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    try:
        async with asyncio.timeout(PATIENCE):
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            fields = (line.partition(":") for line in lines if line)
            headers = {name.strip().lower(): value.strip() for name, _, value in fields}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
    except TimeoutError:
        raise AssertionError(f"no answer within {PATIENCE} s") from None
    return Answer(int(status_line.split()[1]), headers, body)


async def exchange(port: int, request: bytes) -> Answer:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await read_answer(reader)
    finally:
        writer.close()


async def rest_until_closed(reader: asyncio.StreamReader, within: float = PATIENCE) -> bytes:
    """What the server still sends before it closes the connection; fails if it stays open."""
    try:
        async with asyncio.timeout(within):
            return await reader.read()
    except TimeoutError:
        raise AssertionError(f"the connection is still open after {within} s") from None
    except ConnectionResetError:
        return b""


def get(path: str, *headers: str) -> bytes:
    head = [f"GET {path} HTTP/1.1", "Host: gateway.test", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
