"""The PICTOFiT sandbox's ids, names and states, and the calls that list the types.

Ids, names and states
- Product types: 1 GARMENT_2D, 2 GARMENT_3D, 3 AVATAR_2D, 4 GARMENT (old name). File types:
  1 FRONTAL, 2 REFERENCE_ADDITIONAL. Callback types: 1 PRODUCT_COMPLETED, 2 PRODUCT_REJECTED.
- States: 1 created, 2 ready, 3 in progress, 4 finished, 5 rejected.
- Ids are answered in canonical lower-case form.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Final

from aiohttp import web

__all__ = [
    "CALLBACK_TYPES",
    "FILE_TYPES",
    "PRODUCT_TYPES",
    "STATE_CREATED",
    "STATE_FINISHED",
    "STATE_IN_PROGRESS",
    "STATE_READY",
    "STATE_REJECTED",
    "callback_types",
    "canonical_uuid",
    "file_types",
    "product_types",
]

PRODUCT_TYPES: Final[Mapping[int, str]] = {
    1: "GARMENT_2D",
    2: "GARMENT_3D",
    3: "AVATAR_2D",
    4: "GARMENT",
}
FILE_TYPES: Final[Mapping[int, str]] = {1: "FRONTAL", 2: "REFERENCE_ADDITIONAL"}
CALLBACK_TYPES: Final[Mapping[int, str]] = {1: "PRODUCT_COMPLETED", 2: "PRODUCT_REJECTED"}

STATE_CREATED: Final = 1
STATE_READY: Final = 2
STATE_IN_PROGRESS: Final = 3
STATE_FINISHED: Final = 4
STATE_REJECTED: Final = 5


def canonical_uuid(value: object, *, version: int | None = None) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    if version is not None and parsed.version != version:
        return None
    return str(parsed)


async def product_types(request: web.Request) -> web.Response:
    return web.json_response([{"id": k, "name": v} for k, v in PRODUCT_TYPES.items()])


async def file_types(request: web.Request) -> web.Response:
    return web.json_response([{"id": k, "name": v} for k, v in FILE_TYPES.items()])


async def callback_types(request: web.Request) -> web.Response:
    return web.json_response([{"id": k, "name": v} for k, v in CALLBACK_TYPES.items()])
