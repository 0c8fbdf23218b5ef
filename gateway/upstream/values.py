"""The values that pass between a plugin, its `BoundUpstream` and the `UpstreamClient`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from gateway.values import value_repr

__all__ = ["BodyFactory", "UpstreamCall", "UpstreamResponse"]


class UpstreamResponse:
    """A complete upstream answer (status 2xx, or one the plugin listed in `expect`).

    A plain class with `Final` fields, as `gateway.values.Reply` and for the same reason."""

    def __init__(self, status: int, headers: CIMultiDictProxy[str], body: bytes) -> None:
        self.status: Final = status
        self.headers: Final = headers
        self.body: Final = body

    def __repr__(self) -> str:
        return f"UpstreamResponse(status={self.status!r}, body=<{len(self.body)} bytes>)"

    def json(self) -> Any:
        return orjson.loads(self.body)

    def text(self) -> str:
        match = re.search(r"charset=\"?([\w.:-]+)", self.headers.get("Content-Type", ""), re.I)
        try:
            return self.body.decode(match.group(1) if match else "utf-8", errors="replace")
        except LookupError:  # an unknown charset name
            return self.body.decode("utf-8", errors="replace")


BodyFactory = Callable[[], Any]
"""Builds a fresh request body (an `aiohttp.FormData`, say) for each attempt."""


class UpstreamCall:
    """One `request()`/`stream()` call of a plugin, as prepared before its first attempt.

    A plain class with `Final` fields, as `gateway.values.Reply` and for the same reason."""

    def __init__(
        self,
        method: str,
        url: URL,  # with the plugin's params, before credentials
        operation: str,
        headers: Mapping[str, str],  # the plugin's, without Authorization
        body: bytes | BodyFactory | None,
        idempotent: bool,
        expect: frozenset[int],
    ) -> None:
        self.method: Final = method
        self.url: Final = url
        self.operation: Final = operation
        self.headers: Final = headers
        self.body: Final = body
        self.idempotent: Final = idempotent
        self.expect: Final = expect

    def with_headers(self, headers: Mapping[str, str]) -> UpstreamCall:
        """The same call with other headers (a trace's `traceparent` added, say)."""
        return UpstreamCall(
            self.method, self.url, self.operation, headers, self.body, self.idempotent, self.expect
        )

    def __repr__(self) -> str:
        return value_repr(self, ("method", "url", "operation", "idempotent", "expect"))
