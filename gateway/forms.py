"""Multipart forms read with bounded memory: text fields in memory, file parts spooled to disk.

A 20 MB upload costs one 256 KiB buffer, not 20 MB, whatever the number of concurrent uploads;
the size limit is enforced while reading, so an oversized body is refused without being read whole.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import attrs
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from gateway import problems

CHUNK = 256 * 1024
MAX_FIELD_BYTES = 64 * 1024


@attrs.frozen
class UploadedFile:
    """A file part of a form, on disk until the request ends."""

    field: str
    filename: str | None
    content_type: str | None
    size: int
    path: Path

    def open(self) -> BinaryIO:
        """A fresh handle from the start (an upload that is retried reads the file again)."""
        return self.path.open("rb")

    def head(self, size: int = 64 * 1024) -> bytes:
        """The first bytes, enough for an image's header."""
        with self.open() as f:
            return f.read(size)

    def sha256(self) -> str:
        """The content's digest, read again from disk: only Idempotency-Key fingerprints need it,
        so an upload does not pay for it otherwise."""
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(chunk)
        return digest.hexdigest()

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        with self.open() as f:
            while chunk := f.read(size):
                yield chunk


@attrs.frozen
class Form:
    fields: Mapping[str, str]
    files: Mapping[str, UploadedFile]

    def close(self) -> None:
        for upload in self.files.values():
            upload.path.unlink(missing_ok=True)


async def read_form(request: web.Request, *, limit: int) -> Form:
    """Read a multipart body; 413 as soon as it passes `limit` bytes, 400 if it is malformed."""
    if request.content_length is not None and request.content_length > limit:
        raise problems.payload_too_large(limit)
    fields: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    total = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise problems.bad_request("nested multipart bodies are not supported")
            name = part.name
            if not name:
                raise problems.bad_request("a form part has no name")
            if part.filename is not None:
                upload, total = await _spool(part, name, total, limit)
                files[name] = upload
            else:
                data = await part.read(decode=True)
                total += len(data)
                if total > limit:
                    raise problems.payload_too_large(limit)
                if len(data) > MAX_FIELD_BYTES:
                    raise problems.bad_request(f"form field {name!r} is longer than 64 KiB")
                fields[name] = data.decode(part.get_charset("utf-8"), errors="replace")
    except problems.ProblemError:
        Form(fields, files).close()
        raise
    except (ValueError, AssertionError, LookupError, HttpProcessingError) as exc:
        # HttpProcessingError: a part's headers do not parse (aiohttp's own header parser).
        Form(fields, files).close()
        raise problems.bad_request(f"malformed multipart body: {exc}") from None
    return Form(fields, files)


async def _spool(
    part: BodyPartReader, name: str, total: int, limit: int
) -> tuple[UploadedFile, int]:
    fd, raw_path = tempfile.mkstemp(prefix="gateway-upload-")
    path = Path(raw_path)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await part.read_chunk(CHUNK):
                size += len(chunk)
                if total + size > limit:
                    raise problems.payload_too_large(limit)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 - a local unlink, no slower than a write
        raise
    content_type = part.headers.get("Content-Type")
    upload = UploadedFile(name, part.filename, content_type, size, path)
    return upload, total + size
