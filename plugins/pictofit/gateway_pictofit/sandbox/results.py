"""The results of a finished PICTOFiT configuration, and their downloads.

- A finished configuration has four results: formats MOBILE and WEB, each compressed and
  uncompressed, as ``{format, compressed, url, fileName}``. The url is an absolute URL of this
  sandbox with an unguessable token, served without auth as application/octet-stream; the bytes
  are ``sandbox_result_bytes(configuration_id, format, compressed)`` (deterministic, 64-256 KiB).
  File names end in the product type's extension (.garment, .gm3d, .avatar). Download tokens
  live in ``state.result_files``: remove entries to simulate expired upstream URLs (404).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Final

from aiohttp import hdrs, web
from yarl import URL

from gateway.plugin_api import SandboxProblem
from gateway_pictofit.sandbox.records import ResultEntry, ResultFile, SandboxConfiguration
from gateway_pictofit.sandbox.state import SANDBOX_STATE

__all__ = [
    "RESULT_FILE_ROUTE",
    "RESULT_FORMATS",
    "make_results",
    "result_file",
    "sandbox_result_bytes",
]

RESULT_FORMATS: Final = ("MOBILE", "WEB")
RESULT_FILE_ROUTE: Final = "result-file"
_RESULT_EXTENSIONS: Final[Mapping[int, str]] = {
    1: ".garment",
    2: ".gm3d",
    3: ".avatar",
    4: ".garment",
}
_DOWNLOAD_CHUNK: Final = 64 * 1024


def sandbox_result_bytes(configuration_id: str, fmt: str, compressed: bool) -> bytes:
    """The deterministic content of one result file (64-256 KiB), for byte-for-byte checks."""
    variant = "compressed" if compressed else "uncompressed"
    seed = f"{configuration_id}|{fmt}|{variant}".encode()
    pick = int.from_bytes(hashlib.sha256(seed).digest()[:4], "big")
    # Compressed results are smaller, as they would be upstream.
    size = 64 * 1024 + pick % (64 * 1024) if compressed else 160 * 1024 + pick % (96 * 1024)
    header = f"PICTOFIT SANDBOX RESULT {configuration_id} {fmt} {variant}\n".encode()
    return header + hashlib.shake_256(seed).digest(size - len(header))


def make_results(
    app: web.Application, configuration: SandboxConfiguration, origin: URL
) -> tuple[ResultEntry, ...]:
    """Issue the download tokens of a configuration's four results (on ``app``'s router)."""
    state = app[SANDBOX_STATE]
    product = state.products.get(configuration.product_id)
    extension = _RESULT_EXTENSIONS.get(product.type_id if product else 1, ".garment")
    entries = []
    for fmt in RESULT_FORMATS:
        for compressed in (True, False):
            token = secrets.token_urlsafe(24)
            suffix = "_compressed" if compressed else ""
            file_name = f"{configuration.id}_{fmt.lower()}{suffix}{extension}"
            state.result_files[token] = ResultFile(
                token, configuration.id, fmt, compressed, file_name
            )
            path = app.router[RESULT_FILE_ROUTE].url_for(token=token)
            entries.append(ResultEntry(fmt, compressed, str(origin.join(path)), file_name))
    return tuple(entries)


async def result_file(request: web.Request) -> web.StreamResponse:
    result = request.app[SANDBOX_STATE].result_files.get(request.match_info["token"])
    if result is None:
        raise SandboxProblem(404, "no such result file (it may have expired)")
    content = sandbox_result_bytes(result.configuration_id, result.format, result.compressed)
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: "application/octet-stream",
            hdrs.CONTENT_DISPOSITION: f'attachment; filename="{result.file_name}"',
        }
    )
    response.content_length = len(content)
    await response.prepare(request)
    if request.method != hdrs.METH_HEAD:
        view = memoryview(content)
        for offset in range(0, len(content), _DOWNLOAD_CHUNK):
            await response.write(view[offset : offset + _DOWNLOAD_CHUNK])
    await response.write_eof()
    return response
