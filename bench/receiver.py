"""A fast webhook receiver, run as its own process: answers 204 and counts what it got.

`python -m bench.receiver PORT`: POST /{name} records, per event id, when the first attempt
arrived (and the send time the benchmark put in the event's data); GET /stats returns them.
"""

from __future__ import annotations

import sys
import time

import orjson
from aiohttp import web

STATS = web.AppKey("stats", dict)


async def hook(request: web.Request) -> web.Response:
    body = await request.read()
    stats = request.app[STATS]
    stats["count"] += 1
    key = f"{request.match_info['name']}:{request.headers.get('webhook-id')}"
    if key not in stats["first"]:
        # The benchmark puts the callback's send time last in its path (see bench.fanout).
        path = orjson.loads(body).get("data", {}).get("path", "")
        stats["first"][key] = [time.time(), path.rsplit("/", 1)[-1]]
    return web.Response(status=204)


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS], dumps=lambda v: orjson.dumps(v).decode())


async def reset(request: web.Request) -> web.Response:
    request.app[STATS].update(count=0, first={})
    return web.Response(status=204)


def main() -> None:
    app = web.Application()
    app[STATS] = {"count": 0, "first": {}}
    app.router.add_post("/reset", reset)
    app.router.add_get("/stats", stats)
    app.router.add_post("/{name}", hook)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
