"""Upstreams for the upstream client's tests: a real aiohttp app that answers as scripted and
records what it received (`serve`, the fixture, starts one), and a port nothing listens on."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[..., Awaitable[TestServer]]


class Upstream:
    """A real upstream app whose answers are scripted per hit; it records what it received."""

    def __init__(self, *answers: Handler) -> None:
        self.answers = list(answers)
        self.seen: list[web.Request] = []
        self.headers: list[dict[str, str]] = []
        self.bodies: list[bytes] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request)
        self.headers.append(dict(request.headers))
        self.bodies.append(await request.read())
        answer = self.answers[min(len(self.seen), len(self.answers)) - 1]
        return await answer(request)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


def reply(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return answer


@pytest.fixture
async def serve(aiohttp_server: ServerFactory) -> Callable[[Upstream], Awaitable[str]]:
    async def start(upstream: Upstream) -> str:
        server = await aiohttp_server(upstream.app())
        return str(server.make_url("/"))

    return start


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
