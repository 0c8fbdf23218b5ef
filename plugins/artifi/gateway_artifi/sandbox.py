"""Sandbox simulator of the Artifi API (user photo upload and the calls around it).

A real aiohttp application that follows /work/shared/upstreams/ARTIFI.md: the gateway's tests,
``gateway serve --sandbox`` and client authors run against it instead of Artifi.

Routes (documented paths and verbs, matched exactly and case-sensitively; a wrong verb on a known
path gets aiohttp's 405, an unknown path 404):

- ``POST /api/2/UploadPhoto/UploadUserPhotos``  multipart upload of one user photo
- ``POST /api/3/UploadImage/GetImageSettings``  the website's upload rules
- ``GET  /api/3/UploadImage/GetUserUploadedList``  a user's uploads
- ``GET  /api/3/UploadImage/DeleteUserPhoto``  deletes a photo (yes, a GET)
- ``PUT  /api/3/User/UpdateUserId``  moves a user's photos to another user id
- ``POST /_sandbox/faults`` and ``GET /_sandbox/state``: control endpoints, no auth, no faults.

Assumptions (the docs are silent; the gateway relies on exactly these):

1. Every answer is the envelope ``{"Response", "Message", "Data", "ErrorCode"}`` with HTTP 200,
   errors included (errors live inside the envelope). Exceptions: the ProblemDetails 400s, the
   503 fault (plain text body), 404/405 from routing and the dropped connection.
2. Credentials (api/2 and api/3) are query parameters; every query parameter name is matched
   case-insensitively (the docs write ``WebsiteId`` and ``websiteId``), the first value wins.
   Checked in this order: ``websiteId`` absent or empty -> ``372``; not an integer or not a
   configured website -> ``221`` (``"221,234"`` with the ``multi_error_codes`` quirk);
   ``webApiClientKey`` empty or not that website's key -> ``226``.
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
7. ``GetUserUploadedList``: ``userId`` absent/empty/too long -> ``261``; an unknown user gets
   ``{"AssetCount": 0, "AssetList": []}``. ``searchKey`` keeps photos whose ``ImageName``
   contains it, case-insensitively. ``AssetCount`` is the number of matching photos (not the page
   length). Paging applies only when ``pageSize`` is an integer > 0; ``pageIndex`` is 1-based and
   a missing, non-integer or < 1 value means page 1; a non-integer or <= 0 ``pageSize`` means "no
   paging" (all photos). Photos are always listed ascending by upload (by Id).
8. ``DeleteUserPhoto``: ``userId`` invalid -> ``261``; a ``photoId`` that is not an integer or not
   one of that user's photos on that website -> Error envelope with ``ErrorCode`` ``"262"``
   (the documented "invalid or missing file" code) and Message
   ``"The Image does not exist for this user."``. Success: Message
   ``"The Image has been successfully deleted."``, ``Data`` null.
9. ``UpdateUserId``: ``newUserId`` or ``oldUserId`` absent/empty/over 128 chars -> ``261``. All
   photos of ``oldUserId`` are appended to ``newUserId``'s (the merged list stays in upload
   order), get ``IsGuest`` from the ``isGuest`` parameter (default false) and ``oldUserId`` is
   left with none. Unknown ``oldUserId`` or equal ids are a successful no-op. Success: Message
   ``"The user id has been successfully updated."``, ``Data`` ``true``.
10. Error messages other than the 500 one are this sandbox's wording; clients must key on
    ``ErrorCode``.
11. Faults (``Faults``), applied by a middleware in this order after recording the request:
    ``latency_s`` sleep, ``drop_rate`` (transport closed without an answer), ``fail_next``
    (HTTP 503 for the next N requests), ``error_rate`` (the documented 500 envelope, HTTP 200).
    Rates draw from ``random.Random(settings.seed)``, only when the rate is > 0. Every request
    is recorded in ``requests`` (control calls too) and ``uploads_received`` counts every POST
    to the upload route, before any fault, whatever the outcome.
12. Quirks (applied when an envelope is built, the 500 fault included): ``lowercase_keys``
    lowercases every key of the envelope and, recursively, of ``Data``; ``data_as_string``
    serialises a non-null ``Data`` to a JSON string (after lowercasing); ``problem_details_400``
    answers the next validation failure (codes 261, 262, 265; not the credential codes) as a
    bare HTTP 400 ``application/problem+json`` body ``{"type", "title", "status", "errors"}``
    (``errors`` keyed by the offending parameter) and then switches itself off;
    ``multi_error_codes`` makes ``221`` read ``"221,234"``.
13. ``POST /_sandbox/faults`` takes a JSON object with any subset of the ``Faults`` fields,
    changes only those and answers the resulting faults; unknown fields or wrong types -> 400.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import uuid
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, Final

import attrs
from aiohttp import BodyPartReader, hdrs, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.typedefs import Handler
from PIL import Image

__all__ = [
    "SANDBOX_STATE",
    "ArtifiSandboxSettings",
    "ArtifiSandboxState",
    "ArtifiWebsite",
    "Faults",
    "PhotoRecord",
    "RecordedRequest",
    "create_sandbox_app",
]

UPLOAD_PATH: Final = "/api/2/UploadPhoto/UploadUserPhotos"
SETTINGS_PATH: Final = "/api/3/UploadImage/GetImageSettings"
LIST_PATH: Final = "/api/3/UploadImage/GetUserUploadedList"
DELETE_PATH: Final = "/api/3/UploadImage/DeleteUserPhoto"
UPDATE_USER_PATH: Final = "/api/3/User/UpdateUserId"
CONTROL_PREFIX: Final = "/_sandbox/"

FIRST_PHOTO_ID: Final = 5101329
DEFAULT_DPI: Final = 72
MAX_DPI: Final = 2400
MAX_USER_ID_LENGTH: Final = 128
MIB: Final = 1024 * 1024
_CHUNK: Final = 64 * 1024

SERVER_ERROR_MESSAGE: Final = "Internal server error occurred , while processing image"
DELETED_MESSAGE: Final = "The Image has been successfully deleted."
PHOTO_NOT_FOUND_MESSAGE: Final = "The Image does not exist for this user."
USER_UPDATED_MESSAGE: Final = "The user id has been successfully updated."
VALIDATION_TITLE: Final = "One or more validation errors occurred."
PROBLEM_TYPE: Final = "https://tools.ietf.org/html/rfc7231#section-6.5.1"
MISSING_BOUNDARY: Final = "Missing content-type boundary."

# Pillow format -> the names a website may list in ImageExtensions, and the extension we answer.
_FORMAT_NAMES: Final[Mapping[str, frozenset[str]]] = {
    "JPEG": frozenset({"JPEG", "JPG"}),
    "PNG": frozenset({"PNG"}),
    "GIF": frozenset({"GIF"}),
    "BMP": frozenset({"BMP"}),
    "TIFF": frozenset({"TIFF", "TIF"}),
    "WEBP": frozenset({"WEBP"}),
}
_FORMAT_EXTENSION: Final[Mapping[str, str]] = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "WEBP": ".webp",
}


@attrs.frozen
class ArtifiWebsite:
    """One configured Artifi website: its credentials and its upload rules."""

    website_id: int
    client_key: str
    max_file_mb: int = 5
    image_extensions: str = "JPEG,JPG,PNG"
    max_width: int = 3000
    max_height: int = 3000
    image_dpi: int = 90

    def allows(self, pillow_format: str) -> bool:
        """Whether an image Pillow detected as ``pillow_format`` may be uploaded here."""
        allowed = {e.strip().lstrip(".").upper() for e in self.image_extensions.split(",")}
        return bool(_FORMAT_NAMES.get(pillow_format, frozenset({pillow_format})) & allowed)


@attrs.frozen
class ArtifiSandboxSettings:
    """What the sandbox serves: its websites and the seed of its randomness."""

    websites: tuple[ArtifiWebsite, ...] = (
        ArtifiWebsite(website_id=1234, client_key="sandbox-artifi-key"),
    )
    seed: int = 0


@attrs.frozen
class RecordedRequest:
    """One request as received, before any fault: lets tests check the credentials carried."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@attrs.frozen
