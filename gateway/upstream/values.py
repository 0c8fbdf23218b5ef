"""The values that pass between a plugin, its `BoundUpstream` and the `UpstreamClient`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

__all__ = ["BodyFactory", "UpstreamCall", "UpstreamResponse"]


@attrs.frozen
class UpstreamResponse:
    """A complete upstream answer (status 2xx, or one the plugin listed in `expect`)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")

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


@attrs.frozen
class UpstreamCall:
    """One `request()`/`stream()` call of a plugin, as prepared before its first attempt."""

    method: str
    url: URL  # with the plugin's params, before credentials
    operation: str
    headers: Mapping[str, str]  # the plugin's, without Authorization
    body: bytes | BodyFactory | None
    idempotent: bool
    expect: frozenset[int]
