"""The floor: the least an aiohttp pass-through proxy can do, as its own process.

`python -m bench.minimal_proxy UPSTREAM PORT`: every GET is forwarded to UPSTREAM with the same
path over one persistent session, and the body is answered back. No auth, validation or logging.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)


async def forward(request: web.Request) -> web.Response:
    upstream = request.app[SESSION]
    async with upstream.get(request.path_qs) as answer:
        body = await answer.read()
        return web.Response(body=body, status=answer.status, content_type=answer.content_type)


def main() -> None:
    base, port = sys.argv[1], int(sys.argv[2])

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(base)
        yield
        await app[SESSION].close()

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_get("/{tail:.*}", forward)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
