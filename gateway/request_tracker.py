"""What the edge tells a connection of its requests, in a module of its own: the server's
connection class mixes it in with aiohttp's, which a compiled class (gateway.compiled) could not
be."""

from __future__ import annotations

from aiohttp.streams import StreamReader

__all__ = ["RequestTracker"]


class RequestTracker:
    """A connection's protocol that is told when each of its requests runs (the server's
    `EdgeHandler`, which times the client only while it is the one to wait for)."""

    __slots__ = ()

    def request_started(self, payload: StreamReader) -> None:
        """The request's headers are parsed and its handler runs."""

    def request_done(self) -> None:
        """Its handler returned (its answer is being written)."""
