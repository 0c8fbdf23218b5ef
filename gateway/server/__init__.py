"""The listening socket and what a client may hold of it: slow, idle and too many connections, and
aiohttp's own parser refusals answered as problem documents.

aiohttp's server has a keep-alive timeout and parser limits, but no header or body timeout and no
connection cap; and it answers a request it cannot parse in text/plain after logging the raw input
(a caller key included). `EdgeSite` listens like `web.TCPSite`, with `EdgeHandler`, aiohttp's own
protocol (`web.RequestHandler`) plus those. The app's middleware (or `track_requests`) tells the
handler when a request's headers are in and when its handler is done, so that no timer runs while
the gateway, not the client, is the one working (an upstream call, say).
"""

from __future__ import annotations

from gateway.server.connection import EdgeHandler, track_requests
from gateway.server.heap import settle_heap
from gateway.server.limits import FD_RESERVE, reserve_descriptors
from gateway.server.loop import ServingLoop
from gateway.server.site import EdgeSite

__all__ = [
    "FD_RESERVE",
    "EdgeHandler",
    "EdgeSite",
    "ServingLoop",
    "reserve_descriptors",
    "settle_heap",
    "track_requests",
]