class PhotoRecord:
    """One stored user photo."""

    id: int
    image_name: str
    unique_image_name: str
    width: int
    height: int
    dpi: int
    extension: str
    mime_type: str
    photo_code: str
    is_guest: bool
    uploaded_at: datetime

    def upload_data(self) -> dict[str, object]:
        """The ``Data`` of a successful upload (api/2 names)."""
        return {
            "Id": self.id,
            "ImageName": self.image_name,
            "UniqueImageName": self.unique_image_name,
            "Width": self.width,
            "Height": self.height,
            "DPI": self.dpi,
            "Extension": self.extension,
            "MimeType": self.mime_type,
            "PhotoCode": self.photo_code,
        }

    def asset(self) -> dict[str, object]:
        """One ``AssetList`` item (api/3 says ``UniqueName``)."""
        return {
            "Id": self.id,
            "UniqueName": self.unique_image_name,
            "ImageName": self.image_name,
            "Width": self.width,
            "Height": self.height,
            "DPI": self.dpi,
            "Extension": self.extension,
            "MimeType": self.mime_type,
            "PhotoCode": self.photo_code,
        }


@attrs.define
class Faults:
    """Fault knobs and quirk switches; changed live by tests or ``POST /_sandbox/faults``."""

    latency_s: float = 0
    error_rate: float = 0
    drop_rate: float = 0
    fail_next: int = 0
    lowercase_keys: bool = False
    data_as_string: bool = False
    problem_details_400: bool = False
    multi_error_codes: bool = False


