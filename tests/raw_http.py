"""HTTP/1.1 spoken byte for byte: what aiohttp's client will not send (header values that are not
UTF-8, bodies cut off mid-way, connections dropped on purpose)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import attrs
import orjson


@attrs.frozen
class RawResponse:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    def json(self) -> object:
        return orjson.loads(self.body)


def head(
    method: str, target: str, headers: Mapping[str, bytes | str], *, body_length: int | None
) -> bytes:
    """A request line and headers; values given as bytes are sent exactly as they are."""
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: gateway.test", b"Connection: close"]
    for name, value in headers.items():
        raw = value if isinstance(value, bytes) else value.encode()
        lines.append(name.encode() + b": " + raw)
    if body_length is not None:
        lines.append(b"Content-Length: %d" % body_length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def exchange(host: str, port: int, request: bytes) -> RawResponse:
    """Send `request` whole and read the answer (within 10 s)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(10):
            writer.write(request)
            await writer.drain()
            return await read_response(reader)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        body = b"".join(chunks)
    else:
        body = await reader.read()
    return RawResponse(status, headers, body)


def multipart(
    parts: list[tuple[str, bytes, str | None]], boundary: str = "gw-raw-boundary"
) -> bytes:
    """A multipart/form-data body of (name, content, filename or None) parts, closed."""
    return open_multipart(parts, boundary) + f"--{boundary}--\r\n".encode()


def open_multipart(parts: list[tuple[str, bytes, str | None]], boundary: str) -> bytes:
    """The parts without the closing delimiter: cut it anywhere to make a body that never ends."""
    out = b""
    for name, content, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + content + b"\r\n"
    return out
