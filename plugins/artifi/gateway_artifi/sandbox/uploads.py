"""The Artifi sandbox's photo upload: ``POST /api/2/UploadPhoto/UploadUserPhotos``.

3. Upload: the file part is named ``postedFile`` (name matched case-insensitively) and only the
   first such part is used. A ``multipart/*`` Content-Type without a boundary is rejected before
   anything else (as a framework would, before the action runs) with a bare HTTP 400
   ProblemDetails whose ``errors`` is ``{"postedFile": ["Missing content-type boundary."]}``.
   Any non-multipart body counts as "no file" (``262``). Validation order after credentials:
   ``frontAppUserId`` (``261``: empty, absent or over 128 chars), ``dpi`` (``265``: not an integer
   in 1..2400; absent or empty means 72), then the file (``262``: missing, empty, unreadable
   multipart, over ``max_file_mb`` MiB, not an image by content, a format outside the website's
   ``image_extensions``, or wider/taller than ``max_width``/``max_height``). The format is judged
   by Pillow from the bytes, never from the filename; only the header is parsed. At most
   ``(max_file_mb + 1)`` MiB of the part is held in memory.
4. ``isGuest`` is true only for ``true``/``1`` (any case); anything else, or absent, is false.
5. Upload success ``Data``: ``Extension`` and ``MimeType`` come from the detected format
   (``.jpg``/``image/jpeg``, ``.png``/``image/png``, ...), ``DPI`` is the requested dpi,
   ``ImageName`` is the uploaded filename without its extension (a uuid when the part has no
   filename), ``UniqueImageName`` a uuid, ``PhotoCode`` is ``str(Id)``. Ids start at 5101329 (the
   doc's example) and grow by one per stored photo; uuids come from the seeded RNG.
6. ``oldExternalUserId`` (non-empty and different from ``frontAppUserId``): once the upload is
   valid, and before the new photo is stored, all photos of that old user id on the same website
   move to ``frontAppUserId`` (same merge as UpdateUserId, they take the upload's ``isGuest``).
   A failed upload moves nothing.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Final

import attrs
from aiohttp import BodyPartReader, hdrs, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import BadHttpMessage
from PIL import Image

from gateway_artifi.sandbox.envelope import envelope, problem, validation_error
from gateway_artifi.sandbox.params import Call, flag, int_or_none, user_call
from gateway_artifi.sandbox.state import PhotoRecord

__all__ = ["DEFAULT_DPI", "MAX_DPI", "MIB", "MISSING_BOUNDARY", "upload_user_photos"]

DEFAULT_DPI: Final = 72
MAX_DPI: Final = 2400
MIB: Final = 1024 * 1024
MISSING_BOUNDARY: Final = "Missing content-type boundary."
_CHUNK: Final = 64 * 1024

# Pillow format -> the extension we answer.
_FORMAT_EXTENSION: Final[Mapping[str, str]] = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "WEBP": ".webp",
}


@attrs.frozen
class _FilePart:
    filename: str | None
    data: bytes
    too_large: bool


async def _read_posted_file(request: web.Request, cap: int) -> _FilePart | None:
    """The first ``postedFile`` part, holding at most ``cap + 1`` bytes; None when absent."""
    if not request.content_type.startswith("multipart/"):
        return None
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            return None
        if not isinstance(part, BodyPartReader) or (part.name or "").lower() != "postedfile":
            await part.release()
            continue
        buffer = bytearray()
        while chunk := await part.read_chunk(_CHUNK):
            buffer += chunk
            if len(buffer) > cap:
                # Stop reading: aiohttp discards the rest of the body after we answer.
                return _FilePart(part.filename, bytes(buffer[: cap + 1]), too_large=True)
        return _FilePart(part.filename, bytes(buffer), too_large=False)


@attrs.frozen
class _ImageInfo:
    format: str
    width: int
    height: int


def _identify(data: bytes) -> _ImageInfo | None:
    """Format and size from the image header (no pixel decoding); None if not an image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format is None:
                    return None
                width, height = image.size
                return _ImageInfo(image.format.upper(), width, height)
    # Any failure to parse the header (Pillow raises several types) means "not an image".
    except Exception:
        return None


async def upload_user_photos(request: web.Request) -> web.Response:
    # Checked before anything else, as a framework would before the action runs.
    if request.content_type.startswith("multipart/"):
        mimetype = parse_mimetype(request.headers.get(hdrs.CONTENT_TYPE, ""))
        if not mimetype.parameters.get("boundary"):
            return problem({"postedFile": [MISSING_BOUNDARY]})
    return await _upload(request)


@user_call("frontAppUserId")
async def _upload(call: Call, user: str) -> web.Response:
    request, state, params, website = call.request, call.state, call.params, call.website
    raw_dpi = params.get("dpi", "").strip()
    dpi = int_or_none(raw_dpi) if raw_dpi else DEFAULT_DPI
    if dpi is None or not 1 <= dpi <= MAX_DPI:
        return validation_error(state, "265", "dpi", f"Invalid DPI: must be 1..{MAX_DPI}.")
    is_guest = flag(params, "isGuest")

    limit = website.max_file_mb * MIB
    try:
        posted = await _read_posted_file(request, (website.max_file_mb + 1) * MIB)
    except (ValueError, RuntimeError, BadHttpMessage):
        return validation_error(state, "262", "postedFile", "The multipart body is malformed.")
    if posted is None:
        return validation_error(state, "262", "postedFile", "The file is missing.")
    if not posted.data:
        return validation_error(state, "262", "postedFile", "The file is empty.")
    if posted.too_large or len(posted.data) > limit:
        message = f"The file exceeds {website.max_file_mb} MB."
        return validation_error(state, "262", "postedFile", message)
    info = _identify(posted.data)
    if info is None:
        return validation_error(state, "262", "postedFile", "The file is not a valid image.")
    if not website.allows(info.format):
        message = f"Image type {info.format} is not allowed ({website.image_extensions})."
        return validation_error(state, "262", "postedFile", message)
    if info.width > website.max_width or info.height > website.max_height:
        message = f"Image dimensions exceed {website.max_width}x{website.max_height}."
        return validation_error(state, "262", "postedFile", message)

    old_user_id = params.get("oldexternaluserid", "")
    if old_user_id:
        state.move_photos(website.website_id, old_user_id, user, is_guest)
    stem = PurePosixPath((posted.filename or "").replace("\\", "/")).stem
    photo_id = state.take_photo_id()
    photo = PhotoRecord(
        id=photo_id,
        image_name=stem or state.new_uuid(),
        unique_image_name=state.new_uuid(),
        width=info.width,
        height=info.height,
        dpi=dpi,
        extension=_FORMAT_EXTENSION.get(info.format, "." + info.format.lower()),
        mime_type=Image.MIME.get(info.format, "application/octet-stream"),
        photo_code=str(photo_id),
        is_guest=is_guest,
        uploaded_at=datetime.now(UTC),
    )
    state.store_photo(website.website_id, user, photo)
    return envelope(state, ok=True, data=photo.upload_data())