@attrs.define
class ArtifiSandboxState:
    """Everything the sandbox remembers; reachable as ``app[SANDBOX_STATE]``."""

    settings: ArtifiSandboxSettings
    rng: random.Random
    websites: dict[int, ArtifiWebsite]
    # website id -> user id -> photos in upload order
    photos: dict[int, dict[str, list[PhotoRecord]]] = attrs.Factory(dict)
    next_photo_id: int = FIRST_PHOTO_ID
    requests: list[RecordedRequest] = attrs.Factory(list)
    uploads_received: int = 0
    faults: Faults = attrs.Factory(Faults)

    @classmethod
    def from_settings(cls, settings: ArtifiSandboxSettings) -> ArtifiSandboxState:
        websites = {w.website_id: w for w in settings.websites}
        if len(websites) != len(settings.websites):
            raise ValueError("duplicate website_id in ArtifiSandboxSettings.websites")
        return cls(
            settings=settings,
            rng=random.Random(settings.seed),
            websites=websites,
            photos={website_id: {} for website_id in websites},
        )

    def user_photos(self, website_id: int, user_id: str) -> list[PhotoRecord]:
        """A user's photos in upload order (a copy; empty for an unknown user)."""
        return list(self.photos.get(website_id, {}).get(user_id, []))

    def new_uuid(self) -> str:
        # Seeded, so a given seed and call sequence always yields the same names.
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def take_photo_id(self) -> int:
        photo_id = self.next_photo_id
        self.next_photo_id += 1
        return photo_id

    def store_photo(self, website_id: int, user_id: str, photo: PhotoRecord) -> None:
        self.photos.setdefault(website_id, {}).setdefault(user_id, []).append(photo)

    def move_photos(
        self, website_id: int, old_user_id: str, new_user_id: str, is_guest: bool
    ) -> int:
        """Move every photo of ``old_user_id`` to ``new_user_id``; returns how many moved."""
        users = self.photos.setdefault(website_id, {})
        if old_user_id == new_user_id or old_user_id not in users:
            return 0
        moved = [attrs.evolve(p, is_guest=is_guest) for p in users.pop(old_user_id)]
        merged = users.setdefault(new_user_id, []) + moved
        # Appended, but kept in upload order so listings stay ascending.
        users[new_user_id] = sorted(merged, key=lambda p: p.id)
        return len(moved)

    def delete_photo(self, website_id: int, user_id: str, photo_id: int) -> bool:
        user = self.photos.get(website_id, {}).get(user_id)
        if not user:
            return False
        for index, photo in enumerate(user):
            if photo.id == photo_id:
                del user[index]
                return True
        return False

    def summary(self) -> dict[str, object]:
        """JSON-ready view for ``GET /_sandbox/state``."""
        return {
            "websites": {
                str(website_id): {
                    "users": {
                        user_id: [
                            {
                                **photo.upload_data(),
                                "IsGuest": photo.is_guest,
                                "UploadedAt": photo.uploaded_at.isoformat(),
                            }
                            for photo in photos
                        ]
                        for user_id, photos in users.items()
                    }
                }
                for website_id, users in self.photos.items()
            },
            "next_photo_id": self.next_photo_id,
            "uploads_received": self.uploads_received,
            "requests": len(self.requests),
            "faults": attrs.asdict(self.faults),
        }


