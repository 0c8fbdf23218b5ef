"""The listening socket: `web.TCPSite` with the gateway's own connection handler."""

from __future__ import annotations

import asyncio

from aiohttp import web
from yarl import URL

from gateway.server.connection import EdgeHandler
from gateway.server.limits import Gate
from gateway.settings import ServerSettings


class EdgeSite(web.BaseSite):
    """What `web.TCPSite` does, with `EdgeHandler`s for the runner's app and `settings`' limits.
    `settings.port` 0 picks a free port (`port` says which, once started)."""

    __slots__ = ("_port", "_reuse_port", "_settings")

    def __init__(
        self, runner: web.BaseRunner, settings: ServerSettings, *, reuse_port: bool = False
    ) -> None:
        super().__init__(runner)
        self._settings = settings
        self._reuse_port = reuse_port
        self._port = settings.port

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._settings.host, port=self._port))

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        await super().start()
        manager = self._runner.server
        assert manager is not None
        loop = asyncio.get_running_loop()
        gate = Gate(self._settings.max_connections)

        def protocol() -> EdgeHandler:
            return EdgeHandler(manager, loop=loop, settings=self._settings, gate=gate)

        self._server = server = await loop.create_server(
            protocol,
            self._settings.host,
            self._settings.port,
            backlog=self._backlog,
            reuse_port=self._reuse_port,
        )
        self._port = server.sockets[0].getsockname()[1]
