"""Multipart forms read with bounded memory: text fields in memory, file parts spooled to disk.

A 20 MB upload costs one 256 KiB buffer, not 20 MB, whatever the number of concurrent uploads;
the size limit is enforced while reading, so an oversized body is refused without being read whole.
File parts are spooled into the app's own folder through a `Spool`, which the request's owner (the
validation middleware) empties when the request ends, however it ends: answered, refused, failed,
cancelled, or its client gone. A name may appear once in a form: a repeat is a 400.
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
from gateway.problems import FieldError
from gateway.schema_errors import json_pointer

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


@attrs.define
class Spool:
    """The files spooled for one request; `remove_all` when it ends. Each is recorded before a
    byte is written, so none escapes, whatever interrupts the reading."""

    folder: Path
    paths: list[Path] = attrs.field(factory=list)

    def new_file(self) -> tuple[int, Path]:
        fd, raw_path = tempfile.mkstemp(prefix="upload-", dir=self.folder)
        path = Path(raw_path)
        self.paths.append(path)
        return fd, path

    def remove_all(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)
        self.paths.clear()


def body_cut_short() -> problems.ProblemError:
    """The client went away mid-body: nobody reads the answer, but the request is logged and
    counted as the client's failure, not the gateway's."""
    return problems.bad_request("the request body ended early: the connection was closed")


async def read_form(request: web.Request, *, limit: int, spool: Spool) -> Form:
    """Read a multipart body; 413 as soon as it passes `limit` bytes, 400 if it is malformed or
    names a part twice. The caller owns `spool` and empties it when the request ends."""
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
            if name in fields or name in files:
                # Refused, not overwritten: which of two values would be meant is a guess.
                raise problems.bad_request(
                    f"the form has more than one part named {name!r}",
                    [FieldError(json_pointer([name]), "appears more than once")],
                )
            if part.filename is not None:
                upload, total = await _spool(part, name, total, limit, spool)
                files[name] = upload
            else:
                data = await part.read(decode=True)
                total += len(data)
                if total > limit:
                    raise problems.payload_too_large(limit)
                if len(data) > MAX_FIELD_BYTES:
                    raise problems.bad_request(f"form field {name!r} is longer than 64 KiB")
                fields[name] = data.decode(part.get_charset("utf-8"), errors="replace")
    except ConnectionError:
        raise body_cut_short() from None
    except (ValueError, AssertionError, LookupError, HttpProcessingError) as exc:
        # HttpProcessingError: a part's headers do not parse (aiohttp's own header parser).
        raise problems.bad_request(f"malformed multipart body: {exc}") from None
    return Form(fields, files)


async def _spool(
    part: BodyPartReader, name: str, total: int, limit: int, spool: Spool
) -> tuple[UploadedFile, int]:
    fd, path = spool.new_file()
    size = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := await part.read_chunk(CHUNK):
            size += len(chunk)
            if total + size > limit:
                raise problems.payload_too_large(limit)
            out.write(chunk)
    content_type = part.headers.get("Content-Type")
    upload = UploadedFile(name, part.filename, content_type, size, path)
    return upload, total + size