SANDBOX_STATE: Final = web.AppKey("artifi_sandbox_state", ArtifiSandboxState)


# --- envelopes -------------------------------------------------------------------------------


def _lower_keys(value: object) -> object:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _envelope(
    state: ArtifiSandboxState,
    *,
    ok: bool,
    message: str | None = None,
    data: object = None,
    error_code: str | None = None,
) -> web.Response:
    faults = state.faults
    if faults.lowercase_keys:
        data = _lower_keys(data)
    if faults.data_as_string and data is not None:
        data = json.dumps(data)
    body: dict[str, object] = {
        "Response": "Success" if ok else "Error",
        "Message": message,
        "Data": data,
        "ErrorCode": error_code,
    }
    if faults.lowercase_keys:
        body = {k.lower(): v for k, v in body.items()}
    return web.json_response(body)


def _error(state: ArtifiSandboxState, code: str, message: str) -> web.Response:
    return _envelope(state, ok=False, message=message, error_code=code)


def _problem(errors: dict[str, list[str]]) -> web.Response:
    body = {"type": PROBLEM_TYPE, "title": VALIDATION_TITLE, "status": 400, "errors": errors}
    return web.json_response(body, status=400, content_type="application/problem+json")


def _validation_error(
    state: ArtifiSandboxState, code: str, field: str, message: str
) -> web.Response:
    """A 261/262/265 answer: the envelope, or once a bare ProblemDetails when the quirk is on."""
    if state.faults.problem_details_400:
        state.faults.problem_details_400 = False
        return _problem({field: [message]})
    return _error(state, code, message)


# --- request helpers -------------------------------------------------------------------------


def _query(request: web.Request) -> dict[str, str]:
    """Query parameters keyed by lower-cased name; the first value of a repeated name wins."""
    params: dict[str, str] = {}
    for key, value in request.query.items():
        params.setdefault(key.lower(), value)
    return params


def _authenticate(
    state: ArtifiSandboxState, params: Mapping[str, str]
) -> ArtifiWebsite | web.Response:
    raw_id = params.get("websiteid", "").strip()
    if not raw_id:
        return _error(state, "372", "WebsiteId is required.")
    invalid_code = "221,234" if state.faults.multi_error_codes else "221"
    try:
        website = state.websites.get(int(raw_id))
    except ValueError:
        website = None
    if website is None:
        return _error(state, invalid_code, "Invalid WebsiteId.")
    key = params.get("webapiclientkey", "")
    if not key or key != website.client_key:
        return _error(state, "226", "WebApiClientKey is empty or invalid.")
    return website


def _user_id(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name.lower(), "")
    if not value or len(value) > MAX_USER_ID_LENGTH:
        return None
    return value


def _flag(params: Mapping[str, str], name: str) -> bool:
    return params.get(name.lower(), "").strip().lower() in {"true", "1"}


