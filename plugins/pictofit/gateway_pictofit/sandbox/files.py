"""The PICTOFiT sandbox's file uploads: ``POST /files`` (multipart).

- File ids may be any UUID (product and configuration ids must be version 4).
- ``POST /files`` is idempotent by id: 201 the first time, 200 when it replaces the file.
- A file part whose Content-Type is not image/png or image/jpeg is 415; content whose magic bytes do
  not match the declared type is 400; a file over 60 MB is 413.
"""

from __future__ import annotations

from typing import Final

import aiohttp
from aiohttp import hdrs, web

from gateway.plugin_api import SandboxProblem
from gateway_pictofit.sandbox.records import StoredFile
from gateway_pictofit.sandbox.state import SANDBOX_STATE
from gateway_pictofit.sandbox.types import FILE_TYPES, canonical_uuid

__all__ = ["post_file"]

_MAX_FILE_BYTES: Final = 60 * 1024 * 1024
_MAX_FIELD_BYTES: Final = 64 * 1024
_ALLOWED_IMAGE_TYPES: Final = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}


async def _read_part(part: aiohttp.BodyPartReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size > limit:
            raise SandboxProblem(413, f"part {part.name!r} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def post_file(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    if request.content_type != "multipart/form-data":
        raise SandboxProblem(415, "the body must be multipart/form-data")
    fields: dict[str, str] = {}
    data: bytes | None = None
    declared_type = ""
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, aiohttp.BodyPartReader):
            raise SandboxProblem(400, "nested multipart bodies are not supported")
        if part.name == "file":
            declared_type = part.headers.get(hdrs.CONTENT_TYPE, "").split(";")[0]
            declared_type = declared_type.strip().lower()
            if declared_type not in _ALLOWED_IMAGE_TYPES:
                raise SandboxProblem(415, "the file must be image/png or image/jpeg")
            data = await _read_part(part, _MAX_FILE_BYTES)
        elif part.name:
            raw = await _read_part(part, _MAX_FIELD_BYTES)
            fields[part.name] = raw.decode("utf-8", errors="replace")
    errors: dict[str, list[str]] = {}
    if data is None:
        errors["file"] = ["a file part is required"]
    elif not data.startswith(_ALLOWED_IMAGE_TYPES[declared_type]):
        errors["file"] = [f"the content is not {declared_type}"]
    file_id = canonical_uuid(fields.get("id"))
    if file_id is None:
        errors["id"] = ["id must be a UUID"]
    name = fields.get("name", "")
    if not name.strip():
        errors["name"] = ["name must be non-empty"]
    configuration_id = canonical_uuid(fields.get("configurationId"))
    if configuration_id is None or configuration_id not in state.configurations:
        errors["configurationId"] = ["configurationId must name an existing configuration"]
    type_text = fields.get("typeId", "").strip()
    type_id = int(type_text) if type_text.isdigit() else None
    if type_id not in FILE_TYPES:
        errors["typeId"] = [f"typeId must be one of {sorted(FILE_TYPES)}"]
    if errors or data is None or file_id is None or configuration_id is None or not type_id:
        raise SandboxProblem(400, "the file is invalid", errors)
    existing = file_id in state.files
    stored = StoredFile(file_id, name, configuration_id, type_id, declared_type, data)
    state.files[file_id] = stored
    return web.json_response(stored.to_json(), status=200 if existing else 201)