def _int_or_none(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


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


# --- handlers --------------------------------------------------------------------------------


async def upload_user_photos(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    if request.content_type.startswith("multipart/"):
        mimetype = parse_mimetype(request.headers.get(hdrs.CONTENT_TYPE, ""))
        if not mimetype.parameters.get("boundary"):
            return _problem({"postedFile": [MISSING_BOUNDARY]})
    params = _query(request)
    website = _authenticate(state, params)
    if isinstance(website, web.Response):
        return website
    user_id = _user_id(params, "frontAppUserId")
    if user_id is None:
        return _validation_error(state, "261", "frontAppUserId", "Invalid frontAppUserId.")
    raw_dpi = params.get("dpi", "").strip()
    dpi = _int_or_none(raw_dpi) if raw_dpi else DEFAULT_DPI
    if dpi is None or not 1 <= dpi <= MAX_DPI:
        return _validation_error(state, "265", "dpi", f"Invalid DPI: must be 1..{MAX_DPI}.")
    is_guest = _flag(params, "isGuest")

    limit = website.max_file_mb * MIB
    try:
        posted = await _read_posted_file(request, (website.max_file_mb + 1) * MIB)
    except (ValueError, RuntimeError, BadHttpMessage):
        return _validation_error(state, "262", "postedFile", "The multipart body is malformed.")
    if posted is None:
        return _validation_error(state, "262", "postedFile", "The file is missing.")
    if not posted.data:
        return _validation_error(state, "262", "postedFile", "The file is empty.")
    if posted.too_large or len(posted.data) > limit:
        message = f"The file exceeds {website.max_file_mb} MB."
        return _validation_error(state, "262", "postedFile", message)
    info = _identify(posted.data)
    if info is None:
        return _validation_error(state, "262", "postedFile", "The file is not a valid image.")
    if not website.allows(info.format):
        message = f"Image type {info.format} is not allowed ({website.image_extensions})."
        return _validation_error(state, "262", "postedFile", message)
    if info.width > website.max_width or info.height > website.max_height:
        message = f"Image dimensions exceed {website.max_width}x{website.max_height}."
        return _validation_error(state, "262", "postedFile", message)

    old_user_id = params.get("oldexternaluserid", "")
    if old_user_id:
        state.move_photos(website.website_id, old_user_id, user_id, is_guest)
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
    state.store_photo(website.website_id, user_id, photo)
    return _envelope(state, ok=True, data=photo.upload_data())


async def get_image_settings(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    website = _authenticate(state, _query(request))
    if isinstance(website, web.Response):
        return website
    data = {
        "FileSize": website.max_file_mb,
        "ImageExtensions": website.image_extensions,
        "Dimension": {"Width": website.max_width, "Height": website.max_height},
        "ImageDPI": website.image_dpi,
        "UserPhotoImageWidth": 0,
        "UserPhotoImageHeight": 0,
    }
    return _envelope(state, ok=True, data=data)


async def get_user_uploaded_list(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    params = _query(request)
    website = _authenticate(state, params)
    if isinstance(website, web.Response):
        return website
    user_id = _user_id(params, "userId")
    if user_id is None:
        return _validation_error(state, "261", "userId", "Invalid userId.")
    photos = sorted(state.user_photos(website.website_id, user_id), key=lambda p: p.id)
    search = params.get("searchkey", "").strip().casefold()
    if search:
        photos = [p for p in photos if search in p.image_name.casefold()]
    page = photos
    page_size = _int_or_none(params.get("pagesize"))
    if page_size is not None and page_size > 0:
        page_index = _int_or_none(params.get("pageindex"))
        page_index = page_index if page_index is not None and page_index >= 1 else 1
        start = (page_index - 1) * page_size
        page = photos[start : start + page_size]
    data = {"AssetCount": len(photos), "AssetList": [p.asset() for p in page]}
    return _envelope(state, ok=True, data=data)


async def delete_user_photo(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    params = _query(request)
    website = _authenticate(state, params)
    if isinstance(website, web.Response):
        return website
    user_id = _user_id(params, "userId")
    if user_id is None:
        return _validation_error(state, "261", "userId", "Invalid userId.")
    photo_id = _int_or_none(params.get("photoid"))
    if photo_id is None or not state.delete_photo(website.website_id, user_id, photo_id):
        return _error(state, "262", PHOTO_NOT_FOUND_MESSAGE)
    return _envelope(state, ok=True, message=DELETED_MESSAGE)


async def update_user_id(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    params = _query(request)
    website = _authenticate(state, params)
    if isinstance(website, web.Response):
        return website
    new_user_id = _user_id(params, "newUserId")
    if new_user_id is None:
        return _validation_error(state, "261", "newUserId", "Invalid newUserId.")
    old_user_id = _user_id(params, "oldUserId")
    if old_user_id is None:
        return _validation_error(state, "261", "oldUserId", "Invalid oldUserId.")
    state.move_photos(website.website_id, old_user_id, new_user_id, _flag(params, "isGuest"))
    return _envelope(state, ok=True, message=USER_UPDATED_MESSAGE, data=True)


# --- control endpoints -----------------------------------------------------------------------


def _check_fault_value(name: str, value: object) -> str | None:
    """Why ``value`` is unacceptable for the ``Faults`` field ``name``; None if fine."""
    if name in {"latency_s", "error_rate", "drop_rate"}:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            return f"{name} must be a number >= 0"
        if name != "latency_s" and value > 1:
            return f"{name} must be between 0 and 1"
    elif name == "fail_next":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return "fail_next must be an integer >= 0"
    elif not isinstance(value, bool):
        return f"{name} must be a boolean"
    return None


async def set_faults(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    try:
        body: Any = await request.json()
    except ValueError:
        return web.json_response({"error": "body must be a JSON object"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "body must be a JSON object"}, status=400)
    known = {f.name for f in attrs.fields(Faults)}
    unknown = sorted(set(body) - known)
    if unknown:
        return web.json_response({"error": f"unknown fault fields: {unknown}"}, status=400)
    for name, value in body.items():
        problem = _check_fault_value(name, value)
        if problem:
            return web.json_response({"error": problem}, status=400)
    for name, value in body.items():
        setattr(state.faults, name, value)
    return web.json_response(attrs.asdict(state.faults))


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[SANDBOX_STATE].summary())


# --- faults ----------------------------------------------------------------------------------


@web.middleware
async def _faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[SANDBOX_STATE]
    state.requests.append(
        RecordedRequest(
            method=request.method,
            path=request.path,
            query={k: v for k, v in request.query.items()},
            headers={str(k): v for k, v in request.headers.items()},
        )
    )
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    if request.method == hdrs.METH_POST and request.path == UPLOAD_PATH:
        state.uploads_received += 1
    faults = state.faults
    if faults.latency_s > 0:
        await asyncio.sleep(faults.latency_s)
    if faults.drop_rate > 0 and state.rng.random() < faults.drop_rate:
        if request.transport is not None:
            request.transport.close()
        # Nothing reaches the client: writing to the closed transport fails quietly.
        return web.Response()
    if faults.fail_next > 0:
        faults.fail_next -= 1
        return web.Response(status=503, text="Service Unavailable")
    if faults.error_rate > 0 and state.rng.random() < faults.error_rate:
        return _error(state, "500", SERVER_ERROR_MESSAGE)
    return await handler(request)


def create_sandbox_app(settings: ArtifiSandboxSettings | None = None) -> web.Application:
    """The Artifi sandbox application; its state is ``app[SANDBOX_STATE]``."""
    app = web.Application(middlewares=[_faults_middleware])
    app[SANDBOX_STATE] = ArtifiSandboxState.from_settings(settings or ArtifiSandboxSettings())
    app.router.add_post(UPLOAD_PATH, upload_user_photos)
    app.router.add_post(SETTINGS_PATH, get_image_settings)
    app.router.add_get(LIST_PATH, get_user_uploaded_list, allow_head=False)
    app.router.add_get(DELETE_PATH, delete_user_photo, allow_head=False)
    app.router.add_put(UPDATE_USER_PATH, update_user_id)
    app.router.add_post(CONTROL_PREFIX + "faults", set_faults)
    app.router.add_get(CONTROL_PREFIX + "state", get_state)
    return app
